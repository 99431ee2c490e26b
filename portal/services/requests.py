"""A seller's requests: every scan of their packages and every appeal, newest first.

My Assets' Requests tab. Scans and appeals are two tables; each is filtered and ordered
in SQL, and one page of the merged list is taken from the newest rows of both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from portal.extensions import db
from portal.models import (
    Appeal, AppealDecision, Asset, AssetVersion, Scan, ScanState, User,
)
from portal.services.assets import Page

#: Filter value -> label; "open" is every request still waiting for an answer.
STATUSES = {
    "open": "Open (queued, scanning or reviewing)",
    "queued": "Scan queued",
    "scanning": "Scanning",
    "approved": "Scan approved",
    "rejected": "Scan rejected",
    "failed": "Scan failed",
    "reviewing": "Appeal reviewing",
    "accepted": "Appeal accepted",
    "denied": "Appeal rejected",
    "withdrawn": "Appeal withdrawn",
}
_SCAN_STATES = {"queued": ScanState.queued, "scanning": ScanState.running,
                "failed": ScanState.failed}
_DECISIONS = {"accepted": AppealDecision.accepted, "denied": AppealDecision.denied,
              "withdrawn": AppealDecision.withdrawn}


@dataclass(frozen=True)
class Request:
    """One row of the Requests tab: a scan request or an appeal."""

    kind: str  # "scan", "rescan" (an operator's re-scan) or "appeal"
    number: int  # the scan's or the appeal's id
    version: AssetVersion
    status: str  # a key of STATUSES other than "open"
    submitted_at: datetime
    finished_at: datetime | None  # scan finished, appeal decided or withdrawn
    scan: Scan | None = None
    appeal: Appeal | None = None
    due_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.status in ("queued", "scanning", "reviewing")


def list_requests(actor: User, *, status: str = "", page: int = 1,
                  per_page: int = 20) -> Page:
    """The actor's own scan requests and appeals, newest first, optionally of one status
    (a key of ``STATUSES``; anything else lists them all)."""
    status = status if status in STATUSES else ""
    per_page = min(max(int(per_page or 20), 1), 100)
    scans, appeals = _scan_query(actor, status), _appeal_query(actor, status)
    total = sum(db.session.scalar(select(func.count()).select_from(q.subquery()))
                for q in (scans, appeals) if q is not None)
    pages = max(math.ceil(total / per_page), 1)
    page = min(max(int(page or 1), 1), pages)
    newest = page * per_page  # the page's rows are among the newest this many of each
    rows = []
    if scans is not None:
        rows += [_scan_row(s) for s in db.session.scalars(
            scans.options(selectinload(Scan.version).selectinload(AssetVersion.asset))
            .order_by(Scan.created_at.desc(), Scan.id.desc()).limit(newest))]
    if appeals is not None:
        rows += [_appeal_row(a) for a in db.session.scalars(
            appeals.options(selectinload(Appeal.version).selectinload(AssetVersion.asset))
            .order_by(Appeal.submitted_at.desc(), Appeal.id.desc()).limit(newest))]
    rows.sort(key=lambda r: (r.submitted_at, r.kind == "appeal", r.number), reverse=True)
    return Page(rows[(page - 1) * per_page:newest], total, page, pages, per_page)


def _own_versions(actor: User):
    return (select(AssetVersion.id).join(Asset, Asset.id == AssetVersion.asset_id)
            .where(Asset.owner_id == actor.id))


def _scan_query(actor: User, status: str):
    if status in ("reviewing", *_DECISIONS):
        return None
    stmt = select(Scan).where(Scan.version_id.in_(_own_versions(actor)))
    if status == "open":
        return stmt.where(Scan.state.in_((ScanState.queued, ScanState.running)))
    if status in _SCAN_STATES:
        return stmt.where(Scan.state == _SCAN_STATES[status])
    if status in ("approved", "rejected"):
        return stmt.where(Scan.state == ScanState.done, Scan.verdict == status)
    return stmt


def _appeal_query(actor: User, status: str):
    if status in (*_SCAN_STATES, "approved", "rejected"):
        return None
    stmt = select(Appeal).where(Appeal.version_id.in_(_own_versions(actor)))
    if status in ("open", "reviewing"):
        return stmt.where(Appeal.decision.is_(None))
    if status in _DECISIONS:
        return stmt.where(Appeal.decision == _DECISIONS[status])
    return stmt


def _scan_row(scan: Scan) -> Request:
    if scan.state is ScanState.done:
        status = scan.verdict if scan.verdict in ("approved", "rejected") else "failed"
    else:
        status = {ScanState.queued: "queued", ScanState.running: "scanning"}.get(
            scan.state, "failed")
    return Request("rescan" if scan.rescan else "scan", scan.id, scan.version, status,
                   scan.created_at, scan.finished_at if scan.finished else None, scan=scan)


def _appeal_row(appeal: Appeal) -> Request:
    status = appeal.decision.value if appeal.decision else "reviewing"
    return Request("appeal", appeal.id, appeal.version, status, appeal.submitted_at,
                   appeal.decided_at, appeal=appeal,
                   due_at=appeal.due_at if appeal.is_open else None)
