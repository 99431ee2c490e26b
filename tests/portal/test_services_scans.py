"""Scans: outbox, claiming, progress, completion, failures, reaper, badge, downloads."""

import threading
from datetime import timedelta

import pytest

from portal import queue, storage
from portal.extensions import db
from portal.models import Role, ScanState, VersionStatus
from portal.services import scans
from portal.services.errors import Forbidden, InvalidTransition, NotFound
from portal.timeutil import utcnow
from scanner.model import Component, Cvss, Finding, PackageInfo, ScanInfo, ScanResult


def _result(verdict="rejected"):
    comp = Component("PyPI", "jinja2", "2.10", "pkg:pypi/jinja2@2.10", "app.tar.gz!/x")
    findings = () if verdict == "approved" else (
        Finding(id="f1", type="vulnerability", location="app.tar.gz!/x", blocking=True,
                ids=("GHSA-1",), aliases=("CVE-1",), component=comp,
                cvss=Cvss(7.5, "CVSS:3.1/AV:N", "GHSA-1"), fixed_versions=("2.11",)),
        Finding(id="f2", type="virus", location="app.tar.gz!/e", blocking=True,
                signature="Eicar-Test-Signature", engine="clamav"),
    )
    return ScanResult(verdict, PackageInfo("app.tar.gz", 10, "ab" * 32, "tar.gz"), (comp,),
                      findings, ScanInfo("assay-2026.1", 7.0, {"clamav": "1.4"}, 12, "t0", "t1"))


@pytest.fixture
def scanning(factories):
    """A version being scanned, with its queued scan."""
    version = factories.version(status=VersionStatus.scanning, package="pkg-c-clean.tar.gz")
    return version, factories.scan(version)


def test_dispatch_marks_the_scan_enqueued_once(app, scanning):
    _, scan = scanning
    assert scans.dispatch_scan(scan.id) is True
    assert scan.enqueued_at is not None and scan.job_id == f"scan-{scan.id}-1"
    assert queue.job_exists(scan.job_id) is True
    assert scans.dispatch_scan(scan.id) is False


def test_redis_unreachable_keeps_the_scan_in_the_outbox(app, scanning):
    _, scan = scanning
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    assert scans.dispatch_scan(scan.id) is False
    assert scan.enqueued_at is None and scans.drain_outbox() == 0
    assert [r.problem for r in scans.list_scans_for_operator()] == ["waiting in the outbox"]


def test_start_scan_claims_once(app, scanning):
    _, scan = scanning
    assert scans.start_scan(scan.id, "w1", job_id="j1").worker == "w1"
    assert scan.state is ScanState.running and scan.attempts == 1 and scan.heartbeat_at
    assert scans.start_scan(scan.id, "w2", job_id="j2") is None
    # the same job run again by the queue (its process died) takes over
    assert scans.start_scan(scan.id, "w1b", job_id="j1").attempts == 2


def test_concurrent_claims_have_one_winner(app, scanning):
    _, scan = scanning
    scan_id, winners, barrier = scan.id, [], threading.Barrier(8)

    def claim(n):
        with app.app_context():
            barrier.wait()
            if scans.start_scan(scan_id, f"w{n}", job_id=f"j{n}") is not None:
                winners.append(n)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    db.session.refresh(scan)
    assert scan.attempts == 1 and scan.worker == f"w{winners[0]}"


def test_progress_is_durable_and_throttled(app, scanning):
    _, scan = scanning
    scans.start_scan(scan.id, "w", job_id="j")
    record = scans.progress_recorder(scan.id, interval=60)
    record("virus", 0, 10)
    record("virus", 5, 10)  # within the interval: not written
    db.session.refresh(scan)
    assert (scan.stage, scan.progress) == ("virus", scans.overall_percent("virus", 0, 10))
    record("report", 0, 1)  # a new stage is always written
    db.session.refresh(scan)
    assert scan.stage == "report" and scan.progress == 92
    badge = scans.badge(scan.version)
    assert (badge.label, badge.stage, badge.percent, badge.polling) == ("Scanning", "report", 92, True)


def test_overall_percent_grows_through_the_stages():
    values = [scans.overall_percent(s, d, 2) for s in scans.STAGES for d in (0, 1, 2)]
    assert values == sorted(values) and values[0] == 0 and max(values) == 99
    assert scans.overall_percent("unknown", 1, 1) == 0
    assert scans.overall_percent("fetch", 5, 0) == 0


def test_complete_scan_stores_findings_and_moves_the_version(app, scanning):
    version, scan = scanning
    scans.start_scan(scan.id, "w")
    scans.complete_scan(scan.id, _result(), "r", "s", "j")
    assert version.status is VersionStatus.rejected and scan.state is ScanState.done
    assert scan.counts == {"virus": 1, "vulnerability": 1, "unscanned": 0, "blocking": 2}
    assert scan.max_cvss == 7.5 and scan.engines == {"clamav": "1.4"} and scan.osv_records == 12
    vuln = scan.findings[0]
    assert (vuln.component_name, vuln.cvss_vector, vuln.fixed_versions) == (
        "jinja2", "CVSS:3.1/AV:N", ["2.11"])
    assert [c.purl for c in scan.components] == ["pkg:pypi/jinja2@2.10"]
    scans.complete_scan(scan.id, _result("approved"), "r", "s", "j")  # a duplicate: ignored
    assert version.status is VersionStatus.rejected and len(scan.findings) == 2


def test_an_older_scan_does_not_decide_a_newer_submission(app, scanning, factories):
    version, old = scanning
    factories.scan(version)  # the package was modified and submitted again
    scans.complete_scan(old.id, _result("approved"), None, None, None)
    assert version.status is VersionStatus.scanning


def test_failures_retry_then_fail_without_a_verdict(app, scanning):
    version, scan = scanning
    app.config["SCAN_MAX_ATTEMPTS"] = 2
    scans.start_scan(scan.id, "w")
    scans.fail_attempt(scan.id, "clamd: connection refused")
    assert scan.state is ScanState.queued and scan.error.startswith("clamd")
    assert scans.badge(version).stage == "retrying"
    scans.start_scan(scan.id, "w")
    scans.fail_attempt(scan.id, "clamd: connection refused")
    assert scan.state is ScanState.failed and version.status is VersionStatus.scanning
    badge = scans.badge(version)
    assert badge.label == "Scanning" and "delayed" in badge.stage
    assert scans.start_scan(scan.id, "w") is None


def test_reaper_requeues_silent_scans_and_fails_exhausted_ones(app, scanning, factories):
    version, scan = scanning
    scans.start_scan(scan.id, "w", job_id="j")
    assert scans.reap_stuck_scans() == 0
    later = utcnow() + timedelta(seconds=app.config["SCAN_STUCK_AFTER"] + 1)
    assert [r.problem for r in scans.list_scans_for_operator(now=later)] == ["stuck"]
    assert scans.reap_stuck_scans(now=later) == 1
    assert scan.state is ScanState.queued and scan.enqueued_at is None
    assert "stopped responding" in scan.error
    app.config["SCAN_MAX_ATTEMPTS"] = 1
    scans.start_scan(scan.id, "w")  # out of attempts: refused and failed
    assert scan.state is ScanState.failed


def test_reaper_requeues_a_scan_whose_job_vanished(app, scanning, redis_service):
    from redis import Redis

    _, scan = scanning
    scans.dispatch_scan(scan.id)
    Redis.from_url(redis_service.address).delete(f"rq:job:{scan.job_id}")
    later = utcnow() + timedelta(seconds=app.config["SCAN_STUCK_AFTER"] + 1)
    assert scans.reap_stuck_scans(now=later) == 1
    assert scan.enqueued_at is None


def test_operator_can_retry_a_failed_scan(app, scanning, factories):
    version, scan = scanning
    scan.state = ScanState.failed
    db.session.commit()
    with pytest.raises(Forbidden):
        scans.retry_scan(factories.user(), scan.id)
    new = scans.retry_scan(factories.user(Role.operator), scan.id)
    assert new.id != scan.id and version.latest_scan == new and new.enqueued_at
    with pytest.raises(InvalidTransition):
        scans.retry_scan(factories.user(Role.operator), scan.id)


@pytest.mark.parametrize(
    ("status", "label", "polling"),
    [("draft", "Draft", False), ("approved", "Approved", False), ("rejected", "Rejected", False),
     ("reviewing", "Reviewing", False), ("scanning", "Queued", True)],
)
def test_badge(app, factories, status, label, polling):
    badge = scans.badge(factories.version(status=status))
    assert (badge.label, badge.polling, badge.css) == (label, polling, f"status-{label.lower()}")


def test_report_and_sbom_downloads_are_for_the_owner_and_reviewers(app, scanning, factories):
    version, scan = scanning
    owner = version.asset.owner
    with pytest.raises(NotFound, match="no report"):
        scans.report_download(owner, version.id)
    storage.put_bytes("scans/t/report.xlsx", b"xlsx")
    storage.put_bytes("scans/t/sbom.json", b"{}")
    scans.start_scan(scan.id, "w")
    scans.complete_scan(scan.id, _result(), "scans/t/report.xlsx", "scans/t/sbom.json", None)
    name, data = scans.report_download(owner, version.id)
    assert data == b"xlsx" and name == f"{version.asset.name}-{version.label}-scan-report.xlsx"
    assert scans.sbom_download(factories.user(Role.reviewer), version.id)[1] == b"{}"
    with pytest.raises(NotFound):
        scans.report_download(factories.user(), version.id)
