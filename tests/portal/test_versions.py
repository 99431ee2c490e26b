"""Versions: a seller adds a second version to an asset, through the form or a direct
upload; each has its own row, status, scan and report; labels are unique within an asset."""

from __future__ import annotations

import io

import pytest

from portal import storage
from portal.extensions import db
from portal.models import AssetVersion, Role, UploadSession, VersionStatus
from portal.services import assets
from portal.services.errors import Forbidden, NotFound, ValidationError
from tests.portal.factories import PACKAGES
from tests.portal.test_uploads import PART, app_config, package, send  # noqa: F401  (fixtures)


def corpus(name: str) -> io.BytesIO:
    return io.BytesIO((PACKAGES / name).read_bytes())


def first_asset(seller, package_name: str = "pkg-c-clean.tar.gz", submit: bool = True):
    return assets.create_asset(seller, name="tool", kind="binary", description="",
                               version_label="1.0", stream=corpus(package_name),
                               filename=package_name, submit=submit)


def test_a_draft_version_waits_until_submitted(app, factories):
    seller = factories.user()
    first = first_asset(seller, submit=False)
    draft = assets.add_version(seller, first.asset_id, version_label="1.1",
                               stream=corpus("pkg-c-clean.tar.gz"), filename="c.tar.gz",
                               submit=False)
    assert draft.status is VersionStatus.draft and draft.latest_scan is None
    assets.submit_version(seller, draft.id)
    assert draft.status is VersionStatus.scanning


def test_a_label_already_used_is_refused_and_nothing_is_stored(app, factories):
    seller = factories.user()
    first = first_asset(seller, submit=False)
    before = {o.key for o in storage.list_keys(f"packages/{seller.id}/")}
    with pytest.raises(ValidationError, match="already has a version 1.0"):
        assets.add_version(seller, first.asset_id, version_label="1.0",
                           stream=corpus("pkg-c-clean.tar.gz"), filename="c.tar.gz",
                           submit=True)
    assert {o.key for o in storage.list_keys(f"packages/{seller.id}/")} == before
    assert AssetVersion.query.count() == 1


def test_a_package_that_cannot_be_stored_leaves_no_version(app, factories):
    seller = factories.user()
    first = first_asset(seller, submit=False)
    with pytest.raises(ValidationError):
        assets.add_version(seller, first.asset_id, version_label="2.0",
                           stream=io.BytesIO(b"not an archive at all"), filename="c.tar.gz",
                           submit=True)
    assert [v.label for v in AssetVersion.query.all()] == ["1.0"]


@pytest.mark.parametrize("role, error", [(Role.seller, NotFound), (Role.reviewer, Forbidden)])
def test_only_the_owner_adds_versions(app, factories, role, error):
    first = first_asset(factories.user(), submit=False)
    with pytest.raises(error):
        assets.add_version(factories.user(role), first.asset_id, version_label="2.0",
                           stream=corpus("pkg-c-clean.tar.gz"), filename="c.tar.gz",
                           submit=False)


def test_the_page_adds_a_version(client, auth, factories):
    seller = factories.user()
    first = first_asset(seller, submit=False)
    auth.login_as(seller)
    detail = client.get(f"/assets/{first.asset_id}").get_data(as_text=True)
    assert f'href="/assets/{first.asset_id}/versions/new"' in detail
    page = client.get(f"/assets/{first.asset_id}/versions/new").get_data(as_text=True)
    assert "Add a version of tool" in page and 'data-asset-id="' in page
    duplicate = client.post(f"/assets/{first.asset_id}/versions/new", data={
        "version": "1.0", "save_draft": "1",
        "package": (corpus("pkg-c-clean.tar.gz"), "c.tar.gz")},
        content_type="multipart/form-data")
    assert duplicate.status_code == 422
    assert "already has a version 1.0" in duplicate.get_data(as_text=True)
    done = client.post(f"/assets/{first.asset_id}/versions/new", data={
        "version": "1.1", "save_draft": "1",
        "package": (corpus("pkg-c-clean.tar.gz"), "c.tar.gz")},
        content_type="multipart/form-data", follow_redirects=True)
    assert "Version 1.1 saved as a draft." in done.get_data(as_text=True)
    assert [v.label for v in AssetVersion.query.order_by(AssetVersion.id)] == ["1.0", "1.1"]


def test_a_new_version_through_a_direct_upload(client, auth, factories, package):  # noqa: F811
    seller = factories.user()
    first = first_asset(seller, submit=False)
    auth.login_as(seller)
    refused = client.post("/uploads", json={"filename": "t.tar.gz", "size": len(package),
                                            "asset_id": first.asset_id, "version_label": "1.0"})
    assert refused.status_code == 422 and "already has a version" in refused.get_json()["error"]
    session = client.post("/uploads", json={"filename": "t.tar.gz", "size": len(package),
                                            "asset_id": first.asset_id, "version_label": "3.0",
                                            "submit": True}).get_json()
    assert db.session.get(UploadSession, session["id"]).asset_id == first.asset_id
    send(client, session, package)
    body = client.post(session["urls"]["complete"]).get_json()
    assert body["asset_id"] == first.asset_id and body["status"] == "scanning"
    version = db.session.get(AssetVersion, body["version_id"])
    assert version.label == "3.0" and version.package_name == "t.tar.gz"
    assert storage.head(version.package_key).size == len(package)
