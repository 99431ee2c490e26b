"""A large package through the direct path in a real browser: the file goes from chromium to S3
in parts (the threshold lowered so a few hundred MB take that path), is paused, resumed with the
button, paused again, resumed after the tab is reloaded, and the scan starts.

Upload speed is capped through the DevTools protocol so there is time to press Pause; the
progress panel is screenshotted under ``test-output/screenshots/``.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import pytest

from tests.e2e.test_seller_flow import PASSWORD, Shots, page, portal, screenshots  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MIB = 1024**2
SIZE = 240 * MIB
UPLOAD_BYTES_PER_SECOND = 40 * MIB


@pytest.fixture(scope="module")
def big_package(tmp_path_factory) -> Path:
    """A stored (uncompressed) zip of random data: quick to make, real by its content."""
    path = tmp_path_factory.mktemp("large") / "big-tool.zip"
    with (zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive,
          archive.open("big-tool/data.bin", "w", force_zip64=True) as member):
        for _ in range(SIZE // (16 * MIB)):
            member.write(os.urandom(16 * MIB))
    return path


@pytest.fixture
def direct(portal):  # noqa: F811
    """Direct uploads from 50 MiB, in 16 MiB parts (config is read on every request)."""
    config = portal.app.config
    saved = {k: config[k] for k in ("DIRECT_UPLOAD_THRESHOLD", "UPLOAD_PART_SIZE")}
    config.update(DIRECT_UPLOAD_THRESHOLD=50 * MIB, UPLOAD_PART_SIZE=16 * MIB)
    yield portal
    config.update(saved)


def percent(page) -> float:  # noqa: F811
    return page.locator(".upload-bar").evaluate("bar => bar.value")


def wait_for_percent(page, at_least: float, timeout_s: float = 60) -> float:  # noqa: F811
    for _ in range(int(timeout_s * 10)):
        value = percent(page)
        if value >= at_least:
            return value
        page.wait_for_timeout(100)
    raise AssertionError(f"the upload stayed at {percent(page)}%")


def fill_form(page, package: Path) -> None:  # noqa: F811
    page.get_by_label("Name", exact=True).fill("big-tool")
    page.get_by_label("Binary package").check()
    page.get_by_label("Version").fill("3.0")
    page.get_by_label("Package file").set_input_files(str(package))


def test_a_large_package_goes_straight_to_storage(page, direct, screenshots, big_package):  # noqa: F811
    shot = Shots(page, screenshots)
    shot.count = 90
    base = direct.url
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1,
        "uploadThroughput": UPLOAD_BYTES_PER_SECOND})

    page.goto(base + "/auth/register")
    page.get_by_label("Full name").fill("Larry Large")
    page.get_by_label("Email").fill("larry@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(base + "/assets/")

    page.goto(base + "/assets/new")
    assert page.get_by_label("Upload directly to storage").is_visible()
    fill_form(page, big_package)
    page.get_by_role("button", name="Submit for review").click()

    panel = page.locator(".upload-panel")
    panel.wait_for()
    assert "directly to storage" in panel.locator(".upload-title").text_content()
    wait_for_percent(page, 15)
    page.locator(".upload-figures", has_text="left").wait_for()
    shot("upload-progress")
    figures = page.locator(".upload-figures").text_content()
    assert "/s" in figures and "of 240 MiB" in figures, figures

    # Resume continues from the parts storage holds.
    # Pause lets the parts on their way finish, then nothing moves.
    page.get_by_role("button", name="Pause").click()
    page.locator('.upload-panel[data-state="paused"]').wait_for(timeout=60_000)
    held = percent(page)
    assert held > 0
    page.wait_for_timeout(1500)
    assert percent(page) == held
    shot("upload-paused")
    page.get_by_role("button", name="Resume").click()
    wait_for_percent(page, held + 10)

    # Pause again and close the tab (a reload): the same file on the same page resumes.
    page.get_by_role("button", name="Pause").click()
    page.locator('.upload-panel[data-state="paused"]').wait_for(timeout=60_000)
    page.reload()
    fill_form(page, big_package)
    page.get_by_role("button", name="Submit for review").click()
    page.locator(".upload-message", has_text="Resuming:").wait_for()
    shot("upload-resumed")
    assert percent(page) > 0

    # Done: the portal checks the package and queues the scan; the asset page shows it.
    page.wait_for_url(re.compile(re.escape(base) + r"/assets/\d+$"), timeout=120_000)
    assert page.get_by_text("Submitted for review").is_visible()
    label = page.locator("#versions .badge-label").first.text_content().strip()
    assert label in {"Queued", "Scanning"}, label
    page.locator("#versions .badge-label", has_text="Scanning").wait_for(timeout=120_000)
    shot("large-asset-scanning")
    assert page.get_by_text("big-tool.zip").first.is_visible()
    assert page.get_by_text("240 MiB").first.is_visible()
    assert page.evaluate("Object.keys(localStorage).length") == 0
    assert not page.console_problems, page.console_problems
