"""The scan policy page in a real browser: an operator raises the threshold and makes
dev-only dependencies block; the page shows the new version and its history, and the
staff navigation stays on one line. Screenshots go to ``test-output/screenshots/``."""

from __future__ import annotations

import re

import pytest

from tests.e2e.test_account_flow import log_in
from tests.e2e.test_seller_flow import (  # noqa: F401  (fixtures)
    PASSWORD, Shots, page, portal, screenshots,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_an_operator_changes_the_policy(page, portal, screenshots):  # noqa: F811
    from portal.services import users

    with portal.app.app_context():
        users.create_user("pat@example.com", "Pat Operator", PASSWORD, "operator")
    page.set_viewport_size({"width": 1280, "height": 860})
    shot = Shots(page, screenshots)
    shot.count = 90
    log_in(page, portal.url, "pat@example.com", PASSWORD)
    page.get_by_role("link", name="Data", exact=True).click()
    assert page.get_by_role("heading", name="Data and signatures").is_visible()
    shot("data-page")
    page.get_by_role("link", name="Policy").click()
    assert page.get_by_text("score is 7.0 or more").is_visible()
    nav = page.locator("nav.mainnav").bounding_box()
    link = page.locator("nav.mainnav a").first.bounding_box()
    assert nav["height"] < 2 * link["height"], "the staff navigation wraps onto a second line"

    page.get_by_label("Blocking CVSS score").fill("11")
    page.get_by_role("button", name="Save as a new version").click()
    assert page.get_by_role("alert").get_by_text("must be from 0.1 to 10.0").is_visible()
    shot("policy-refused")

    page.get_by_label("Blocking CVSS score").fill("9.0")
    page.get_by_label("Vulnerabilities of dev-only dependencies block too").check()
    page.get_by_label("Why").fill("Marketplace rules of 2027")
    page.get_by_role("button", name="Save as a new version").click()
    assert page.get_by_text(re.compile(r"Policy version \d+ is in force")).is_visible()
    assert page.get_by_text("score is 9.0 or more").is_visible()
    assert page.get_by_role("cell", name="Marketplace rules of 2027").is_visible()
    shot("policy-saved")
    # the refused form answers 422, which the browser logs as a failed load
    assert [p for p in page.console_problems if "status of 422" not in p] == []
