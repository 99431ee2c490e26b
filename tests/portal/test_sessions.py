"""Sessions end for real: logout, password change, resets and deactivation revoke every
session and remember cookie of the account; password change and resets themselves."""

from __future__ import annotations

import email
import re
import threading
from datetime import datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from flask import g
from sqlalchemy import select

from ops.services import free_port
from portal.config import from_env
from portal.extensions import db
from portal.models import AuditEvent, Role, User
from portal.models.user import PasswordReset
from portal.timeutil import utcnow
from tests.portal.factories import PASSWORD

NEW_PASSWORD = "a different long secret"


# --- helpers ------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _each_request_loads_its_user(app):
    """pytest-flask keeps one app context, so one ``g``, for the whole test: without this,
    the user Flask-Login cached in ``g`` for one browser would answer the next browser's
    request. Each request must find its user from its own cookies, as in production."""
    @app.before_request
    def _forget_cached_user():
        g.pop("_login_user", None)


def _captured_login(app, user, password=PASSWORD) -> dict[str, str]:
    """Log in on a browser of its own with "keep me signed in"; return its cookies."""
    browser = app.test_client()
    response = browser.post("/auth/login", data={"email": user.email, "password": password,
                                                 "remember": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)
    cookies = {name: browser.get_cookie(name).value for name in ("session", "remember_token")}
    assert all(cookies.values())
    return cookies


def _opens_assets(app, **cookies) -> bool:
    """A fresh browser holding only ``cookies`` (e.g. copied by an attacker) opens /assets/."""
    browser = app.test_client()
    for name, value in cookies.items():
        browser.set_cookie(name, value)
    return browser.get("/assets/").status_code == 200


def _assert_all_open(app, cookies):
    assert _opens_assets(app, session=cookies["session"])
    assert _opens_assets(app, remember_token=cookies["remember_token"])


def _assert_all_closed(app, cookies):
    assert not _opens_assets(app, session=cookies["session"])
    assert not _opens_assets(app, remember_token=cookies["remember_token"])
    assert not _opens_assets(app, **cookies)


def _actions(app, user_id: int) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.action).where(
            AuditEvent.subject_type == "users", AuditEvent.subject_id == user_id)
            .order_by(AuditEvent.id)))


def _can_log_in(app, email, password) -> bool:
    return app.test_client().post(
        "/auth/login", data={"email": email, "password": password}).status_code == 302


class _Inbox:
    def __init__(self):
        self.messages, self.arrived = [], threading.Event()

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        self.arrived.set()
        return "250 OK"


@pytest.fixture
def smtp_server(app):
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=controller.port,
                      MAIL_FROM="assay@marketplace.example")
    try:
        yield inbox
    finally:
        controller.stop()


def _link_in(inbox) -> str:
    assert inbox.arrived.wait(10)
    [(_, content)] = inbox.messages
    body = email.message_from_string(content).get_payload(decode=True).decode()
    match = re.search(r"http://localhost(/auth/reset/[A-Za-z0-9_-]+)", body)
    assert match, content
    return match.group(1)


def _operator_reset(app, operator, user) -> str:
    admin = app.test_client()
    admin.post("/auth/login", data={"email": operator.email, "password": PASSWORD})
    page = admin.post(f"/admin/users/{user.id}/reset")
    assert page.status_code == 200
    match = re.search(r"http://localhost(/auth/reset/[A-Za-z0-9_-]+)", page.get_data(as_text=True))
    assert match
    return match.group(1)


# --- logout -------------------------------------------------------------------------------

def test_logout_ends_captured_session_and_remember_cookies(app, factories):
    user = factories.user()
    cookies = _captured_login(app, user)
    _assert_all_open(app, cookies)

    other_device = _captured_login(app, user)
    browser = app.test_client()
    browser.set_cookie("session", other_device["session"])
    assert browser.post("/auth/logout").status_code == 302

    _assert_all_closed(app, cookies)  # the first device too: logout ends every session
    _assert_all_closed(app, other_device)
    assert "user.logout" in _actions(app, user.id)
    assert _can_log_in(app, user.email, PASSWORD)  # logging in again works


def test_a_session_cookie_without_a_session_version_is_refused(app, factories, client):
    user = factories.user()
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)  # what sessions held before versions
        session["_fresh"] = True
    assert client.get("/assets/").status_code == 302


def test_the_remember_cookie_lasts_the_configured_days(app, factories, client, monkeypatch):
    user = factories.user()
    response = client.post("/auth/login", data={"email": user.email, "password": PASSWORD,
                                                "remember": "y"})
    cookie = next(value for value in response.headers.getlist("Set-Cookie")
                  if value.startswith("remember_token="))
    expires = datetime.strptime(re.search(r"Expires=([^;]+)", cookie).group(1),
                                "%a, %d %b %Y %H:%M:%S GMT")
    assert abs(expires - utcnow() - timedelta(days=14)) < timedelta(minutes=5)
    monkeypatch.setenv("ASSAY_REMEMBER_DAYS", "3")
    assert from_env()["REMEMBER_COOKIE_DURATION"] == timedelta(days=3)


# --- password change ----------------------------------------------------------------------

def test_password_change_ends_other_sessions_and_keeps_this_one(app, factories):
    user = factories.user()
    elsewhere = _captured_login(app, user)
    browser = app.test_client()
    browser.post("/auth/login", data={"email": user.email, "password": PASSWORD, "remember": "y"})
    before = {name: browser.get_cookie(name).value for name in ("session", "remember_token")}

    response = browser.post("/auth/account/password", data={
        "current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    assert "Every other session" in browser.get("/auth/account").get_data(as_text=True)
    assert browser.get("/assets/").status_code == 200  # this browser goes on

    _assert_all_closed(app, elsewhere)
    _assert_all_closed(app, before)  # this browser's own earlier cookies are spent too
    assert not _can_log_in(app, user.email, PASSWORD)
    assert _can_log_in(app, user.email, NEW_PASSWORD)
    assert "user.password" in _actions(app, user.id)


@pytest.mark.parametrize("data, message", [
    ({"current": "not my password", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
     "Your current password is not correct."),
    ({"current": PASSWORD, "password": "short", "confirm": "short"},
     "Use at least 10 characters."),
    ({"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "x"},
     "The passwords differ."),
    ({"current": PASSWORD, "password": "aaaaaaaaaaaa", "confirm": "aaaaaaaaaaaa"},
     "Password is too easy to guess"),
    ({"current": PASSWORD, "password": PASSWORD, "confirm": PASSWORD},
     "Choose a password different from the current one."),
])
def test_password_change_refuses_with_a_clear_message(app, factories, client, auth, data, message):
    user = factories.user()
    auth.login(user.email)
    response = client.post("/auth/account/password", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert client.get("/assets/").status_code == 200  # nothing changed, still signed in
    assert _can_log_in(app, user.email, PASSWORD)


def test_account_page_needs_a_login(client):
    assert client.get("/auth/account").status_code == 302
    assert client.post("/auth/account/password").status_code == 302


# --- deactivation -------------------------------------------------------------------------

def test_deactivation_ends_sessions_even_after_reactivation(app, factories):
    operator, user = factories.user(Role.operator), factories.user()
    cookies = _captured_login(app, user)
    admin = app.test_client()
    admin.post("/auth/login", data={"email": operator.email, "password": PASSWORD})

    admin.post(f"/admin/users/{user.id}/active", data={"active": "0"})
    _assert_all_closed(app, cookies)
    admin.post(f"/admin/users/{user.id}/active", data={"active": "1"})
    _assert_all_closed(app, cookies)  # reactivating does not bring old cookies back
    assert _can_log_in(app, user.email, PASSWORD)


# --- operator-initiated reset -------------------------------------------------------------

def test_operator_reset_link_is_single_use_and_ends_every_session(app, factories):
    operator, user = factories.user(Role.operator), factories.user()
    cookies = _captured_login(app, user)
    link = _operator_reset(app, operator, user)
    _assert_all_open(app, cookies)  # issuing a link alone ends nothing

    browser = app.test_client()
    form = browser.get(link)
    assert form.status_code == 200 and user.email in form.get_data(as_text=True)
    response = browser.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302 and response.headers["Location"].endswith("/auth/login")

    _assert_all_closed(app, cookies)
    assert not _can_log_in(app, user.email, PASSWORD)
    assert _can_log_in(app, user.email, NEW_PASSWORD)
    again = app.test_client().post(link, data={"password": "yet another secret",
                                               "confirm": "yet another secret"})
    assert again.status_code == 404
    assert "expired or was already used" in again.get_data(as_text=True)
    assert app.test_client().get(link).status_code == 404
    assert _can_log_in(app, user.email, NEW_PASSWORD)
    actions = _actions(app, user.id)
    assert "user.reset_issue" in actions and "user.password_reset" in actions


def test_reset_link_expires(app, factories):
    operator, user = factories.user(Role.operator), factories.user()
    link = _operator_reset(app, operator, user)
    with app.app_context():
        reset = db.session.scalars(select(PasswordReset)).one()
        assert reset.expires_at - reset.created_at == timedelta(hours=24)
        reset.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    response = app.test_client().post(link, data={"password": NEW_PASSWORD,
                                                  "confirm": NEW_PASSWORD})
    assert response.status_code == 404
    assert _can_log_in(app, user.email, PASSWORD)


def test_a_new_reset_link_voids_the_previous_one_and_only_a_hash_is_kept(app, factories):
    operator, user = factories.user(Role.operator), factories.user()
    first = _operator_reset(app, operator, user)
    second = _operator_reset(app, operator, user)
    assert app.test_client().get(first).status_code == 404
    assert app.test_client().get(second).status_code == 200
    with app.app_context():
        hashes = list(db.session.scalars(select(PasswordReset.token_hash)))
    assert len(hashes) == 2 and not any(h in first + second for h in hashes)
    assert all(first.rsplit("/", 1)[1] not in h for h in hashes)


def test_reset_form_applies_the_password_rules(app, factories):
    operator, user = factories.user(Role.operator), factories.user()
    link = _operator_reset(app, operator, user)
    response = app.test_client().post(link, data={"password": user.email,
                                                  "confirm": user.email})
    assert response.status_code == 422
    assert "too easy to guess" in response.get_data(as_text=True)
    assert app.test_client().get(link).status_code == 200  # a refused try does not spend it


def test_operator_reset_is_mailed_when_smtp_is_configured(app, factories, smtp_server):
    operator, user = factories.user(Role.operator), factories.user()
    shown = _operator_reset(app, operator, user)
    assert _link_in(smtp_server) == shown
    [(recipients, _)] = smtp_server.messages
    assert recipients == [user.email]


def test_only_operators_issue_resets(app, factories, client, auth):
    reviewer, seller = factories.user(Role.reviewer), factories.user()
    auth.login(reviewer.email)
    assert client.post(f"/admin/users/{seller.id}/reset").status_code == 403
    with app.app_context():
        assert db.session.scalars(select(PasswordReset)).first() is None


def test_users_page_offers_reset_and_shows_an_open_link(app, factories):
    operator, user = factories.user(Role.operator), factories.user()
    _operator_reset(app, operator, user)
    admin = app.test_client()
    admin.post("/auth/login", data={"email": operator.email, "password": PASSWORD})
    page = admin.get("/admin/users").get_data(as_text=True)
    assert f'/admin/users/{user.id}/reset"' in page
    assert "Reset link open" in page
    assert "/auth/reset/" not in page  # the link itself is shown once only


# --- self-service reset by email ----------------------------------------------------------

def test_without_smtp_no_self_service_reset_is_offered(app, client):
    app.config["SMTP_HOST"] = ""
    assert "Forgot your password?" not in client.get("/auth/login").get_data(as_text=True)
    assert client.get("/auth/forgot").status_code == 404
    assert client.post("/auth/forgot", data={"email": "a@example.com"}).status_code == 404


def test_self_service_reset_by_email(app, factories, smtp_server):
    user = factories.user()
    cookies = _captured_login(app, user)
    browser = app.test_client()
    assert "Forgot your password?" in browser.get("/auth/login").get_data(as_text=True)
    response = browser.post("/auth/forgot", data={"email": user.email.upper()})
    assert response.status_code == 302
    link = _link_in(smtp_server)
    assert "From: assay@marketplace.example" in smtp_server.messages[0][1]
    _assert_all_open(app, cookies)  # asking for a link ends nothing

    assert browser.post(link, data={"password": NEW_PASSWORD,
                                    "confirm": NEW_PASSWORD}).status_code == 302
    _assert_all_closed(app, cookies)
    assert _can_log_in(app, user.email, NEW_PASSWORD)
    assert app.test_client().get(link).status_code == 404


def test_forgot_password_does_not_reveal_whether_an_account_exists(app, factories, smtp_server):
    user = factories.user()
    inactive = factories.user(active=False)
    answers = []
    for email in ("nobody@example.com", inactive.email, user.email):
        browser = app.test_client()
        response = browser.post("/auth/forgot", data={"email": email})
        answers.append((response.status_code, response.headers["Location"],
                        browser.get("/auth/login").get_data(as_text=True)
                        .replace(email, "EMAIL")))
    assert answers[0] == answers[1] == answers[2]
    assert smtp_server.arrived.wait(10)
    assert [recipients for recipients, _ in smtp_server.messages] == [[user.email]]


class TestRateLimit:
    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT": "3 per minute"}

    def test_reset_requests_are_rate_limited(self, app, client, smtp_server):
        for _ in range(3):
            assert client.post("/auth/forgot",
                               data={"email": "nobody@example.com"}).status_code == 302
        assert client.post("/auth/forgot", data={"email": "nobody@example.com"}).status_code == 429

    def test_reset_tokens_cannot_be_guessed_quickly(self, app, client):
        for n in range(3):
            assert client.post(f"/auth/reset/guess{n}", data={}).status_code == 404
        assert client.post("/auth/reset/guess9", data={}).status_code == 429


def test_user_model_identity_carries_the_session_version(app, factories):
    user = factories.user()
    with app.app_context():
        user = db.session.get(User, user.id)
        assert user.get_id() == f"{user.id}:0"
        user.end_sessions()
        assert user.get_id() == f"{user.id}:1"
