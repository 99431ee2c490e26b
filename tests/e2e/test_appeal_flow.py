"""An appeal in real browsers: the seller's package is rejected for vulnerabilities, the seller
fills in the downloaded report and uploads it; a reviewer, in a second browser, finds it at the
top of the queue, accepts every claim and decides; the seller's page turns Approved by itself.

Uses the live portal and real worker of the seller flow. Screenshots go to
``test-output/screenshots/``.
"""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import load_workbook

from tests.e2e.test_seller_flow import (  # noqa: F401  (fixtures)
    PACKAGES, PASSWORD, SCAN_TIMEOUT_MS, Shots, page, portal, screenshots, watch_badge,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PACKAGE = "pkg-a-python-app.tar.gz"
REASON = "Vulnerable code not in execute path"


def log_in(page, base: str, email: str) -> None:
    page.goto(base + "/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/assets/")


def fill_every_blocking_finding(report: bytes) -> tuple[bytes, int]:
    """Columns F–H filled in with openpyxl, as a seller's spreadsheet program would."""
    wb = load_workbook(io.BytesIO(report))
    sheet = wb["Findings"]
    claimed = 0
    for row in range(2, sheet.max_row + 1):
        if sheet[f"I{row}"].value == "Yes":
            sheet[f"F{row}"] = "Yes"
            sheet[f"G{row}"] = REASON
            sheet[f"H{row}"] = "The vulnerable function is never called by the application."
            claimed += 1
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue(), claimed


def test_appeal_flow(page, portal, browser, screenshots, tmp_path):  # noqa: F811
    from portal.services import users

    with portal.app.app_context():
        users.create_user("sam@example.com", "Sam Seller", PASSWORD, "seller")
        users.create_user("rita@example.com", "Rita Reviewer", PASSWORD, "reviewer")
        users.create_user("otto@example.com", "Otto Operator", PASSWORD, "operator")
    base, shot = portal.url, Shots(page, screenshots)
    shot.count = 70

    # The seller adds a package with vulnerable components and watches it being rejected.
    log_in(page, base, "sam@example.com")
    page.get_by_role("link", name="Add Asset").first.click()
    page.get_by_label("Name", exact=True).fill("python-app")
    page.get_by_label("Binary package").check()
    page.get_by_label("Version").fill("2.1.0")
    page.get_by_label("Package file").set_input_files(str(PACKAGES / PACKAGE))
    page.get_by_role("button", name="Submit for review").click()
    page.wait_for_url(f"{base}/assets/*")
    seen = watch_badge(page, "#versions", {"Rejected", "Approved"}, SCAN_TIMEOUT_MS)
    assert seen[-1] == "Rejected", (seen, portal.worker_log.read_text()[-3000:])

    # Appeal: download the report, fill F/G/H for every blocking finding, upload it.
    page.get_by_role("link", name="Appeal", exact=True).click()
    page.wait_for_url(f"{base}/appeals/versions/*")
    shot("appeal-start")
    page.screenshot(path=str(screenshots / "71-appeal-start-top.png"))
    with page.expect_download() as info:
        page.get_by_role("link", name="Download the report").click()
    filled, claimed = fill_every_blocking_finding(info.value.path().read_bytes())
    assert claimed >= 1
    upload = tmp_path / "python-app-2.1.0-scan-report.xlsx"
    upload.write_bytes(filled)
    evidence = tmp_path / "call-graph.txt"
    evidence.write_text("main -> handler -> render (no call into the vulnerable module)\n")
    page.get_by_label("Filled-in report (.xlsx)").set_input_files(str(upload))
    page.locator("#evidence-files").set_input_files(str(evidence))
    page.locator(".upload-form").get_by_role("button", name="Submit the appeal").click()
    page.get_by_text("Your appeal was submitted").wait_for()
    assert page.get_by_role("heading", name="Reviewing").is_visible()
    due = page.locator(".due-date").text_content()
    assert re.search(r"\d{4}-\d{2}-\d{2} 23:59 GMT\+08:00", due), due
    countdown = page.locator(".countdown").text_content()
    assert re.search(r"due in \d working days?|due today", countdown), countdown
    assert page.locator(".page-head .badge-label").text_content().strip() == "Reviewing"
    page.evaluate("window.assayNoReload = true")  # gone if the page reloads
    shot("appeal-reviewing")

    # A reviewer, in another browser, finds it at the top of the queue.
    reviewer_context = browser.new_context(viewport={"width": 1440, "height": 900})
    reviewer = reviewer_context.new_page()
    reviewer.set_default_timeout(15_000)
    problems: list[str] = []
    reviewer.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    reviewer.on("pageerror", lambda exc: problems.append(str(exc)))
    review_shot = Shots(reviewer, screenshots)
    review_shot.count = 80
    try:
        log_in(reviewer, base, "rita@example.com")
        reviewer.get_by_role("link", name=re.compile(r"^Appeals")).click()
        reviewer.wait_for_url(base + "/reviews/")
        first = reviewer.locator("#queue-table tbody tr").first
        assert "python-app" in first.text_content() and "sam@example.com" in first.text_content()
        assert reviewer.locator("#queue-table").get_attribute("hx-trigger") == "every 30s"
        review_shot("review-queue")
        first.get_by_role("button", name=re.compile("^Claim")).click()
        reviewer.get_by_text("is assigned to you").wait_for()
        first = reviewer.locator("#queue-table tbody tr").first
        first.get_by_role("link", name=re.compile("^Open")).click()
        reviewer.wait_for_url(f"{base}/reviews/*")
        assert reviewer.get_by_role("link", name="call-graph.txt").is_visible()
        assert reviewer.get_by_text(REASON).first.is_visible()
        review_shot("review-appeal")
        reviewer.screenshot(path=str(screenshots / "82-review-appeal-top.png"))

        # Accept every claim, row by row (each row swaps itself), then decide.
        forms = reviewer.locator("form.claim-form")
        assert forms.count() == claimed
        for index in range(claimed):
            row = reviewer.locator("tr.claim-row").nth(index)
            row.get_by_label("Note for the seller").fill("Confirmed: not reachable.")
            row.get_by_role("button", name="Accept").click()
            reviewer.locator("tr.claim-row").nth(index).locator(".pill-ok", has_text="accepted") \
                .wait_for()
        reviewer.get_by_text("approves").wait_for()
        review_shot("review-decided-claims")
        reviewer.get_by_label("Comment for the seller").fill("All findings are false positives.")
        reviewer.get_by_role("button", name="Decide the appeal").click()
        reviewer.get_by_text("accepted: the version is now approved").wait_for()
        review_shot("review-done")
        assert not problems, problems
    finally:
        reviewer_context.close()

    # The seller's page, never reloaded, shows the decision.
    page.locator(".page-head .badge-label", has_text="Approved").wait_for(timeout=20_000)
    page.get_by_role("heading", name="Appeal accepted").wait_for(timeout=10_000)
    assert page.evaluate("window.assayNoReload === true"), "the page reloaded"
    assert page.get_by_text("All findings are false positives.").is_visible()
    shot("appeal-approved")
    assert not page.console_problems, page.console_problems


def test_operators_see_sla_figures_and_set_the_calendar(browser, portal, screenshots):  # noqa: F811
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    try:
        log_in(page, portal.url, "otto@example.com")
        page.get_by_role("link", name="Calendar", exact=True).click()
        page.wait_for_url(portal.url + "/admin/calendar/")
        assert page.locator(".figures").get_by_text("Median time to decision").is_visible()
        page.get_by_label("Day").fill("2031-05-06")
        page.get_by_label("Make it").select_option("0")
        page.get_by_label("Note").fill("Company holiday")
        page.get_by_role("button", name="Save").click()
        page.get_by_text("2031-05-06 is now a holiday").wait_for()
        assert page.get_by_role("row", name=re.compile("2031-05-06")).is_visible()
        page.screenshot(path=str(screenshots / "90-sla-calendar.png"), full_page=True)
        assert not problems, problems
    finally:
        context.close()
