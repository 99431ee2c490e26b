"""CSRF protection with the token on, as in production."""

from __future__ import annotations

import re

import pytest

from portal.extensions import db
from portal.models import Asset, VersionStatus
from tests.portal.factories import PASSWORD


@pytest.fixture
def app_config(app_config):
    return {**app_config, "WTF_CSRF_ENABLED": True}


def token_from(html: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)


def test_login_without_a_token_is_refused(client, factories):
    user = factories.user()
    response = client.post("/auth/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)


def test_login_with_the_form_token(client, factories):
    user = factories.user()
    token = token_from(client.get("/auth/login").get_data(as_text=True))
    response = client.post(
        "/auth/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302


@pytest.mark.parametrize("action", ["submit", "delete", "logout"])
def test_state_changes_need_the_token(client, auth, factories, action):
    seller = factories.user()
    asset = factories.asset(seller)
    version = factories.version(asset, package="pkg-c-clean.tar.gz")
    auth.login_as(seller)
    url = {
        "submit": f"/assets/versions/{version.id}/submit",
        "delete": f"/assets/{asset.id}/delete",
        "logout": "/auth/logout",
    }[action]
    assert client.post(url).status_code == 400
    db.session.expire_all()
    assert db.session.get(Asset, asset.id) is not None
    assert version.status is VersionStatus.draft
    # htmx sends the token from the meta tag in the X-CSRFToken header (static/app.js).
    token = token_from(client.get("/assets/").get_data(as_text=True))
    assert client.post(url, headers={"X-CSRFToken": token}).status_code == 302


def test_an_upload_without_a_token_is_refused(client, auth, factories):
    auth.login_as(factories.user())
    response = client.post(
        "/assets/new",
        data={"name": "x", "version": "1", "kind": "binary"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
