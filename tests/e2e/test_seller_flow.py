"""A seller in a real browser: register, add an EICAR package and watch it being rejected live,
download the report, then save a draft and delete it.

The portal runs in a thread of this process (werkzeug), the worker is a real ``python -m worker``
process, and Redis, S3 and clamd are the session's real services. Screenshots of every page go
to ``test-output/screenshots/``.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from werkzeug.serving import make_server

from portal import create_app, storage
from portal.extensions import db

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ROOT / "tests" / "data" / "corpus" / "packages"
PASSWORD = "correct horse battery staple"
SCAN_TIMEOUT_MS = 240_000
EICAR_SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


@dataclass
class Portal:
    url: str
    app: object
    worker_log: Path


@pytest.fixture(scope="module")
def screenshots(test_output_dir) -> Path:
    path = test_output_dir / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def portal(services_env, _databases, test_output_dir) -> Iterator[Portal]:
    """The web app on a free port and a worker process, sharing a fresh database."""
    from flask_migrate import upgrade

    # A Redis database of its own: a worker or scheduler left behind by a browser test must
    # never hand jobs to the worker tests that share the server.
    redis_url = services_env["REDIS_URL"].rsplit("/", 1)[0] + "/1"
    env = {**services_env, "DATABASE_URL": _databases.new("assay_e2e"), "REDIS_URL": redis_url}
    with mock.patch.dict(os.environ, env):
        app = create_app({"RATELIMIT_ENABLED": False})
    with app.app_context():
        upgrade()
        storage.ensure_bucket()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-portal", daemon=True)
    thread.start()
    worker_log = test_output_dir / "e2e-worker.log"
    with worker_log.open("wb") as log:
        # The real worker, its scan stages held a moment so a 2 s poll sees them.
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.paced_worker"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its work horse and scheduler go with it
        )
    try:
        yield Portal(f"http://127.0.0.1:{server.server_port}", app, worker_log)
    finally:
        _stop_worker(worker)
        server.shutdown()
        thread.join(10)
        with app.app_context():
            db.engine.dispose()


def _stop_worker(worker: subprocess.Popen) -> None:
    """Stop the worker with its work horse, its scheduler and what they started.

    RQ puts the horse in a process group of its own, out of reach of a kill of the worker's
    group: a scan still running would go on writing to storage while later tests run. So a
    warm shutdown first (the scan finishes), then a cold one (RQ kills the horse and waits).
    """
    for _ in range(2):
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(30)
            break
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)  # the scheduler, and a worker that did not stop
    worker.wait(10)


@pytest.fixture
def page(browser, portal):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.console_problems = problems
    yield page
    context.close()


class Shots:
    def __init__(self, page, folder: Path):
        self.page, self.folder, self.count = page, folder, 0

    def __call__(self, name: str) -> None:
        self.count += 1
        self.page.screenshot(path=str(self.folder / f"{self.count:02d}-{name}.png"), full_page=True)


def watch_badge(page, selector: str, final: set[str], timeout_ms: int) -> list[str]:
    """Every label the badge shows until it reaches one of ``final`` (no reload)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        label = page.locator(f"{selector} .badge-label").first.text_content(timeout=5_000)
        if label and (not seen or seen[-1] != label):
            seen.append(label.strip())
        if seen and seen[-1] in final:
            return seen
        page.wait_for_timeout(100)
    raise AssertionError(f"badge never finished; labels seen: {seen}")


def test_seller_flow(page, portal, screenshots):
    shot = Shots(page, screenshots)
    base = portal.url

    # Anonymous: the front door leads to the login page.
    page.goto(base + "/")
    assert page.url.startswith(base + "/auth/login")
    shot("login")

    # Register as a seller.
    page.get_by_role("link", name="Create an account").click()
    shot("register")
    page.get_by_label("Full name").fill("Sally Seller")
    page.get_by_label("Email").fill("sally@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(base + "/assets/")
    assert page.get_by_text("You have no assets yet").is_visible()
    shot("my-assets-empty")

    # Add Asset: the name rule is shown while typing, before anything is sent.
    page.get_by_role("link", name="Add Asset").first.click()
    page.wait_for_url(base + "/assets/new")
    shot("add-asset")
    name = page.get_by_label("Name", exact=True)
    name.fill("eicar nested!")
    name.blur()
    live_error = page.locator(".live-error")
    assert live_error.is_visible()
    assert "Invalid name" in live_error.text_content()
    shot("add-asset-invalid-name")
    name.fill("eicar-nested")
    assert not live_error.is_visible()
    page.get_by_label("Binary package").check()
    page.get_by_label("Version").fill("1.0.0")
    page.get_by_label("Description").fill("A package with the EICAR test file deep inside.")
    page.get_by_label("Package file").set_input_files(str(PACKAGES / "pkg-d-eicar-nested.zip"))
    page.get_by_role("button", name="Submit for review").click()
    page.wait_for_url(f"{base}/assets/*")
    assert page.get_by_text("Submitted for review").is_visible()
    page.evaluate("window.assayNoReload = true")  # gone if the page reloads

    # Watch the badge change in place: Queued, Scanning (stage and percent), Rejected.
    badge = page.locator("#versions .badge")
    assert badge.locator(".badge-label").text_content() == "Queued"
    assert badge.get_attribute("hx-trigger") == "every 2s"
    shot("asset-queued")
    page.locator("#versions .badge-label", has_text="Scanning").wait_for(timeout=SCAN_TIMEOUT_MS)
    shot("asset-scanning")
    seen = ["Queued", *watch_badge(page, "#versions", {"Rejected", "Approved"}, SCAN_TIMEOUT_MS)]
    print("badge labels seen:", " -> ".join(seen))
    assert seen[0] == "Queued", seen
    assert "Scanning" in seen, seen
    assert seen[-1] == "Rejected", (seen, portal.worker_log.read_text()[-3000:])
    assert page.evaluate("window.assayNoReload === true"), "the page reloaded"
    assert badge.get_attribute("hx-trigger") is None
    # The table refreshed itself on the finish: the report is there without a reload.
    report_link = page.get_by_role("link", name="Download report")
    report_link.wait_for(timeout=10_000)
    shot("asset-rejected")

    with page.expect_download() as info:
        report_link.click()
    download = info.value
    assert download.suggested_filename == "eicar-nested-1.0.0-scan-report.xlsx"
    report = download.path().read_bytes()
    assert zipfile.is_zipfile(io.BytesIO(report))
    from openpyxl import load_workbook

    findings = load_workbook(io.BytesIO(report), read_only=True)["Findings"]
    cells = " ".join(str(c) for row in findings.iter_rows(values_only=True) for c in row if c)
    assert "Eicar" in cells or "EICAR" in cells

    with page.expect_download() as info:
        page.get_by_role("link", name="Download SBOM").click()
    assert info.value.suggested_filename.endswith(".cdx.json")

    # What the scan examined, one JSON line per file: the EICAR file found inside is there.
    with page.expect_download() as info:
        page.get_by_role("link", name="Download inventory").click()
    assert info.value.suggested_filename == "eicar-nested-1.0.0-inventory.jsonl.gz"
    import gzip
    import json

    lines = [json.loads(x) for x in gzip.decompress(info.value.path().read_bytes()).splitlines()]
    assert lines[0]["opened"] == "zip"
    assert any(x["sha256"] == EICAR_SHA256 for x in lines), lines

    # Modify offers a new upload for the rejected version.
    page.get_by_role("link", name="Modify").click()
    page.wait_for_url(f"{base}/assets/versions/*/modify")
    assert page.get_by_text("Upload a corrected package").is_visible()
    shot("modify")
    page.go_back()

    # The badge as a page of its own (what a no-JavaScript link shows).
    version_status = page.locator("#versions .badge").get_attribute("id")
    page.goto(f"{base}/assets/versions/{version_status.removeprefix('status-')}/status")
    shot("status-page")

    # My Assets shows the verdict; filtering works in place.
    page.goto(base + "/assets/")
    row = page.get_by_role("row", name="eicar-nested")
    assert "Rejected" in row.text_content()
    shot("my-assets")

    # A draft: saved, shown as Draft, then deleted.
    page.get_by_role("link", name="Add Asset").first.click()
    page.get_by_label("Name", exact=True).fill("clean-tool(beta)")
    page.get_by_label("Docker image package").check()
    page.get_by_label("Docker image package").check()
    page.get_by_label("Binary package").check()
    page.get_by_label("Version").fill("0.9")
    page.get_by_label("Package file").set_input_files(str(PACKAGES / "pkg-c-clean.tar.gz"))
    page.get_by_role("button", name="Save as draft").click()
    page.wait_for_url(f"{base}/assets/*")
    assert page.get_by_text("Saved in your draft box").is_visible()
    draft_badge = page.locator("#versions .badge")
    assert draft_badge.locator(".badge-label").text_content().strip() == "Draft"
    assert draft_badge.get_attribute("hx-get") is None
    shot("draft")

    page.get_by_role("link", name="Delete").click()
    page.wait_for_url(f"{base}/assets/*/delete")
    shot("delete-confirm")
    page.get_by_role("button", name="Delete asset").click()
    page.wait_for_url(base + "/assets/")
    assert page.get_by_text("The asset was deleted.").is_visible()
    assert page.get_by_role("row", name="clean-tool(beta)").count() == 0
    assert page.get_by_role("row", name="eicar-nested").count() == 1

    # Search and filter swap the table in place and keep the address shareable.
    page.get_by_label("Search by name").fill("nothing-like-this")
    page.get_by_text("No assets match these filters.").wait_for()
    assert "q=nothing-like-this" in page.url
    assert page.evaluate("window.assayNoReload === undefined")  # the list page itself
    page.get_by_label("Search by name").fill("")
    page.get_by_label("Status").select_option("rejected")
    page.get_by_role("row", name="eicar-nested").wait_for()
    assert "status=rejected" in page.url
    shot("my-assets-filtered")

    page.goto(base + "/assets/99999")
    shot("not-found")
    page.console_problems.remove(
        "Failed to load resource: the server responded with a status of 404 (NOT FOUND)"
    )

    # Log out with the button (a POST with the CSRF token).
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(base + "/auth/login")
    assert page.get_by_text("You are signed out.").is_visible()

    assert not page.console_problems, page.console_problems


def test_operator_pages(page, portal, screenshots):
    from portal.services import users

    with portal.app.app_context():
        users.create_user("olga@example.com", "Olga Operator", PASSWORD, "operator")
    shot = Shots(page, screenshots)
    shot.count = 50
    page.goto(portal.url + "/auth/login")
    page.get_by_label("Email").fill("olga@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Users").click()
    page.wait_for_url(portal.url + "/admin/users")
    shot("admin-users")
    page.get_by_label("Full name").fill("Rita Reviewer")
    page.get_by_label("Email").fill("rita@example.com")
    page.get_by_label("Initial password").fill(PASSWORD)
    page.get_by_label("Role", exact=True).select_option("reviewer")
    page.get_by_role("button", name="Create user").click()
    assert page.get_by_text("Created rita@example.com as reviewer.").is_visible()
    page.get_by_role("link", name="Scans").click()
    shot("admin-scans")
    assert not page.console_problems, page.console_problems
