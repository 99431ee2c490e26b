"""The false-positive memory: findings a reviewer accepted, remembered per asset.

A later scan of the same asset whose finding has a remembered fingerprint does not
block on it, while the acceptance is in force: operators may revoke one, and the
``ACCEPTANCE_EXPIRY_DAYS`` setting gives new ones an expiry. ``settle`` is the one rule that says which findings an acceptance settles
and which verdict then holds; the worker's report (``effective_verdict``) and the
stored scan (``apply_accepted``) both go through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Mapping

from flask import current_app
from sqlalchemy import or_, select

from portal.extensions import db
from portal.models import (
    AcceptedFalsePositive, Appeal, AppealClaim, Asset, ClaimVerdict, Scan, ScanFinding, User,
)
from portal.services import access, calendar
from portal.services.audit import record_event
from portal.services.errors import Forbidden, NotFound, ValidationError
from portal.timeutil import utcnow

MAX_REASON = 2000


@dataclass(frozen=True)
class Settlement:
    """What the remembered acceptances make of a scan's findings."""

    notes: dict[str, str]  # fingerprint -> "accepted by X on DATE", for the settled findings
    blocking: int  # blocking findings left once the settled ones no longer block
    verdict: str  # the verdict that then holds


def settle(verdict: str, findings: Iterable[tuple[str, bool]],
           accepted: Mapping[str, str]) -> Settlement:
    """Which findings a remembered acceptance settles, and the verdict that then holds.

    ``findings`` are (fingerprint, blocking) pairs; ``accepted`` maps fingerprints to their
    notes (``accepted_notes``). A finding is settled when its fingerprint is accepted; a
    rejected verdict becomes approved when no blocking finding is left unsettled.
    """
    findings = list(findings)
    notes = {fp: accepted[fp] for fp, _ in findings if fp in accepted}
    blocking = sum(1 for fp, blocks in findings if blocks and fp not in notes)
    if verdict == "rejected" and blocking == 0:
        verdict = "approved"
    return Settlement(notes, blocking, verdict)


def effective_verdict(result, accepted: Mapping[str, str]) -> str:
    """The verdict of a scanner result once accepted false positives no longer block."""
    return settle(result.verdict, ((f.id, f.blocking) for f in result.findings),
                  accepted).verdict


def apply_accepted(scan: Scan) -> str:
    """Mark the scan's findings accepted earlier on this asset as non-blocking, with the
    note saying who accepted them and when; returns the verdict that then holds.

    Called by ``complete_scan`` after the findings are stored, before the verdict
    moves the version. A rejected claim is never remembered, so it stays blocking.
    """
    outcome = settle(scan.verdict, ((f.fingerprint, f.blocking) for f in scan.findings),
                     accepted_notes(scan.version.asset_id))
    for finding in scan.findings:
        if finding.fingerprint in outcome.notes:
            finding.accepted_note, finding.blocking = outcome.notes[finding.fingerprint], False
    scan.counts = {**(scan.counts or {}), "blocking": outcome.blocking}
    scan.verdict = outcome.verdict
    return scan.verdict


def accepted_notes(asset_id: int) -> dict[str, str]:
    """Fingerprint -> "accepted by X on DATE" for the asset's accepted false positives."""
    return {row.fingerprint: note_text(row) for row in _remembered(asset_id)}


def accepted_fingerprints(asset_id: int) -> set[str]:
    """The fingerprints whose findings no longer block on this asset."""
    return {row.fingerprint for row in _remembered(asset_id)}


def accepted_for_scan(scan_id: int) -> dict[str, str]:
    """The accepted-false-positive notes that apply to a scan (for its report)."""
    scan = db.session.get(Scan, scan_id)
    if scan is None:
        raise NotFound("No such scan.")
    return accepted_notes(scan.version.asset_id)


def remember_accepted(actor: User, appeal: Appeal, now) -> None:
    """Remember every accepted claim of a decided appeal for later scans of the asset
    (in the caller's transaction)."""
    asset_id = appeal.version.asset_id
    existing = {r.fingerprint: r for r in db.session.scalars(
        select(AcceptedFalsePositive).where(AcceptedFalsePositive.asset_id == asset_id))}
    for claim in appeal.claims:
        if claim.verdict is not ClaimVerdict.accepted:
            continue
        row = existing.get(claim.finding_fingerprint) or AcceptedFalsePositive(
            asset_id=asset_id, fingerprint=claim.finding_fingerprint)
        decider = claim.decided_by or actor
        row.accepted_by_id, row.accepted_by_name = decider.id, decider.name
        row.accepted_at, row.appeal_id, row.note = claim.decided_at or now, appeal.id, claim.note
        row.expires_at = _expiry(row.accepted_at)
        # Accepted again after a revocation or expiry: in force again, from this decision.
        row.revoked_at = row.revoked_by_id = row.revoked_by_name = row.revoked_reason = None
        db.session.add(row)
        if claim.finding is not None:
            claim.finding.accepted_note = note_text(row)


def note_text(row: AcceptedFalsePositive) -> str:
    day = calendar.local_time(row.accepted_at, current_app.config.get("TIMEZONE", "UTC"))
    return f"accepted by {row.accepted_by_name} on {day:%Y-%m-%d}"


def _expiry(accepted_at: datetime) -> datetime | None:
    days = int(current_app.config.get("ACCEPTANCE_EXPIRY_DAYS") or 0)
    return accepted_at + timedelta(days=days) if days > 0 else None


def _remembered(asset_id: int) -> list[AcceptedFalsePositive]:
    """The asset's acceptances in force now: neither revoked nor expired."""
    now = utcnow()
    return list(db.session.scalars(select(AcceptedFalsePositive).where(
        AcceptedFalsePositive.asset_id == asset_id, AcceptedFalsePositive.revoked_at.is_(None),
        or_(AcceptedFalsePositive.expires_at.is_(None), AcceptedFalsePositive.expires_at > now))))


# --- what sellers and operators see ---------------------------------------------------------

@dataclass(frozen=True)
class AcceptanceRow:
    """A remembered acceptance with the finding it was accepted for."""

    acceptance: AcceptedFalsePositive
    finding: ScanFinding | None  # the finding of the claim the reviewer accepted
    state: str  # in force / revoked / expired


def list_acceptances(actor: User, asset_id: int) -> tuple[Asset, list[AcceptanceRow]]:
    """Every remembered acceptance of an asset, newest first (operators only)."""
    _require_operator(actor)
    asset = access.get_asset(actor, asset_id)
    return asset, _rows(asset.id)


def dropped_acceptances(actor: User, asset_id: int) -> list[AcceptanceRow]:
    """The asset's acceptances that no longer settle findings (revoked or expired), for its
    owner and staff: a later scan may block on them again, and they may be appealed again."""
    asset = access.get_asset(actor, asset_id)
    return [row for row in _rows(asset.id) if row.state != "in force"]


def revoke_acceptance(actor: User, acceptance_id: int, reason: str, *,
                      address: str | None = None) -> AcceptedFalsePositive:
    """An operator revokes a remembered acceptance: later scans of the asset block on the
    finding again (scans already done keep their verdict). The reason is shown to the
    seller."""
    _require_operator(actor)
    row = db.session.get(AcceptedFalsePositive, acceptance_id)
    if row is None:
        raise NotFound("No such acceptance.")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Give the reason for revoking: the seller sees it.", "reason")
    if len(reason) > MAX_REASON:
        raise ValidationError(f"Keep the reason under {MAX_REASON} characters.", "reason")
    if row.revoked_at is not None:
        raise ValidationError("This acceptance was already revoked.")
    row.revoked_at, row.revoked_by_id, row.revoked_by_name = utcnow(), actor.id, actor.name
    row.revoked_reason = reason
    record_event(actor, "acceptance.revoke", row, before={"revoked_at": None},
                 after={"asset": row.asset_id, "fingerprint": row.fingerprint,
                        "appeal": row.appeal_id, "reason": reason}, address=address)
    db.session.commit()
    return row


def acceptance_asset_id(acceptance_id: int) -> int:
    """The asset a remembered acceptance belongs to; NotFound when there is none."""
    row = db.session.get(AcceptedFalsePositive, acceptance_id)
    if row is None:
        raise NotFound("No such acceptance.")
    return row.asset_id


def _rows(asset_id: int) -> list[AcceptanceRow]:
    now = utcnow()
    rows = db.session.scalars(select(AcceptedFalsePositive)
                              .where(AcceptedFalsePositive.asset_id == asset_id)
                              .order_by(AcceptedFalsePositive.accepted_at.desc(),
                                        AcceptedFalsePositive.id.desc())).all()
    return [AcceptanceRow(row, _finding(row), row.state(now)) for row in rows]


def _finding(row: AcceptedFalsePositive) -> ScanFinding | None:
    claim = db.session.scalars(select(AppealClaim).where(
        AppealClaim.appeal_id == row.appeal_id,
        AppealClaim.finding_fingerprint == row.fingerprint)).first()
    return claim.finding if claim is not None else None


def _require_operator(actor: User) -> None:
    if actor is None or not actor.is_operator:
        raise Forbidden("Only operators manage remembered acceptances.")
