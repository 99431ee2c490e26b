"""Queue entry points. Jobs take ids; the rules live in ``portal.services``.

A job runs inside the app context of the process (the worker builds the app
once, before it forks a work horse per job); when called where an app context
is already pushed (a test with ``SimpleWorker``), that one is used.
"""

from __future__ import annotations

import ctypes
import functools
import gzip
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from flask import current_app, has_app_context

from portal import queue, storage
from portal.extensions import db
from portal.models import Scan
from portal.services import assets, false_positives, policy, scans, sla, sweeper, uploads

log = logging.getLogger(__name__)
_app = None
_osv_cache: dict = {}


def get_app():
    """The app of this process, built on first use."""
    global _app
    if _app is None:
        from portal import create_app

        _app = create_app()
    return _app


def set_app(app) -> None:
    """Use ``app`` for jobs run in this process (the worker's entry point does this)."""
    global _app
    _app = app


def in_app_context(job):
    """Run ``job`` in the current app context, or in the process's app."""

    @functools.wraps(job)
    def run(*args, **kwargs):
        if has_app_context():
            return job(*args, **kwargs)
        with get_app().app_context():
            return job(*args, **kwargs)

    return run


# --- scanning -------------------------------------------------------------------

class NoVulnerabilityData(RuntimeError):
    """OSV_DIR holds no records: scanning now would call vulnerable packages clean."""


class EngineUnavailable(RuntimeError):
    """A virus engine could not be reached: a fault to retry, never a verdict."""


def engine_down(result) -> str | None:
    """Why the virus engine was unavailable during the scan, or None.

    The scanner fails closed (an ``unscanned`` finding) when clamd is down; the
    portal turns that into a retry, so a dead engine never rejects a package.
    """
    version = result.scan.engines.get("clamav", "")
    if version.startswith("unavailable"):
        return f"virus engine {version}"
    for finding in result.findings:
        if finding.type == "unscanned" and finding.summary.startswith("ClamAV unavailable"):
            return finding.summary
    return None


@in_app_context
def run_scan(scan_id: int) -> str:
    """Claim the scan, fetch its package, scan it, store the outputs, record the verdict.

    A failure records a failed attempt and re-raises, so the queue retries with
    backoff; a package the scanner refuses (name, format) is a rejection with an
    ``unscanned`` finding, not a failure. A scan that stops advancing for
    SCAN_STALL_AFTER seconds is failed for good (see :func:`_heartbeat`).
    """
    scan = scans.start_scan(scan_id, worker_name(), job_id=queue.current_job_id())
    if scan is None:
        log.info("scan %s is not ours to run (done, running elsewhere or given up)", scan_id)
        return "skipped"
    try:
        with _heartbeat(scan_id) as watch:
            return _scan(scan_id, watch)
    except ScanStalled:
        db.session.rollback()  # already recorded as failed by the watch: not retried
        log.warning("scan %s stalled and was stopped", scan_id)
        return "stalled"
    except BaseException as exc:
        db.session.rollback()
        scans.fail_attempt(scan_id, f"{type(exc).__name__}: {exc}")
        raise


def _scan(scan_id: int, watch: ProgressWatch) -> str:
    import scanner

    scan = db.session.get(Scan, scan_id)
    version, asset = scan.version, scan.version.asset
    key, name = scan.package_key, assets.scanner_file_name(version.package_name or "package.zip")
    version_id = version.id
    labels = (asset.name, version.label)
    kind = asset.kind.value
    ids = (asset.owner_id, asset.id, version_id, scan_id)
    db.session.commit()  # no transaction stays open during a long scan
    osv = osv_database()
    progress = watch.relay(scans.progress_recorder(scan_id))
    scratch = Path(current_app.config["SCRATCH_DIR"])
    scratch.mkdir(parents=True, exist_ok=True)
    settings = _settings(kind)
    # Everything the scan writes lies in folders of its own, so that a work horse ended
    # on a stall leaves nothing behind.
    with tempfile.TemporaryDirectory(prefix=f"scan-{scan_id}-", dir=scratch) as tmp, \
            _own_dir(settings.memory_dir, f"scan-{scan_id}-") as memory:
        inventory = Path(tmp) / "inventory.jsonl"
        settings = replace(settings, scratch_dir=Path(tmp), memory_dir=memory, inventory=inventory)
        package = Path(tmp) / "package"
        _, sha256 = storage.fetch_to_file(
            key, package, progress=lambda done, total: progress("fetch", done, total))
        uploads.record_sha256(version_id, key, sha256)  # direct uploads arrive without one
        # Only the scanner's stages can stall on what a package holds: storage has timeouts.
        with watch.armed(Path(tmp), memory):
            try:
                result = scanner.scan_package(package, settings, progress, name=name, osv=osv)
            except scanner.ScanError as exc:
                result = unscannable_result(package, name, str(exc), osv)
        down = engine_down(result)
        if down:
            raise EngineUnavailable(down)
        progress("report", 0, 1)
        inventory_key = _store_inventory(inventory, ids)
    keys = _store_outputs(scan_id, result, labels)
    scans.complete_scan(scan_id, result, *keys, inventory_key=inventory_key)
    return result.verdict


def _settings(kind: str = "binary"):
    from scanner.model import Settings

    cfg = current_app.config
    rules = policy.current_policy()  # what an operator set last, else the environment's
    return Settings(osv_paths=tuple(osv_sources(Path(cfg["OSV_DIR"]))),
                    threshold=rules.threshold, dev_blocks=rules.dev_blocks, policy=rules.label,
                    clamd=cfg["CLAMD_ADDRESS"] or None,
                    scratch_dir=Path(cfg["SCRATCH_DIR"]), kind=kind,
                    memory_dir=Path(cfg["SCAN_MEMORY_DIR"]) if cfg["SCAN_MEMORY_DIR"] else None)


@contextmanager
def _own_dir(base: Path | None, prefix: str):
    """A new folder under ``base`` for the block, removed after it; None without ``base``."""
    path = None
    if base is not None and base.is_dir():
        try:
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
        except OSError:
            path = None
    try:
        yield path
    finally:
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


def _store_outputs(scan_id: int, result, labels: tuple[str, str]) -> tuple[str, str, str]:
    from scanner.report import write_report
    from scanner.sbom import write_sbom

    scan = db.session.get(Scan, scan_id)
    version = scan.version
    ids = (version.asset.owner_id, version.asset_id, version.id, scan_id)
    accepted = false_positives.accepted_for_scan(scan_id)  # accepted on earlier appeals
    db.session.commit()
    report = write_report(replace(result, verdict=false_positives.effective_verdict(result, accepted)),
                          report_id=f"scan-{scan_id}", secret=current_app.config["REPORT_KEY"],
                          asset_name=labels[0], version_label=labels[1], accepted=accepted)
    keys = storage.report_key(*ids), storage.sbom_key(*ids), storage.summary_key(*ids)
    storage.put_bytes(keys[0], report, "application/vnd.openxmlformats-officedocument"
                                       ".spreadsheetml.sheet")
    storage.put_bytes(keys[1], write_sbom(result).encode(), "application/vnd.cyclonedx+json")
    summary = {"scan_id": scan_id, **result.to_dict()}
    storage.put_bytes(keys[2], json.dumps(summary, indent=1).encode(), "application/json")
    return keys


#: The largest inventory stored (compressed); a larger one is not kept.
MAX_INVENTORY_BYTES = 4 * 1024**3


def _store_inventory(inventory: Path, ids: tuple[int, int, int, int]) -> str | None:
    """Store the inventory the scan wrote, gzip-compressed, beside its report; its key, or
    None when the scan wrote none (a package refused before it was opened)."""
    if not inventory.is_file():
        return None
    packed = inventory.with_name(inventory.name + ".gz")
    with open(inventory, "rb") as src, gzip.open(packed, "wb", compresslevel=6) as out:
        shutil.copyfileobj(src, out, 1024 * 1024)
    inventory.unlink()
    key = storage.inventory_key(*ids)
    with open(packed, "rb") as f:
        try:
            storage.put_stream(key, f, max_bytes=MAX_INVENTORY_BYTES, content_type="application/gzip")
        except storage.TooLarge:
            log.warning("the inventory of scan %s is over %s bytes: not stored", ids[-1],
                        MAX_INVENTORY_BYTES)
            return None
    return key


def unscannable_result(package: Path, name: str, reason: str, osv):
    """A rejected result with one ``unscanned`` finding saying why the package was refused."""
    from scanner.model import Finding, PackageInfo, ScanInfo, ScanResult

    digest, size = hashlib.sha256(), 0
    with open(package, "rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    finding = Finding(
        id=hashlib.sha256(f"unscanned|{name}|{reason}".encode()).hexdigest()[:32],
        type="unscanned", location=name, blocking=True, engine="identify",
        summary=f"The package could not be scanned: {reason}",
    )
    settings = _settings()
    return ScanResult(
        verdict="rejected",
        package=PackageInfo(name=name, size=size, sha256=digest.hexdigest(), format="unknown"),
        components=(), findings=(finding,),
        scan=ScanInfo(policy=settings.policy, threshold=settings.threshold,
                      engines={"osv": osv.snapshot}, osv_records=osv.records,
                      started=now, finished=now),
    )


# --- vulnerability data: loaded once per worker process -------------------------------------

def osv_database():
    """The OSV snapshot in use under OSV_DIR, loaded once and again only when it changes.

    The worker warms this before forking, so each work horse inherits it. An import that
    switches snapshots meanwhile does not touch a scan under way: it holds the database
    it started with, and the folder of that snapshot is kept by digest.
    """
    from scanner.osv import OsvDatabase

    root = Path(current_app.config["OSV_DIR"])
    stamp = _osv_stamp(root)
    if stamp is None:
        raise NoVulnerabilityData(f"no vulnerability data in {root}: run 'flask osv import'")
    if _osv_cache.get("stamp") != stamp:
        database = OsvDatabase.load(osv_sources(root))
        if not database.records:
            raise NoVulnerabilityData(f"no vulnerability records in {root}: run 'flask osv import'")
        _osv_cache.update(stamp=stamp, database=database)
    return _osv_cache["database"]


def osv_sources(root: Path) -> list[Path]:
    """The folders and ``all.zip`` files of the snapshot in use (see :mod:`scanner.osv_store`)."""
    from scanner import osv_store

    active = osv_store.active_dir(root)
    return osv_store.sources(active) if active is not None else []


def _osv_stamp(root: Path) -> tuple | None:
    """What changes when the data does: the snapshot in use (a snapshot never changes), or
    in a folder without snapshots, its own and its children's mtimes."""
    from scanner import osv_store

    active = osv_store.active_dir(root)
    if active is None:
        return None
    if active != root:
        return (str(active),)
    entries = [(p.name, p.stat().st_mtime_ns) for p in sorted(root.iterdir())]
    return (str(root), root.stat().st_mtime_ns, tuple(entries))


# --- heartbeat and stall watch ----------------------------------------------------------

#: Exit status of a work horse that ended itself because its scan stalled: the worker
#: (``python -m worker``) fails that job without retrying it.
STALLED_EXIT = 75
#: How long a stalled scan's thread may take to unwind before its process is ended.
STALL_GRACE = 10.0
_may_exit = False  # True in a forked work horse, whose process may be ended on a stall


def allow_exit_on_stall(allowed: bool = True) -> None:
    """Let a stalled scan end this process (only a forked work horse, never a shared one)."""
    global _may_exit
    _may_exit = allowed


class ScanStalled(BaseException):
    """Raised in the scanning thread when its scan stopped advancing.

    A BaseException, so that no ``except Exception`` of a reader swallows it.
    """


class ProgressWatch:
    """When the scan last advanced: a new stage, or a new done/total within one.

    Repeating the same numbers is not progress: the virus stage relays its last
    count every quarter second whether files finish or not.
    """

    def __init__(self):
        self.stage: str | None = None
        self._mark: tuple | None = None
        self._at = time.monotonic()
        self._armed = 0
        self.scratch: list[Path] = []

    def relay(self, record):
        """Wrap a progress callback so that each report is seen here first."""
        def report(stage: str, done: int, total: int) -> None:
            self.seen(stage, done, total)
            record(stage, done, total)
        return report

    def seen(self, stage: str, done: int, total: int) -> None:
        if (stage, done, total) != self._mark:
            self.stage, self._mark, self._at = stage, (stage, done, total), time.monotonic()

    @contextmanager
    def armed(self, *scratch: Path):
        """Judge stalls only inside this block; ``scratch`` is removed if the process must end."""
        self._armed += 1
        self.scratch = [p for p in scratch if p is not None]
        self._at = time.monotonic()
        try:
            yield self
        finally:
            self._armed -= 1

    def idle(self) -> float:
        """Seconds since the scan last advanced; 0 while not armed."""
        return time.monotonic() - self._at if self._armed else 0.0


@contextmanager
def _heartbeat(scan_id: int):
    """Beat the scan's heartbeat from a thread while the block runs, as long as the scan
    advances.

    A long step with no progress (one huge file in the virus engine) still beats, up to
    SCAN_STALL_AFTER seconds; past that the scan is taken as stalled (a package that
    keeps a reader busy forever): it is recorded as failed, not retried, and stopped.
    """
    app, stop = current_app._get_current_object(), threading.Event()
    interval = max(float(app.config["SCAN_HEARTBEAT"]), 0.5)
    stall_after = float(app.config["SCAN_STALL_AFTER"])
    watch, scanning = ProgressWatch(), threading.get_ident()

    def beat():
        while not stop.wait(interval):
            if stall_after > 0 and watch.idle() >= stall_after:
                _stop_stalled(app, scan_id, watch, scanning, stop)
                return
            try:
                with app.app_context():
                    scans.heartbeat(scan_id)
            except Exception:  # noqa: BLE001 - a missed beat is not worth killing the scan
                log.warning("heartbeat of scan %s failed", scan_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"heartbeat-{scan_id}", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        stop.set()
        thread.join(timeout=interval + STALL_GRACE + 30)


def _stop_stalled(app, scan_id: int, watch: ProgressWatch, scanning: int,
                  stop: threading.Event) -> None:
    """Record the stalled scan as failed, then stop it: first by raising ScanStalled in
    the scanning thread; if that thread is stuck where Python cannot interrupt it (a
    query inside SQLite, a read in C), by ending the work horse."""
    try:
        with app.app_context():
            failed = scans.fail_stalled(scan_id, watch.stage, watch.idle())
    except Exception:  # noqa: BLE001 - without the record, stopping would look like a crash
        log.exception("could not record scan %s as stalled", scan_id)
        return
    if not failed:
        return  # it finished (or was taken over) meanwhile
    log.warning("scan %s made no progress for %.0f s in stage %s: stopping it",
                scan_id, watch.idle(), watch.stage)
    if stop.is_set():
        return
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(scanning),
                                               ctypes.py_object(ScanStalled))
    if stop.wait(STALL_GRACE) or not _may_exit:
        return
    log.error("scan %s does not unwind: ending work horse %s", scan_id, os.getpid())
    for path in watch.scratch:
        shutil.rmtree(path, ignore_errors=True)
    logging.shutdown()
    os._exit(STALLED_EXIT)


def worker_name() -> str:
    """Which worker runs this job: host, process and the queue worker's name."""
    rq_name = os.environ.get("RQ_WORKER_ID", "")
    return f"{socket.gethostname()}:{os.getpid()}" + (f" ({rq_name})" if rq_name else "")


# --- periodic jobs --------------------------------------------------------------------

@in_app_context
def drain_outbox() -> int:
    """Enqueue scans whose submission happened while Redis was unreachable."""
    return scans.drain_outbox()


@in_app_context
def reap_stuck_scans() -> int:
    """Re-queue scans whose worker stopped beating, then enqueue them."""
    reaped = scans.reap_stuck_scans()
    scans.drain_outbox()
    return reaped


@in_app_context
def sweep_orphans() -> int:
    """Remove stored objects that no row refers to (older than ORPHAN_MIN_AGE)."""
    return sweeper.sweep_orphans()


@in_app_context
def run_reminders() -> int:
    """Remind reviewers of appeals due within one working day and of overdue ones."""
    return sla.send_reminders()


@in_app_context
def run_abort_abandoned_uploads() -> int:
    """Abort direct uploads nobody has touched for a day, and their stored parts."""
    return uploads.abort_abandoned()


@in_app_context
def watch_uploads() -> int:
    """Measure what storage holds for each open direct upload; abort those past their size."""
    return uploads.watch_open_uploads()


@in_app_context
def run_osv_sync() -> int:
    """Download and switch in the configured ecosystems' OSV data when it changed (daily);
    how many ecosystems were updated. Nothing happens without OSV_ECOSYSTEMS."""
    from portal.services import advisories

    if not current_app.config["OSV_ECOSYSTEMS"]:
        return 0
    outcomes = advisories.sync_osv()
    for outcome in outcomes:
        if outcome.outcome == "failed":
            log.warning("OSV sync of %s failed: %s", outcome.ecosystem, outcome.message)
    return sum(o.outcome == "updated" for o in outcomes)
