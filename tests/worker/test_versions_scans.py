"""A second version of an asset is scanned on its own: its own scan, verdict and report,
the first version untouched (real Redis, S3 and clamd)."""

from __future__ import annotations

from rq import Queue, SimpleWorker

from portal import queue
from portal.extensions import db
from portal.models import AssetVersion, AuditEvent, VersionStatus
from portal.services import assets, scans
from tests.portal.test_versions import corpus, first_asset


def test_a_second_version_gets_its_own_scan_and_report(app, factories, redis_conn):
    seller = factories.user()
    first = first_asset(seller)
    second = assets.add_version(seller, first.asset_id, version_label="2.0",
                                stream=corpus("pkg-d-eicar-nested.zip"),
                                filename="pkg-d-eicar-nested.zip", submit=True)
    assert second.asset_id == first.asset_id and second.id != first.id
    SimpleWorker([Queue(queue.QUEUE_NAME, connection=redis_conn)],
                 connection=redis_conn).work(burst=True)
    db.session.expire_all()
    first, second = db.session.get(AssetVersion, first.id), db.session.get(AssetVersion, second.id)
    assert first.status is VersionStatus.approved and second.status is VersionStatus.rejected
    assert first.latest_scan.id != second.latest_scan.id
    name, _ = scans.report_download(seller, second.id)
    assert name == "tool-2.0-scan-report.xlsx"
    assert scans.report_download(seller, first.id)[0] == "tool-1.0-scan-report.xlsx"
    event = AuditEvent.query.filter_by(action="version.create").one()
    assert event.subject_id == second.id and event.after["label"] == "2.0"
    # My Assets lists the asset once, with its latest version
    page = assets.list_assets(seller)
    assert [(a.id, a.latest_version.label) for a in page.items] == [(first.asset_id, "2.0")]
