"""Headers, CSP-safe markup, error pages and the front door."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jinja2 import StrictUndefined

from portal.security import CONTENT_SECURITY_POLICY

STATIC = Path(__file__).resolve().parents[2] / "portal" / "static"


def test_security_headers_on_every_page(client):
    response = client.get("/auth/login")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"].startswith(CONTENT_SECURITY_POLICY)
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'self'",
    ):
        assert directive in response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "HX-Request" in response.headers["Vary"]
    assert response.headers["Cache-Control"] == "no-store"


def test_csp_lets_the_browser_upload_to_storage_only(app, client):
    """Direct uploads PUT to the storage address browsers reach, and nowhere else."""
    public = app.config.get("S3_PUBLIC_ENDPOINT") or app.config["S3_ENDPOINT"]
    policy = client.get("/auth/login").headers["Content-Security-Policy"]
    origin = "/".join(public.split("/")[:3])
    assert policy.endswith(f"; connect-src 'self' {origin}")


def test_headers_on_errors_and_static_files(client):
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    assert missing.headers["Content-Security-Policy"].startswith(CONTENT_SECURITY_POLICY)
    static = client.get("/static/htmx.min.js")
    assert static.status_code == 200
    assert static.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" not in static.headers.get("Cache-Control", "")
    static.close()


def test_session_cookie_is_httponly_and_samesite(client, factories, auth):
    user = factories.user()
    response = auth.login(user.email)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize("path", ["/auth/login", "/auth/register", "/no/such/page"])
def test_pages_carry_no_inline_script_or_style(client, path):
    html = client.get(path).get_data(as_text=True)
    assert_csp_safe(html)
    assert '<meta name="csrf-token" content="' in html
    assert '<meta name="htmx-config" content=\'{"includeIndicatorStyles": false' in html
    assert '<script src="/static/htmx.min.js" defer></script>' in html
    assert '<script src="/static/app.js" defer></script>' in html
    assert '<link rel="stylesheet" href="/static/assay.css">' in html


def assert_csp_safe(html: str) -> None:
    """No inline script, no style element or attribute, no inline event handler."""
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    assert "<style" not in html
    assert not re.search(r"\sstyle\s*=", html)
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert "hx-on" not in html
    assert "javascript:" not in html


def test_vendored_htmx_is_2x_and_noted():
    assert 'version:"2.' in (STATIC / "htmx.min.js").read_text()
    note = (STATIC / "VENDORED.txt").read_text()
    assert "htmx.org 2." in note


def test_app_js_sends_csrf_header():
    script = (STATIC / "app.js").read_text()
    assert "htmx:configRequest" in script and "X-CSRFToken" in script


def test_templates_are_strict(app):
    assert app.jinja_env.undefined is StrictUndefined


def test_not_found_is_a_page(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Not found" in response.get_data(as_text=True)
    assert response.mimetype == "text/html"


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_front_door_sends_visitors_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/auth/login")


def test_front_door_sends_users_to_their_assets(client, factories, auth):
    auth.login_as(factories.user())
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/assets/")


def test_upload_limit_is_just_above_the_form_limit(app):
    assert app.config["MAX_CONTENT_LENGTH"] > app.config["MAX_FORM_UPLOAD"]
    assert app.config["MAX_CONTENT_LENGTH"] - app.config["MAX_FORM_UPLOAD"] <= 2 * 1024 * 1024
