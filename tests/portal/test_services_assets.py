"""Adding, modifying, submitting, deleting and listing assets (real S3, real Redis)."""

import io

import pytest

from portal import storage
from portal.models import Asset, AssetVersion, AuditEvent, Role, Scan, VersionStatus
from portal.services import access, assets
from portal.services.errors import Forbidden, NotFound, ValidationError
from tests.portal.factories import PACKAGES

CLEAN = "pkg-c-clean.tar.gz"


def _create(owner, *, name="my-app_(1)", filename=CLEAN, data=None, submit=False, **fields):
    stream = io.BytesIO(data if data is not None else (PACKAGES / CLEAN).read_bytes())
    values = {"kind": "binary", "description": "An app", "version_label": "1.0.0", **fields}
    return assets.create_asset(owner, name=name, stream=stream, filename=filename,
                               submit=submit, **values)


def _keys():
    return [o.key for o in storage.list_keys("packages/")]


def test_save_as_draft_stores_the_package(app, factories):
    seller = factories.user()
    version = _create(seller)
    data = (PACKAGES / CLEAN).read_bytes()
    assert version.status is VersionStatus.draft and version.scans == []
    assert version.package_name == CLEAN and version.package_size == len(data)
    assert storage.get_bytes(version.package_key, 4) == data[:4]
    assert version.package_key.startswith(f"packages/{seller.id}/{version.asset_id}/{version.id}/")
    assert AuditEvent.query.one().action == "asset.create"


def test_submit_creates_a_queued_scan(app, factories):
    version = _create(factories.user(), submit=True)
    scan = version.latest_scan
    assert version.status is VersionStatus.scanning and version.submitted_at
    assert scan.state.value == "queued" and scan.enqueued_at and scan.job_id == f"scan-{scan.id}-1"


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "Enter a name"), ("my app", "may contain only"), ("app.v2", "may contain only"),
     ("x" * 129, "at most 128"), ("名前", "may contain only")],
)
def test_bad_names_are_refused_with_a_clear_message(app, factories, name, message):
    with pytest.raises(ValidationError, match=message) as error:
        _create(factories.user(), name=name)
    assert error.value.field == "name" and _keys() == []


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [({"kind": "firmware"}, "kind", "binary package or Docker"),
     ({"version_label": ""}, "version", "Enter a version"),
     ({"version_label": "1 0"}, "version", "must start with"),
     ({"description": "x" * 10_001}, "description", "at most")],
)
def test_other_fields_are_checked(app, factories, fields, field, message):
    with pytest.raises(ValidationError, match=message) as error:
        _create(factories.user(), **fields)
    assert error.value.field == field


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [("app.rar", b"Rar!\x1a\x07\x00", ".zip, .tar or .tar.gz"),
     ("my app.zip", None, 'may contain only letters'),
     ("app.zip", None, "content is a gzip-compressed tar"),
     ("app.tar.gz", b"%PDF-1.4 not an archive" * 100, "not a zip, tar or tar.gz"),
     ("app.zip", b"", "empty")],
)
def test_bad_packages_are_refused_and_nothing_is_stored(app, factories, filename, data, message):
    seller = factories.user()
    with pytest.raises(ValidationError, match=message) as error:
        _create(seller, filename=filename, data=data)
    assert error.value.field == "package"
    assert _keys() == [] and Asset.query.count() == 0 and AssetVersion.query.count() == 0


def test_tgz_is_a_tar_gz(app, factories):
    assert _create(factories.user(), filename="app.tgz").package_name == "app.tgz"


def test_upload_over_the_form_limit_is_refused(app, factories):
    app.config["MAX_FORM_UPLOAD"] = 1000
    with pytest.raises(ValidationError, match="larger than") as error:
        _create(factories.user())
    assert error.value.field == "package" and _keys() == []


def test_duplicate_name_for_the_same_owner_is_refused(app, factories):
    seller = factories.user()
    _create(seller, name="app")
    with pytest.raises(ValidationError, match="already have an asset named"):
        _create(seller, name="APP")
    _create(factories.user(), name="app")  # another seller may use it


def test_modify_replaces_the_package_and_resubmits(app, factories):
    seller = factories.user()
    version = factories.version(factories.asset(seller), status=VersionStatus.rejected,
                                package=CLEAN)
    old_key = version.package_key
    zip_data = (PACKAGES / "pkg-b-node-app.zip").read_bytes()
    assets.modify_version(seller, version.id, stream=io.BytesIO(zip_data), filename="node.zip")
    assert version.status is VersionStatus.scanning and version.package_name == "node.zip"
    assert storage.head(old_key) is None and len(version.scans) == 1
    actions = [e.action for e in AuditEvent.query.order_by(AuditEvent.id)]
    assert actions == ["version.modify", "version.submit"]


def test_modify_is_refused_while_scanning_and_for_published_versions(app, factories):
    seller = factories.user()
    scanning = factories.version(factories.asset(seller), status=VersionStatus.scanning)
    with pytest.raises(ValidationError, match="being scanned"):
        assets.modify_version(seller, scanning.id, stream=io.BytesIO(b""), filename="a.zip")
    approved = factories.version(factories.asset(seller), status=VersionStatus.approved)
    factories.product(seller, [approved], published=True)
    with pytest.raises(ValidationError, match="published product"):
        assets.modify_version(seller, approved.id, stream=io.BytesIO(b""), filename="a.zip")


def test_submit_version_needs_a_package(app, factories):
    seller = factories.user()
    version = factories.version(factories.asset(seller))
    with pytest.raises(ValidationError, match="Upload a package"):
        assets.submit_version(seller, version.id)
    factories.upload(version, CLEAN)
    assets.submit_version(seller, version.id)
    assert version.status is VersionStatus.scanning and len(version.scans) == 1


def test_another_seller_gets_not_found_everywhere(app, factories):
    owner, other = factories.user(), factories.user()
    version = factories.version(factories.asset(owner), package=CLEAN)
    with pytest.raises(NotFound):
        access.get_asset(other, version.asset_id)
    with pytest.raises(NotFound):
        access.get_version(other, version.id)
    with pytest.raises(NotFound):
        assets.submit_version(other, version.id)
    with pytest.raises(NotFound):
        assets.modify_version(other, version.id, stream=io.BytesIO(b""), filename="a.zip")
    with pytest.raises(NotFound):
        assets.delete_asset(other, version.asset_id)
    assert assets.list_assets(other).total == 0


def test_reviewers_see_every_asset_but_change_none(app, factories):
    version = factories.version(package=CLEAN)
    reviewer = factories.user(Role.reviewer)
    assert access.get_version(reviewer, version.id) == version
    assert assets.list_assets(reviewer).total == 1
    with pytest.raises(Forbidden):
        assets.submit_version(reviewer, version.id)
    with pytest.raises(Forbidden):
        assets.delete_asset(reviewer, version.asset_id)


def test_delete_a_draft_removes_rows_then_objects(app, factories):
    seller = factories.user()
    version = _create(seller)
    key, asset_id = version.package_key, version.asset_id
    assert assets.deletion_blocker(version.asset) is None
    assets.delete_asset(seller, asset_id)
    assert Asset.query.count() == 0 and AssetVersion.query.count() == 0
    assert storage.head(key) is None
    assert AuditEvent.query.filter_by(action="asset.delete").one().subject_id == asset_id


def test_delete_is_blocked_while_a_product_uses_a_version(app, factories):
    seller = factories.user()
    version = factories.version(factories.asset(seller), status=VersionStatus.approved)
    factories.product(seller, [version], published=False)
    reason = assets.deletion_blocker(version.asset)
    assert "product" in reason
    with pytest.raises(ValidationError, match="product"):
        assets.delete_asset(seller, version.asset_id)


def test_delete_outside_the_draft_box_removes_scans_and_their_objects(app, factories):
    seller = factories.user()
    version = factories.version(factories.asset(seller), status=VersionStatus.rejected,
                                package=CLEAN)
    factories.scan(version, state="done", report_key="scans/x/report.xlsx")
    storage.put_bytes("scans/x/report.xlsx", b"r")
    assets.delete_asset(seller, version.asset_id)
    assert Scan.query.count() == 0 and storage.head("scans/x/report.xlsx") is None


def test_a_deleted_assets_ids_are_never_given_to_the_next_one(app, factories):
    # Its scan's id names queue jobs and stored objects that may outlive the rows (a work horse
    # still scanning it): the next asset must not pick them up.
    seller = factories.user()
    old = _create(seller, submit=True)
    ids = (old.asset_id, old.id, old.latest_scan.id)
    assets.delete_asset(seller, old.asset_id)
    new = _create(seller, submit=True)
    assert new.asset_id > ids[0] and new.id > ids[1] and new.latest_scan.id > ids[2]


def test_list_searches_filters_sorts_and_paginates(app, factories):
    seller = factories.user()
    for i, (name, kind, status) in enumerate([
        ("alpha", "binary", "draft"), ("beta", "docker", "approved"),
        ("alphabet", "binary", "rejected"), ("gamma_1", "docker", "draft"),
    ]):
        factories.version(factories.asset(seller, name=name, kind=kind), status=status)
    factories.asset(factories.user(), name="alpha-other")

    def names(**kw):
        return [a.name for a in assets.list_assets(seller, **kw).items]

    assert names(q="ALPHA", sort="name") == ["alpha", "alphabet"]
    assert names(q="a_1") == ["gamma_1"] and names(q="%") == []
    assert names(kind="docker", sort="name") == ["beta", "gamma_1"]
    assert names(status="draft", sort="-name") == ["gamma_1", "alpha"]
    page = assets.list_assets(seller, sort="name", page=2, per_page=3)
    assert ([a.name for a in page.items], page.total, page.pages, page.page) == (["gamma_1"], 4, 2, 2)
    assert page.has_prev and not page.has_next
    assert assets.list_assets(seller, page=99, per_page=3).page == 2
    with pytest.raises(ValidationError):
        assets.list_assets(seller, status="bogus")


def test_status_filter_uses_the_latest_version(app, factories):
    seller = factories.user()
    asset = factories.asset(seller, name="two")
    factories.version(asset, status="approved")
    factories.version(asset, status="draft")
    assert [a.name for a in assets.list_assets(seller, status="draft").items] == ["two"]
    assert assets.list_assets(seller, status="approved").items == []
