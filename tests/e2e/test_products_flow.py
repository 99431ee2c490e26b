"""Products in a real browser: a seller creates a product from an Approved version and
publishes it; the asset's Delete is disabled with the product named. Screenshots go to
``test-output/screenshots/``."""

from __future__ import annotations

import pytest

from tests.e2e.test_account_flow import log_in
from tests.e2e.test_seller_flow import (  # noqa: F401  (fixtures)
    PASSWORD, Shots, page, portal, screenshots,
)
from tests.portal.factories import PACKAGES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_seller_releases_an_approved_version(page, portal, screenshots):  # noqa: F811
    from portal.extensions import db
    from portal.models import VersionStatus
    from portal.services import assets, users

    with portal.app.app_context():
        seller = users.create_user("paula@example.com", "Paula Seller", PASSWORD, "seller")
        with open(PACKAGES / "pkg-c-clean.tar.gz", "rb") as stream:
            version = assets.create_asset(seller, name="reporter", kind="binary",
                                          description="", version_label="2.0", stream=stream,
                                          filename="reporter-2_0.tar.gz", submit=False)
        version.status = VersionStatus.approved  # as its scan would have left it
        db.session.commit()
        asset_id = version.asset_id
    shot = Shots(page, screenshots)
    shot.count = 100
    log_in(page, portal.url, "paula@example.com", PASSWORD)
    page.get_by_role("link", name="Products").click()
    page.get_by_role("link", name="New product").first.click()
    page.get_by_label("Name").fill("Reporter Pro")
    page.get_by_label("Summary").fill("Reports for small shops.")
    page.get_by_label("Price note").fill("per seat, yearly")
    page.get_by_label("reporter 2.0").check()
    shot("product-new")
    page.get_by_role("button", name="Create product").click()
    assert page.get_by_text("Product Reporter Pro created").is_visible()
    page.get_by_role("button", name="Publish").click()
    assert page.get_by_text("The product is published.").is_visible()
    shot("product-published")
    page.goto(f"{portal.url}/assets/{asset_id}")
    assert page.get_by_text("Released in the product Reporter Pro (published)").first.is_visible()
    assert page.get_by_role("button", name="Delete").is_disabled()
    shot("asset-released")
    assert page.console_problems == []
