"""Appeals: a rejected seller disputes findings; reviewers decide within the SLA.

A seller appeals the latest scan of a rejected version, either with the filled-in
security scan report (columns F–H, verified by ``scanner.report.read_appeal``) or
with the same claims typed into the web form. Nothing from a refused submission is
kept: the file is checked in memory first, and objects stored before a later
refusal are removed again.

A reviewer decides each disputed finding, then the appeal: it is accepted only
when every blocking finding of the scan has an accepted claim (or was accepted
before). Accepted false positives are remembered per asset, so a later scan that
yields the same fingerprint does not block again (``apply_accepted``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

from flask import current_app
from sqlalchemy import select

from portal import storage
from portal.extensions import db
from portal.models import (
    AcceptedFalsePositive, Appeal, AppealClaim, AppealDecision, AppealEvidence, AssetVersion,
    ClaimVerdict, Scan, ScanFinding, ScanState, User,
)
from portal.services import calendar, sla, state
from portal.services.audit import record_event
from portal.services.errors import Forbidden, NotFound, ValidationError
from portal.timeutil import utcnow
from scanner.report import MAX_TEXT, REASONS, ReportError, read_appeal

#: The most a filled-in report may be (the reader refuses more with its own message).
MAX_REPORT_BYTES = 10 * 1024 * 1024
MAX_EVIDENCE_FILES = 10
MAX_EVIDENCE_BYTES = 50 * 1024 * 1024
MAX_NOTE = 4000
_OTHER = REASONS[-1]
QUEUE_FILTERS = ("all", "overdue", "mine", "unassigned")
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class ClaimInput:
    """One finding's F/G/H as the web form sends it."""

    finding_id: str  # the finding's fingerprint (column A)
    answer: str  # "Yes", "No" or ""
    reason: str = ""
    evidence: str = ""


def report_id(scan: Scan) -> str:
    """The id the worker binds a scan's report to."""
    return f"scan-{scan.id}"


# --- the seller ----------------------------------------------------------------------

@dataclass(frozen=True)
class FindingRow:
    finding: ScanFinding
    claim: AppealClaim | None
    accepted_before: bool  # remembered from an earlier appeal of this asset

    @property
    def prominent(self) -> bool:
        """Disputed, or blocking and not yet accepted: what the appeal turns on."""
        settled = self.accepted_before or bool(self.finding.accepted_note)
        return self.claim is not None or (self.finding.blocking and not settled)


@dataclass(frozen=True)
class SellerView:
    version: AssetVersion
    scan: Scan | None
    appeal: Appeal | None  # the open appeal, else the newest on this scan
    rows: list[FindingRow]
    refusal: str | None  # why a new appeal cannot be filed now
    due: sla.Due | None
    reasons: tuple[str, ...] = REASONS


def seller_view(actor: User, version_id: int) -> SellerView:
    """The appeal page of a version for its owner: findings, the current appeal, its due
    date, or why no appeal can be filed."""
    version = _owned_version(actor, version_id)
    scan = _latest_done_scan(version)
    appeal = _current_appeal(version, scan)
    refusal = _appeal_refusal(version, scan)
    due = sla.due_status(appeal.due_at) if appeal is not None and appeal.is_open else None
    return SellerView(version, scan, appeal, _rows(scan, appeal), refusal, due)


def submit_appeal(actor: User, version_id: int, *, report_stream: BinaryIO | None,
                  report_name: str = "report.xlsx",
                  evidence_files: Iterable[tuple[str, BinaryIO]] = (),
                  address: str | None = None) -> Appeal:
    """Appeal with the filled-in report of the version's latest scan.

    The file must be that scan's report, unchanged in A–E, with at least one Yes
    and a reason for each Yes; otherwise ValidationError (field ``report``) with
    the reader's message naming the row and column, and nothing is stored.
    """
    version, scan = _appealable(actor, version_id)
    data = _read_report(report_stream)
    try:
        parsed = read_appeal(data, secret=current_app.config["SECRET_KEY"],
                             report_id=report_id(scan), max_bytes=MAX_REPORT_BYTES)
    except ReportError as exc:
        raise ValidationError(str(exc), "report") from None
    claims = [_claim_row(scan, c.finding_id, c.false_positive, c.reason, c.evidence)
              for c in _first_per_finding(parsed.claims)]
    proof = (data, _clean_name(report_name) or "report.xlsx")
    return _file(actor, version, scan, claims, evidence_files, proof, address)


def submit_claims_form(actor: User, version_id: int, claims: list[ClaimInput], *,
                       evidence_files: Iterable[tuple[str, BinaryIO]] = (),
                       address: str | None = None) -> Appeal:
    """Appeal with claims typed into the findings table: the same checks and the same
    stored claims as a filled-in report."""
    version, scan = _appealable(actor, version_id)
    rows = [_form_claim(scan, c) for c in claims]
    rows = [r for r in rows if r is not None]
    if not any(r.false_positive for r in rows):
        raise ValidationError("Mark at least one finding as a false positive (Yes) and give "
                              "a reason.", "claims")
    return _file(actor, version, scan, rows, evidence_files, None, address)


def withdraw_appeal(actor: User, appeal_id: int, *, address: str | None = None) -> Appeal:
    """The seller takes back an open appeal; the version is rejected again."""
    appeal = get_appeal(actor, appeal_id)
    if appeal.version.asset.owner_id != actor.id:
        raise Forbidden("Only the seller who appealed can withdraw the appeal.")
    if not appeal.is_open:
        raise ValidationError("This appeal was already decided or withdrawn.")
    appeal.decision, appeal.decided_at = AppealDecision.withdrawn, utcnow()
    state.move(appeal.version, "withdraw", actor=actor, address=address)
    record_event(actor, "appeal.withdraw", appeal, before={"decision": None},
                 after={"decision": "withdrawn"}, address=address)
    db.session.commit()
    return appeal


def get_appeal(actor: User, appeal_id: int) -> Appeal:
    """The appeal for its seller or any reviewer; NotFound for anyone else."""
    appeal = db.session.get(Appeal, appeal_id)
    if appeal is None or actor is None:
        raise NotFound("No such appeal.")
    if not actor.is_reviewer and appeal.version.asset.owner_id != actor.id:
        raise NotFound("No such appeal.")
    return appeal


def evidence_download(actor: User, evidence_id: int) -> tuple[str, storage._Stream]:
    """(file name, open stream) of an evidence file, for its seller or a reviewer."""
    evidence = db.session.get(AppealEvidence, evidence_id)
    if evidence is None:
        raise NotFound("No such file.")
    get_appeal(actor, evidence.appeal_id)
    return evidence.filename, storage.open_stream(evidence.key)


def proof_download(actor: User, appeal_id: int) -> tuple[str, bytes]:
    """(file name, bytes) of the filled-in report an appeal was filed with."""
    appeal = get_appeal(actor, appeal_id)
    if not appeal.proof_key:
        raise NotFound("This appeal was filed with the web form, not a report file.")
    return appeal.proof_name or "report.xlsx", storage.get_bytes(appeal.proof_key,
                                                                 MAX_REPORT_BYTES + 1)


def _owned_version(actor: User, version_id: int) -> AssetVersion:
    """Only the owner appeals: anyone else gets NotFound, as for a missing version."""
    version = db.session.get(AssetVersion, version_id)
    if version is None or actor is None or version.asset.owner_id != actor.id:
        raise NotFound("No such version.")
    return version


def _latest_done_scan(version: AssetVersion) -> Scan | None:
    scan = version.latest_scan
    return scan if scan is not None and scan.state is ScanState.done else None


def _current_appeal(version: AssetVersion, scan: Scan | None) -> Appeal | None:
    appeals = [a for a in version.appeals if scan is not None and a.scan_id == scan.id]
    open_ = [a for a in appeals if a.is_open]
    return (open_ or appeals or [None])[-1]


def _appeal_refusal(version: AssetVersion, scan: Scan | None) -> str | None:
    reason = state.refusal(version, "appeal")
    if reason is not None:
        return reason
    if scan is None or not scan.report_key:
        return "The latest scan of this version has no report to appeal."
    return None


def _appealable(actor: User, version_id: int) -> tuple[AssetVersion, Scan]:
    version = _owned_version(actor, version_id)
    scan = _latest_done_scan(version)
    reason = _appeal_refusal(version, scan)
    if reason is not None:
        raise ValidationError(reason)
    return version, scan


def _first_per_finding(claims):
    seen: set[str] = set()
    for claim in claims:
        if claim.finding_id not in seen:
            seen.add(claim.finding_id)
            yield claim


def _read_report(stream: BinaryIO | None) -> bytes:
    data = stream.read(MAX_REPORT_BYTES + 1) if stream is not None else b""
    if not data:
        raise ValidationError("Choose the filled-in security scan report (.xlsx) to upload.",
                              "report")
    if len(data) > MAX_REPORT_BYTES:
        raise ValidationError(f"The file is more than {MAX_REPORT_BYTES / 2**20:.1f} MB, the most "
                              "a report may be; upload the report as downloaded.", "report")
    return data


def _claim_row(scan: Scan, fingerprint: str, false_positive: bool, reason: str,
               evidence: str) -> AppealClaim:
    finding = next((f for f in scan.findings if f.fingerprint == fingerprint), None)
    if finding is None:
        raise ValidationError("The claims name a finding that is not in this version's latest "
                              "scan; download the report again.", "report")
    return AppealClaim(finding_fingerprint=fingerprint, finding=finding,
                       false_positive=false_positive, reason=reason, evidence=evidence)


def _form_claim(scan: Scan, claim: ClaimInput) -> AppealClaim | None:
    """Check one row of the form the way the report reader checks a row of the sheet."""
    answer, reason = claim.answer.strip().casefold(), _canonical_reason(claim.reason)
    evidence = (claim.evidence or "").strip()
    if not (answer or reason or evidence):
        return None
    row = _claim_row(scan, claim.finding_id, answer in ("yes", "y"), reason, evidence)
    name = _finding_label(row.finding)
    if answer not in ("yes", "y", "no", "n"):
        raise ValidationError(f"Finding {name}: choose Yes or No under “False positive?”.",
                              "claims")
    if max(len(reason), len(evidence)) > MAX_TEXT:
        raise ValidationError(f"Finding {name}: keep the reason and evidence under {MAX_TEXT} "
                              "characters each and attach longer evidence as a file.", "claims")
    if row.false_positive and not reason:
        raise ValidationError(f"Finding {name}: give a reason for each finding marked Yes.",
                              "claims")
    if row.false_positive and reason == _OTHER and not evidence:
        raise ValidationError(f"Finding {name}: explain the reason under “Evidence / remarks”, "
                              f"since the reason is “{_OTHER}”.", "claims")
    return row


def _canonical_reason(reason: str) -> str:
    """A reason from the list in its listed spelling; free text as typed (trimmed)."""
    text = (reason or "").strip()
    folded = re.sub(r"\s+", " ", text).casefold()
    return next((known for known in REASONS if known.casefold() == folded), text)


def _finding_label(finding: ScanFinding) -> str:
    ident = ", ".join(finding.ids) or finding.signature or finding.type
    if finding.component_name:
        return f"{ident} in {finding.component_name} {finding.component_version or ''}".strip()
    return ident


def _file(actor: User, version: AssetVersion, scan: Scan, claims: list[AppealClaim],
          evidence_files, proof: tuple[bytes, str] | None, address: str | None) -> Appeal:
    """Store the files, then the appeal and its claims; on any refusal nothing stays.

    The files go to storage before any row is written, so no database transaction
    is held while they stream (SQLite would lock the whole database meanwhile).
    """
    uploads = _evidence_uploads(evidence_files)
    prefix = storage.appeal_prefix(actor.id, version.asset_id, version.id,
                                   storage.new_upload_id())
    db.session.commit()
    stored: list[str] = []
    try:
        evidence = []
        for number, (name, stream) in enumerate(uploads, start=1):
            stored.append(f"{prefix}evidence/{number}")
            evidence.append(_store_evidence(stored[-1], name, stream))
        if proof is not None:
            stored.append(prefix + "report.xlsx")
            storage.put_bytes(stored[-1], proof[0], content_type=_XLSX)
        now = utcnow()
        appeal = Appeal(version=version, scan=scan, seller_id=actor.id, submitted_at=now,
                        due_at=sla.compute_due(now), claims=claims, evidence=evidence,
                        proof_key=prefix + "report.xlsx" if proof else None,
                        proof_name=proof[1] if proof else None, comment="")
        db.session.add(appeal)
        db.session.refresh(version, with_for_update=True)  # two submissions: one wins
        state.move(version, "appeal", actor=actor, address=address)
        record_event(actor, "appeal.submit", appeal, after={
            "version": version.id, "scan": scan.id, "claims": len(claims),
            "disputed": sum(c.false_positive for c in claims), "evidence": len(uploads),
            "via": "report" if proof else "form", "due_at": appeal.due_at.isoformat()},
            address=address)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        _remove(stored)
        raise
    return appeal


def _evidence_uploads(files) -> list[tuple[str, BinaryIO]]:
    uploads = [(_clean_name(name), stream) for name, stream in files if (name or "").strip()]
    if len(uploads) > MAX_EVIDENCE_FILES:
        raise ValidationError(f"Attach at most {MAX_EVIDENCE_FILES} evidence files.", "evidence")
    for name, _ in uploads:
        if not name:
            raise ValidationError("An evidence file has no usable name; rename it and try "
                                  "again.", "evidence")
    return uploads


def _store_evidence(key: str, name: str, stream: BinaryIO) -> AppealEvidence:
    try:
        size, sha256 = storage.put_stream(key, stream, max_bytes=MAX_EVIDENCE_BYTES)
    except storage.TooLarge:
        raise ValidationError(f"The evidence file {name} is larger than "
                              f"{MAX_EVIDENCE_BYTES // 2**20} MiB.", "evidence") from None
    if size == 0:
        raise ValidationError(f"The evidence file {name} is empty.", "evidence")
    return AppealEvidence(key=key, filename=name, size=size, sha256=sha256)


def _clean_name(name: str | None) -> str:
    """A file name to show and offer for download: no folders, no control characters."""
    base = Path((name or "").replace("\\", "/")).name
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    return base[-200:]


def _remove(keys: list[str]) -> None:
    for key in keys:
        try:
            storage.delete(key)
        except Exception:  # noqa: BLE001 - the orphan sweeper removes what is left
            current_app.logger.warning("could not delete %s now; the sweeper will", key)


# --- the reviewers ------------------------------------------------------------------

@dataclass(frozen=True)
class QueueRow:
    appeal: Appeal
    due: sla.Due
    own: bool  # the reviewer owns the asset: they may look, never decide
    disputed: int
    decided: int


def reviewer_queue(actor: User, *, filter: str = "all", now=None) -> list[QueueRow]:
    """Open appeals by due time (soonest first), with overdue and due-today flags.

    ``filter``: ``all``, ``overdue``, ``mine`` (assigned to the actor) or ``unassigned``.
    """
    _require_reviewer(actor)
    if filter not in QUEUE_FILTERS:
        raise ValidationError(f"Unknown filter {filter!r}.", "filter")
    stmt = select(Appeal).where(Appeal.decision.is_(None))
    if filter == "overdue":
        stmt = stmt.where(Appeal.due_at < (now or utcnow()))
    elif filter == "mine":
        stmt = stmt.where(Appeal.reviewer_id == actor.id)
    elif filter == "unassigned":
        stmt = stmt.where(Appeal.reviewer_id.is_(None))
    overrides = sla.calendar_overrides()
    return [
        QueueRow(a, sla.due_status(a.due_at, now=now, overrides=overrides),
                 a.version.asset.owner_id == actor.id, len(a.disputed),
                 sum(c.verdict is not None for c in a.disputed))
        for a in db.session.scalars(stmt.order_by(Appeal.due_at, Appeal.id))
    ]


@dataclass(frozen=True)
class Counts:
    open: int
    overdue: int
    mine: int
    unread: int


def queue_counts(actor: User, now=None) -> Counts:
    """The numbers the navigation shows a reviewer."""
    _require_reviewer(actor)
    now = now or utcnow()
    rows = db.session.execute(select(Appeal.due_at, Appeal.reviewer_id)
                              .where(Appeal.decision.is_(None))).all()
    return Counts(len(rows), sum(due < now for due, _ in rows),
                  sum(rid == actor.id for _, rid in rows), sla.unread_count(actor))


def claim_appeal(actor: User, appeal_id: int, *, address: str | None = None) -> Appeal:
    """Assign an open appeal to the actor. Reviewers take unassigned ones; operators may
    take one over."""
    appeal = _reviewable(actor, appeal_id)
    if appeal.reviewer_id == actor.id:
        return appeal
    if appeal.reviewer_id is not None and not actor.is_operator:
        raise ValidationError(f"{appeal.reviewer.name} already reviews this appeal.")
    before = {"reviewer": appeal.reviewer_id}
    appeal.reviewer_id, appeal.assigned_at = actor.id, utcnow()
    record_event(actor, "appeal.claim", appeal, before=before, after={"reviewer": actor.id},
                 address=address)
    db.session.commit()
    return appeal


@dataclass(frozen=True)
class ReviewView:
    appeal: Appeal
    rows: list[FindingRow]
    due: sla.Due | None
    own: bool
    undecided: int
    unsettled: list[ScanFinding]  # blocking findings without an accepted claim (yet)

    @property
    def outcome(self) -> str:
        """What deciding now gives: accepted (→ Approved) or denied (→ Rejected)."""
        return "denied" if self.unsettled else "accepted"

    @property
    def can_decide(self) -> bool:
        return self.appeal.is_open and not self.own and self.undecided == 0


def review_view(actor: User, appeal_id: int) -> ReviewView:
    """The appeal page for reviewers: every finding with the seller's claim next to it."""
    _require_reviewer(actor)
    appeal = get_appeal(actor, appeal_id)
    due = sla.due_status(appeal.due_at) if appeal.is_open else None
    return ReviewView(appeal, _rows(appeal.scan, appeal), due,
                      appeal.version.asset.owner_id == actor.id,
                      sum(c.verdict is None for c in appeal.disputed), _unsettled(appeal))


def decide_claim(actor: User, claim_id: int, verdict: str, note: str = "", *,
                 address: str | None = None) -> AppealClaim:
    """Accept or reject one disputed finding. A rejection needs a note for the seller."""
    claim = db.session.get(AppealClaim, claim_id)
    if claim is None:
        raise NotFound("No such claim.")
    appeal = _reviewable(actor, claim.appeal_id)
    verdict, note = _verdict(verdict), (note or "").strip()
    if not claim.false_positive:
        raise ValidationError("The seller did not dispute this finding.")
    if len(note) > MAX_NOTE:
        raise ValidationError(f"Keep the note under {MAX_NOTE} characters.", "note")
    if verdict is ClaimVerdict.rejected and not note:
        raise ValidationError("Say why the claim is rejected: the seller sees this note.", "note")
    before = {"verdict": claim.verdict.value if claim.verdict else None, "note": claim.note}
    claim.verdict, claim.note = verdict, note
    claim.decided_by_id, claim.decided_at = actor.id, utcnow()
    if appeal.reviewer_id is None:
        appeal.reviewer_id, appeal.assigned_at = actor.id, claim.decided_at
    record_event(actor, "appeal.claim_decision", claim, before=before,
                 after={"verdict": verdict.value, "note": note, "appeal": appeal.id,
                        "finding": claim.finding_fingerprint}, address=address)
    db.session.commit()
    return claim


def decide_appeal(actor: User, appeal_id: int, comment: str = "", *,
                  address: str | None = None) -> Appeal:
    """Close the appeal once every disputed finding is decided.

    Accepted (→ Approved) only when every blocking finding of the scan has an accepted
    claim or was accepted before; otherwise denied (→ Rejected) and the seller sees the
    notes. Accepted claims are remembered for later scans of the asset either way.
    """
    appeal = _reviewable(actor, appeal_id)
    comment = (comment or "").strip()
    if len(comment) > MAX_NOTE:
        raise ValidationError(f"Keep the comment under {MAX_NOTE} characters.", "comment")
    if any(c.verdict is None for c in appeal.disputed):
        raise ValidationError("Accept or reject every disputed finding first.")
    decision = AppealDecision.denied if _unsettled(appeal) else AppealDecision.accepted
    now = utcnow()
    appeal.decision, appeal.decided_at, appeal.comment = decision, now, comment
    appeal.reviewer_id = actor.id
    _remember_accepted(actor, appeal, now)
    state.move(appeal.version, "accept" if decision is AppealDecision.accepted else "deny",
               actor=actor, address=address)
    record_event(actor, "appeal.decide", appeal, before={"decision": None},
                 after={"decision": decision.value, "comment": comment,
                        "accepted": sum(c.verdict is ClaimVerdict.accepted for c in appeal.claims),
                        "rejected": sum(c.verdict is ClaimVerdict.rejected for c in appeal.claims)},
                 address=address)
    db.session.commit()
    return appeal


def _reviewable(actor: User, appeal_id: int) -> Appeal:
    """An open appeal the actor may work on: a reviewer, never on their own asset."""
    _require_reviewer(actor)
    appeal = get_appeal(actor, appeal_id)
    if appeal.version.asset.owner_id == actor.id:
        raise Forbidden("You cannot review an appeal on your own asset.")
    if not appeal.is_open:
        raise ValidationError("This appeal is already closed.")
    return appeal


def _require_reviewer(actor: User) -> None:
    # Sellers must not learn that reviewer pages exist: the same answer as a missing page.
    if actor is None or not actor.is_reviewer:
        raise NotFound()


def _verdict(verdict: str) -> ClaimVerdict:
    try:
        return ClaimVerdict(verdict)
    except ValueError:
        raise ValidationError("Choose accept or reject.", "verdict") from None


def _rows(scan: Scan | None, appeal: Appeal | None) -> list[FindingRow]:
    if scan is None:
        return []
    claims = {c.finding_fingerprint: c for c in (appeal.claims if appeal else [])}
    before = _accepted_fingerprints(scan.version.asset_id)
    return [FindingRow(f, claims.get(f.fingerprint), f.fingerprint in before or
                       bool(f.accepted_note)) for f in scan.findings]


def _unsettled(appeal: Appeal) -> list[ScanFinding]:
    accepted = {c.finding_fingerprint for c in appeal.claims if c.verdict is ClaimVerdict.accepted}
    accepted |= _accepted_fingerprints(appeal.version.asset_id)
    return [f for f in appeal.scan.findings
            if f.blocking and not f.accepted_note and f.fingerprint not in accepted]


# --- remembering accepted false positives -----------------------------------------------

def _remember_accepted(actor: User, appeal: Appeal, now) -> None:
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
            claim.finding.accepted_note = _note_text(row)


def _accepted_fingerprints(asset_id: int) -> set[str]:
    return set(db.session.scalars(select(AcceptedFalsePositive.fingerprint)
                                  .where(AcceptedFalsePositive.asset_id == asset_id)))


def _note_text(row: AcceptedFalsePositive) -> str:
    day = calendar.local_time(row.accepted_at, current_app.config.get("TIMEZONE", "UTC"))
    return f"accepted by {row.accepted_by_name} on {day:%Y-%m-%d}"


def accepted_notes(asset_id: int) -> dict[str, str]:
    """Fingerprint -> "accepted by X on DATE" for the asset's accepted false positives."""
    rows = db.session.scalars(select(AcceptedFalsePositive)
                              .where(AcceptedFalsePositive.asset_id == asset_id))
    return {row.fingerprint: _note_text(row) for row in rows}


def accepted_for_scan(scan_id: int) -> dict[str, str]:
    """The accepted-false-positive notes that apply to a scan (for its report)."""
    scan = db.session.get(Scan, scan_id)
    if scan is None:
        raise NotFound("No such scan.")
    return accepted_notes(scan.version.asset_id)


def effective_verdict(result, accepted: dict[str, str]) -> str:
    """The verdict of a scanner result once accepted false positives no longer block."""
    if result.verdict == "rejected" and not any(
            f.blocking and f.id not in accepted for f in result.findings):
        return "approved"
    return result.verdict


def apply_accepted(scan: Scan) -> str:
    """Mark the scan's findings accepted earlier on this asset as non-blocking, with the
    note saying who accepted them and when; returns the verdict that then holds.

    Called by ``complete_scan`` after the findings are stored, before the verdict
    moves the version. A rejected claim is never remembered, so it stays blocking.
    """
    notes = accepted_notes(scan.version.asset_id)
    for finding in scan.findings:
        if finding.fingerprint in notes:
            finding.accepted_note, finding.blocking = notes[finding.fingerprint], False
    blocking = sum(f.blocking for f in scan.findings)
    scan.counts = {**(scan.counts or {}), "blocking": blocking}
    if scan.verdict == "rejected" and blocking == 0:
        scan.verdict = "approved"
    return scan.verdict
