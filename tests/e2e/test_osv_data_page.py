"""The operators' Data page in a real browser, after OSV imports and a sync from a local
server (one ecosystem's download truncated): per ecosystem the records, newest modified,
last sync and outcome, the snapshot in use, and a version flagged by a new advisory with
its Re-scan button. Screenshots go to ``test-output/screenshots/``."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.e2e.test_account_flow import log_in
from tests.e2e.test_seller_flow import (  # noqa: F401  (fixtures)
    PACKAGES, PASSWORD, Shots, page, portal, screenshots,
)
from tests.portal.test_osv_data import OSV, bucket, record, zip_of  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _approved_version_with_components(app):
    """An Approved version whose last scan stored requests 2.19.1 (rows, as a scan leaves them)."""
    from portal import storage
    from portal.extensions import db
    from portal.models import (
        Asset, AssetKind, AssetVersion, Scan, ScanComponent, ScanState, VersionStatus,
    )
    from portal.services import users
    from portal.timeutil import utcnow

    seller = users.create_user("sam@example.com", "Sam Seller", PASSWORD, "seller")
    asset = Asset(owner_id=seller.id, name="billing-service", kind=AssetKind.binary)
    db.session.add(asset)
    db.session.flush()
    version = AssetVersion(asset_id=asset.id, label="2.4.0", status=VersionStatus.approved,
                           submitted_at=utcnow())
    db.session.add(version)
    db.session.flush()
    package = (PACKAGES / "pkg-c-clean.tar.gz").read_bytes()
    key = storage.package_key(seller.id, asset.id, version.id, storage.new_upload_id())
    storage.put_bytes(key, package)
    version.package_key, version.package_name = key, "pkg-c-clean.tar.gz"
    version.package_size, version.package_sha256 = len(package), hashlib.sha256(package).hexdigest()
    scan = Scan(version_id=version.id, state=ScanState.done, package_key=key, verdict="approved",
                finished_at=utcnow(), threshold=7.0, report_key="reports/none.xlsx",
                engines={"osv": "osv:sha256:000000000000/1"})
    scan.components = [ScanComponent(ecosystem="PyPI", name="requests", version="2.19.1",
                                     purl="pkg:pypi/requests@2.19.1",
                                     location="pkg.tar.gz!/site-packages/requests")]
    db.session.add(scan)
    db.session.commit()
    return version


def test_the_data_page_after_imports_and_a_sync(page, portal, screenshots, bucket, tmp_path):  # noqa: F811
    from portal.services import advisories, users

    app = portal.app
    app.config.update(OSV_DIR=str(tmp_path / "osv"), OSV_URL=bucket.url,
                      OSV_ECOSYSTEMS=("PyPI", "npm", "Go"))
    bucket.files["/osv/PyPI/all.zip"] = zip_of(folder=OSV / "PyPI")
    bucket.files["/osv/Go/all.zip"] = zip_of(folder=OSV / "Go")
    whole = zip_of(folder=OSV / "npm")
    bucket.files["/osv/npm/all.zip"] = whole[: len(whole) // 3]
    with app.app_context():
        users.create_user("pat@example.com", "Pat Operator", PASSWORD, "operator")
        advisories.import_osv([OSV / "Maven", OSV / "Debian"])
        version = _approved_version_with_components(app)
        assert [o.outcome for o in advisories.sync_osv()] == ["updated", "failed", "updated"]
        newer = tmp_path / "PyPI"
        newer.mkdir()
        (newer / "GHSA-test-req1.json").write_text(json.dumps(
            record("GHSA-test-req1", name="requests", fixed="2.20.0")))
        advisories.import_osv([OSV / "PyPI", newer / "GHSA-test-req1.json"])
        version_id, asset_id = version.id, version.asset_id

    shot = Shots(page, screenshots)
    shot.count = 110
    log_in(page, portal.url, "pat@example.com", PASSWORD)
    page.get_by_role("link", name="Data", exact=True).click()
    flagged = page.get_by_role("row", name="billing-service 2.4.0")
    assert flagged.get_by_text("GHSA-test-req1").is_visible()
    assert page.get_by_role("row", name="npm").get_by_text("failed").is_visible()
    assert page.get_by_role("row", name="Go").get_by_text("updated").is_visible()
    assert page.get_by_text("Snapshot in use").is_visible()
    assert page.get_by_role("row", name="PyPI").get_by_role("cell", name="167").is_visible()
    shot("data-page-osv")

    flagged.get_by_role("button", name="Re-scan").click()
    page.wait_for_url(f"{portal.url}/assets/{asset_id}")
    assert page.get_by_text("Re-scan queued").is_visible()
    page.get_by_role("link", name="Data", exact=True).click()
    assert page.get_by_text("No Approved version is flagged.").is_visible()
    assert page.console_problems == []
    assert version_id
