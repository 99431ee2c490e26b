"""A package that keeps a scan stage busy without progress is stopped, failed and not retried.

The stall is real: the scanner's test-only switch ``ASSAY_TEST_STALL_STAGE=catalog``
makes the catalog stage block in C (a long ``time.sleep``), where Python cannot
interrupt it, as a reader stuck in a C library would. (The crafted database that
once did this, an ``rpmdb.sqlite`` whose ``Packages`` view never ends, is now read
under a deadline: tests/scanner/test_catalog_limits.py.)
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from rq import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from portal import queue
from portal.extensions import db
from portal.models import AuditEvent, Scan, ScanState, VersionStatus
from portal.services import assets, scans
from scanner.pipeline import TEST_STALL_STAGE
from tests.worker.test_jobs import _add, _alive, _kill_horse, _state
from worker import jobs

ROOT = Path(__file__).resolve().parents[2]
STALL_AFTER = 3


def stalling_package(tmp_path: Path) -> bytes:
    """A .tar.gz holding an operating-system tree (the stall comes from the switch)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("rootfs/etc/os-release")
        text = b'ID="rhel"\nVERSION_ID="9.4"\n'
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    return buffer.getvalue()


def test_a_stalled_scan_is_stopped_by_the_worker_failed_and_not_retried(
        app, factories, redis_conn, services_env, tmp_path, var_dir):
    seller = factories.user()
    version = assets.create_asset(
        seller, name="rpmapp", kind="binary", description="", version_label="1.0",
        stream=io.BytesIO(stalling_package(tmp_path)), filename="rpmapp.tar.gz", submit=True)
    scan_id = version.latest_scan.id
    env = {**os.environ, **services_env, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "ASSAY_S3_BUCKET": app.config["S3_BUCKET"], "ASSAY_SCAN_HEARTBEAT": "1",
           "ASSAY_SCAN_STALL_AFTER": str(STALL_AFTER), "ASSAY_SCAN_RETRY_BACKOFF": "0",
           TEST_STALL_STAGE: "catalog"}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "worker", "--burst", "--no-scheduler"],
                            cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # the old heartbeat kept the scan alive for 6 hours
        _stop(proc, scan_id)
        pytest.fail("the stalled scan was still running after two minutes")
    assert proc.returncode == 0, stderr[-2000:]
    assert time.monotonic() - started < 90

    db.session.rollback()
    scan = db.session.get(Scan, scan_id, populate_existing=True)
    assert scan.state is ScanState.failed and scan.attempts == 1, scan.error
    assert scan.error.startswith(scans.STALLED) and "cataloging" in scan.error
    assert "not retried" in scan.error
    db.session.refresh(version)
    assert version.status is VersionStatus.scanning  # a failed scan decides nothing
    badge = scans.badge(version)
    assert (badge.label, badge.polling) == ("Scan stopped", False)
    assert "cataloging" in badge.stage
    assert [p.problem for p in scans.list_scans_for_operator() if p.scan.id == scan_id] == [
        "stalled"]
    events = AuditEvent.query.filter_by(action="scan.stalled").all()
    assert len(events) == 1 and events[0].after["stage"] == "catalog"
    assert AuditEvent.query.filter_by(action="scan.failed").count() == 0
    # The queue does not run it again, now or later.
    rq_queue = Queue(queue.QUEUE_NAME, connection=redis_conn)
    assert rq_queue.count == 0 and ScheduledJobRegistry(queue=rq_queue).count == 0
    assert FailedJobRegistry(queue=rq_queue).get_job_ids() == [scan.job_id]
    # The work horse ended itself and left no scratch files behind.
    assert not _alive(int(scan.worker.split(":", 1)[1].split()[0]))
    assert not list((var_dir / "scratch").glob(f"scan-{scan_id}-*"))


def _stop(proc: subprocess.Popen, scan_id: int) -> None:
    worker = db.session.get(Scan, scan_id, populate_existing=True).worker
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if worker:
        _kill_horse(worker)
    proc.wait(10)


# --- the watch in the scanning process itself -------------------------------------------

def _running_scan(factories) -> int:
    version = _add(factories.user(), "pkg-c-clean.tar.gz")
    scan = scans.start_scan(version.latest_scan.id, "test:1")
    assert scan is not None
    return scan.id


def test_a_stage_looping_in_python_is_interrupted_in_its_thread(app, factories, redis_conn):
    """Without a work horse to end, the scanning thread gets ScanStalled."""
    app.config.update(SCAN_HEARTBEAT=1, SCAN_STALL_AFTER=2)
    scan_id = _running_scan(factories)
    started = time.monotonic()
    with pytest.raises(jobs.ScanStalled):
        with jobs._heartbeat(scan_id) as watch, watch.armed():
            report = watch.relay(lambda *args: None)
            while time.monotonic() - started < 30:
                report("catalog", 0, 1)  # the same numbers again and again are no progress
                time.sleep(0.01)
    assert time.monotonic() - started < 10
    assert _state(scan_id) is ScanState.failed
    scan = db.session.get(Scan, scan_id)
    assert scans.stalled(scan) and "cataloging" in scan.error
    # A late failure or completion of the same run changes nothing.
    assert scans.fail_attempt(scan_id, "OSError: late").state is ScanState.failed
    assert scans.stalled(db.session.get(Scan, scan_id, populate_existing=True))


def test_a_long_stage_that_advances_is_not_stalled(app, factories, redis_conn):
    app.config.update(SCAN_HEARTBEAT=1, SCAN_STALL_AFTER=2)
    scan_id = _running_scan(factories)
    with jobs._heartbeat(scan_id) as watch, watch.armed():
        report = watch.relay(lambda *args: None)
        for done in range(12):  # 6 seconds, three times the stall setting
            report("virus", done, 12)
            time.sleep(0.5)
    assert _state(scan_id) is ScanState.running
    assert AuditEvent.query.filter_by(action="scan.stalled").count() == 0


def test_waiting_outside_the_scanner_stages_is_not_judged(app, factories, redis_conn):
    """Only the scanner's stages are watched (storage transfers have timeouts of their own)."""
    app.config.update(SCAN_HEARTBEAT=1, SCAN_STALL_AFTER=1)
    scan_id = _running_scan(factories)
    before = db.session.get(Scan, scan_id).heartbeat_at
    with jobs._heartbeat(scan_id) as watch:
        time.sleep(3.5)
        assert watch.idle() == 0
    assert _state(scan_id) is ScanState.running
    assert db.session.get(Scan, scan_id).heartbeat_at > before  # it kept beating
