"""Behind a reverse proxy (ASSAY_TRUSTED_PROXIES): the client's address for the login limit
and the audit log comes from X-Forwarded-For only when the proxy is trusted."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from werkzeug.test import EnvironBuilder

from portal.extensions import db
from portal.models import AuditEvent
from tests.portal.factories import PASSWORD

PROXY = "10.0.0.1"


def attempt(client, forwarded_for: str):
    """A failed login as the proxy passes it on: from the proxy's address, naming the client."""
    return client.post("/auth/login", data={"email": "nobody@example.com", "password": "wrong!"},
                       headers={"X-Forwarded-For": forwarded_for},
                       environ_base={"REMOTE_ADDR": PROXY})


def register(client, email: str, forwarded_for: str):
    data = {"name": "Sally", "email": email, "password": PASSWORD, "confirm": PASSWORD}
    return client.post("/auth/register", data=data, headers={"X-Forwarded-For": forwarded_for},
                       environ_base={"REMOTE_ADDR": PROXY})


def recorded_address(app, email: str) -> str:
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "user.create"))
        return next(e.address for e in events if (e.after or {}).get("email") == email)


def limited(app_config: dict, proxies: int) -> dict:
    return {**app_config, "RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT": "3 per minute",
            "TRUSTED_PROXIES": proxies}


class TestWithoutTrustedProxy:
    @pytest.fixture
    def app_config(self, app_config):
        return limited(app_config, 0)

    def test_the_forwarded_address_is_ignored_by_the_login_limit(self, client):
        for n in range(3):
            assert attempt(client, f"203.0.113.{n}").status_code == 422
        assert attempt(client, "203.0.113.99").status_code == 429

    def test_the_audit_log_records_the_connecting_address(self, app, client):
        assert register(client, "sally@example.com", "203.0.113.7").status_code == 302
        assert recorded_address(app, "sally@example.com") == PROXY


class TestBehindOneTrustedProxy:
    @pytest.fixture
    def app_config(self, app_config):
        return limited(app_config, 1)

    def test_each_client_has_its_own_login_limit(self, client):
        for _ in range(3):
            assert attempt(client, "203.0.113.1").status_code == 422
        assert attempt(client, "203.0.113.1").status_code == 429
        assert attempt(client, "203.0.113.2").status_code == 422

    def test_a_client_cannot_choose_its_address(self, client):
        """The proxy appends the address it saw; what the client sent before it is not used."""
        for n in range(3):
            assert attempt(client, f"198.51.100.{n}, 203.0.113.1").status_code == 422
        assert attempt(client, "198.51.100.99, 203.0.113.1").status_code == 429

    def test_the_audit_log_records_the_client_address(self, app, client):
        assert register(client, "sally@example.com", "203.0.113.7").status_code == 302
        assert recorded_address(app, "sally@example.com") == "203.0.113.7"

    def test_the_forwarded_scheme_and_address_reach_the_app(self, app):
        environ = EnvironBuilder("/auth/login", environ_base={"REMOTE_ADDR": PROXY}, headers={
            "X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.example"}).get_environ()
        app.wsgi_app(environ, lambda status, headers: None)
        assert environ["REMOTE_ADDR"] == "203.0.113.5"
        assert environ["wsgi.url_scheme"] == "https"
        assert environ["HTTP_HOST"] == "localhost"  # the host is not taken from the headers

def test_a_negative_count_is_refused(app_config):
    from portal import create_app
    from portal.config import ConfigError

    with pytest.raises(ConfigError, match="ASSAY_TRUSTED_PROXIES"):
        create_app({**app_config, "TRUSTED_PROXIES": -1})
