"""What the verdicts rest on: the virus signatures clamd has loaded and the vulnerability
data the workers match against, for the operators' data page and their warning banner.

``clamd`` answers ``VERSION`` with ``ClamAV <engine>/<daily version>/<daily date>`` once
the official databases are loaded, and with the engine alone when it runs on Assay's own
test signatures only: then virus scanning finds little beyond test files, and operators
are told so on every page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from portal.extensions import db
from portal.models import Scan, ScanState
from scanner.engines.clamd import request

#: How long one answer of clamd is trusted before it is asked again (the banner is on every
#: operator page: no page waits on clamd more than once a minute per process).
CACHE_SECONDS = 60.0
NO_OFFICIAL = ("Virus scanning uses Assay's test signatures only: no official ClamAV "
               "database is loaded. Run freshclam (or install clamav-freshclam) and restart "
               "clamd.")

_cache: dict[str, tuple[float, "ClamavStatus"]] = {}


@dataclass(frozen=True)
class ClamavStatus:
    reachable: bool
    answer: str = ""  # clamd's VERSION answer
    engine: str = ""
    daily: str = ""  # the official daily database's version, when loaded
    daily_date: str = ""
    error: str = ""

    @property
    def official(self) -> bool:
        return bool(self.daily)


def parse_version(answer: str) -> ClamavStatus:
    """``ClamAV 1.4.6/27480/Mon Dec  1 09:00:00 2026`` or ``ClamAV 1.4.6``."""
    parts = [p.strip() for p in answer.strip().split("/")]
    engine = parts[0].removeprefix("ClamAV ").strip()
    daily = parts[1] if len(parts) > 1 and parts[1].isdigit() else ""
    date = " ".join(parts[2].split()) if daily and len(parts) > 2 else ""
    return ClamavStatus(True, answer.strip(), engine, daily, date)


def clamav_status(*, fresh: bool = False) -> ClamavStatus:
    """What clamd says it runs with now (cached for :data:`CACHE_SECONDS`)."""
    address = current_app.config.get("CLAMD_ADDRESS") or ""
    if not address:
        return ClamavStatus(False, error="No clamd address is configured (ASSAY_CLAMD).")
    now = time.monotonic()
    cached = _cache.get(address)
    if cached is not None and not fresh and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    try:
        status = parse_version(request(address, "VERSION", timeout=3.0))
    except OSError as exc:
        status = ClamavStatus(False, error=f"clamd at {address} did not answer: {exc}")
    _cache[address] = (now, status)
    return status


def warning() -> str | None:
    """The banner operators see while no official database is loaded, or None."""
    status = clamav_status()
    if not status.reachable:
        return f"Virus scanning cannot run: {status.error}"
    return None if status.official else NO_OFFICIAL


@dataclass(frozen=True)
class DataView:
    clamav: ClamavStatus
    last_scan: Scan | None  # the newest finished scan, with the engines it recorded
    osv_dir: str


def data_view() -> DataView:
    """The operators' data page (the vulnerability data: ``advisories.osv_view``)."""
    last = db.session.scalars(select(Scan).where(Scan.state == ScanState.done)
                              .order_by(Scan.finished_at.desc(), Scan.id.desc()).limit(1)).first()
    return DataView(clamav_status(fresh=True), last, current_app.config["OSV_DIR"])
