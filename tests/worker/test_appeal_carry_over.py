"""An appeal's accepted false positives carry over when the real scan job runs the same
package again, and only then: other bytes at an accepted path block again (real Redis, S3
and clamd)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

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


def _encrypted_zip(name: str, data: bytes) -> bytes:
    """A zip whose entry is flagged encrypted: the scanner cannot read it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    raw = bytearray(buffer.getvalue())
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        raw[raw.find(signature) + flag_at] |= 1
    return bytes(raw)


def _unscanned_package(tmp_path, folder: str, secret: bytes) -> Path:
    """``pkg.tar.gz`` with an encrypted zip at ``app/payload.zip``: an unscanned finding at
    the same location whatever ``secret`` is."""
    (tmp_path / folder).mkdir()
    path = tmp_path / folder / "pkg.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, data in {"app/payload.zip": _encrypted_zip("payload.bin", secret),
                           "app/README": b"An app.\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _modify(seller, version, package: Path, redis_conn):
    with open(package, "rb") as stream:
        assets.modify_version(seller, version.id, stream=stream, filename=package.name)
    _work(redis_conn)
    db.session.refresh(version)
    return version.latest_scan


def test_an_accepted_unscanned_file_does_not_cover_other_content_at_its_path(
        app, factories, redis_conn, tmp_path):
    seller = factories.user()
    reviewer = factories.user(Role.reviewer, name="Rita Reviewer")
    accepted = _unscanned_package(tmp_path, "one", b"licensed firmware blob " * 64)
    with open(accepted, "rb") as stream:
        version = assets.create_asset(seller, name="sealed-app", kind="binary", description="",
                                      version_label="1.0", stream=stream, filename=accepted.name,
                                      submit=True)
    _work(redis_conn)
    db.session.refresh(version)
    first = version.latest_scan
    assert version.status is VersionStatus.rejected, first.error
    blocking = {(f.type, f.location): f.fingerprint for f in first.findings if f.blocking}
    assert "unscanned" in {kind for kind, _ in blocking}

    appeal = appeals.submit_appeal(seller, version.id, report_stream=io.BytesIO(
        _claim_every_blocking_finding(seller, version)))
    for claim in appeal.disputed:
        reviews.decide_claim(reviewer, appeal.id, claim.id, "accepted", "vendor blob")
    reviews.decide_appeal(reviewer, appeal.id)
    db.session.refresh(version)
    assert version.status is VersionStatus.approved

    # Other bytes at the same path: a finding of its own, rejected until someone reviews it.
    other = _modify(seller, version, _unscanned_package(tmp_path, "two", b"something else"),
                    redis_conn)
    assert version.status is VersionStatus.rejected and other.verdict == "rejected", other.error
    replaced = {(f.type, f.location): f for f in other.findings if f.blocking}
    assert set(replaced) == set(blocking)
    assert all(f.fingerprint != blocking[key] and f.accepted_note is None
               for key, f in replaced.items())

    # The accepted content again: still accepted.
    again = _modify(seller, version, accepted, redis_conn)
    assert version.status is VersionStatus.approved and again.verdict == "approved", again.error
    assert {f.fingerprint for f in again.findings if f.accepted_note} == set(blocking.values())
