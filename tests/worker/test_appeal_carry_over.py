"""An appeal's accepted false positives carry over when the real scan job runs the same
package again (real Redis, S3 and clamd)."""

from __future__ import annotations

import io

from openpyxl import load_workbook
from rq import Queue, SimpleWorker

from portal import queue
from portal.extensions import db
from portal.models import Role, VersionStatus
from portal.services import appeals, assets, reviews, scans
from tests.portal.factories import PACKAGES
from worker import jobs

PACKAGE = "pkg-a-python-app.tar.gz"


def _work(redis_conn) -> None:
    SimpleWorker([Queue(queue.QUEUE_NAME, connection=redis_conn)],
                 connection=redis_conn).work(burst=True)


def _report(seller, version):
    return load_workbook(io.BytesIO(scans.report_download(seller, version.id)[1]))


def _claim_every_blocking_finding(seller, version) -> bytes:
    wb = _report(seller, version)
    sheet = wb["Findings"]
    for row in range(2, sheet.max_row + 1):
        if sheet[f"I{row}"].value == "Yes":
            sheet[f"F{row}"] = "Yes"
            sheet[f"G{row}"] = "Vulnerable code not in execute path"
            sheet[f"H{row}"] = "The affected module is never imported."
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_accepted_findings_do_not_block_when_the_same_package_is_scanned_again(
        app, factories, redis_conn):
    seller = factories.user()
    reviewer = factories.user(Role.reviewer, name="Rita Reviewer")
    with open(PACKAGES / PACKAGE, "rb") as stream:
        version = assets.create_asset(seller, name="python-app", kind="binary", description="",
                                      version_label="1.0", stream=stream, filename=PACKAGE,
                                      submit=True)
    _work(redis_conn)
    db.session.refresh(version)
    first = version.latest_scan
    assert version.status is VersionStatus.rejected, first.error
    blocking = sorted(f.fingerprint for f in first.findings if f.blocking)
    assert blocking and all(f.type == "vulnerability" for f in first.findings if f.blocking)

    appeal = appeals.submit_appeal(seller, version.id, report_stream=io.BytesIO(
        _claim_every_blocking_finding(seller, version)))
    assert sorted(c.finding_fingerprint for c in appeal.disputed) == blocking
    for claim in appeal.disputed:
        reviews.decide_claim(reviewer, claim.appeal_id, claim.id, "accepted", "not reachable")
    reviews.decide_appeal(reviewer, appeal.id)
    db.session.refresh(version)
    assert version.status is VersionStatus.approved

    with open(PACKAGES / PACKAGE, "rb") as stream:
        assets.modify_version(seller, version.id, stream=stream, filename=PACKAGE)
    _work(redis_conn)
    db.session.refresh(version)
    second = version.latest_scan
    assert second.id != first.id and version.status is VersionStatus.approved, second.error
    assert second.verdict == "approved" and second.counts["blocking"] == 0
    carried = {f.fingerprint: f.accepted_note for f in second.findings if f.accepted_note}
    assert sorted(carried) == blocking
    assert all(note.startswith("accepted by Rita Reviewer on ") for note in carried.values())

    wb = _report(seller, version)
    rows = {r[0]: r for r in wb["Findings"].iter_rows(min_row=2, values_only=True)}
    assert {fid: (rows[fid][8], rows[fid][9]) for fid in blocking} == {
        fid: ("No (accepted)", carried[fid]) for fid in blocking}
    summary = {r[0]: r[1] for r in wb["Summary"].iter_rows(values_only=True) if r[0]}
    assert summary["Verdict"] == "Approved" and summary["Blocking findings"] == 0
    assert jobs.run_reminders() == 0
