"""Vulnerability data that stays fresh: imports and syncs of OSV data into snapshots,
Approved versions flagged by what an import added or changed, and re-verification of a
past scan on the snapshot it was decided with.

The snapshots themselves live on disk (:mod:`scanner.osv_store`); the outcome of each
ecosystem's last sync is kept beside them in ``sync.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from portal.extensions import db
from portal.models import AdvisoryFlag, AssetVersion, Scan, ScanState, User, VersionStatus
from portal.services import policy
from portal.services.audit import record_event
from portal.services.errors import Forbidden, NotFound, ValidationError
from scanner import native, osv_store
from scanner.model import Component

SYNC_STATE = "sync.json"
DOWNLOAD_TIMEOUT = 120


def _root() -> Path:
    return Path(current_app.config["OSV_DIR"])


# --- import and sync -------------------------------------------------------------------

def import_osv(paths: list[Path], *, ecosystems: dict[str, Path] | None = None
               ) -> osv_store.ImportResult:
    """Switch to a new snapshot holding ``paths`` (and the ecosystems already in use), then
    flag the Approved versions that what changed matches. Raises ValidationError, with
    nothing changed, for data that cannot be used."""
    try:
        result = osv_store.import_data(_root(), list(paths), keep=current_app.config["OSV_KEEP"],
                                       ecosystems=ecosystems)
    except osv_store.ImportFailed as exc:
        raise ValidationError(str(exc)) from None
    flag_versions(result)
    return result


@dataclass(frozen=True)
class SyncOutcome:
    ecosystem: str
    outcome: str  # updated | not modified | failed
    message: str = ""


def sync_osv() -> list[SyncOutcome]:
    """Fetch ``<OSV_URL>/<Ecosystem>/all.zip`` for each configured ecosystem (conditional
    GET), and import those that changed as one new snapshot. A failed or damaged download
    keeps the snapshot in use and is recorded as failed."""
    cfg = current_app.config
    root = _root()
    state = read_sync_state()
    downloads = root / "downloads"
    shutil.rmtree(downloads, ignore_errors=True)
    fetched: dict[str, tuple[Path, dict]] = {}
    outcomes: dict[str, SyncOutcome] = {}
    for eco in cfg["OSV_ECOSYSTEMS"]:
        url = f"{cfg['OSV_URL'].rstrip('/')}/{eco}/all.zip"
        target = downloads / eco / "all.zip"
        try:
            headers = _download(url, target, state.get(eco, {}))
            if headers is not None:
                osv_store.check_zip(target)  # one broken download must not hold back the rest
        except (OSError, urllib.error.URLError, ValueError) as exc:
            outcomes[eco] = SyncOutcome(eco, "failed", f"{url}: {exc}")
            continue
        if headers is None:
            outcomes[eco] = SyncOutcome(eco, "not modified")
        else:
            fetched[eco] = (target, headers)
    if fetched:
        outcomes.update(_import_fetched(fetched))
    shutil.rmtree(downloads, ignore_errors=True)
    _record_sync(state, outcomes, fetched)
    return [outcomes[eco] for eco in cfg["OSV_ECOSYSTEMS"]]


def _import_fetched(fetched: dict) -> dict[str, SyncOutcome]:
    try:
        result = import_osv([], ecosystems={eco: path for eco, (path, _) in fetched.items()})
    except ValidationError as exc:
        return {eco: SyncOutcome(eco, "failed", exc.message) for eco in fetched}
    return {eco: SyncOutcome(eco, "updated", f"{result.ecosystems[eco].records} records, "
                                             f"snapshot {result.snapshot}")
            for eco in fetched}


def _download(url: str, target: Path, known: dict) -> dict | None:
    """Fetch ``url`` into ``target`` unless unchanged since ``known`` (None on a 304)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("ASSAY_OSV_URL must be an http:// or https:// address")
    request = urllib.request.Request(url, headers={"User-Agent": "assay-osv-sync"})
    if known.get("etag"):
        request.add_header("If-None-Match", known["etag"])
    if known.get("last_modified"):
        request.add_header("If-Modified-Since", known["last_modified"])
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        response = urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return None
        raise
    with response, open(target, "wb") as out:
        expected = response.headers.get("Content-Length")
        written = 0
        while chunk := response.read(1024 * 1024):
            out.write(chunk)
            written += len(chunk)
    if expected is not None and int(expected) != written:
        raise ValueError(f"download ended after {written} of {expected} bytes")
    return {"etag": response.headers.get("ETag") or "",
            "last_modified": response.headers.get("Last-Modified") or ""}


def read_sync_state() -> dict:
    """Ecosystem -> {etag, last_modified, checked_at, outcome, message} of its last sync."""
    try:
        return json.loads((_root() / SYNC_STATE).read_text())
    except (OSError, ValueError):
        return {}


def _record_sync(state: dict, outcomes: dict[str, SyncOutcome], fetched: dict) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for eco, outcome in outcomes.items():
        entry = dict(state.get(eco, {}), checked_at=now, outcome=outcome.outcome,
                     message=outcome.message)
        if outcome.outcome == "updated":  # validators only for data actually switched in
            entry.update(fetched[eco][1], updated_at=now)
        state[eco] = entry
    root = _root()
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{SYNC_STATE}.{os.getpid()}"
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, root / SYNC_STATE)


# --- flags after an import ------------------------------------------------------------

def flag_versions(result: osv_store.ImportResult) -> list[AdvisoryFlag]:
    """Flag every Approved version whose latest scan's stored components match a record
    the import added or changed (matching stored component lists, nothing unpacked)."""
    if not result.changed:
        return []
    from scanner.osv import OsvDatabase

    changed = OsvDatabase(result.changed)
    rules = policy.current_policy()
    flags = []
    versions = db.session.scalars(select(AssetVersion).where(
        AssetVersion.status == VersionStatus.approved).order_by(AssetVersion.id))
    for version in versions:
        scan = _last_done_scan(version)
        if scan is None or not scan.components:
            continue
        findings = changed.match(_components(scan), rules.threshold)
        if findings:
            flag = AdvisoryFlag(version_id=version.id, scan_id=scan.id, snapshot=result.snapshot,
                                advisories=sorted({i for f in findings for i in f.ids}),
                                blocking=any(f.blocking for f in findings))
            db.session.add(flag)
            record_event(None, "version.flagged", version, after={
                "snapshot": result.snapshot, "advisories": flag.advisories})
            flags.append(flag)
    db.session.commit()
    return flags


def _last_done_scan(version: AssetVersion) -> Scan | None:
    return db.session.scalars(select(Scan).where(
        Scan.version_id == version.id, Scan.state == ScanState.done)
        .order_by(Scan.id.desc()).limit(1)).first()


def _components(scan: Scan) -> list[Component]:
    return [Component(c.ecosystem, c.name, c.version, c.purl, c.location)
            for c in scan.components]


def open_flags() -> list[AdvisoryFlag]:
    """Flags of versions still Approved and not scanned since they were flagged, newest
    first, one per version."""
    rows = db.session.scalars(select(AdvisoryFlag).join(AssetVersion).where(
        AssetVersion.status == VersionStatus.approved)
        .order_by(AdvisoryFlag.created_at.desc(), AdvisoryFlag.id.desc()))
    seen, found = set(), []
    for flag in rows:
        if flag.version_id in seen:
            continue
        seen.add(flag.version_id)
        newer = db.session.scalar(select(Scan.id).where(
            Scan.version_id == flag.version_id, Scan.created_at > flag.created_at).limit(1))
        if newer is None:
            found.append(flag)
    return found


# --- re-verification --------------------------------------------------------------------

@dataclass(frozen=True)
class Reverification:
    scan: Scan
    snapshot: str
    holds: bool
    verdict: str  # the verdict the stored components give on the scan's own snapshot
    missing: list[str]  # advisories of stored findings not found again
    new: list[str]  # advisories found now that the scan did not report


def reverify_scan(actor: User, scan_id: int, *, address: str | None = None) -> Reverification:
    """Match a finished scan's stored components again against the snapshot it used (and
    the native-library advisories shipped with Assay), and say whether its verdict still
    holds. Operators only; writes an audit event."""
    if actor is None or not actor.is_operator:
        raise Forbidden("Only operators re-verify scans.")
    scan = db.session.get(Scan, scan_id)
    if scan is None:
        raise NotFound("No such scan.")
    if scan.state is not ScanState.done:
        raise ValidationError("Only a finished scan can be re-verified.")
    snapshot = (scan.engines or {}).get("osv", "")
    folder = osv_store.find_snapshot(_root(), snapshot)
    if folder is None:
        raise ValidationError(f"The vulnerability data this scan used ({snapshot or 'unknown'}) "
                              "is no longer kept (ASSAY_OSV_KEEP).")
    database = osv_store.load(folder)
    if database.snapshot != snapshot:
        raise ValidationError(f"The kept data for {snapshot} reads as {database.snapshot}.")
    components, threshold = _components(scan), scan.threshold or 7.0
    # as the scan matched: the OSV snapshot plus the advisories shipped for native libraries
    found = database.match(components, threshold) + native.match(components, threshold)
    outcome = _compare(scan, found)
    record_event(actor, "scan.reverified", scan, address=address, after={
        "snapshot": snapshot, "holds": outcome.holds, "verdict": outcome.verdict,
        "missing": outcome.missing, "new": outcome.new})
    db.session.commit()
    return outcome


def asset_of_scan(scan_id: int) -> int:
    """The asset a scan belongs to (NotFound for no such scan)."""
    scan = db.session.get(Scan, scan_id)
    if scan is None:
        raise NotFound("No such scan.")
    return scan.version.asset_id


def _compare(scan: Scan, findings) -> Reverification:
    stored = {f.fingerprint: f for f in scan.findings if f.type == "vulnerability"}
    found = {f.id: f for f in findings}
    accepted = {f.fingerprint for f in scan.findings if f.accepted_note}
    blocking_other = any(f.blocking for f in scan.findings if f.type != "vulnerability")
    blocking_vuln = any(
        (stored[fp].blocking if fp in stored else f.blocking) and fp not in accepted
        for fp, f in found.items())
    verdict = "rejected" if blocking_other or blocking_vuln else "approved"
    missing = sorted({i for fp, f in stored.items() if fp not in found for i in f.ids})
    new = sorted({i for fp, f in found.items() if fp not in stored for i in f.ids})
    holds = verdict == scan.verdict and not missing and not new
    return Reverification(scan, (scan.engines or {}).get("osv", ""), holds, verdict, missing, new)


# --- the data page ---------------------------------------------------------------------

@dataclass(frozen=True)
class EcosystemRow:
    name: str
    records: int | None
    modified: str  # the records' own time stamp (UTC), as OSV gives it
    checked_at: datetime | None  # naive UTC, like the database's times
    outcome: str
    message: str


def _utc(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass(frozen=True)
class OsvView:
    snapshot: str  # in use, "" when none
    created: datetime | None
    ecosystems: list[EcosystemRow]
    kept: list[tuple[str, dict]]
    flags: list[AdvisoryFlag]
    sync_configured: bool


def osv_view() -> OsvView:
    """Per ecosystem: records, newest ``modified``, last sync and its outcome; the snapshot
    in use, the kept ones, and the flagged versions."""
    root = _root()
    active = osv_store.active_dir(root) if root.is_dir() else None
    info = osv_store.manifest(active) if active is not None else {}
    sync = read_sync_state()
    ecos = osv_store.ecosystems_of(active) if active is not None else {}
    names = sorted(set(ecos) | set(sync) | set(current_app.config["OSV_ECOSYSTEMS"]))
    rows = [EcosystemRow(n, ecos.get(n, {}).get("records"), ecos.get(n, {}).get("modified", ""),
                         _utc(sync.get(n, {}).get("checked_at", "")),
                         sync.get(n, {}).get("outcome", ""),
                         sync.get(n, {}).get("message", "")) for n in names]
    snapshot = info.get("snapshot", "")
    if active is not None and not snapshot:
        snapshot = "files copied in by hand (no snapshot yet: run flask osv import)"
    return OsvView(snapshot, _utc(info.get("created", "")), rows, osv_store.kept_snapshots(root),
                   open_flags(), bool(current_app.config["OSV_ECOSYSTEMS"]))
