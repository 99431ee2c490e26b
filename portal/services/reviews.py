"""Appeals, the reviewer's side: the queue, claiming, and deciding claims and appeals.

A reviewer decides each disputed finding, then the appeal: it is accepted only when
every blocking finding of the scan has an accepted claim (or was accepted before on
this asset). Accepted claims are remembered by ``portal.services.false_positives``, so a
later scan that yields the same fingerprint does not block again. Only reviewers and
operators work here (anyone else: Forbidden), never on an asset they own.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from portal.extensions import db
from portal.models import Appeal, AppealClaim, AppealDecision, ClaimVerdict, ScanFinding, User
from portal.services import false_positives, sla, state
from portal.services.appeals import FindingRow, finding_rows, get_appeal
from portal.services.audit import record_event
from portal.services.errors import Forbidden, NotFound, ValidationError
from portal.timeutil import utcnow

MAX_NOTE = 4000
QUEUE_FILTERS = ("all", "overdue", "mine", "unassigned")


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

    def claim_row(self, claim_id: int) -> FindingRow:
        """The row of one of this appeal's claims; NotFound for any other claim."""
        row = next((r for r in self.rows if r.claim is not None and r.claim.id == claim_id),
                   None)
        if row is None:
            raise NotFound("No such claim on this appeal.")
        return row


def review_view(actor: User, appeal_id: int) -> ReviewView:
    """The appeal page for reviewers: every finding with the seller's claim next to it."""
    _require_reviewer(actor)
    appeal = get_appeal(actor, appeal_id)
    due = sla.due_status(appeal.due_at) if appeal.is_open else None
    return ReviewView(appeal, finding_rows(appeal.scan, appeal), due,
                      appeal.version.asset.owner_id == actor.id,
                      sum(c.verdict is None for c in appeal.disputed), _unsettled(appeal))


def decide_claim(actor: User, appeal_id: int, claim_id: int, verdict: str, note: str = "", *,
                 address: str | None = None) -> AppealClaim:
    """Accept or reject one disputed finding of the appeal. A rejection needs a note for
    the seller. A claim of another appeal is NotFound, as for a missing one."""
    appeal = _reviewable(actor, appeal_id)
    claim = _claim_of(appeal, claim_id)
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
    false_positives.remember_accepted(actor, appeal, now)
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


def _claim_of(appeal: Appeal, claim_id: int) -> AppealClaim:
    claim = next((c for c in appeal.claims if c.id == claim_id), None)
    if claim is None:
        raise NotFound("No such claim on this appeal.")
    return claim


def _require_reviewer(actor: User) -> None:
    if actor is None or not actor.is_reviewer:
        raise Forbidden("Only reviewers and operators work on appeals.")


def _verdict(verdict: str) -> ClaimVerdict:
    try:
        return ClaimVerdict(verdict)
    except ValueError:
        raise ValidationError("Choose accept or reject.", "verdict") from None


def _unsettled(appeal: Appeal) -> list[ScanFinding]:
    accepted = {c.finding_fingerprint for c in appeal.claims if c.verdict is ClaimVerdict.accepted}
    accepted |= false_positives.accepted_fingerprints(appeal.version.asset_id)
    return [f for f in appeal.scan.findings
            if f.blocking and not f.accepted_note and f.fingerprint not in accepted]
