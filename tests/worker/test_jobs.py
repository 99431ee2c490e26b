"""The scan job against real Redis, S3 and clamd, run by RQ workers."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from rq import Queue, SimpleWorker

from portal import queue
from portal.extensions import db
from portal.models import AuditEvent, Scan, ScanState, VersionStatus
from portal.services import assets, scans
from portal.timeutil import utcnow
from tests.portal.factories import PACKAGES
from worker import jobs

ROOT = Path(__file__).resolve().parents[2]


def _work(redis_conn) -> None:
    SimpleWorker([Queue(queue.QUEUE_NAME, connection=redis_conn)],
                 connection=redis_conn).work(burst=True)


def _add(seller, package: str, *, submit: bool = True, name: str = "app", kind: str = "binary"):
    with open(PACKAGES / package, "rb") as stream:
        return assets.create_asset(seller, name=name, kind=kind, description="",
                                   version_label="1.0", stream=stream, filename=package,
                                   submit=submit)


def test_clean_package_is_approved(app, factories, redis_conn):
    seller = factories.user()
    version = _add(seller, "pkg-c-clean.tar.gz")
    assert scans.badge(version).label == "Queued"
    _work(redis_conn)
    db.session.refresh(version)
    scan = version.latest_scan
    assert version.status is VersionStatus.approved, scan.error
    assert scan.state is ScanState.done and scan.verdict == "approved"
    assert scan.progress == 100 and scan.attempts == 1 and scan.engines
    assert scan.report_key and scan.sbom_key and scan.summary_key
    badge = scans.badge(version)
    assert (badge.label, badge.polling) == ("Approved", False)
    moves = [(e.action, e.actor_id, e.after) for e in
             AuditEvent.query.filter_by(subject_type="asset_versions").order_by(AuditEvent.id)]
    assert moves == [("version.submit", seller.id, {"status": "scanning"}),
                     ("version.approved", None, {"status": "approved"})]


def test_eicar_package_is_rejected_with_a_downloadable_report(app, factories, redis_conn):
    seller = factories.user()
    version = _add(seller, "pkg-d-eicar-nested.zip")
    _work(redis_conn)
    db.session.refresh(version)
    scan = version.latest_scan
    assert version.status is VersionStatus.rejected, scan.error
    assert scan.counts["virus"] >= 1
    virus = [f for f in scan.findings if f.type == "virus"]
    assert virus and all("!/" in f.location or f.location for f in virus)
    name, data = scans.report_download(seller, version.id)
    assert name == "app-1.0-scan-report.xlsx"
    sheet = load_workbook(io.BytesIO(data))["Findings"]
    assert any(row[1] == "Virus" for row in sheet.iter_rows(min_row=2, values_only=True))
    sbom_name, sbom = scans.sbom_download(seller, version.id)
    assert sbom_name.endswith(".cdx.json") and b"CycloneDX" in sbom


def test_a_package_the_scanner_refuses_is_rejected_not_retried(app, factories, redis_conn):
    seller = factories.user()
    version = _add(seller, "pkg-c-clean.tar.gz")
    version.package_name = "bad name!.tar.gz"  # as if the rules changed after the upload
    db.session.commit()
    _work(redis_conn)
    db.session.refresh(version)
    scan = version.latest_scan
    assert version.status is VersionStatus.rejected and scan.attempts == 1
    assert [f.type for f in scan.findings] == ["unscanned"]
    assert "could not be scanned" in scan.findings[0].summary


def test_a_docker_asset_without_an_image_is_rejected_with_the_reason(app, factories, redis_conn):
    seller = factories.user()
    version = _add(seller, "pkg-c-clean.tar.gz", kind="docker")
    _work(redis_conn)
    db.session.refresh(version)
    scan = version.latest_scan
    assert version.status is VersionStatus.rejected and scan.attempts == 1
    assert [f.type for f in scan.findings] == ["unscanned"]
    assert "image" in scan.findings[0].summary.lower()


def test_missing_vulnerability_data_fails_the_attempt_never_the_verdict(app, app_config, factories,
                                                                      redis_conn, tmp_path):
    app.config.update(OSV_DIR=str(tmp_path / "no-osv"), SCAN_MAX_ATTEMPTS=2)
    jobs._osv_cache.clear()
    version = _add(factories.user(), "pkg-c-clean.tar.gz")
    _work(redis_conn)
    jobs._osv_cache.clear()
    db.session.refresh(version)
    scan = version.latest_scan
    assert version.status is VersionStatus.scanning
    assert scan.state is ScanState.failed and scan.attempts == 2
    assert "vulnerability data" in scan.error
    assert scans.badge(version).label == "Scanning"
    assert [row.problem for row in scans.list_scans_for_operator()] == ["failed"]


def test_redis_down_at_submit_keeps_the_scan_until_it_is_back(app, factories, redis_service,
                                                            redis_conn):
    seller = factories.user()
    redis_service.stop()
    try:
        version = _add(seller, "pkg-c-clean.tar.gz")
        scan = version.latest_scan
        assert scan.enqueued_at is None and version.status is VersionStatus.scanning
        assert scans.drain_outbox() == 0
    finally:
        redis_service.restart()
    assert jobs.drain_outbox() == 1
    assert scans.drain_outbox() == 0  # never twice
    _work(redis_conn)
    db.session.refresh(version)
    assert version.status is VersionStatus.approved


def test_two_jobs_for_one_scan_run_it_once(app, factories, redis_conn):
    version = _add(factories.user(), "pkg-c-clean.tar.gz")
    scan_id = version.latest_scan.id
    assert queue.enqueue_scan_job(scan_id, 7)  # a duplicate job, as a double drain would make
    _work(redis_conn)
    scan = db.session.get(Scan, scan_id)
    assert scan.state is ScanState.done and scan.attempts == 1
    assert db.session.query(Scan).count() == 1


def test_a_worker_killed_mid_scan_is_reaped_and_the_scan_finishes(app, factories, redis_conn,
                                                                 services_env, clamd_service):
    version = _add(factories.user(), "pkg-a-python-app.tar.gz")
    scan_id = version.latest_scan.id
    env = {**os.environ, **services_env, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "ASSAY_S3_BUCKET": app.config["S3_BUCKET"], "ASSAY_SCAN_HEARTBEAT": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "worker", "--no-scheduler"], cwd=ROOT, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _state(scan_id) is ScanState.running, 60)
        os.killpg(proc.pid, signal.SIGKILL)
        _kill_horse(db.session.get(Scan, scan_id).worker)
    finally:
        proc.kill()
        proc.wait(10)
    assert _state(scan_id) is ScanState.running
    assert scans.reap_stuck_scans() == 0  # the heartbeat is still fresh
    later = utcnow() + timedelta(seconds=app.config["SCAN_STUCK_AFTER"] + 5)
    assert scans.reap_stuck_scans(now=later) == 1
    assert _state(scan_id) is ScanState.queued
    redis_conn.flushdb()  # the killed job's leftovers
    assert scans.drain_outbox() == 1
    _work(redis_conn)
    scan = db.session.get(Scan, scan_id)
    assert scan.state is ScanState.done and scan.attempts == 2
    assert "stopped responding" not in (scan.error or "")
    assert db.session.get(type(version), version.id).status in (VersionStatus.approved,
                                                               VersionStatus.rejected)


def test_the_worker_entry_point_scans_in_a_forked_horse(app, factories, redis_conn,
                                                       services_env):
    version = _add(factories.user(), "pkg-d-eicar-nested.zip")
    env = {**os.environ, **services_env, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "ASSAY_S3_BUCKET": app.config["S3_BUCKET"]}
    done = subprocess.run([sys.executable, "-m", "worker", "--burst"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    db.session.rollback()
    db.session.refresh(version)
    assert version.status is VersionStatus.rejected, version.latest_scan.error
    assert version.latest_scan.worker and "(" in version.latest_scan.worker


def _kill_horse(worker: str) -> None:
    """SIGKILL the work horse named in a scan's ``worker`` (``host:pid (name)``) and wait for it.

    RQ puts each horse in a process group of its own, so killing the worker's group leaves it
    scanning, and writing to the database, storage and Redis while later tests run.
    """
    pid = int(worker.split(":", 1)[1].split()[0])
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _wait_for(lambda: not _alive(pid), 10)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie runs no more code


def _state(scan_id: int) -> ScanState:
    db.session.rollback()
    return db.session.get(Scan, scan_id, populate_existing=True).state


def _wait_for(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    pytest.fail("timed out")


def test_a_dead_virus_engine_is_retried_by_the_queue_and_never_decides(app, factories, redis_conn):
    from ops.services import free_port

    app.config.update(CLAMD_ADDRESS=f"tcp://127.0.0.1:{free_port()}", SCAN_MAX_ATTEMPTS=2)
    version = _add(factories.user(), "pkg-c-clean.tar.gz")
    _work(redis_conn)  # the queue retries the failed job at once (backoff 0 in tests)
    db.session.refresh(version)
    scan = version.latest_scan
    assert scan.state is ScanState.failed and scan.attempts == 2
    assert "clamd" in scan.error.lower() and version.status is VersionStatus.scanning
    assert AuditEvent.query.filter_by(action="scan.failed").count() == 1


def test_the_scheduler_runs_each_periodic_job_once_per_period(app, factories, redis_conn):
    from worker.__main__ import run_scheduler

    reachable = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    version = _add(factories.user(), "pkg-c-clean.tar.gz")  # Redis "down": kept in the outbox
    app.config["REDIS_URL"] = reachable
    run_scheduler(app, "scheduler-a", tick=0, rounds=1)
    assert version.latest_scan.enqueued_at is not None
    assert not queue.claim_period("worker.jobs.drain_outbox", 10, "scheduler-b")
    assert queue.claim_period("worker.jobs.unknown", 10, "scheduler-b")
    assert Queue(queue.QUEUE_NAME, connection=redis_conn).count == 1
