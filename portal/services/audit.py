"""The audit log: append-only events, added to the caller's transaction."""

from __future__ import annotations

from portal.extensions import db
from portal.models import AuditEvent, User


def record_event(
    actor: User | None,
    action: str,
    subject,
    *,
    before: dict | None = None,
    after: dict | None = None,
    address: str | None = None,
) -> AuditEvent:
    """Add an event for ``subject`` (a model row) to the session; the caller commits.

    ``actor`` None means the system (the worker, a scheduled job).
    """
    if subject.id is None:
        db.session.flush()
    event = AuditEvent(
        actor_id=actor.id if actor is not None else None,
        action=action,
        subject_type=type(subject).__tablename__,
        subject_id=subject.id,
        before=before,
        after=after,
        address=(address or None) and address[:64],
    )
    db.session.add(event)
    return event
