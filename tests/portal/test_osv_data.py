"""Vulnerability data that stays fresh: imports build snapshots switched in at once, a sync
downloads all.zip files with conditional GET (from a local HTTP server, never the internet),
versions are flagged by new advisories, and past scans are re-verified on their own data."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import zipfile
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from portal.extensions import db
from portal.models import AdvisoryFlag, AuditEvent, Role, ScanComponent, ScanState, VersionStatus
from portal.services import advisories, scans
from portal.services.errors import Forbidden, ValidationError
from portal.timeutil import utcnow
from scanner import osv_store
from scanner.osv import OsvDatabase
from worker import jobs

OSV = Path(__file__).resolve().parents[1] / "data" / "corpus" / "osv"
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


def record(ident: str, name: str = "examplepkg", fixed: str = "2.0", modified: str =
           "2026-11-30T00:00:00Z") -> dict:
    return {"id": ident, "modified": modified, "summary": f"{ident} in {name}",
            "affected": [{"package": {"ecosystem": "PyPI", "name": name},
                          "ranges": [{"type": "ECOSYSTEM",
                                      "events": [{"introduced": "0"}, {"fixed": fixed}]}]}],
            "severity": [{"type": "CVSS_V3", "score": CRITICAL}]}


def zip_of(records: list[dict] | None = None, folder: Path | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in records or []:
            archive.writestr(f"{item['id']}.json", json.dumps(item))
        for path in sorted(folder.glob("*.json")) if folder else []:
            archive.write(path, path.name)
    return buffer.getvalue()


@pytest.fixture
def osv_dir(app, tmp_path):
    app.config.update(OSV_DIR=str(tmp_path / "osv"), OSV_KEEP=5)
    return tmp_path / "osv"


@pytest.fixture
def operator(client, auth, factories):
    user = factories.user(Role.operator, name="Olga Operator")
    auth.login_as(user)
    return user


# --- import ------------------------------------------------------------------------------

def test_an_import_builds_a_snapshot_and_switches_to_it(app, osv_dir, tmp_path):
    first = advisories.import_osv([OSV])  # a folder of ecosystem folders
    assert first.previous is None and sorted(first.ecosystems) == [
        "Debian", "Go", "Maven", "PyPI", "npm"]
    assert first.snapshot == OsvDatabase.load([OSV]).snapshot  # the digest scans record
    assert os.readlink(osv_dir / "current") == f"snapshots/{osv_store.digest_of(first.snapshot)}"

    extra = tmp_path / "PyPI" / "all.zip"
    extra.parent.mkdir()
    extra.write_bytes(zip_of([record("GHSA-test-0001")]))
    second = advisories.import_osv([extra])
    assert second.previous == first.snapshot and second.imported == ["PyPI"]
    assert [r.id for r in second.changed] == ["GHSA-test-0001"]
    # PyPI replaced by the zip; the other ecosystems carried over
    assert second.ecosystems["PyPI"].records == 1 and second.ecosystems["npm"].records == 23
    assert (osv_dir / "snapshots" / osv_store.digest_of(first.snapshot)).is_dir()  # kept
    assert jobs.osv_database().snapshot == second.snapshot

    # two inputs of one ecosystem in one import are that ecosystem's data together
    one = tmp_path / "GHSA-test-0002.json"
    one.write_text(json.dumps(record("GHSA-test-0002")))
    third = advisories.import_osv([OSV / "PyPI", one])
    assert third.imported == ["PyPI"] and third.ecosystems["PyPI"].records == 167


def test_a_truncated_zip_leaves_the_snapshot_in_use(app, osv_dir, tmp_path):
    before = advisories.import_osv([OSV / "npm"])
    whole = zip_of(folder=OSV / "PyPI")
    broken = tmp_path / "all.zip"
    broken.write_bytes(whole[: len(whole) // 2])
    result = app.test_cli_runner().invoke(args=["osv", "import", str(broken)])
    assert result.exit_code != 0
    assert "not a complete zip archive" in result.output and "unchanged" in result.output
    assert osv_store.manifest(osv_dir / "current")["snapshot"] == before.snapshot
    assert sorted(p.name for p in osv_dir.iterdir()) == [".lock", "current", "snapshots"]
    # a record that is not JSON is refused as well, by name, and nothing is half-replaced
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "GHSA-x.json").write_text('{"id": "GHSA-x", "affected": [')
    with pytest.raises(ValidationError, match="GHSA-x.json"):
        advisories.import_osv([bad])
    assert osv_store.manifest(osv_dir / "current")["snapshot"] == before.snapshot
    assert len(list((osv_dir / "snapshots").iterdir())) == 1


def test_snapshots_are_kept_by_digest_up_to_the_setting(app, osv_dir, tmp_path):
    app.config["OSV_KEEP"] = 2
    made = []
    for n in range(4):
        folder = tmp_path / f"v{n}"
        folder.mkdir()
        (folder / "r.json").write_text(json.dumps(record(f"GHSA-test-{n}")))
        made.append(advisories.import_osv([folder]).snapshot)
    kept = [info["snapshot"] for _, info in osv_store.kept_snapshots(osv_dir)]
    assert kept == [made[3], made[2]]
    assert osv_store.find_snapshot(osv_dir, made[0]) is None
    assert osv_store.find_snapshot(osv_dir, made[2]).name == osv_store.digest_of(made[2])


def test_a_scan_under_way_keeps_the_data_it_started_with(app, osv_dir, tmp_path):
    advisories.import_osv([OSV / "PyPI"])
    started = jobs.osv_database()  # what _scan holds for the whole scan
    old = started.snapshot
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "r.json").write_text(json.dumps(record("GHSA-test-9", name="other")))
    new = advisories.import_osv([folder / "r.json"])
    assert started.snapshot == old and started.records == 166  # untouched by the switch
    assert osv_store.find_snapshot(osv_dir, old) is not None  # its folder is still there
    assert jobs.osv_database().snapshot == new.snapshot != old  # the next scan takes the new


# --- sync ----------------------------------------------------------------------------------

class Bucket:
    """What the local server serves: path -> bytes, with an ETag and a Last-Modified each."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, int]] = []  # (path, If-None-Match, status)


@pytest.fixture
def bucket():
    served = Bucket()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = served.files.get(self.path)
            tag = f'"{hashlib.sha256(body).hexdigest()[:16]}"' if body is not None else ""
            status = 404 if body is None else (
                304 if self.headers.get("If-None-Match") == tag else 200)
            served.requests.append((self.path, self.headers.get("If-None-Match") or "", status))
            self.send_response(status)
            if body is not None:
                self.send_header("ETag", tag)
                self.send_header("Last-Modified", formatdate(0, usegmt=True))
            self.send_header("Content-Length", str(len(body) if status == 200 else 0))
            self.end_headers()
            if status == 200:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}/osv"
    yield served
    server.shutdown()
    server.server_close()


def test_sync_downloads_when_changed_and_keeps_the_data_when_broken(
        app, osv_dir, bucket, client, operator):
    app.config.update(OSV_URL=bucket.url, OSV_ECOSYSTEMS=("PyPI", "npm"))
    bucket.files["/osv/PyPI/all.zip"] = zip_of(folder=OSV / "PyPI")
    bucket.files["/osv/npm/all.zip"] = zip_of(folder=OSV / "npm")

    assert jobs.run_osv_sync() == 2  # the worker's daily job
    first = osv_store.manifest(osv_dir / "current")
    assert first["ecosystems"]["PyPI"]["records"] == 166
    assert first["ecosystems"]["npm"]["records"] == 23

    # unchanged upstream: conditional GETs, 304s, the same snapshot
    outcomes = advisories.sync_osv()
    assert [o.outcome for o in outcomes] == ["not modified", "not modified"]
    assert all(tag and status == 304 for _, tag, status in bucket.requests[-2:])
    assert osv_store.manifest(osv_dir / "current")["snapshot"] == first["snapshot"]

    # a truncated npm download: npm fails, the snapshot in use stays, the next sync retries
    whole = zip_of([record("GHSA-test-npm", name="left-pad")], folder=OSV / "npm")
    bucket.files["/osv/npm/all.zip"] = whole[:-200]
    result = app.test_cli_runner().invoke(args=["osv", "sync"])
    assert result.exit_code != 0 and "npm: failed" in result.output
    assert "PyPI: not modified" in result.output
    assert osv_store.manifest(osv_dir / "current")["snapshot"] == first["snapshot"]
    state = advisories.read_sync_state()
    assert state["npm"]["outcome"] == "failed" and state["PyPI"]["outcome"] == "not modified"

    page = client.get("/admin/data").get_data(as_text=True)
    assert first["snapshot"] in page and "not a complete zip archive" in page
    assert ">166<" in page and "2024-09-18 07:04:07" in page  # records, newest modified

    bucket.files["/osv/npm/all.zip"] = whole
    assert [o.outcome for o in advisories.sync_osv()] == ["not modified", "updated"]
    now = osv_store.manifest(osv_dir / "current")
    assert now["snapshot"] != first["snapshot"] and now["ecosystems"]["npm"]["records"] == 24
    assert not (osv_dir / "downloads").exists()


def test_sync_refuses_an_address_that_is_not_http(app, osv_dir, tmp_path):
    app.config.update(OSV_URL=f"file://{tmp_path}", OSV_ECOSYSTEMS=("PyPI",))
    (outcome,) = advisories.sync_osv()
    assert outcome.outcome == "failed" and "http://" in outcome.message
    assert osv_store.active_dir(osv_dir) is None


def test_sync_without_ecosystems_does_nothing(app, osv_dir):
    app.config["OSV_ECOSYSTEMS"] = ()
    assert jobs.run_osv_sync() == 0
    result = app.test_cli_runner().invoke(args=["osv", "sync"])
    assert result.exit_code != 0 and "ASSAY_OSV_ECOSYSTEMS" in result.output
    from portal import queue

    assert ("worker.jobs.run_osv_sync", "OSV_SYNC_INTERVAL") in queue.PERIODIC
    assert queue.period_of("OSV_SYNC_INTERVAL") == 24 * 3600


# --- flags and re-verification ---------------------------------------------------------------

def scanned(factories, status, components, *, database=None, snapshot=None):
    """A version with a finished scan whose stored components are ``components``."""
    version = factories.version(factories.asset(), status=status)
    scan = factories.scan(version, state=ScanState.done, finished_at=utcnow(), verdict="approved",
                          threshold=7.0, engines={"osv": snapshot or "osv:sha256:000000000000/1"},
                          report_key="reports/none.xlsx")
    scan.components = [ScanComponent(ecosystem=e, name=n, version=v, purl=f"pkg:pypi/{n}@{v}",
                                     location=f"app.zip!/{n}") for e, n, v in components]
    if database is not None:
        found = database.match(advisories._components(scan), 7.0)
        scan.findings = [scans._finding_row(f) for f in found]
        scan.verdict = "rejected" if any(f.blocking for f in found) else "approved"
    db.session.commit()
    return version, scan


def test_an_import_flags_approved_versions_its_new_records_match(
        app, osv_dir, tmp_path, factories, client, operator):
    advisories.import_osv([OSV / "npm"])
    hit, _ = scanned(factories, VersionStatus.approved, [("PyPI", "examplepkg", "1.0")])
    fixed, _ = scanned(factories, VersionStatus.approved, [("PyPI", "examplepkg", "2.1")])
    rejected, _ = scanned(factories, VersionStatus.rejected, [("PyPI", "examplepkg", "1.0")])
    folder = tmp_path / "PyPI"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(record("GHSA-test-0001")))
    advisories.import_osv([folder])

    flags = AdvisoryFlag.query.all()
    assert [(f.version_id, f.advisories, f.blocking) for f in flags] == [
        (hit.id, ["GHSA-test-0001"], True)]
    assert AuditEvent.query.filter_by(action="version.flagged", subject_id=hit.id).count() == 1
    assert [f.version_id for f in advisories.open_flags()] == [hit.id]
    page = client.get("/admin/data").get_data(as_text=True)
    assert "GHSA-test-0001" in page and f"/admin/versions/{hit.id}/rescan" in page
    assert f"/admin/versions/{fixed.id}/rescan" not in page
    assert f"/admin/versions/{rejected.id}/rescan" not in page

    advisories.import_osv([folder])  # the same data again: nothing new, nothing flagged
    assert AdvisoryFlag.query.count() == 1
    factories.scan(hit)  # a re-scan started after the flag settles it
    assert advisories.open_flags() == []

    from portal.services import assets

    assets.delete_asset(hit.asset.owner, hit.asset_id)  # its flags go with it
    assert AdvisoryFlag.query.count() == 0


def test_reverify_a_past_scan_on_its_own_snapshot(app, osv_dir, tmp_path, factories, client,
                                                  operator):
    old = advisories.import_osv([OSV / "PyPI"])
    database = osv_store.load(osv_store.find_snapshot(osv_dir, old.snapshot))
    _, scan = scanned(factories, VersionStatus.rejected, [
        ("PyPI", "jinja2", "2.10"), ("PyPI", "examplepkg", "1.0")],
        database=database, snapshot=old.snapshot)
    assert scan.findings and scan.verdict == "rejected"
    folder = tmp_path / "PyPI"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(record("GHSA-test-0001")))
    advisories.import_osv([folder])  # newer data, with a record the old scan never knew

    outcome = advisories.reverify_scan(operator, scan.id, address="10.0.0.7")
    assert outcome.holds and outcome.verdict == "rejected" and not outcome.new
    event = AuditEvent.query.filter_by(action="scan.reverified").one()
    assert event.after["holds"] is True and event.after["snapshot"] == old.snapshot

    # the stored findings no longer agree with the data (edited by hand, say): said plainly
    gone = scan.findings[0]
    db.session.delete(gone)
    db.session.commit()
    response = client.post(f"/admin/scans/{scan.id}/reverify", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "does not hold" in page and "found now: " in page and gone.ids[0] in page

    with pytest.raises(Forbidden):
        advisories.reverify_scan(factories.user(Role.reviewer), scan.id)
    app.config["OSV_KEEP"] = 1
    (folder / "b.json").write_text(json.dumps(record("GHSA-test-0002")))
    advisories.import_osv([folder])  # the old snapshot is pruned now
    with pytest.raises(ValidationError, match="no longer kept"):
        advisories.reverify_scan(operator, scan.id)
    page = client.post(f"/admin/scans/{scan.id}/reverify", follow_redirects=True).get_data(
        as_text=True)
    assert "cannot be re-verified" in page and "no longer kept" in page


def test_operators_see_re_verify_on_the_asset_page(app, osv_dir, factories, client, operator):
    version, scan = scanned(factories, VersionStatus.approved, [("PyPI", "examplepkg", "1.0")])
    page = client.get(f"/assets/{version.asset_id}").get_data(as_text=True)
    assert f"/admin/scans/{scan.id}/reverify" in page
