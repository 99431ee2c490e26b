"""A session that ends while a page polls: the browser lands on the login page (and comes back
to the page after logging in), never with the login page swapped into a table cell.

Uses the live portal of the seller flow. Screenshots go to ``test-output/screenshots/``.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.test_seller_flow import (  # noqa: F401  (fixtures)
    PASSWORD, Shots, page, portal, screenshots,
)
from tests.portal.factories import Factories

pytestmark = [pytest.mark.e2e]


def test_a_polling_badge_sends_an_ended_session_to_the_login_page(page, portal,  # noqa: F811
                                                                    screenshots):  # noqa: F811
    with portal.app.app_context():
        make = Factories()
        seller = make.user(email="polly@example.com", password=PASSWORD)
        version = make.version(make.asset(seller, name="Polled app"), status="scanning")
        make.scan(version, state="running")  # nobody runs it: the badge keeps polling
        version_id = version.id
    shot = Shots(page, screenshots)
    shot.count = 90

    page.goto(portal.url + "/auth/login")
    page.get_by_label("Email").fill("polly@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(portal.url + "/assets/?sort=name")
    badge = page.locator(f"#assets-table [hx-get$='/versions/{version_id}/status']")
    assert badge.count() == 1

    page.context.clear_cookies()  # the session ends (expired, or logged out elsewhere)
    page.wait_for_url(re.compile(r"/auth/login\?next="), timeout=15_000)
    assert page.url.endswith("/auth/login?next=%2Fassets%2F%3Fsort%3Dname")
    assert page.locator("html").count() == 1 and page.locator("td form").count() == 0
    assert page.get_by_text("Please log in to continue.").is_visible()
    shot("session-ended-login")

    page.get_by_label("Email").fill("polly@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(portal.url + "/assets/?sort=name")
    assert page.get_by_role("link", name="Polled app", exact=True).is_visible()
