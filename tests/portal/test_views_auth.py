"""Registration, login, logout."""

from __future__ import annotations

import pytest

from portal.models import Role, User
from tests.portal.factories import PASSWORD


def signed_in(client) -> bool:
    return client.get("/assets/").status_code == 200


def register(client, **fields):
    data = {
        "name": "Sally Seller",
        "email": "sally@example.com",
        "password": PASSWORD,
        "confirm": PASSWORD,
        **fields,
    }
    return client.post("/auth/register", data=data)


def test_register_creates_a_seller_and_signs_in(client, app):
    response = register(client)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/assets/")
    with app.app_context():
        user = User.query.filter_by(email="sally@example.com").one()
        assert user.role is Role.seller
        assert user.password_hash.startswith("$argon2")
    assert signed_in(client)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"email": "not-an-email"}, "Invalid email address."),
        ({"password": "short", "confirm": "short"}, "Use at least 10 characters."),
        ({"confirm": "something else entirely"}, "The passwords differ."),
        ({"name": ""}, "This field is required."),
    ],
)
def test_register_shows_field_messages(client, fields, message):
    response = register(client, **fields)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_register_refuses_a_taken_email(client, factories):
    factories.user(email="taken@example.com")
    response = register(client, email="taken@example.com")
    assert response.status_code == 422
    assert "An account with this email address already exists." in response.get_data(as_text=True)


def test_login_and_logout(client, factories, auth):
    user = factories.user()
    response = auth.login(user.email)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/")
    assert signed_in(client)
    assert client.get("/auth/logout").status_code == 405  # never by a plain link
    response = auth.logout()
    assert response.status_code == 302
    assert not signed_in(client)


def test_login_with_a_wrong_password(client, factories, auth):
    user = factories.user()
    response = auth.login(user.email, "wrong password!")
    assert response.status_code == 422
    assert "Wrong email or password" in response.get_data(as_text=True)


def test_a_deactivated_account_cannot_log_in(client, factories, auth):
    user = factories.user(active=False)
    response = auth.login(user.email)
    assert response.status_code == 422


def test_login_follows_a_local_next_only(client, factories):
    user = factories.user()
    data = {"email": user.email, "password": PASSWORD}
    local = client.post("/auth/login?next=/assets/new", data=data)
    assert local.headers["Location"].endswith("/assets/new")
    client.post("/auth/logout")
    foreign = client.post("/auth/login?next=//evil.example/x", data=data)
    assert "evil" not in foreign.headers["Location"]


def test_anonymous_users_are_sent_to_login_with_next(client):
    response = client.get("/admin/users")
    assert response.status_code == 302
    assert "/auth/login?next=" in response.headers["Location"]


class TestRateLimit:
    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT": "3 per minute"}

    def test_login_attempts_are_rate_limited(self, client, auth):
        for _ in range(3):
            assert auth.login("nobody@example.com", "wrong password!").status_code == 422
        response = auth.login("nobody@example.com", "wrong password!")
        assert response.status_code == 429
        assert "Too many attempts" in response.get_data(as_text=True)
        assert client.get("/auth/login").status_code == 200  # reading the form is not limited
