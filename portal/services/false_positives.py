"""The false-positive memory: findings a reviewer accepted, remembered per asset.

A later scan of the same asset whose finding has a remembered fingerprint does not
block on it. ``settle`` is the one rule that says which findings an acceptance settles
and which verdict then holds; the worker's report (``effective_verdict``) and the
stored scan (``apply_accepted``) both go through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from flask import current_app
from sqlalchemy import select

from portal.extensions import db
from portal.models import AcceptedFalsePositive, Appeal, ClaimVerdict, Scan, User
from portal.services import calendar
from portal.services.errors import NotFound


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
        db.session.add(row)
        if claim.finding is not None:
            claim.finding.accepted_note = note_text(row)


def note_text(row: AcceptedFalsePositive) -> str:
    day = calendar.local_time(row.accepted_at, current_app.config.get("TIMEZONE", "UTC"))
    return f"accepted by {row.accepted_by_name} on {day:%Y-%m-%d}"


def _remembered(asset_id: int) -> list[AcceptedFalsePositive]:
    return list(db.session.scalars(select(AcceptedFalsePositive)
                                   .where(AcceptedFalsePositive.asset_id == asset_id)))
