"""My Assets, Add Asset, the asset page, Modify, Delete, the live badge and downloads."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import pytest
from flask import g

from portal import storage
from portal.extensions import db
from portal.models import Asset, AssetVersion, AuditEvent, Role, ScanState, VersionStatus
from tests.portal.factories import PACKAGES
from tests.portal.test_views_security import assert_csp_safe

HX = {"HX-Request": "true"}
REPORT = b"PK\x03\x04 report bytes"
SBOM = b'{"bomFormat": "CycloneDX"}'


@dataclass
class World:
    seller: object
    other: object
    reviewer: object
    asset: Asset
    version: AssetVersion


@pytest.fixture
def world(factories) -> World:
    """Seller A's rejected asset with a finished scan (report and SBOM stored); seller B; a reviewer."""
    seller, other = factories.user(), factories.user()
    reviewer = factories.user(Role.reviewer)
    asset = factories.asset(seller, name="acme-agent")
    version = factories.version(
        asset,
        label="1.0.0",
        status=VersionStatus.rejected,
        package=b"PK\x05\x06" + b"\0" * 18,
        package_name="agent.zip",
    )
    scan = factories.scan(version, state=ScanState.done, verdict="rejected", progress=100)
    prefix = (seller.id, asset.id, version.id, scan.id)
    scan.report_key, scan.sbom_key = storage.report_key(*prefix), storage.sbom_key(*prefix)
    storage.put_bytes(scan.report_key, REPORT)
    storage.put_bytes(scan.sbom_key, SBOM)
    db.session.commit()
    return World(seller, other, reviewer, asset, version)


def urls(world: World) -> dict[str, tuple[str, str]]:
    """Every route that names another person's asset or version: (method, url)."""
    a, v = world.asset.id, world.version.id
    return {
        "detail": ("GET", f"/assets/{a}"),
        "delete_confirm": ("GET", f"/assets/{a}/delete"),
        "delete": ("POST", f"/assets/{a}/delete"),
        "modify_form": ("GET", f"/assets/versions/{v}/modify"),
        "modify": ("POST", f"/assets/versions/{v}/modify"),
        "submit": ("POST", f"/assets/versions/{v}/submit"),
        "status": ("GET", f"/assets/versions/{v}/status"),
        "status_fragment": ("GET", f"/assets/versions/{v}/status"),
        "report": ("GET", f"/assets/versions/{v}/report"),
        "sbom": ("GET", f"/assets/versions/{v}/sbom"),
    }


def package_file(name: str) -> tuple[io.BytesIO, str]:
    """An upload: a corpus package by name, or junk bytes under any other name."""
    path = PACKAGES / name
    return io.BytesIO(path.read_bytes() if path.exists() else b"not a package at all"), name


ROUTES = [
    "detail",
    "delete_confirm",
    "delete",
    "modify_form",
    "modify",
    "submit",
    "status",
    "status_fragment",
    "report",
    "sbom",
]


def call(client, world, route):
    method, url = urls(world)[route]
    headers = HX if route.endswith("_fragment") else {}
    if route == "modify":
        data = {"package": package_file("pkg-c-clean.tar.gz")}
        return client.post(url, data=data, headers=headers, content_type="multipart/form-data")
    return client.open(url, method=method, headers=headers)


# --- who may see what ------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_another_seller_gets_404_everywhere(client, auth, world, route):
    auth.login_as(world.other)
    response = call(client, world, route)
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert world.asset.name not in body and "agent.zip" not in body
    db.session.expire_all()
    assert db.session.get(Asset, world.asset.id) is not None  # nothing changed
    assert world.version.status is VersionStatus.rejected


@pytest.mark.parametrize("route", ROUTES)
def test_anonymous_visitors_are_sent_to_login(client, world, route):
    response = call(client, world, route)
    if route.endswith("_fragment"):  # htmx goes to the page itself: no page inside the page
        assert response.status_code == 401
        assert response.headers["HX-Redirect"].startswith("/auth/login?next=")
    else:
        assert response.status_code == 302
        assert "/auth/login" in response.headers["Location"]


@pytest.mark.parametrize(
    "route", ["detail", "delete_confirm", "modify_form", "status", "report", "sbom"]
)
def test_the_owner_sees_every_page(client, auth, world, route):
    auth.login_as(world.seller)
    response = call(client, world, route)
    assert response.status_code == 200
    response.close()


@pytest.mark.parametrize(
    "route, code",
    [
        ("detail", 200),
        ("report", 200),
        ("sbom", 200),
        ("modify", 403),
        ("submit", 403),
        ("delete", 403),
    ],
)
def test_a_reviewer_reads_but_never_changes(client, auth, world, route, code):
    auth.login_as(world.reviewer)
    response = call(client, world, route)
    assert response.status_code == code
    response.close()
    db.session.expire_all()
    assert world.version.status is VersionStatus.rejected
    assert db.session.get(Asset, world.asset.id) is not None


def test_my_assets_lists_only_my_assets(client, auth, world, factories):
    factories.asset(world.other, name="someone-elses")
    auth.login_as(world.seller)
    body = client.get("/assets/").get_data(as_text=True)
    assert "acme-agent" in body and "someone-elses" not in body
    auth.login_as(world.other)
    g.pop("_login_user", None)  # the test's app context outlives one request: forget the cache
    body = client.get("/assets/").get_data(as_text=True)
    assert "acme-agent" not in body and "someone-elses" in body


def test_downloads_carry_the_files(client, auth, world):
    auth.login_as(world.seller)
    report = client.get(f"/assets/versions/{world.version.id}/report")
    assert report.data == REPORT
    assert "attachment" in report.headers["Content-Disposition"]
    assert "acme-agent-1.0.0-scan-report.xlsx" in report.headers["Content-Disposition"]
    sbom = client.get(f"/assets/versions/{world.version.id}/sbom")
    assert sbom.data == SBOM


def test_no_report_before_a_scan(client, auth, factories):
    seller = factories.user()
    version = factories.version(factories.asset(seller), package="pkg-c-clean.tar.gz")
    auth.login_as(seller)
    assert client.get(f"/assets/versions/{version.id}/report").status_code == 404
    page = client.get(f"/assets/{version.asset_id}").get_data(as_text=True)
    assert "Download report" not in page


# --- My Assets: search, filter, sort, paginate, fragment ----------------------------------


@pytest.fixture
def shelf(factories):
    seller = factories.user()
    for i in range(23):
        asset = factories.asset(seller, name=f"tool-{i:02d}", kind="docker" if i % 2 else "binary")
        factories.version(
            asset, status=VersionStatus.approved if i % 3 == 0 else VersionStatus.draft
        )
    factories.asset(seller, name="zeta-agent")
    return seller


def test_my_assets_full_page_and_fragment(client, auth, shelf):
    auth.login_as(shelf)
    page = client.get("/assets/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html and 'id="assets-table"' in html
    assert "HX-Request" in page.headers["Vary"]
    assert_csp_safe(html)
    fragment = client.get("/assets/", headers=HX)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200
    assert "<html" not in body and '<nav class="mainnav"' not in body
    assert body.lstrip().startswith('<div id="assets-table"')
    assert "HX-Request" in fragment.headers["Vary"]


def test_history_restore_gets_the_full_page(client, auth, shelf):
    auth.login_as(shelf)
    body = client.get("/assets/", headers={**HX, "HX-History-Restore-Request": "true"}).get_data(
        as_text=True
    )
    assert "<html" in body


def test_search_filter_sort_and_paginate(client, auth, shelf):
    auth.login_as(shelf)
    body = client.get("/assets/?q=zeta").get_data(as_text=True)
    assert "zeta-agent" in body and "tool-01" not in body
    body = client.get("/assets/?kind=docker&sort=name", headers=HX).get_data(as_text=True)
    names = re.findall(r">(tool-\d\d|zeta-agent)</a>", body)
    assert names and all(int(n[-2:]) % 2 == 1 for n in names) and names == sorted(names)
    body = client.get("/assets/?status=approved&sort=name", headers=HX).get_data(as_text=True)
    names = re.findall(r">(tool-\d\d)</a>", body)
    assert names == [f"tool-{i:02d}" for i in range(0, 23, 3)]
    first = client.get("/assets/?sort=name", headers=HX).get_data(as_text=True)
    second = client.get("/assets/?sort=name&page=2", headers=HX).get_data(as_text=True)
    assert "tool-19" in first and "tool-20" not in first
    assert "tool-20" in second and "zeta-agent" in second and "tool-00" not in second
    assert "21–24 of 24" in second
    # The pager's links keep the query and work as plain links and as HTMX requests.
    assert 'href="/assets/?sort=name&amp;page=2"' in first
    assert 'hx-get="/assets/?sort=name&amp;page=2"' in first and 'hx-push-url="true"' in first


def test_bad_query_values_fall_back_to_defaults(client, auth, shelf):
    auth.login_as(shelf)
    response = client.get("/assets/?status=nonsense&kind=x&sort=evil&page=-3")
    assert response.status_code == 200
    assert "1–20 of 24" in response.get_data(as_text=True)


def test_empty_states(client, auth, factories):
    auth.login_as(factories.user())
    assert "You have no assets yet" in client.get("/assets/").get_data(as_text=True)
    assert "No assets match" in client.get("/assets/?q=nothing").get_data(as_text=True)


def test_the_filter_form_works_with_and_without_javascript(client, auth, shelf):
    auth.login_as(shelf)
    html = client.get("/assets/").get_data(as_text=True)
    form = re.search(r"<form class=\"filters\"[^>]*>", html).group(0)
    assert 'method="get"' in form and 'action="/assets/"' in form
    assert 'hx-get="/assets/"' in form and 'hx-target="#assets-table"' in form
    assert 'hx-push-url="true"' in form


# --- Add Asset ----------------------------------------------------------------------------


def add_asset(client, *, package="pkg-c-clean.tar.gz", submit=True, **fields):
    data = {
        "category": "Application",
        "kind": "binary",
        "name": "acme-tool",
        "version": "1.0.0",
        "description": "A tool.",
        **fields,
    }
    if package is not None:
        data["package"] = package_file(package)
    data["submit_review" if submit else "save_draft"] = "1"
    return client.post("/assets/new", data=data, content_type="multipart/form-data")


def test_add_asset_form(client, auth, factories):
    auth.login_as(factories.user())
    html = client.get("/assets/new").get_data(as_text=True)
    assert_csp_safe(html)
    for text in (
        "Application",
        "Binary package",
        "Docker image package",
        "Save as draft",
        "Submit for review",
        'enctype="multipart/form-data"',
        'accept=".zip,.tar,.tar.gz',
        'pattern="[A-Za-z0-9_\\(\\)\\-]+"',
        'data-max-bytes="1073741824"',
        "Use letters, digits, - _ ( ) only",
    ):
        assert text in html, text


def test_submit_for_review_queues_a_scan(client, auth, factories, app):
    seller = factories.user()
    auth.login_as(seller)
    response = add_asset(client)
    assert response.status_code == 302
    asset = db.session.query(Asset).filter_by(owner_id=seller.id).one()
    assert response.headers["Location"].endswith(f"/assets/{asset.id}")
    version = asset.versions[0]
    assert version.status is VersionStatus.scanning and version.package_name == "pkg-c-clean.tar.gz"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Submitted for review" in page and "Queued" in page
    assert 'hx-trigger="every 2s"' in page


def test_save_as_draft(client, auth, factories):
    seller = factories.user()
    auth.login_as(seller)
    response = add_asset(client, submit=False)
    assert response.status_code == 302
    version = db.session.query(AssetVersion).join(Asset).filter(Asset.owner_id == seller.id).one()
    assert version.status is VersionStatus.draft and version.scans == []
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Saved in your draft box" in page and "Draft" in page and "every 2s" not in page
    assert ">Submit for review</button>" in page


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": "bad name!"}, "Invalid name. Use letters, digits, - _ ( ) only"),
        ({"name": "naïve"}, "Invalid name."),
        ({"name": "a\nb"}, "Invalid name."),
        ({"name": ""}, "This field is required."),
        ({"version": ""}, "This field is required."),
        ({"version": "1 0"}, "The version must start with a letter or digit"),
        ({"kind": "rpm"}, "Not a valid choice"),
        ({"package": "app.rar"}, "The package must be a .zip, .tar or .tar.gz file."),
        ({"package": None}, "Choose a package file."),
    ],
)
def test_add_asset_messages(client, auth, factories, fields, message):
    seller = factories.user()
    auth.login_as(seller)
    package = fields.pop("package", "pkg-c-clean.tar.gz")
    response = add_asset(client, package=package, **fields)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html
    assert 'class="field-errors"' in html
    assert db.session.query(Asset).filter_by(owner_id=seller.id).count() == 0


def test_a_fake_package_is_refused_by_content(client, auth, factories):
    auth.login_as(factories.user())
    html = add_asset(client, package="fake.zip").get_data(as_text=True)
    errors = re.search(r'<ul class="field-errors" id="package-errors">(.*?)</ul>', html, re.DOTALL)
    assert errors and errors.group(1).strip()


def test_a_duplicate_name_is_refused(client, auth, world):
    auth.login_as(world.seller)
    response = add_asset(client, name="acme-agent")
    assert response.status_code == 422
    assert "You already have an asset named acme-agent." in response.get_data(as_text=True)


# --- the asset page -----------------------------------------------------------------------


def test_version_information_table(client, auth, world):
    auth.login_as(world.seller)
    page = client.get(f"/assets/{world.asset.id}")
    html = page.get_data(as_text=True)
    assert_csp_safe(html)
    for text in (
        "Version information",
        "agent.zip",
        "22 B",
        world.version.package_sha256,
        "Rejected",
        "Download report",
        "Download SBOM",
        ">Modify</a>",
    ):
        assert text in html, text
    fragment = client.get(f"/assets/{world.asset.id}", headers=HX).get_data(as_text=True)
    assert "<html" not in fragment and "Version information" in fragment
    assert fragment.lstrip().startswith('<section class="card" id="versions"')
    assert 'hx-trigger="scan-finished from:body"' in fragment
    assert "Basic information" not in fragment


# --- the live badge -----------------------------------------------------------------------


def badge_html(client, version_id, headers=HX):
    response = client.get(f"/assets/versions/{version_id}/status", headers=headers)
    assert response.status_code == 200
    return response


@pytest.mark.parametrize(
    "status, scan_state, stage, label",
    [
        (VersionStatus.scanning, ScanState.queued, None, "Queued"),
        (VersionStatus.scanning, ScanState.running, "virus", "Scanning"),
    ],
)
def test_a_running_badge_polls(client, auth, factories, status, scan_state, stage, label):
    seller = factories.user()
    version = factories.version(factories.asset(seller), status=status)
    factories.scan(version, state=scan_state, stage=stage, progress=57 if stage else 0)
    auth.login_as(seller)
    response = badge_html(client, version.id)
    html = response.get_data(as_text=True).strip()
    assert html.startswith("<span") and "<html" not in html
    assert label in html
    assert f'hx-get="/assets/versions/{version.id}/status"' in html
    assert 'hx-trigger="every 2s"' in html and 'hx-swap="outerHTML"' in html
    assert "HX-Trigger" not in response.headers
    assert "HX-Request" in response.headers["Vary"]
    if stage:
        assert (
            "virus scan 57%" in html
            and '<progress class="badge-progress" max="100" value="57"' in html
        )


@pytest.mark.parametrize(
    "status, label, css",
    [
        (VersionStatus.draft, "Draft", "status-draft"),
        (VersionStatus.approved, "Approved", "status-approved"),
        (VersionStatus.rejected, "Rejected", "status-rejected"),
    ],
)
def test_a_finished_badge_does_not_poll(client, auth, factories, status, label, css):
    seller = factories.user()
    version = factories.version(factories.asset(seller), status=status)
    auth.login_as(seller)
    response = badge_html(client, version.id)
    html = response.get_data(as_text=True)
    assert label in html and css in html
    assert "hx-get" not in html and "hx-trigger" not in html and "<progress" not in html
    # The polling request that sees the finish tells the page, once, to refresh its table.
    assert response.headers["HX-Trigger"] == "scan-finished"


def test_the_badge_as_a_plain_page(client, auth, world):
    auth.login_as(world.seller)
    response = badge_html(client, world.version.id, headers={})
    html = response.get_data(as_text=True)
    assert "<html" in html and "Rejected" in html and "HX-Trigger" not in response.headers


def test_the_page_refreshes_its_tables_when_a_scan_finishes(client, auth, world):
    auth.login_as(world.seller)
    index = client.get("/assets/").get_data(as_text=True)
    assert re.search(r'id="assets-table"[^>]*hx-trigger="scan-finished from:body"', index)
    detail = client.get(f"/assets/{world.asset.id}").get_data(as_text=True)
    assert re.search(rf'id="versions"[^>]*hx-get="/assets/{world.asset.id}"', detail)


# --- submit, modify, delete ---------------------------------------------------------------


def test_submit_a_draft(client, auth, factories):
    seller = factories.user()
    version = factories.version(factories.asset(seller), package="pkg-c-clean.tar.gz")
    auth.login_as(seller)
    response = client.post(f"/assets/versions/{version.id}/submit")
    assert response.status_code == 302
    db.session.refresh(version)
    assert version.status is VersionStatus.scanning
    events = (
        db.session.query(AuditEvent).filter_by(action="version.submit", subject_id=version.id).all()
    )
    assert len(events) == 1 and events[0].actor_id == seller.id


def test_submitting_twice_is_explained(client, auth, factories):
    seller = factories.user()
    version = factories.version(
        factories.asset(seller), status=VersionStatus.scanning, package="pkg-c-clean.tar.gz"
    )
    auth.login_as(seller)
    response = client.post(f"/assets/versions/{version.id}/submit", follow_redirects=True)
    assert "This version is being scanned; wait for the verdict before changing it." in (
        response.get_data(as_text=True))


def test_modify_replaces_the_package_and_rescans(client, auth, world):
    auth.login_as(world.seller)
    old_key = world.version.package_key
    response = call(client, world, "modify")
    assert response.status_code == 302
    db.session.refresh(world.version)
    assert world.version.status is VersionStatus.scanning
    assert (
        world.version.package_name == "pkg-c-clean.tar.gz" and world.version.package_key != old_key
    )


def test_modify_is_refused_while_scanning(client, auth, factories):
    seller = factories.user()
    version = factories.version(
        factories.asset(seller), status=VersionStatus.scanning, package="pkg-c-clean.tar.gz"
    )
    factories.scan(version, state=ScanState.running, stage="unpack", progress=20)
    auth.login_as(seller)
    page = client.get(f"/assets/{version.asset_id}").get_data(as_text=True)
    assert re.search(
        r'<button type="button" class="btn btn-small btn-secondary" disabled[^>]*>Modify', page
    )
    response = client.post(
        f"/assets/versions/{version.id}/modify",
        content_type="multipart/form-data",
        data={"package": package_file("pkg-c-clean.tar.gz")},
    )
    assert response.status_code == 422
    assert "This version is being scanned; wait for the verdict before changing it." in (
        response.get_data(as_text=True))


def test_modify_form_messages(client, auth, world):
    auth.login_as(world.seller)
    response = client.post(
        f"/assets/versions/{world.version.id}/modify",
        data={"package": (io.BytesIO(b"x"), "notes.txt")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "The package must be a .zip, .tar or .tar.gz file." in response.get_data(as_text=True)


def test_delete_a_draft(client, auth, factories):
    seller = factories.user()
    asset = factories.asset(seller)
    factories.version(asset, package="pkg-c-clean.tar.gz")
    key = asset.versions[0].package_key
    auth.login_as(seller)
    confirm = client.get(f"/assets/{asset.id}/delete").get_data(as_text=True)
    assert "cannot be undone" in confirm and 'method="post"' in confirm
    response = client.post(f"/assets/{asset.id}/delete")
    assert response.status_code == 302 and response.headers["Location"].endswith("/assets/")
    assert db.session.get(Asset, asset.id) is None
    assert storage.head(key) is None


def test_delete_is_disabled_with_its_reason_and_refused(client, auth, factories, world):
    product = factories.product(world.seller, [world.version])
    auth.login_as(world.seller)
    reason = (f"Released in the product {product.name} (published): remove its versions from "
              "the product before deleting the asset.")
    page = client.get(f"/assets/{world.asset.id}").get_data(as_text=True)
    assert re.search(
        r'<button type="button" class="btn btn-small btn-danger" disabled[^>]*>Delete', page
    )
    assert reason in page
    confirm = client.get(f"/assets/{world.asset.id}/delete").get_data(as_text=True)
    assert reason in confirm and f'action="/assets/{world.asset.id}/delete"' not in confirm
    response = client.post(f"/assets/{world.asset.id}/delete", follow_redirects=True)
    assert reason in response.get_data(as_text=True)
    assert db.session.get(Asset, world.asset.id) is not None


def test_too_large_upload_is_a_clear_413(app, client, auth, factories):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    auth.login_as(factories.user())
    response = add_asset(client)
    assert response.status_code == 413
    assert "larger than the 1 GiB that can be uploaded through this form" in response.get_data(
        as_text=True
    )
