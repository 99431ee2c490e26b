"""Scans: the outbox, claiming, durable progress, results, retries and the reaper.

A scan is one attempt to scan one package. Its row is the truth: the queue only
carries ids. A scan is created in the database first (the outbox) and handed to
the queue after the commit; whatever goes wrong on the way (Redis down, a worker
killed, a job lost) leaves a row that ``drain_outbox`` or ``reap_stuck_scans``
picks up again. A failure never decides a verdict.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from flask import current_app
from sqlalchemy import false, or_, select, update

from portal import queue, storage
from portal.extensions import db
from portal.models import AssetVersion, Scan, ScanComponent, ScanFinding, ScanState, User
from portal.models import VersionStatus
from portal.services import access, false_positives, reports, state
from portal.services.audit import record_event
from portal.services.errors import Forbidden, InvalidTransition, NotFound, ValidationError
from portal.timeutil import utcnow

#: Stage of the scanner -> (words shown on the badge, share of the whole scan in percent).
STAGES: dict[str, tuple[str, int]] = {
    "fetch": ("downloading", 10),
    "identify": ("identifying", 2),
    "unpack": ("unpacking", 15),
    "catalog": ("cataloging", 8),
    "match": ("matching", 10),
    "virus": ("virus scan", 45),
    "verdict": ("verdict", 2),
    "report": ("report", 8),
}
_BEFORE = {name: sum(w for _, w in list(STAGES.values())[:i]) for i, name in enumerate(STAGES)}


# --- the outbox -----------------------------------------------------------------

def enqueue_scan(version: AssetVersion) -> Scan:
    """Add a queued scan of the version's package to the caller's transaction.

    It sits in the outbox (``enqueued_at`` None) until ``dispatch_scan`` hands
    it to the queue after the caller commits.
    """
    scan = Scan(version=version, state=ScanState.queued, package_key=version.package_key,
                package_sha256=version.package_sha256)
    db.session.add(scan)
    db.session.flush()
    return scan


def dispatch_scan(scan_id: int) -> bool:
    """Hand a queued scan from the outbox to the queue; False when it stays there.

    The row is marked first with a conditional UPDATE, so two drains never
    enqueue the same scan twice; if Redis refuses, the mark is undone.
    """
    attempts = db.session.scalar(select(Scan.attempts).where(Scan.id == scan_id))
    if attempts is None:
        return False
    job_id = queue.scan_job_id(scan_id, attempts + 1)
    if not _update(scan_id, (Scan.state == ScanState.queued) & Scan.enqueued_at.is_(None),
                   enqueued_at=utcnow(), job_id=job_id):
        return False
    if queue.enqueue_scan_job(scan_id, attempts + 1):
        return True
    _update(scan_id, Scan.job_id == job_id, enqueued_at=None)
    return False


def drain_outbox(limit: int = 200) -> int:
    """Enqueue scans left in the outbox; stops at the first refusal. Returns how many."""
    ids = db.session.scalars(
        select(Scan.id).where(Scan.state == ScanState.queued, Scan.enqueued_at.is_(None))
        .order_by(Scan.id).limit(limit)
    ).all()
    sent = 0
    for scan_id in ids:
        if not dispatch_scan(scan_id):
            break
        sent += 1
    return sent


# --- running a scan ---------------------------------------------------------------

def start_scan(scan_id: int, worker_name: str, *, job_id: str | None = None) -> Scan | None:
    """Claim the scan for this worker, or None when it is not ours to run.

    One conditional UPDATE: it succeeds for a queued scan, for a running one
    whose heartbeat stopped, or for a running one that this very job ran before
    (the queue retries a job only after its process ended). A scan out of
    attempts is failed instead.
    """
    cfg, now = current_app.config, utcnow()
    stale = Scan.heartbeat_at < now - timedelta(seconds=cfg["SCAN_STUCK_AFTER"])
    ours = (Scan.job_id == job_id) if job_id else false()
    claimable = or_(Scan.state == ScanState.queued, (Scan.state == ScanState.running) & or_(stale, ours))
    claimed = _update(
        scan_id, claimable & (Scan.attempts < cfg["SCAN_MAX_ATTEMPTS"]),
        state=ScanState.running, worker=worker_name[:255], job_id=job_id or Scan.job_id,
        attempts=Scan.attempts + 1, started_at=now, heartbeat_at=now, stage="fetch",
        progress=0, finished_at=None,
    )
    if claimed:
        return db.session.get(Scan, scan_id)
    _update(scan_id, claimable & (Scan.attempts >= cfg["SCAN_MAX_ATTEMPTS"]),
            state=ScanState.failed, finished_at=now,
            error="Gave up: the scan failed on every attempt.")
    return None


def record_progress(scan_id: int, stage: str, done: int, total: int) -> None:
    """Store the stage and overall percent, and beat the heartbeat (committed)."""
    _update(scan_id, Scan.state == ScanState.running, stage=stage[:32],
            progress=overall_percent(stage, done, total), heartbeat_at=utcnow())


def progress_recorder(scan_id: int, *, interval: float = 1.0) -> Callable[[str, int, int], None]:
    """A progress callback for the scanner that writes at most once per ``interval``
    seconds, and always when the stage changes."""
    last = {"stage": None, "at": 0.0}

    def record(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage == last["stage"] and now - last["at"] < interval:
            return
        last.update(stage=stage, at=now)
        record_progress(scan_id, stage, done, total)

    return record


#: How the error of a scan stopped for making no progress begins.
STALLED = "Stalled:"


def fail_stalled(scan_id: int, stage: str | None, idle: float) -> bool:
    """Fail a running scan that made no progress for ``idle`` seconds, for good.

    Its package keeps a stage busy without advancing (crafted to, or a reader
    that cannot cope): running it again would hold a worker as long again, so it
    is not retried. The version keeps its status (scanning), as after any failed
    scan: no verdict without a completed scan. Operators see it and can retry it.
    False when the scan was no longer running.
    """
    words = STAGES.get(stage or "", (stage or "starting", 0))[0]
    error = (f"{STALLED} no progress for {_minutes(idle)} in the {words} stage; stopped, "
             "not retried. The package may be built to stall the scanner: look at it before "
             "retrying.")
    if not _update(scan_id, Scan.state == ScanState.running, state=ScanState.failed,
                   finished_at=utcnow(), error=error, stage=(stage or "")[:32] or None):
        return False
    scan = db.session.get(Scan, scan_id)
    record_event(None, "scan.stalled", scan,
                 after={"stage": stage, "idle_seconds": int(idle), "attempts": scan.attempts})
    db.session.commit()
    return True


def stalled(scan: Scan) -> bool:
    """Whether the scan was stopped for making no progress."""
    return scan.state is ScanState.failed and (scan.error or "").startswith(STALLED)


def _minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{int(seconds)} seconds"
    return f"{int(seconds // 60)} minutes"


def heartbeat(scan_id: int) -> bool:
    """Tell the reaper the scan is alive; False when it is no longer running."""
    return _update(scan_id, Scan.state == ScanState.running, heartbeat_at=utcnow())


def overall_percent(stage: str, done: int, total: int) -> int:
    """Percent of the whole scan, weighting each stage by its usual share."""
    if stage not in STAGES:
        return 0
    share = STAGES[stage][1] * (min(max(done, 0), total) / total if total > 0 else 0)
    return min(int(_BEFORE[stage] + share), 99)


def complete_scan(scan_id: int, result, report_key: str | None, sbom_key: str | None,
                  summary_key: str | None, inventory_key: str | None = None) -> Scan:
    """Store a finished scan's findings and components and move the version.

    ``inventory_key``: where the inventory of what the scan examined is stored, if it is.

    The verdict moves the version only when this is its latest scan and it is
    still scanning (a newer package may have been submitted meanwhile). A scan
    that already completed (a duplicate run) is left as it is.
    """
    scan = db.session.get(Scan, scan_id, with_for_update=True)
    if scan is None:
        raise NotFound("No such scan.")
    if scan.state is ScanState.done or stalled(scan):  # a stalled scan never decides
        db.session.rollback()
        return scan
    _store_result(scan, result)
    verdict = false_positives.apply_accepted(scan)  # findings accepted on appeal no longer block
    scan.report_key, scan.sbom_key, scan.summary_key = report_key, sbom_key, summary_key
    scan.inventory_key = inventory_key
    scan.state, scan.stage, scan.progress = ScanState.done, "done", 100
    scan.finished_at = scan.heartbeat_at = utcnow()
    scan.error = None
    version = scan.version
    if version.latest_scan is scan and version.status is VersionStatus.scanning:
        state.move(version, verdict, actor=None)
    elif (scan.rescan and version.latest_scan is scan
          and version.status is VersionStatus.approved and verdict == "rejected"):
        state.move(version, "rescan_rejected", actor=None)
        _tell_owner(version, f"A re-scan of {version.asset.name} {version.label} found blocking "
                             "issues: it is Rejected now. Its report says which.")
    db.session.commit()
    return scan


def rescan_version(actor: User, version_id: int, *, address: str | None = None) -> Scan:
    """Scan an Approved version again (new advisories, new signatures). It stays Approved
    while the scan runs; only a blocking verdict rejects it. Operators only."""
    if actor is None or not actor.is_operator:
        raise Forbidden("Only operators start re-scans.")
    version = access.get_version(actor, version_id)
    scan = _rescan(version, actor, address)
    db.session.commit()
    dispatch_scan(scan.id)
    return scan


def rescan_approved(actor: User, *, address: str | None = None) -> int:
    """Re-scan every Approved version that is not being re-scanned already; how many."""
    if actor is None or not actor.is_operator:
        raise Forbidden("Only operators start re-scans.")
    versions = db.session.scalars(select(AssetVersion).where(
        AssetVersion.status == VersionStatus.approved).order_by(AssetVersion.id))
    started = [_rescan(v, actor, address) for v in versions if not _rescanning(v)]
    db.session.commit()
    for scan in started:
        dispatch_scan(scan.id)
    return len(started)


def _rescan(version: AssetVersion, actor: User, address: str | None) -> Scan:
    if _rescanning(version):
        raise ValidationError("This version is being re-scanned already.")
    if not version.package_key:
        raise ValidationError("This version has no package to scan.")
    state.move(version, "rescan", actor=actor, address=address)
    scan = enqueue_scan(version)
    scan.rescan = True
    return scan


def _rescanning(version: AssetVersion) -> bool:
    latest = version.latest_scan
    return latest is not None and latest.rescan and latest.state in (
        ScanState.queued, ScanState.running)


def _tell_owner(version: AssetVersion, text: str) -> None:
    from portal.models import Notification

    db.session.add(Notification(user_id=version.asset.owner_id, kind="rescan_rejected",
                                text=text, link=f"/assets/{version.asset_id}"))


def _store_result(scan: Scan, result) -> None:
    info = result.scan
    scan.verdict, scan.policy, scan.threshold = result.verdict, info.policy, info.threshold
    scan.engines, scan.osv_records = dict(info.engines), info.osv_records
    scan.findings = [_finding_row(f) for f in result.findings]
    scan.components = [
        ScanComponent(ecosystem=c.ecosystem[:64], name=c.name[:255], version=c.version[:128],
                      purl=c.purl, location=c.location)
        for c in result.components
    ]
    scores = [f.cvss.score for f in result.findings if f.cvss is not None]
    scan.max_cvss = max(scores) if scores else None
    scan.counts = {kind: sum(f.type == kind for f in result.findings)
                   for kind in ("virus", "vulnerability", "unscanned")}
    scan.counts["blocking"] = sum(f.blocking for f in result.findings)


def _finding_row(f) -> ScanFinding:
    comp, cvss = f.component, f.cvss
    return ScanFinding(
        fingerprint=f.id[:64], type=f.type, location=f.location, blocking=f.blocking,
        ids=list(f.ids), aliases=list(f.aliases),
        ecosystem=comp.ecosystem if comp else None, component_name=comp.name if comp else None,
        component_version=comp.version if comp else None, purl=comp.purl if comp else None,
        cvss_score=cvss.score if cvss else None, cvss_vector=cvss.vector if cvss else None,
        cvss_source=cvss.source if cvss else None, severity=f.severity, signature=f.signature,
        engine=f.engine, summary=f.summary or "", fixed_versions=list(f.fixed_versions),
        references=list(f.references),
    )


def fail_attempt(scan_id: int, error: str) -> Scan | None:
    """Record a failed attempt: back to queued for a retry, or failed when out of attempts.

    The version keeps its status (scanning): only a completed scan decides.
    """
    scan = db.session.get(Scan, scan_id)
    if scan is None or scan.state is ScanState.done or stalled(scan):
        return scan
    out_of_attempts = scan.attempts >= current_app.config["SCAN_MAX_ATTEMPTS"]
    scan.state = ScanState.failed if out_of_attempts else ScanState.queued
    scan.error = (error or "unknown error")[-4000:]
    scan.stage, scan.progress = None, 0
    if out_of_attempts:
        scan.finished_at = utcnow()
        record_event(None, "scan.failed", scan, after={"attempts": scan.attempts,
                                                       "error": scan.error[-500:]})
    db.session.commit()
    return scan


def reap_stuck_scans(now: datetime | None = None) -> int:
    """Put running scans whose heartbeat stopped back in the outbox (or fail them
    when out of attempts), and queued scans whose job vanished from Redis.
    Returns how many scans were touched."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=current_app.config["SCAN_STUCK_AFTER"])
    stuck = db.session.scalars(select(Scan.id).where(
        Scan.state == ScanState.running,
        or_(Scan.heartbeat_at < cutoff, Scan.heartbeat_at.is_(None) & (Scan.started_at < cutoff)),
    )).all()
    reaped = sum(_reap_one(scan_id, cutoff, now) for scan_id in stuck)
    return reaped + _requeue_lost_jobs(cutoff)


def _reap_one(scan_id: int, cutoff: datetime, now: datetime) -> bool:
    still_stuck = (Scan.state == ScanState.running) & (Scan.heartbeat_at < cutoff)
    message = f"The worker stopped responding (no heartbeat since before {cutoff:%Y-%m-%d %H:%M:%S} UTC)."
    max_attempts = current_app.config["SCAN_MAX_ATTEMPTS"]
    if _update(scan_id, still_stuck & (Scan.attempts >= max_attempts), state=ScanState.failed,
               finished_at=now, error=message, stage=None):
        return True
    return _update(scan_id, still_stuck, state=ScanState.queued, enqueued_at=None, stage=None,
                   progress=0, error=message)


def _requeue_lost_jobs(cutoff: datetime) -> int:
    waiting = db.session.execute(select(Scan.id, Scan.job_id).where(
        Scan.state == ScanState.queued, Scan.enqueued_at < cutoff, Scan.job_id.is_not(None),
    )).all()
    lost = [scan_id for scan_id, job_id in waiting if queue.job_exists(job_id) is False]
    return sum(_update(scan_id, Scan.state == ScanState.queued, enqueued_at=None)
               for scan_id in lost)


def retry_scan(actor: User, scan_id: int, *, address: str | None = None) -> Scan:
    """An operator starts a failed scan over: a new scan of the same package."""
    if not actor.is_operator:
        raise Forbidden("Only operators can retry scans.")
    old = db.session.get(Scan, scan_id)
    if old is None:
        raise NotFound("No such scan.")
    if old.state is not ScanState.failed or old.version.latest_scan is not old:
        raise InvalidTransition("Only the latest scan of a version, once failed, can be retried.")
    scan = enqueue_scan(old.version)
    record_event(actor, "scan.retry", scan, before={"scan": old.id}, address=address)
    db.session.commit()
    dispatch_scan(scan.id)
    return scan


# --- what people see --------------------------------------------------------------------

@dataclass(frozen=True)
class Badge:
    """The live status of a version, as the badge fragment shows it."""

    label: str  # Draft / Queued / Scanning / Approved / Rejected / Reviewing
    css: str  # a class name: status-draft, status-queued, ...
    stage: str = ""  # "virus scan", "waiting for a worker", ...
    percent: int | None = None
    polling: bool = False  # True only while queued or scanning
    #: How often the fragment looks again: every 2 s while scanning, every 5 s while a
    #: reviewer decides an appeal (so the seller sees the decision live), else never.
    every: str | None = None


def badge(version: AssetVersion) -> Badge:
    """The badge for ``version``: a scanning one carries stage, percent and polling."""
    scan = version.latest_scan
    if (version.status is VersionStatus.approved and scan is not None and scan.rescan
            and scan.state in (ScanState.queued, ScanState.running)):
        return Badge("Approved", "status-approved", "re-scanning", None, True, "5s")
    if version.status is not VersionStatus.scanning:
        label = version.status.value.capitalize()
        every = "5s" if version.status is VersionStatus.reviewing else None
        return Badge(label, f"status-{version.status.value}", every=every)
    if scan is None or scan.state is ScanState.queued:
        retrying = scan is not None and scan.attempts > 0
        return Badge("Queued", "status-queued", "retrying" if retrying else "waiting for a worker",
                     0, True, "2s")
    if stalled(scan):
        words = STAGES.get(scan.stage or "", (scan.stage or "scan", 0))[0]
        return Badge("Scan stopped", "status-failed", f"stalled at {words}; operators notified")
    if scan.state is ScanState.failed:
        return Badge("Scanning", "status-scanning", "delayed: operators have been notified",
                     None, True, "2s")
    words = STAGES.get(scan.stage or "", (scan.stage or "starting", 0))[0]
    return Badge("Scanning", "status-scanning", words, scan.progress, True, "2s")


def latest_report_scan(version: AssetVersion) -> Scan | None:
    """The newest completed scan of the version that has a report."""
    done = [s for s in version.scans if s.state is ScanState.done and s.report_key]
    return done[-1] if done else None


def report_download(actor: User, version_id: int) -> tuple[str, bytes]:
    """(file name, xlsx bytes) of the version's latest report; NotFound when none.

    A scan that was appealed gets its report written again (``reports.scan_report``):
    the claims, the reviewer's notes and decision, the false positives accepted since.
    """
    version, scan = _downloadable(actor, version_id)
    appeal = reports.latest_appeal(scan)
    if appeal is not None and scan.summary_key:
        return _file_name(version, "scan-report.xlsx"), reports.scan_report(scan, appeal)
    return _file_name(version, "scan-report.xlsx"), storage.get_bytes(scan.report_key, 64 * 1024**2)


def sbom_download(actor: User, version_id: int) -> tuple[str, bytes]:
    """(file name, CycloneDX JSON bytes) of the version's latest SBOM; NotFound when none."""
    version, scan = _downloadable(actor, version_id)
    if not scan.sbom_key:
        raise NotFound("This scan has no SBOM.")
    return _file_name(version, "sbom.cdx.json"), storage.get_bytes(scan.sbom_key, 256 * 1024**2)


def inventory_download(actor: User, version_id: int) -> tuple[str, object]:
    """(file name, a stream of its bytes) of the inventory of what the version's latest
    scan examined: gzip-compressed JSON lines, one per file. Whoever may see the version
    (its seller, reviewers, operators) may download it; NotFound when there is none.
    The caller closes the stream."""
    version, scan = _downloadable(actor, version_id)
    if not scan.inventory_key:
        raise NotFound("This scan has no inventory.")
    return _file_name(version, "inventory.jsonl.gz"), storage.open_stream(scan.inventory_key)


def _downloadable(actor: User, version_id: int) -> tuple[AssetVersion, Scan]:
    version = access.get_version(actor, version_id)
    scan = latest_report_scan(version)
    if scan is None:
        raise NotFound("This version has no report yet.")
    return version, scan


def _file_name(version: AssetVersion, suffix: str) -> str:
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", version.label).strip("._") or "version"
    return f"{version.asset.name}-{label}-{suffix}"


@dataclass(frozen=True)
class OperatorScan:
    """A scan an operator should look at, with the reason why."""

    scan: Scan
    problem: str  # stalled / failed / retried / stuck / waiting in the outbox


def list_scans_for_operator(*, limit: int = 200, now: datetime | None = None) -> list[OperatorScan]:
    """Scans that failed, were retried, are stuck or wait in the outbox; newest first."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=current_app.config["SCAN_STUCK_AFTER"])
    rows = db.session.scalars(select(Scan).where(or_(
        Scan.state == ScanState.failed, Scan.attempts > 1, Scan.error.is_not(None),
        (Scan.state == ScanState.running) & (Scan.heartbeat_at < cutoff),
        (Scan.state == ScanState.queued) & Scan.enqueued_at.is_(None),
    )).order_by(Scan.id.desc()).limit(limit)).all()
    return [OperatorScan(scan, _problem(scan, cutoff)) for scan in rows]


def _problem(scan: Scan, cutoff: datetime) -> str:
    if stalled(scan):
        return "stalled"
    if scan.state is ScanState.failed:
        return "failed"
    if scan.state is ScanState.running and scan.heartbeat_at and scan.heartbeat_at < cutoff:
        return "stuck"
    if scan.state is ScanState.queued and scan.enqueued_at is None:
        return "waiting in the outbox"
    return "retried"


# --- helpers ------------------------------------------------------------------------------

def _update(scan_id: int, condition, **values) -> bool:
    """One conditional UPDATE of a scan row, committed; True when it matched."""
    result = db.session.execute(
        update(Scan).where(Scan.id == scan_id, condition).values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1
