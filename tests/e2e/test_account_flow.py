"""Accounts in real browsers: an operator gives a seller a reset link, the seller sets a new
password with it (once), changes it again on the account page, and logging out in one browser
ends the session of another. With a mail relay configured the login page offers a reset by email.

Uses the live portal of the seller flow. Screenshots go to ``test-output/screenshots/``.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.test_seller_flow import (  # noqa: F401  (fixtures)
    PASSWORD, Shots, page, portal, screenshots,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RESET_PASSWORD = "a brand new passphrase"
CHANGED_PASSWORD = "yet another passphrase"


def log_in(page, base: str, email: str, password: str) -> None:
    page.goto(base + "/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(re.escape(base) + r"/(assets/)?$"))


def test_reset_change_and_logout_everywhere(browser, page, portal, screenshots):  # noqa: F811
    from portal.services import users

    with portal.app.app_context():
        users.create_user("oscar@example.com", "Oscar Operator", PASSWORD, "operator")
        users.create_user("sam@example.com", "Sam Seller", PASSWORD, "seller")
    shot = Shots(page, screenshots)
    shot.count = 70

    # The operator issues a reset link for Sam; it is shown once.
    log_in(page, portal.url, "oscar@example.com", PASSWORD)
    page.goto(portal.url + "/admin/users")
    page.get_by_role("button", name="Reset password of sam@example.com").click()
    link = page.locator("#reset-link").inner_text().strip()
    assert link.startswith("http://127.0.0.1:") and "/auth/reset/" in link
    assert page.get_by_text("Reset link open").is_visible()
    shot("admin-users-reset-link")

    # Sam, signed in elsewhere before the reset, uses the link in another browser.
    sam_context = browser.new_context(viewport={"width": 1280, "height": 860})
    sam_old = sam_context.new_page()
    log_in(sam_old, portal.url, "sam@example.com", PASSWORD)
    other = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        sam = other.new_page()
        sam_shot = Shots(sam, screenshots)
        sam_shot.count = 80
        sam.goto(link)
        assert sam.get_by_text("For sam@example.com").is_visible()
        sam_shot("reset-password")
        sam.get_by_label("New password", exact=True).fill(RESET_PASSWORD)
        sam.get_by_label("Repeat new password").fill(RESET_PASSWORD)
        sam.get_by_role("button", name="Set new password").click()
        sam.wait_for_url(portal.url + "/auth/login")
        assert sam.get_by_text("Your password is set").is_visible()

        # The session from before the reset has ended.
        sam_old.goto(portal.url + "/assets/")
        assert "/auth/login" in sam_old.url

        # The link works once.
        sam.goto(link)
        assert sam.get_by_role("heading", name="Reset link not valid").is_visible()
        sam_shot("reset-link-used")

        # The account page: a wrong current password is refused, then the change goes through.
        log_in(sam, portal.url, "sam@example.com", RESET_PASSWORD)
        sam.get_by_role("link", name="Sam Seller").click()
        sam.wait_for_url(portal.url + "/auth/account")
        sam.get_by_label("Current password").fill("not the password")
        sam.get_by_label("New password", exact=True).fill(CHANGED_PASSWORD)
        sam.get_by_label("Repeat new password").fill(CHANGED_PASSWORD)
        sam.get_by_role("button", name="Change password").click()
        assert sam.get_by_text("Your current password is not correct.").is_visible()
        sam_shot("account-wrong-password")
        sam.get_by_label("Current password").fill(RESET_PASSWORD)
        sam.get_by_label("New password", exact=True).fill(CHANGED_PASSWORD)
        sam.get_by_label("Repeat new password").fill(CHANGED_PASSWORD)
        sam.get_by_role("button", name="Change password").click()
        sam.get_by_text("Password changed.").wait_for()
        sam_shot("account-password-changed")

        # Logging out in one browser ends the other one's session too.
        log_in(sam_old, portal.url, "sam@example.com", CHANGED_PASSWORD)
        sam.get_by_role("button", name="Log out").click()
        sam.wait_for_url(portal.url + "/auth/login")
        sam_old.goto(portal.url + "/assets/")
        assert "/auth/login" in sam_old.url
    finally:
        other.close()
        sam_context.close()

    # With a mail relay configured, the login page offers a reset by email.
    page.get_by_role("button", name="Log out").click()
    portal.app.config["SMTP_HOST"] = "127.0.0.1"
    try:
        page.goto(portal.url + "/auth/login")
        page.get_by_role("link", name="Forgot your password?").click()
        page.wait_for_url(portal.url + "/auth/forgot")
        shot("forgot-password")
    finally:
        portal.app.config["SMTP_HOST"] = ""
    assert not page.console_problems, page.console_problems
