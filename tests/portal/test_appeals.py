"""Appeals: filing (report and web form), refusals that store nothing, the reviewer queue,
decisions and their carry-over to a rescan, reminders, SLA figures and the calendar."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from dataclasses import replace
from datetime import date, datetime, timedelta

import openpyxl
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from ops.services import free_port
from portal import storage
from portal.extensions import db
from portal.keys import report_key_for
from portal.models import (
    AcceptedFalsePositive, Appeal, AppealClaim, AppealEvidence, AuditEvent, CalendarDay,
    ClaimVerdict, Notification, Role, VersionStatus,
)
from portal.services import appeals, calendar, false_positives, reviews, scans, sla, state
from portal.services.appeals import ClaimInput
from portal.services.errors import Forbidden, NotFound, ValidationError
from portal.timeutil import utcnow
from scanner.report import write_report
from tests.scanner.report_fixtures import (
    NO_VECTOR_ID, UNSCANNED_ID, VIRUS_ID, VULN_ID, scan_result,
)

SECRET = report_key_for("test-secret")  # reports' key under the test config's SECRET_KEY
#: Rows of the Findings sheet: one per finding of ``scan_result()``, in order.
ROW = {VIRUS_ID: 2, VULN_ID: 3, NO_VECTOR_ID: 4, UNSCANNED_ID: 5}
BLOCKING = (VIRUS_ID, VULN_ID, UNSCANNED_ID)
REASON = "Vulnerable code not in execute path"
MONDAY = datetime(2026, 3, 2, 2, 0)  # 10:00 in Shanghai, an ordinary working week


# --- helpers ------------------------------------------------------------------------------

def make_rejected(factories, seller=None, *, result=None, name=None):
    """A version whose latest scan completed as rejected, with its report stored."""
    seller = seller or factories.user()
    asset = factories.asset(seller, name=name)
    version = factories.version(asset, status=VersionStatus.scanning,
                                package=b"PK\x05\x06" + bytes(18))
    scan = factories.scan(version, state="running")
    complete(scan, result or scan_result())
    db.session.refresh(version)
    assert version.status is VersionStatus.rejected
    return version


def complete(scan, result):
    """Write the report and the result as the worker does and complete the scan."""
    accepted = false_positives.accepted_for_scan(scan.id)
    version = scan.version
    ids = (version.asset.owner_id, version.asset_id, version.id, scan.id)
    verdict = false_positives.effective_verdict(result, accepted)
    data = write_report(replace(result, verdict=verdict),
                        report_id=f"scan-{scan.id}", secret=SECRET, asset_name=version.asset.name,
                        version_label=version.label, accepted=accepted)
    storage.put_bytes(storage.report_key(*ids), data)
    summary = {"scan_id": scan.id, **result.to_dict()}
    storage.put_bytes(storage.summary_key(*ids), json.dumps(summary).encode())
    return scans.complete_scan(scan.id, result, storage.report_key(*ids), None,
                               storage.summary_key(*ids))


def report_of(version) -> bytes:
    return scans.report_download(version.asset.owner, version.id)[1]


def edited(data: bytes, change) -> bytes:
    wb = openpyxl.load_workbook(io.BytesIO(data))
    change(wb)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def filled(data: bytes, **cells) -> bytes:
    """Set cells of the Findings sheet: filled(data, F3="Yes", G3="…")."""
    def change(wb):
        for ref, value in cells.items():
            wb["Findings"][ref] = value
    return edited(data, change)


def all_yes(data: bytes, ids=BLOCKING) -> bytes:
    cells = {}
    for fid in ids:
        row = ROW[fid]
        cells.update({f"F{row}": "Yes", f"G{row}": REASON, f"H{row}": f"evidence for {fid}"})
    return filled(data, **cells)


def submit(version, data: bytes, evidence=(), **kwargs):
    return appeals.submit_appeal(version.asset.owner, version.id, report_stream=io.BytesIO(data),
                                 report_name="app-1.0-scan-report.xlsx",
                                 evidence_files=[(n, io.BytesIO(b)) for n, b in evidence],
                                 **kwargs)


def snapshot() -> tuple:
    """Row counts of everything an appeal may create, and every stored object key."""
    counts = tuple(db.session.scalar(select(func.count()).select_from(model)) for model in
                   (Appeal, AppealClaim, AppealEvidence, AuditEvent, AcceptedFalsePositive))
    return counts, sorted(obj.key for obj in storage.list_keys(""))


def decide_all(reviewer, appeal, verdict="accepted", note="checked"):
    for claim in appeal.disputed:
        reviews.decide_claim(reviewer, claim.appeal_id, claim.id, verdict, note)
    return reviews.decide_appeal(reviewer, appeal.id, "done")


def actions(subject_type: str) -> list[str]:
    return [e.action for e in db.session.scalars(
        select(AuditEvent).where(AuditEvent.subject_type == subject_type).order_by(AuditEvent.id))]


@pytest.fixture
def rejected(factories):
    return make_rejected(factories)


@pytest.fixture
def reviewer(factories):
    return factories.user(Role.reviewer, name="Rita Reviewer")


# --- filing with the report -----------------------------------------------------------------

def test_the_filled_report_files_an_appeal_with_claims_files_and_due_date(rejected, monkeypatch):
    monkeypatch.setattr(appeals, "utcnow", lambda: MONDAY)
    data = filled(all_yes(report_of(rejected)), F4="No", H4="not used, but noted")
    appeal = submit(rejected, data, evidence=[("call graph.pdf", b"%PDF-1.7 proof")])

    db.session.refresh(rejected)
    assert rejected.status is VersionStatus.reviewing
    assert appeal.scan_id == rejected.latest_scan.id and appeal.is_open
    assert appeal.submitted_at == MONDAY
    assert appeal.due_at == datetime(2026, 3, 5, 15, 59, 59)  # Thursday 23:59:59 GMT+08:00
    claims = {c.finding_fingerprint: (c.false_positive, c.reason, c.evidence)
              for c in appeal.claims}
    assert claims == {VIRUS_ID: (True, REASON, f"evidence for {VIRUS_ID}"),
                      VULN_ID: (True, REASON, f"evidence for {VULN_ID}"),
                      UNSCANNED_ID: (True, REASON, f"evidence for {UNSCANNED_ID}"),
                      NO_VECTOR_ID: (False, "", "not used, but noted")}
    assert all(c.finding is not None and c.finding.scan_id == appeal.scan_id for c in appeal.claims)
    prefix = f"appeals/{rejected.asset.owner_id}/{rejected.asset_id}/{rejected.id}/"
    assert appeal.proof_key.startswith(prefix) and appeal.proof_key.endswith("/report.xlsx")
    prefix = appeal.proof_key.removesuffix("report.xlsx")
    assert storage.get_bytes(appeal.proof_key, len(data) + 1) == data
    [evidence] = appeal.evidence
    assert (evidence.filename, evidence.size, evidence.key) == (
        "call graph.pdf", 14, prefix + "evidence/1")
    assert actions("asset_versions")[-1] == "version.appeal"
    assert actions("appeals") == ["appeal.submit"]


def _zip(**members) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return out.getvalue()


def _swap_rows(wb):
    ws = wb["Findings"]
    for col in range(1, 6):
        top, below = ws.cell(2, col), ws.cell(3, col)
        top.value, below.value = below.value, top.value


def _alter_binding_hmac(wb):
    cell = wb["_binding"]["B4"]
    cell.value = ("0" if cell.value[0] != "0" else "1") + cell.value[1:]


REFUSED = {
    "empty file": (lambda d, v: b"", "Choose the filled-in security scan report"),
    "not a workbook": (lambda d, v: b"hello, reviewer", "is not an xlsx workbook"),
    "old .xls": (lambda d, v: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600),
                 "old-format (.xls) or password-protected"),
    "a zip but no workbook": (lambda d, v: _zip(**{"readme.txt": "hi"}),
                              "a zip archive but not an xlsx workbook"),
    "too large": (lambda d, v: d + bytes(10 * 1024 * 1024),
                  "more than 10.0 MB, the most a report may be"),
    "no Yes": (lambda d, v: filled(d, F3="No", H3="just a remark"),
               "Mark at least one finding as a false positive"),
    "Yes without a reason": (lambda d, v: filled(d, F3="Yes"),
                             "Row 3, column G: give a reason for each finding marked Yes"),
    "Other without evidence": (lambda d, v: filled(d, F3="Yes", G3="Other (explain in H)"),
                               "Row 3, column H: explain the reason"),
    "not Yes or No": (lambda d, v: filled(d, F3="Maybe", G3=REASON),
                      "Row 3, column F: “Maybe” is not Yes or No."),
    "score changed": (lambda d, v: filled(all_yes(d), E3=6.5),
                      "Row 3, column E was changed, but only columns F–H may be edited"),
    "finding id changed": (lambda d, v: filled(all_yes(d), A3="deadbeef"),
                           "Row 3: column A was changed"),
    "rows sorted": (lambda d, v: edited(all_yes(d), _swap_rows), "rows were sorted"),
    "row added": (lambda d, v: filled(all_yes(d), A6="extra", F6="Yes"),
                  "Row 6 was added below the findings"),
    "a report issued before the keys changed": (
        lambda d, v: all_yes(write_report(scan_result(), report_id=f"scan-{v.latest_scan.id}",
                                          secret=report_key_for("the-secret-before"))),
        "This report was issued before the portal's keys changed (or by another portal); "
        "download a fresh report from the asset page"),
    "binding altered": (lambda d, v: edited(all_yes(d), _alter_binding_hmac),
                        "could not be verified: it was not issued by this portal"),
    "an earlier scan's report": (
        lambda d, v: all_yes(write_report(scan_result(), report_id=f"scan-{v.latest_scan.id - 1}",
                                          secret=SECRET)),
        "This report belongs to another scan"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_file_says_why_and_stores_nothing(case, rejected):
    make, message = REFUSED[case]
    data = make(report_of(rejected), rejected)
    before = snapshot()
    with pytest.raises(ValidationError) as caught:
        submit(rejected, data, evidence=[("proof.txt", b"some proof")])
    assert message in caught.value.message
    assert caught.value.field == "report"
    assert snapshot() == before
    db.session.refresh(rejected)
    assert rejected.status is VersionStatus.rejected


def test_the_report_of_another_sellers_version_is_refused(factories, rejected):
    other = make_rejected(factories)
    before = snapshot()
    with pytest.raises(ValidationError, match="belongs to another scan"):
        submit(rejected, all_yes(report_of(other)))
    assert snapshot() == before


def test_an_evidence_file_over_the_limit_removes_what_was_already_stored(rejected, monkeypatch):
    monkeypatch.setattr(appeals, "MAX_EVIDENCE_BYTES", 1000)
    data = all_yes(report_of(rejected))
    before = snapshot()
    with pytest.raises(ValidationError, match="evidence file big.bin is larger than"):
        submit(rejected, data, evidence=[("small.txt", b"ok"), ("big.bin", bytes(5000))])
    assert snapshot() == before


def test_too_many_or_empty_evidence_files_are_refused(rejected, monkeypatch):
    data = all_yes(report_of(rejected))
    before = snapshot()
    with pytest.raises(ValidationError, match="at most 10 evidence files"):
        submit(rejected, data, evidence=[(f"{n}.txt", b"x") for n in range(11)])
    with pytest.raises(ValidationError, match="empty.txt is empty"):
        submit(rejected, data, evidence=[("empty.txt", b"")])
    assert snapshot() == before


def test_only_the_owner_of_a_rejected_version_can_appeal(factories, rejected, reviewer):
    data = all_yes(report_of(rejected))
    for stranger in (factories.user(), reviewer):
        with pytest.raises(NotFound):
            appeals.submit_appeal(stranger, rejected.id, report_stream=io.BytesIO(data))
    approved = factories.version(factories.asset(rejected.asset.owner), status="approved")
    with pytest.raises(ValidationError, match="Only a rejected version can be appealed"):
        appeals.submit_appeal(rejected.asset.owner, approved.id, report_stream=io.BytesIO(data))
    submit(rejected, data)
    with pytest.raises(ValidationError, match="Only a rejected version can be appealed"):
        submit(rejected, data)


# --- filing with the web form -----------------------------------------------------------------

def test_the_web_form_stores_the_same_claims_as_the_report(factories):
    seller = factories.user()
    by_file, by_form = make_rejected(factories, seller), make_rejected(factories, seller)
    data = filled(report_of(by_file), F3="yes", G3="  vulnerable CODE not in execute path ",
                  H3="never imported", F4="No", H4="noted", F5="Yes", G5="My own reason")
    from_file = submit(by_file, data)
    from_form = appeals.submit_claims_form(seller, by_form.id, [
        ClaimInput(VIRUS_ID, ""),
        ClaimInput(VULN_ID, "Yes", "vulnerable code  not in execute path", "never imported"),
        ClaimInput(NO_VECTOR_ID, "No", "", "noted"),
        ClaimInput(UNSCANNED_ID, "Yes", "My own reason", ""),
    ], evidence_files=[("trace.log", io.BytesIO(b"trace"))])

    def stored(appeal):
        return sorted((c.finding_fingerprint, c.false_positive, c.reason, c.evidence)
                      for c in appeal.claims)

    assert stored(from_form) == stored(from_file)
    assert (VULN_ID, True, REASON, "never imported") in stored(from_form)
    assert from_form.proof_key is None and [e.filename for e in from_form.evidence] == ["trace.log"]
    db.session.refresh(by_form)
    assert by_form.status is VersionStatus.reviewing


@pytest.mark.parametrize("claims, message", [
    ([], "Mark at least one finding as a false positive"),
    ([ClaimInput(VULN_ID, "No", "", "remark")], "Mark at least one finding as a false positive"),
    ([ClaimInput(VULN_ID, "Yes")], "give a reason for each finding marked Yes"),
    ([ClaimInput(VULN_ID, "Yes", "Other (explain in H)")], "explain the reason"),
    ([ClaimInput(VULN_ID, "", REASON)], "choose Yes or No"),
    ([ClaimInput(VULN_ID, "Yes", REASON, "x" * 4001)], "under 4000 characters"),
    ([ClaimInput("not-a-finding", "Yes", REASON)], "not in this version's latest scan"),
])
def test_the_web_form_refuses_what_the_report_reader_refuses(rejected, claims, message):
    before = snapshot()
    with pytest.raises(ValidationError) as caught:
        appeals.submit_claims_form(rejected.asset.owner, rejected.id, claims)
    assert message in caught.value.message
    assert snapshot() == before


# --- withdrawing -------------------------------------------------------------------------------

def test_withdraw_rejects_the_version_again_and_a_new_appeal_can_follow(factories, rejected):
    seller = rejected.asset.owner
    appeal = submit(rejected, all_yes(report_of(rejected)))
    with pytest.raises(NotFound):
        appeals.withdraw_appeal(factories.user(), appeal.id)
    appeals.withdraw_appeal(seller, appeal.id, address="192.0.2.7")
    db.session.refresh(rejected)
    assert rejected.status is VersionStatus.rejected
    assert appeal.decision.value == "withdrawn" and appeal.decided_at is not None
    assert actions("appeals")[-1] == "appeal.withdraw"
    with pytest.raises(ValidationError, match="already decided or withdrawn"):
        appeals.withdraw_appeal(seller, appeal.id)
    again = submit(rejected, all_yes(report_of(rejected)))
    assert again.is_open and appeals.seller_view(seller, rejected.id).appeal.id == again.id


# --- the reviewer side -----------------------------------------------------------------------

def test_a_reviewer_never_works_on_an_appeal_of_their_own_asset(factories, reviewer):
    own = make_rejected(factories, reviewer)
    appeal = submit(own, all_yes(report_of(own)))
    claim = appeal.disputed[0]
    with pytest.raises(Forbidden):
        reviews.claim_appeal(reviewer, appeal.id)
    with pytest.raises(Forbidden):
        reviews.decide_claim(reviewer, claim.appeal_id, claim.id, "accepted", "fine")
    with pytest.raises(Forbidden):
        reviews.decide_appeal(reviewer, appeal.id)
    row = reviews.reviewer_queue(reviewer)[0]
    assert row.own and not reviews.review_view(reviewer, appeal.id).can_decide
    db.session.refresh(own)
    assert own.status is VersionStatus.reviewing and claim.verdict is None


def test_a_claim_is_decided_only_through_its_own_appeal(factories, reviewer):
    first, second = make_rejected(factories), make_rejected(factories)
    one = submit(first, all_yes(report_of(first)))
    two = submit(second, all_yes(report_of(second)))
    claim = one.disputed[0]
    with pytest.raises(NotFound, match="No such claim on this appeal"):
        reviews.decide_claim(reviewer, two.id, claim.id, "accepted", "fine")
    db.session.refresh(claim)
    assert claim.verdict is None and actions("appeal_claims") == []
    assert reviews.decide_claim(reviewer, one.id, claim.id, "accepted").verdict.value == "accepted"


def test_sellers_do_not_see_the_queue_or_other_sellers_appeals(factories, rejected):
    appeal = submit(rejected, all_yes(report_of(rejected)))
    seller, stranger = rejected.asset.owner, factories.user()
    for call in (lambda u: reviews.reviewer_queue(u), lambda u: reviews.queue_counts(u),
                 lambda u: reviews.review_view(u, appeal.id),
                 lambda u: reviews.claim_appeal(u, appeal.id),
                 lambda u: reviews.decide_claim(u, appeal.id, appeal.disputed[0].id, "accepted")):
        for user in (seller, stranger):
            with pytest.raises(Forbidden, match="Only reviewers and operators"):
                call(user)
    with pytest.raises(NotFound):
        appeals.get_appeal(stranger, appeal.id)
    assert appeals.get_appeal(seller, appeal.id) is appeal


def _open_appeal(factories, due_at, reviewer_id=None):
    version = make_rejected(factories)
    appeal = submit(version, all_yes(report_of(version)))
    appeal.due_at, appeal.reviewer_id = due_at, reviewer_id
    db.session.commit()
    return appeal


def test_the_queue_is_ordered_by_due_time_with_flags_and_filters(factories, reviewer):
    now = datetime(2026, 3, 4, 4, 0)  # Wednesday 12:00 in Shanghai
    other = factories.user(Role.reviewer)
    later = _open_appeal(factories, datetime(2026, 3, 6, 15, 59, 59), reviewer.id)  # Friday
    overdue = _open_appeal(factories, datetime(2026, 3, 3, 15, 59, 59))  # yesterday
    today = _open_appeal(factories, datetime(2026, 3, 4, 15, 59, 59), other.id)  # tonight
    tomorrow = _open_appeal(factories, datetime(2026, 3, 5, 15, 59, 59))
    closed = _open_appeal(factories, datetime(2026, 3, 2, 15, 59, 59))
    appeals.withdraw_appeal(closed.seller, closed.id)

    rows = reviews.reviewer_queue(reviewer, now=now)
    assert [r.appeal.id for r in rows] == [overdue.id, today.id, tomorrow.id, later.id]
    assert [(r.due.overdue, r.due.due_today, r.due.countdown) for r in rows] == [
        (True, False, "overdue"), (False, True, "due today"),
        (False, False, "due in 1 working day"), (False, False, "due in 2 working days")]
    assert [r.due.css for r in rows] == ["due-overdue", "due-today", "due-soon", "due-later"]
    ids = {f: [r.appeal.id for r in reviews.reviewer_queue(reviewer, filter=f, now=now)]
           for f in ("overdue", "mine", "unassigned")}
    assert ids == {"overdue": [overdue.id], "mine": [later.id],
                   "unassigned": [overdue.id, tomorrow.id]}
    with pytest.raises(ValidationError):
        reviews.reviewer_queue(reviewer, filter="everything")
    counts = reviews.queue_counts(reviewer, now=now)
    assert (counts.open, counts.overdue, counts.mine, counts.unread) == (4, 1, 1, 0)


def test_claiming_assigns_once_and_operators_may_take_over(factories, reviewer, rejected):
    appeal = submit(rejected, all_yes(report_of(rejected)))
    reviews.claim_appeal(reviewer, appeal.id)
    assert appeal.reviewer_id == reviewer.id and appeal.assigned_at is not None
    with pytest.raises(ValidationError, match="Rita Reviewer already reviews this appeal"):
        reviews.claim_appeal(factories.user(Role.reviewer), appeal.id)
    operator = factories.user(Role.operator)
    reviews.claim_appeal(operator, appeal.id)
    assert appeal.reviewer_id == operator.id
    assert actions("appeals") == ["appeal.submit", "appeal.claim", "appeal.claim"]


def test_every_blocking_finding_accepted_approves_the_version(rejected, reviewer):
    appeal = submit(rejected, all_yes(report_of(rejected)))
    view = reviews.review_view(reviewer, appeal.id)
    assert view.undecided == 3 and not view.can_decide
    with pytest.raises(ValidationError, match="every disputed finding first"):
        reviews.decide_appeal(reviewer, appeal.id)
    for claim in appeal.disputed:
        reviews.decide_claim(reviewer, appeal.id, claim.id, "accepted", address="198.51.100.4")
    assert reviews.review_view(reviewer, appeal.id).outcome == "accepted"
    reviews.decide_appeal(reviewer, appeal.id, "All three are false positives.")

    db.session.refresh(rejected)
    assert rejected.status is VersionStatus.approved
    assert appeal.decision.value == "accepted" and appeal.reviewer_id == reviewer.id
    remembered = db.session.scalars(select(AcceptedFalsePositive)).all()
    assert sorted(r.fingerprint for r in remembered) == sorted(BLOCKING)
    assert {r.accepted_by_name for r in remembered} == {"Rita Reviewer"}
    assert actions("appeal_claims") == ["appeal.claim_decision"] * 3
    assert actions("appeals")[-1] == "appeal.decide"
    assert actions("asset_versions")[-1] == "version.accept"
    decision = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "appeal.decide")).one()
    assert decision.actor_id == reviewer.id and decision.after["decision"] == "accepted"
    with pytest.raises(ValidationError, match="already closed"):
        reviews.decide_appeal(reviewer, appeal.id)


def test_one_rejected_claim_rejects_the_version_with_the_notes_shown_to_the_seller(rejected,
                                                                                   reviewer):
    appeal = submit(rejected, all_yes(report_of(rejected)))
    virus, vuln, unscanned = sorted(appeal.disputed, key=lambda c: ROW[c.finding_fingerprint])
    with pytest.raises(ValidationError, match="Say why"):
        reviews.decide_claim(reviewer, vuln.appeal_id, vuln.id, "rejected", "  ")
    with pytest.raises(ValidationError, match="accept or reject"):
        reviews.decide_claim(reviewer, vuln.appeal_id, vuln.id, "maybe", "")
    reviews.decide_claim(reviewer, virus.appeal_id, virus.id, "accepted", "")
    reviews.decide_claim(reviewer, appeal.id, vuln.id, "rejected",
                         "full_load is called in src/config.py")
    reviews.decide_claim(reviewer, unscanned.appeal_id, unscanned.id, "accepted", "")
    assert reviews.review_view(reviewer, appeal.id).outcome == "denied"
    reviews.decide_appeal(reviewer, appeal.id, "Upgrade PyYAML to 5.3.1.")

    db.session.refresh(rejected)
    assert rejected.status is VersionStatus.rejected
    view = appeals.seller_view(rejected.asset.owner, rejected.id)
    assert view.appeal.decision.value == "denied"
    assert view.appeal.comment == "Upgrade PyYAML to 5.3.1."
    notes = {r.finding.fingerprint: (r.claim.verdict, r.claim.note) for r in view.rows if r.claim}
    assert notes[VULN_ID] == (ClaimVerdict.rejected, "full_load is called in src/config.py")
    # The two accepted ones are remembered even though the appeal failed; the rejected one is not.
    remembered = set(db.session.scalars(select(AcceptedFalsePositive.fingerprint)))
    assert remembered == {VIRUS_ID, UNSCANNED_ID}
    assert actions("asset_versions")[-1] == "version.deny"


def test_an_undisputed_blocking_finding_denies_the_appeal(rejected, reviewer):
    appeal = submit(rejected, all_yes(report_of(rejected), ids=(VULN_ID,)))
    decide_all(reviewer, appeal)
    assert appeal.decision.value == "denied"
    db.session.refresh(rejected)
    assert rejected.status is VersionStatus.rejected


# --- carry-over to a rescan -----------------------------------------------------------------

def _rescan(version):
    state.move(version, "submit", actor=version.asset.owner)
    db.session.commit()
    scan = scans.enqueue_scan(version)
    db.session.commit()
    scans.start_scan(scan.id, "test-worker")
    return scan


def test_accepted_false_positives_do_not_block_a_rescan_and_the_report_says_so(rejected, reviewer):
    appeal = submit(rejected, all_yes(report_of(rejected)))
    decide_all(reviewer, appeal)
    scan = complete(_rescan(rejected), scan_result())

    db.session.refresh(rejected)
    assert rejected.status is VersionStatus.approved
    assert scan.verdict == "approved" and scan.counts["blocking"] == 0
    today = calendar.local_time(appeal.decided_at, "Asia/Shanghai").date().isoformat()
    by_id = {f.fingerprint: f for f in scan.findings}
    for fid in BLOCKING:
        assert not by_id[fid].blocking
        assert by_id[fid].accepted_note == f"accepted by Rita Reviewer on {today}"
    assert by_id[NO_VECTOR_ID].accepted_note is None
    sheet = openpyxl.load_workbook(io.BytesIO(report_of(rejected)))["Findings"]
    assert sheet[f"J{ROW[VULN_ID]}"].value == f"accepted by Rita Reviewer on {today}"
    assert sheet[f"I{ROW[VULN_ID]}"].value == "No (accepted)"
    assert actions("asset_versions")[-1] == "version.approved"


def test_a_rejected_claim_keeps_blocking_on_a_rescan(rejected, reviewer):
    appeal = submit(rejected, all_yes(report_of(rejected)))
    for claim in appeal.disputed:
        verdict = "rejected" if claim.finding_fingerprint == VULN_ID else "accepted"
        reviews.decide_claim(reviewer, claim.appeal_id, claim.id, verdict, "see note")
    reviews.decide_appeal(reviewer, appeal.id)
    scan = complete(_rescan(rejected), scan_result())
    db.session.refresh(rejected)
    assert rejected.status is VersionStatus.rejected and scan.verdict == "rejected"
    assert [f.fingerprint for f in scan.findings if f.blocking] == [VULN_ID]
    assert scan.counts["blocking"] == 1
    # The seller appeals only what is left: earlier acceptances count toward the decision.
    again = submit(rejected, all_yes(report_of(rejected), ids=(VULN_ID,)))
    decide_all(reviewer, again)
    db.session.refresh(rejected)
    assert again.decision.value == "accepted" and rejected.status is VersionStatus.approved


def test_acceptances_belong_to_their_asset_only(factories, rejected, reviewer):
    appeal = submit(rejected, all_yes(report_of(rejected)))
    decide_all(reviewer, appeal)
    other = make_rejected(factories, rejected.asset.owner)
    assert all(f.accepted_note is None for f in other.latest_scan.findings)
    assert other.latest_scan.counts["blocking"] == 3


# --- reminders --------------------------------------------------------------------------------

def test_reminders_notify_reviewers_once_per_kind(factories, reviewer):
    operator = factories.user(Role.operator)
    factories.user(Role.reviewer, active=False)
    appeal = _open_appeal(factories, datetime(2026, 3, 5, 15, 59, 59))  # Thursday night
    wednesday = datetime(2026, 3, 4, 4, 0)

    assert sla.send_reminders(now=datetime(2026, 3, 2, 4, 0)) == 0  # Monday: not due soon
    assert sla.send_reminders(now=wednesday) == 2
    assert sla.send_reminders(now=wednesday + timedelta(hours=5)) == 0
    notes = db.session.scalars(select(Notification).order_by(Notification.user_id)).all()
    assert [(n.user_id, n.kind, n.appeal_id) for n in notes] == [
        (reviewer.id, "due_soon", appeal.id), (operator.id, "due_soon", appeal.id)]
    assert f"Appeal #{appeal.id}" in notes[0].text and "2026-03-05 23:59 GMT+08:00" in notes[0].text

    reviews.claim_appeal(reviewer, appeal.id)
    assert sla.send_reminders(now=datetime(2026, 3, 6, 1, 0)) == 1  # Friday: overdue
    assert sla.send_reminders(now=datetime(2026, 3, 7, 1, 0)) == 0
    overdue = db.session.scalars(select(Notification).where(Notification.kind == "overdue")).all()
    assert [(n.user_id, n.appeal_id) for n in overdue] == [(reviewer.id, appeal.id)]
    assert appeal.reminded_due_soon_at == wednesday
    assert sla.unread_count(reviewer) == 2 and sla.mark_read(reviewer) == 2
    assert sla.unread_count(reviewer) == 0 and sla.unread_count(operator) == 1


def test_the_owner_of_the_asset_is_not_reminded(factories, reviewer):
    version = make_rejected(factories, reviewer)
    appeal = submit(version, all_yes(report_of(version)))
    sla.send_reminders(now=appeal.due_at + timedelta(minutes=1))
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0


class _Inbox:
    def __init__(self):
        self.messages, self.arrived = [], threading.Event()

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        self.arrived.set()
        return "250 OK"


@pytest.fixture
def smtp_server():
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


def test_reminders_are_emailed_when_smtp_is_configured(app, factories, reviewer, smtp_server):
    controller, inbox = smtp_server
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=controller.port,
                      MAIL_FROM="assay@marketplace.example")
    appeal = _open_appeal(factories, datetime(2026, 3, 5, 15, 59, 59))
    assert sla.send_reminders(now=datetime(2026, 3, 6, 1, 0)) == 1
    assert inbox.arrived.wait(10)
    [(recipients, content)] = inbox.messages
    assert recipients == [reviewer.email]
    assert "From: assay@marketplace.example" in content
    assert f"Subject: [Assay] Appeal #{appeal.id} on" in content and "is overdue" in content


def test_without_smtp_no_mail_is_attempted(app, factories, reviewer, smtp_server):
    _, inbox = smtp_server
    app.config["SMTP_HOST"] = ""
    _open_appeal(factories, datetime(2026, 3, 5, 15, 59, 59))
    assert sla.send_reminders(now=datetime(2026, 3, 6, 1, 0)) == 1
    assert not inbox.arrived.wait(0.5)


# --- SLA figures and the calendar ----------------------------------------------------------------

def test_sla_figures(factories, reviewer):
    now = datetime(2026, 3, 4, 4, 0)
    _open_appeal(factories, datetime(2026, 3, 3, 15, 59, 59))
    _open_appeal(factories, datetime(2026, 3, 4, 15, 59, 59))
    _open_appeal(factories, datetime(2026, 3, 6, 15, 59, 59))
    for hours in (10, 30, 50):
        appeal = _open_appeal(factories, datetime(2026, 3, 4, 15, 59, 59))
        decide_all(reviewer, appeal)
        appeal.submitted_at = now - timedelta(hours=hours + 1)
        appeal.decided_at = now - timedelta(hours=1)
    old = _open_appeal(factories, datetime(2026, 1, 4, 15, 59, 59))
    decide_all(reviewer, old)
    old.decided_at = now - timedelta(days=40)
    db.session.commit()

    figures = sla.sla_figures(now=now)
    assert (figures.open, figures.due_today, figures.overdue) == (3, 1, 1)
    assert figures.decided_30d == 3 and figures.median_to_decision == timedelta(hours=30)
    assert figures.median_text == "30.0 h" and figures.within_sla_30d == 3


def test_calendar_overrides_move_due_dates_of_open_appeals(factories, rejected, monkeypatch):
    monkeypatch.setattr(appeals, "utcnow", lambda: MONDAY)
    appeal = submit(rejected, all_yes(report_of(rejected)))
    assert appeal.due_at == datetime(2026, 3, 5, 15, 59, 59)
    operator = factories.user(Role.operator)
    with pytest.raises(Forbidden):
        sla.set_calendar_day(factories.user(Role.reviewer), date(2026, 3, 3), False, "storm")

    row = sla.set_calendar_day(operator, "2026-03-03", False, "Typhoon day", address="203.0.113.9")
    assert appeal.due_at == datetime(2026, 3, 6, 15, 59, 59)  # pushed to Friday
    sla.set_calendar_day(operator, date(2026, 3, 7), True, "Make-up Saturday")
    assert appeal.due_at == datetime(2026, 3, 6, 15, 59, 59)
    assert sla.calendar_overrides() == {date(2026, 3, 3): False, date(2026, 3, 7): True}
    sla.set_calendar_day(operator, date(2026, 3, 4), False, "")
    assert appeal.due_at == datetime(2026, 3, 7, 15, 59, 59)  # the make-up Saturday counts
    assert sla.compute_due(MONDAY) == appeal.due_at
    sla.delete_calendar_day(operator, row.id)
    assert appeal.due_at == datetime(2026, 3, 6, 15, 59, 59)
    assert [d.day for d in sla.list_calendar_days()] == [date(2026, 3, 4), date(2026, 3, 7)]
    assert actions("calendar_days") == ["calendar.set"] * 3 + ["calendar.delete"]
    with pytest.raises(ValidationError, match="YYYY-MM-DD"):
        sla.set_calendar_day(operator, "3/3/2026", False)
    with pytest.raises(NotFound):
        sla.delete_calendar_day(operator, 99999)
    assert db.session.scalar(select(func.count()).select_from(CalendarDay)) == 2


def test_upcoming_days_name_holidays_make_up_days_and_overrides(factories):
    operator = factories.user(Role.operator)
    sla.set_calendar_day(operator, date(2026, 2, 26), False, "Office move")
    days = {d.day: d for d in sla.upcoming_days(14, start=date(2026, 2, 14))}
    assert days[date(2026, 2, 14)].working and days[date(2026, 2, 14)].why == "make-up working day"
    assert not days[date(2026, 2, 17)].working and days[date(2026, 2, 17)].why
    assert not days[date(2026, 2, 22)].working
    assert days[date(2026, 2, 26)].why == "override: Office move"
    assert days[date(2026, 2, 27)].working and days[date(2026, 2, 27)].why == ""


def test_deleting_an_asset_removes_its_appeals_and_the_sweeper_their_files(app, rejected,
                                                                            reviewer):
    from portal.services import assets, sweeper

    appeal = submit(rejected, all_yes(report_of(rejected)), evidence=[("log.txt", b"log")])
    decide_all(reviewer, appeal)
    sla.send_reminders(now=appeal.due_at)  # a decided appeal: nothing to remind
    keys = appeal.object_keys
    assert len(keys) == 2 and all(storage.head(k) for k in keys)
    assert set(keys) <= sweeper.known_keys()
    assets.delete_asset(rejected.asset.owner, rejected.asset_id)
    counts, _ = snapshot()
    assert counts[:3] == (0, 0, 0) and counts[4] == 0  # appeals, claims, evidence, accepted
    later = utcnow() + timedelta(seconds=app.config["ORPHAN_MIN_AGE"] + 60)
    assert set(keys) <= set(sweeper.find_orphans(later))
