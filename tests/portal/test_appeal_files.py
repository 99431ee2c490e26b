"""What a seller's files can and cannot do: macro workbooks and risky evidence are refused
with nothing stored, evidence is served only as a download, and reviewers (and, after the
decision, sellers) get a report written from the stored scan, not the uploaded file."""

from __future__ import annotations

import io
import socket
import zipfile

import openpyxl
import pytest

from portal import storage
from portal.extensions import db
from portal.models import AppealEvidence, Role, VersionStatus
from portal.services import appeals, reviews
from portal.services.errors import ValidationError
from tests.portal.test_appeals import (
    BLOCKING, REASON, ROW, SECRET, VULN_ID, all_yes, decide_all, filled, make_rejected,
    report_of, snapshot, submit,
)
from tests.scanner.report_fixtures import NO_VECTOR_ID, UNSCANNED_ID, VIRUS_ID

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STAN" + b"DARD-ANTIVIRUS-TEST-FILE!$H+H*"
ELF = b"\x7fELF\x02\x01\x01" + bytes(57)
VBA_TYPE = b"application/vnd.ms-office.vbaProject"


@pytest.fixture
def rejected(factories):
    return make_rejected(factories, name="acme-agent")


@pytest.fixture
def reviewer(factories):
    return factories.user(Role.reviewer, name="Rita Reviewer")


def with_vba(data: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "[Content_Types].xml":
                body = body.replace(b"</Types>", b'<Override PartName="/xl/vbaProject.bin" '
                                    b'ContentType="' + VBA_TYPE + b'"/></Types>')
            dst.writestr(info.filename, body)
        dst.writestr("xl/vbaProject.bin", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100))
    return out.getvalue()


def sheet(data: bytes, name: str) -> dict:
    wb = openpyxl.load_workbook(io.BytesIO(data))
    if name == "Summary":
        return {r[0].value: r[1].value for r in wb[name].iter_rows() if r[0].value}
    return {r[0].value: [c.value for c in r] for r in wb[name].iter_rows(min_row=2)}


# --- macro workbooks ----------------------------------------------------------------------

def test_a_report_with_a_vba_project_is_refused_and_nothing_is_stored(rejected):
    data = with_vba(all_yes(report_of(rejected)))
    before = snapshot()
    with pytest.raises(ValidationError, match="contains macros") as caught:
        submit(rejected, data)
    assert caught.value.field == "report"
    assert snapshot() == before


def test_a_report_uploaded_as_xlsm_is_refused(rejected):
    data = all_yes(report_of(rejected))
    with pytest.raises(ValidationError, match=r"Excel Workbook \(.xlsx\) without macros"):
        appeals.submit_appeal(rejected.asset.owner, rejected.id, report_stream=io.BytesIO(data),
                              report_name="acme-agent-scan-report.xlsm")
    db.session.refresh(rejected)
    assert rejected.status is VersionStatus.rejected


# --- evidence ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, body, message", [
    ("helper", ELF, "The evidence file helper is an ELF executable"),
    ("sample.txt", EICAR, "The evidence file sample.txt was refused: ClamAV found"),
    ("tools.zip", None, "The evidence file tools.zip holds bin/run, a script"),
])
def test_risky_evidence_is_refused_and_nothing_is_stored(rejected, name, body, message):
    if body is None:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            z.writestr("bin/run", b"#!/bin/sh\necho hi\n")
        body = out.getvalue()
    data = all_yes(report_of(rejected))
    before = snapshot()
    with pytest.raises(ValidationError) as caught:
        submit(rejected, data, evidence=[("notes.txt", b"first file is fine"), (name, body)])
    assert str(caught.value).startswith(message) and caught.value.field == "evidence"
    assert snapshot() == before  # the first file, stored already, was removed again


def test_evidence_is_refused_while_clamd_cannot_be_reached(app, rejected):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.config["CLAMD_ADDRESS"] = f"tcp://127.0.0.1:{port}"
    data = all_yes(report_of(rejected))
    before = snapshot()
    with pytest.raises(ValidationError, match="could not be checked for viruses right now; try "
                                              "again later"):
        submit(rejected, data, evidence=[("notes.txt", b"plain")])
    assert snapshot() == before


def test_accepted_evidence_records_what_examined_it(rejected):
    appeal = submit(rejected, all_yes(report_of(rejected)), evidence=[("notes.txt", b"plain")])
    [evidence] = appeal.evidence
    assert evidence.scanned_at is not None
    assert "ClamAV" in evidence.scanned_with and "YARA" in evidence.scanned_with


def test_evidence_is_served_as_an_attachment_only(client, auth, rejected, reviewer):
    appeal = submit(rejected, all_yes(report_of(rejected)),
                    evidence=[("page.html", b"<script>alert(1)</script>")])
    auth.login_as(reviewer)
    response = client.get(f"/appeals/evidence/{appeal.evidence[0].id}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"] == "attachment; filename=page.html"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_evidence_stored_before_examination_is_examined_on_first_download(client, auth,
                                                                         rejected, reviewer):
    appeal = submit(rejected, all_yes(report_of(rejected)), evidence=[("a.txt", b"plain")])
    clean = appeal.evidence[0]
    key = clean.key.removesuffix("1") + "2"
    storage.put_bytes(key, ELF)
    risky = AppealEvidence(appeal_id=appeal.id, key=key, filename="tool", size=len(ELF),
                           sha256="0" * 64)
    clean.scanned_with = clean.scanned_at = None  # as rows stored before revision 0008 are
    db.session.add(risky)
    db.session.commit()
    auth.login_as(reviewer)

    response = client.get(f"/appeals/evidence/{risky.id}")
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "The evidence file tool is an ELF executable" in page
    assert client.get(f"/appeals/evidence/{clean.id}").get_data() == b"plain"
    db.session.refresh(clean)
    assert clean.scanned_at is not None and "ClamAV" in clean.scanned_with


# --- the reports people download ----------------------------------------------------------

def test_reviewers_get_the_report_written_from_the_scan_not_the_sellers_file(client, auth,
                                                                            rejected, reviewer):
    def lie(wb):  # what the binding does not cover: the Summary and columns I+
        summary = wb["Summary"]
        for row in summary.iter_rows():
            if row[0].value == "Verdict":
                row[1].value = "Approved"
        for fid in BLOCKING:
            wb["Findings"][f"I{ROW[fid]}"] = "No"
            wb["Findings"][f"J{ROW[fid]}"] = "accepted by the security team"

    data = all_yes(report_of(rejected))
    wb = openpyxl.load_workbook(io.BytesIO(data))
    lie(wb)
    out = io.BytesIO()
    wb.save(out)
    appeal = submit(rejected, out.getvalue())  # F–H are as bound, so the file is accepted

    auth.login_as(reviewer)
    response = client.get(f"/appeals/{appeal.id}/report")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    assert f"appeal-{appeal.id}-report.xlsx" in response.headers["Content-Disposition"]
    got = response.get_data()
    assert got != out.getvalue()
    assert sheet(got, "Summary")["Verdict"] == "Rejected"
    assert sheet(got, "Summary")["Appeal decision"].startswith("open: a reviewer decides it by")
    rows = sheet(got, "Findings")
    for fid in BLOCKING:
        assert rows[fid][5:10] == ["Yes", REASON, f"evidence for {fid}", "Yes", None]
    page = client.get(f"/reviews/{appeal.id}").get_data(as_text=True)
    assert f'href="/appeals/{appeal.id}/report"' in page
    assert f"/assets/versions/{rejected.id}/report" not in page


def test_after_a_decision_the_sellers_report_shows_it(rejected, reviewer):
    data = filled(all_yes(report_of(rejected)), F4="No", H4="only a dev dependency")
    appeal = submit(rejected, data)
    for claim in appeal.disputed:
        verdict = "rejected" if claim.finding_fingerprint == VIRUS_ID else "accepted"
        note = "the signature matches a real dropper" if verdict == "rejected" else "confirmed"
        reviews.decide_claim(reviewer, appeal.id, claim.id, verdict, note)
    reviews.decide_appeal(reviewer, appeal.id, "The helper binary must go.")

    got = report_of(rejected)
    summary = sheet(got, "Summary")
    assert summary["Appeal decision"].startswith("denied by Rita Reviewer on ")
    assert summary["Reviewer's comment"] == "The helper binary must go."
    assert summary["Accepted false positives"] == 2
    rows = sheet(got, "Findings")
    accepted = rows[VULN_ID][9]
    assert accepted.startswith("accepted by Rita Reviewer on ")
    assert accepted.endswith("Reviewer's note: confirmed")
    assert rows[VULN_ID][8] == "No (accepted)" and rows[UNSCANNED_ID][8] == "No (accepted)"
    assert rows[VIRUS_ID][8] == "Yes"
    assert rows[VIRUS_ID][9] == "Not accepted: the signature matches a real dropper"
    assert rows[NO_VECTOR_ID][5:8] == ["No", None, "only a dev dependency"]


def test_an_accepted_appeal_report_can_be_read_back(rejected, reviewer):
    from scanner.report import read_appeal

    appeal = submit(rejected, all_yes(report_of(rejected)))
    decide_all(reviewer, appeal)
    db.session.refresh(rejected)
    assert rejected.status is VersionStatus.approved
    got = report_of(rejected)
    assert sheet(got, "Summary")["Verdict"] == "Approved"
    claims = read_appeal(got, secret=SECRET, report_id=f"scan-{appeal.scan_id}").claims
    assert {c.finding_id for c in claims} == set(BLOCKING)
