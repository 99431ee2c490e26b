"""A seller's pages in a real browser: why a version was rejected, the warning before an
appeal that cannot approve, the submission message that goes with the verdict, a denied
appeal's notes, the Requests tab with its filter, and the package to choose again after a
form error. Screenshots at 1280 px and 390 px go to ``test-output/screenshots/``."""

from __future__ import annotations

import pytest

from tests.e2e.test_account_flow import log_in
from tests.e2e.test_seller_flow import (  # noqa: F401  (fixtures)
    PASSWORD, Shots, page, portal, screenshots,
)
from tests.portal.factories import PACKAGES, Factories

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _both(tab, shot, name: str) -> None:
    shot(name + "-1280")
    tab.set_viewport_size({"width": 390, "height": 844})
    assert tab.evaluate("document.documentElement.scrollWidth") <= 390, name  # no sideways page
    shot(name + "-390")
    tab.set_viewport_size({"width": 1280, "height": 860})


def test_a_sellers_requests_and_verdicts(page, portal, screenshots):  # noqa: F811
    from portal.extensions import db
    from portal.services import reviews
    from tests.portal.test_appeals import VIRUS_ID, make_rejected

    with portal.app.app_context():
        factories = Factories()
        seller = factories.user(email="rhea@example.com", name="Rhea Seller", password=PASSWORD)
        reviewer = factories.user("reviewer", name="Rex Reviewer")
        version = make_rejected(factories, seller, name="scan-agent")
        version_id, asset_id, reviewer_id = version.id, version.asset_id, reviewer.id
        seller_id = seller.id
    shot = Shots(page, screenshots)
    shot.count = 120
    log_in(page, portal.url, "rhea@example.com", PASSWORD)

    # 1. the asset page says why the version was rejected
    page.goto(f"{portal.url}/assets/{asset_id}")
    summary = page.locator(f"#rejection-{version_id}")
    assert summary.get_by_text("1 virus, 1 blocking vulnerability").is_visible()
    assert summary.locator("tbody tr").count() == 3
    _both(page, shot, "rejected-summary")

    # 2. an appeal that leaves blocking findings out is warned about, then confirmed
    summary.get_by_role("link", name="See every finding").click()
    assert page.get_by_text("This scan has 3 blocking findings.").first.is_visible()
    page.locator(f"#answer-{VIRUS_ID}").select_option("Yes")
    page.locator(f"#reason-{VIRUS_ID}").select_option(index=1)
    page.get_by_role("button", name="Submit the appeal").last.click()
    assert page.get_by_text("2 blocking findings are not disputed").is_visible()
    _both(page, shot, "appeal-unclaimed-warning")
    page.locator("#form-confirm-unclaimed").check()
    page.get_by_role("button", name="Submit the appeal").last.click()
    flash = page.get_by_text("Your appeal was submitted")
    flash.wait_for()

    # 3. the message goes when the badge reaches the verdict; the notes stay
    with portal.app.app_context():
        from portal.models import Appeal, User
        appeal = db.session.query(Appeal).filter_by(version_id=version_id).one()
        rex = db.session.get(User, reviewer_id)
        for claim in appeal.disputed:
            reviews.decide_claim(rex, appeal.id, claim.id, "rejected",
                                 "The signature matches the file's bytes.")
        reviews.decide_appeal(rex, appeal.id, "Fix the package.")
    page.get_by_role("heading", name="Appeal rejected").wait_for(timeout=20_000)
    flash.wait_for(state="detached", timeout=5_000)
    assert page.get_by_text("The signature matches the file's bytes.").is_visible()
    _both(page, shot, "appeal-denied-notes")

    # 4. the Requests tab, filtered by status
    page.goto(f"{portal.url}/assets/")
    page.get_by_role("link", name="Requests").click()
    rows = page.locator("#requests-table tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).get_by_role("rowheader").text_content().startswith("Appeal")
    _both(page, shot, "requests-tab")
    page.get_by_label("Status").select_option("rejected")
    page.wait_for_url(f"{portal.url}/assets/requests?status=rejected")
    rows.first.wait_for()
    assert rows.count() == 1
    assert rows.first.get_by_role("rowheader").text_content().startswith("Scan")
    shot("requests-tab-filtered-1280")

    # 5. a version's page compares its scan with the one before (a Modify that fixed three)
    with portal.app.app_context():
        from portal.models import User
        from tests.portal.test_seller_pages import rescanned_after_a_fix
        fixed_id = rescanned_after_a_fix(Factories(), db.session.get(User, seller_id)).id
    page.goto(f"{portal.url}/assets/versions/{fixed_id}/status")
    assert page.locator("#changes-fixed li").count() == 3
    assert page.locator("#changes-still li").count() == 1
    _both(page, shot, "version-changes")

    # 6. after a form error, the package must be chosen again
    page.goto(f"{portal.url}/assets/new")
    page.get_by_label("Name").fill("bad name!")
    page.get_by_label("Version").fill("1.0")
    page.get_by_label("Package file").set_input_files(str(PACKAGES / "pkg-c-clean.tar.gz"))
    page.locator("form.form-grid").evaluate("form => form.noValidate = true")
    page.get_by_role("button", name="Submit for review").click()
    assert page.get_by_text("Choose the package again (pkg-c-clean.tar.gz)").is_visible()
    _both(page, shot, "add-asset-package-again")
    assert [p for p in page.console_problems if "status of 422" not in p] == []
