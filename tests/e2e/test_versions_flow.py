"""A seller adds a second version in a real browser: Version information lists both, each
with its own status. Screenshots go to ``test-output/screenshots/``."""

from __future__ import annotations

import pytest

from tests.e2e.test_account_flow import log_in
from tests.e2e.test_seller_flow import (  # noqa: F401  (fixtures)
    PASSWORD, Shots, page, portal, screenshots,
)
from tests.portal.factories import PACKAGES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_seller_adds_a_version(page, portal, screenshots):  # noqa: F811
    from portal.services import assets, users

    with portal.app.app_context():
        seller = users.create_user("vera@example.com", "Vera Seller", PASSWORD, "seller")
        with open(PACKAGES / "pkg-c-clean.tar.gz", "rb") as stream:
            first = assets.create_asset(seller, name="toolkit", kind="binary", description="",
                                        version_label="1.0", stream=stream,
                                        filename="toolkit-1_0.tar.gz", submit=False)
        asset_id = first.asset_id
    shot = Shots(page, screenshots)
    shot.count = 95
    log_in(page, portal.url, "vera@example.com", PASSWORD)
    page.goto(f"{portal.url}/assets/{asset_id}")
    page.get_by_role("link", name="Add version").click()
    page.get_by_label("Version").fill("1.0")
    page.get_by_label("Package file").set_input_files(str(PACKAGES / "pkg-c-clean.tar.gz"))
    page.get_by_role("button", name="Save as draft").click()
    assert page.get_by_text("toolkit already has a version 1.0").first.is_visible()
    shot("add-version-duplicate")
    page.get_by_label("Version").fill("1.1")
    page.get_by_label("Package file").set_input_files(str(PACKAGES / "pkg-c-clean.tar.gz"))
    page.get_by_role("button", name="Save as draft").click()
    page.wait_for_url(f"{portal.url}/assets/{asset_id}")
    assert page.get_by_text("Version 1.1 saved as a draft.").is_visible()
    rows = page.locator("#versions tbody tr")
    assert rows.count() >= 2
    assert page.locator("#versions").get_by_text("1.1", exact=True).is_visible()
    shot("asset-two-versions")
    assert [p for p in page.console_problems if "status of 422" not in p] == []
