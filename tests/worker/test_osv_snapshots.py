"""A real scan (real Redis, S3, clamd and worker) on vulnerability data imported as a
snapshot records that snapshot, and is re-verified on it after newer data is switched in."""

from __future__ import annotations

import json
from pathlib import Path

from rq import Queue, SimpleWorker

from portal import queue
from portal.extensions import db
from portal.models import Role, VersionStatus
from portal.services import advisories, scans

OSV = Path(__file__).resolve().parents[1] / "data" / "corpus" / "osv"


def test_a_scan_records_its_snapshot_and_is_reverified_on_it(app, factories, redis_conn,
                                                             tmp_path):
    app.config.update(OSV_DIR=str(tmp_path / "osv"), OSV_KEEP=3)
    first = advisories.import_osv([OSV])
    version = factories.version(factories.asset(), status=VersionStatus.approved,
                                package="pkg-a-python-app.tar.gz")
    operator = factories.user(Role.operator)
    scan = scans.rescan_version(operator, version.id)
    SimpleWorker([Queue(queue.QUEUE_NAME, connection=redis_conn)],
                 connection=redis_conn).work(burst=True)
    db.session.refresh(scan)
    assert scan.engines["osv"] == first.snapshot and scan.components
    assert scan.counts["vulnerability"] >= 1

    newer = tmp_path / "newer"
    newer.mkdir()
    requests = next(c for c in scan.components if c.name.lower() == "requests")
    (newer / "r.json").write_text(json.dumps({
        "id": "GHSA-test-req1", "modified": "2026-12-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
                      "versions": [requests.version]}]}))
    second = advisories.import_osv([newer])
    assert second.snapshot != first.snapshot

    outcome = advisories.reverify_scan(operator, scan.id)
    assert outcome.snapshot == first.snapshot
    assert outcome.holds and outcome.verdict == scan.verdict and not outcome.new
