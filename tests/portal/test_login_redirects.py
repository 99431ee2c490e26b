"""Where the login page sends a user back to (``next``), and how HTMX requests of a user whose
session has ended are sent to it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from flask import g

from portal.blueprints.rendering import safe_next
from portal.services import users
from tests.portal.factories import PASSWORD

HX = {"HX-Request": "true"}

#: ``next`` as it appears in the query string (already percent-encoded), none on this site.
FOREIGN = [
    "/%09/evil.example",          # browsers drop the tab: //evil.example
    "/%0A/x",                     # a newline cannot go in a header (was a 500)
    "/%0D%0A/evil.example",
    "/%0D/evil.example",
    "/%00/evil.example",
    "/%7F/evil.example",
    "/%C2%85/evil.example",       # NEL
    "/%E2%80%A8/evil.example",    # LINE SEPARATOR
    "/%E2%80%8B/evil.example",    # ZERO WIDTH SPACE
    "%09//evil.example",
    "%20//evil.example",
    "//evil.example",
    "///evil.example",
    "////evil.example",
    "%2F%2Fevil.example",         # decoded once by the query parser: //evil.example
    "/%5Cevil.example",           # /\evil.example: browsers read \ as /
    "%5C%5Cevil.example",
    "/%5C/evil.example",
    "/%09%5C/evil.example",
    "https://evil.example/",
    "https:evil.example",
    "HTTP://evil.example",
    "http:/evil.example",
    "javascript:alert(1)",
    "data:text/html,x",
    "evil.example",
    "assets/",
    "",
]

#: ``next`` values on this site, kept as they are.
LOCAL = {
    "/assets/new": "/assets/new",
    "/assets/%3Fsort%3Dname%26page%3D2": "/assets/?sort=name&page=2",
    "/assets/%2520x": "/assets/%20x",     # stays encoded: one path segment
    "/assets/%252F%252Fevil": "/assets/%2F%2Fevil",
}


def login(client, user, query: str):
    data = {"email": user.email, "password": PASSWORD}
    return client.post(f"/auth/login?next={query}", data=data)


@pytest.mark.parametrize("query", FOREIGN)
def test_login_never_leaves_the_site(client, factories, query):
    user = factories.user()
    response = login(client, user, query)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("query", list(LOCAL))
def test_login_returns_to_a_path_on_this_site(client, factories, query):
    user = factories.user()
    response = login(client, user, query)
    assert response.status_code == 302
    assert response.headers["Location"] == LOCAL[query]


@pytest.mark.parametrize("target", [
    "/\t/evil.example", "/\n/x", "/\r\n/x", "/\\evil.example", "//evil.example", "\\\\x",
    "/\u2028/x", "/\u200b/x", "/\x85/x", " /x", "https://evil.example", "/" + "a" * 2001,
    None, "",
])
def test_safe_next_refuses(target):
    assert safe_next(target) is None


@pytest.mark.parametrize("target", ["/", "/assets/", "/assets/?q=a b&page=2", "/reviews/4#claims"])
def test_safe_next_keeps_site_paths(target):
    assert safe_next(target) == target


# --- HTMX requests of anonymous users -----------------------------------------------------

def login_target(location: str) -> tuple[str, str | None]:
    parts = urlsplit(location)
    return parts.path, parse_qs(parts.query).get("next", [None])[0]


def test_a_page_request_is_redirected_to_login(client):
    response = client.get("/assets/?page=2")
    assert response.status_code == 302
    assert "HX-Redirect" not in response.headers
    assert login_target(response.headers["Location"]) == ("/auth/login", "/assets/?page=2")


def test_an_htmx_request_gets_hx_redirect_back_to_the_page_shown(client):
    """A polling badge must not swap the login page into a table cell."""
    headers = {**HX, "HX-Current-URL": "http://localhost/assets/?sort=name"}
    response = client.get("/assets/versions/1/status", headers=headers)
    assert response.status_code == 401
    assert "<html" not in response.get_data(as_text=True)
    assert login_target(response.headers["HX-Redirect"]) == ("/auth/login", "/assets/?sort=name")
    # The login page then shows why.
    assert "Please log in to continue." in client.get("/auth/login").get_data(as_text=True)


def test_an_htmx_request_without_current_url_comes_back_to_its_own_address(client):
    response = client.post("/assets/1/delete", headers=HX)
    assert response.status_code == 401
    assert login_target(response.headers["HX-Redirect"]) == ("/auth/login", "/assets/1/delete")


def test_hx_current_url_of_another_site_is_not_followed(client, factories):
    headers = {**HX, "HX-Current-URL": "https://evil.example//evil.example/x"}
    location = client.get("/assets/", headers=headers).headers["HX-Redirect"]
    path, target = login_target(location)
    assert path == "/auth/login" and "evil.example" not in location.split("?")[0]
    user = factories.user()
    assert login(client, user, target).headers["Location"] == "/"


def test_a_session_that_ends_mid_poll_gets_hx_redirect(client, factories, auth):
    user = factories.user()
    asset = factories.asset(user)
    version = factories.version(asset)
    auth.login(user.email)
    status = f"/assets/versions/{version.id}/status"
    assert client.get(status, headers=HX).status_code == 200
    users.end_sessions(user)  # logged out on another device, say
    g.pop("_login_user", None)  # the test's app context outlives requests: forget its user
    response = client.get(status, headers={**HX, "HX-Current-URL": "http://localhost/assets/"})
    assert response.status_code == 401
    assert login_target(response.headers["HX-Redirect"]) == ("/auth/login", "/assets/")


def test_a_boosted_or_plain_request_still_gets_a_redirect(client):
    response = client.get("/assets/", headers={"HX-Boosted": "true"})
    assert response.status_code == 302 and "HX-Redirect" not in response.headers


def test_app_js_reloads_on_a_401_without_hx_redirect():
    from tests.portal.test_views_security import STATIC

    script = (STATIC / "app.js").read_text()
    assert "htmx:responseError" in script and "status === 401" in script


def test_several_polls_ending_at_once_say_it_once(client):
    for _ in range(3):
        assert client.get("/assets/versions/1/status", headers=HX).status_code == 401
    assert client.get("/auth/login").get_data(as_text=True).count("Please log in to continue.") == 1
