"""Scans run under the scan policy in force and record it (real Redis, S3 and clamd)."""

from __future__ import annotations

import io

from openpyxl import load_workbook
from rq import Queue, SimpleWorker

from portal import queue
from portal.extensions import db
from portal.models import Role, VersionStatus
from portal.services import policy, scans
from tests.worker.test_jobs import _add


def test_scans_run_under_the_policy_in_force_and_record_it(app, factories, redis_conn):
    """The python app's worst vulnerability scores 9.8: a 10.0 threshold lets it through."""
    saved = policy.update_policy(factories.user(Role.operator), "10.0", False)
    label = f"{policy.RULES}/{saved.version}"  # ids are not reused on PostgreSQL
    seller = factories.user()
    version = _add(seller, "pkg-a-python-app.tar.gz")
    SimpleWorker([Queue(queue.QUEUE_NAME, connection=redis_conn)],
                 connection=redis_conn).work(burst=True)
    db.session.refresh(version)
    scan = version.latest_scan
    assert (scan.policy, scan.threshold) == (label, 10.0)
    assert version.status is VersionStatus.approved, scan.error
    _, data = scans.report_download(seller, version.id)
    summary = load_workbook(io.BytesIO(data))["Summary"]
    assert any(label in str(v) for row in summary.iter_rows(values_only=True)
               for v in row)
