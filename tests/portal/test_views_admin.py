"""Operator pages: accounts and troubled scans."""

from __future__ import annotations

import pytest

from portal.extensions import db
from portal.models import Role, ScanState, User, VersionStatus
from tests.portal.test_views_security import assert_csp_safe

PAGES = ["/admin/users", "/admin/scans"]


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("role", [Role.seller, Role.reviewer])
def test_only_operators_open_admin_pages(client, auth, factories, path, role):
    auth.login_as(factories.user(role))
    assert client.get(path).status_code == 403


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_go_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


@pytest.fixture
def operator(client, auth, factories):
    user = factories.user(Role.operator, name="Olga Operator")
    auth.login_as(user)
    return user


def test_users_page(client, operator, factories):
    factories.user(email="sam@example.com")
    html = client.get("/admin/users").get_data(as_text=True)
    assert_csp_safe(html)
    assert "sam@example.com" in html and "Olga Operator" in html
    assert "Add a reviewer or operator" in html


def test_nav_shows_operator_links(client, operator):
    html = client.get("/assets/").get_data(as_text=True)
    assert 'href="/admin/users"' in html and 'href="/admin/scans"' in html


def test_nav_hides_operator_links_from_sellers(client, auth, factories):
    auth.login_as(factories.user())
    html = client.get("/assets/").get_data(as_text=True)
    assert 'href="/admin/users"' not in html


@pytest.mark.parametrize("role", ["reviewer", "operator"])
def test_create_staff(client, operator, role):
    response = client.post(
        "/admin/users",
        data={
            "name": "Rita",
            "email": f"{role}@example.com",
            "password": "a long secret pw",
            "role": role,
        },
    )
    assert response.status_code == 302
    user = db.session.query(User).filter_by(email=f"{role}@example.com").one()
    assert user.role is Role(role)


def test_create_staff_messages(client, operator, factories):
    factories.user(email="taken@example.com")
    response = client.post(
        "/admin/users",
        data={
            "name": "Rita",
            "email": "taken@example.com",
            "password": "a long secret pw",
            "role": "reviewer",
        },
    )
    assert response.status_code == 422
    assert "already exists" in response.get_data(as_text=True)
    response = client.post(
        "/admin/users",
        data={
            "name": "Rita",
            "email": "r@example.com",
            "password": "a long secret pw",
            "role": "seller",
        },
    )
    assert response.status_code == 422  # sellers register themselves


def test_change_role_and_deactivate(client, operator, factories):
    user = factories.user()
    assert client.post(f"/admin/users/{user.id}/role", data={"role": "reviewer"}).status_code == 302
    db.session.refresh(user)
    assert user.role is Role.reviewer
    assert client.post(f"/admin/users/{user.id}/active", data={"active": "0"}).status_code == 302
    db.session.refresh(user)
    assert not user.active
    html = client.get("/admin/users").get_data(as_text=True)
    assert "Account deactivated." in html and "Reactivate" in html


def test_an_operator_cannot_demote_or_disable_themselves(client, operator):
    response = client.post(
        f"/admin/users/{operator.id}/role", data={"role": "seller"}, follow_redirects=True
    )
    assert "You cannot remove your own operator role." in response.get_data(as_text=True)
    response = client.post(
        f"/admin/users/{operator.id}/active", data={"active": "0"}, follow_redirects=True
    )
    assert "You cannot disable your own account." in response.get_data(as_text=True)
    db.session.refresh(operator)
    assert operator.role is Role.operator and operator.active


def test_unknown_user_is_404(client, operator):
    assert client.post("/admin/users/9999/role", data={"role": "seller"}).status_code == 404


def test_scans_page_lists_failed_scans(client, operator, factories):
    version = factories.version(status=VersionStatus.scanning)
    factories.scan(version, state=ScanState.failed, attempts=3, error="clamd went away")
    html = client.get("/admin/scans").get_data(as_text=True)
    assert_csp_safe(html)
    assert "clamd went away" in html and "failed" in html and version.asset.name in html
    fragment = client.get("/admin/scans", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and "clamd went away" in fragment


def test_scans_page_when_all_is_well(client, operator):
    assert "All is well" in client.get("/admin/scans").get_data(as_text=True)


def test_retry_a_failed_scan(client, operator, factories):
    version = factories.version(status=VersionStatus.scanning, package="pkg-c-clean.tar.gz")
    failed = factories.scan(version, state=ScanState.failed, attempts=3, error="clamd went away")
    html = client.get("/admin/scans").get_data(as_text=True)
    assert f'action="/admin/scans/{failed.id}/retry"' in html
    response = client.post(f"/admin/scans/{failed.id}/retry", follow_redirects=True)
    assert "queued for" in response.get_data(as_text=True)
    db.session.refresh(version)
    assert len(version.scans) == 2 and version.latest_scan.state is ScanState.queued
    again = client.post(f"/admin/scans/{failed.id}/retry", follow_redirects=True)
    assert "Only the latest scan of a version, once failed, can be retried." in again.get_data(
        as_text=True
    )
