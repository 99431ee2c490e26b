"""The audit trail for operators: events filtered, paged newest first, exported as CSV.

Events are written by ``portal.services.audit.record_event``; this module only reads them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import and_, func, or_, select

from portal.extensions import db
from portal.models import AuditEvent, User
from portal.services.errors import Forbidden

#: Labels of the objects events are recorded about (their table names); any other type found
#: in the log is listed too, under its own name.
OBJECT_TYPES = {
    "assets": "Asset",
    "asset_versions": "Version",
    "scans": "Scan",
    "appeals": "Appeal",
    "appeal_claims": "Appeal claim",
    "accepted_false_positives": "Accepted false positive",
    "users": "User",
    "upload_sessions": "Upload",
    "calendar_days": "Calendar day",
    "settings": "Setting",
}
SYSTEM = "system"
PER_PAGE = 50
EXPORT_BATCH = 500
CSV_COLUMNS = ("id", "time_utc", "time_local", "actor_id", "actor_email", "actor_name", "action",
               "object_type", "object_id", "before", "after", "address")
#: A spreadsheet treats a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_WORD = re.compile(r"[A-Za-z0-9_.:*-]{1,64}\Z")
_ADDRESS = re.compile(r"[0-9A-Za-z.:*%-]{1,64}\Z")


@dataclass(frozen=True)
class AuditQuery:
    """Filters of the audit trail; empty ones match everything.

    ``actor``: an email (exact), part of a name or email, or ``system`` (no person).
    ``action`` and ``address``: exact, or a start followed by ``*`` (``appeal.*``, ``10.0.*``).
    ``since`` / ``until``: days in the marketplace time zone, both included.
    """

    actor: str = ""
    action: str = ""
    object_type: str = ""
    object_id: int | None = None
    since: date | None = None
    until: date | None = None
    address: str = ""

    def args(self) -> dict:
        """The filters as query-string arguments (for links that keep them)."""
        values = {
            "actor": self.actor, "action": self.action, "object_type": self.object_type,
            "object_id": self.object_id, "address": self.address,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
        return {key: value for key, value in values.items() if value not in ("", None)}


@dataclass
class EventRow:
    """One event with its actor (None: the system, or an account since removed)."""

    event: AuditEvent
    actor: User | None

    @property
    def object_label(self) -> str:
        return object_label(self.event.subject_type)

    @property
    def changes(self) -> list[tuple[str, str, str]]:
        """(field, before, after) for every field the event recorded."""
        before, after = self.event.before or {}, self.event.after or {}
        keys = list(dict.fromkeys([*before, *after]))
        return [(key, _text(before[key]) if key in before else "",
                 _text(after[key]) if key in after else "—") for key in keys]


@dataclass
class EventPage:
    items: list[EventRow]
    total: int
    page: int
    pages: int
    per_page: int
    query: AuditQuery = field(default_factory=AuditQuery)


def object_label(subject_type: str) -> str:
    return OBJECT_TYPES.get(subject_type, subject_type.replace("_", " ").capitalize())


def parse_query(args: Mapping[str, str]) -> tuple[AuditQuery, list[str]]:
    """The filters from a query string, and a message for each value that was refused.

    A refused value is left out of the query; callers show the messages and no events,
    so an operator never reads an unfiltered list as a filtered one.
    """
    errors: list[str] = []
    actor = (args.get("actor") or "").strip()[:254]
    action = (args.get("action") or "").strip()
    if action and not _WORD.match(action):
        errors.append("Action: use letters, digits, dots and underscores, e.g. appeal.decide "
                      "or appeal.* for every appeal action.")
        action = ""
    object_type = (args.get("object_type") or "").strip()
    if object_type and not re.fullmatch(r"[a-z_]{1,32}", object_type):
        errors.append("Object type: choose one from the list.")
        object_type = ""
    object_id = _positive_int(args.get("object_id"), "Object id", errors)
    since = _day(args.get("since"), "From", errors)
    until = _day(args.get("until"), "To", errors)
    if since and until and since > until:
        errors.append("The From day is after the To day.")
        since = until = None
    address = (args.get("address") or "").strip()
    if address and not _ADDRESS.match(address):
        errors.append("Address: an IPv4 or IPv6 address, or its start followed by *, "
                      "e.g. 203.0.113.*.")
        address = ""
    query = AuditQuery(actor, action, object_type, object_id, since, until, address)
    return query, errors


def list_events(actor: User, query: AuditQuery, *, page: int | str | None = 1,
                per_page: int = PER_PAGE) -> EventPage:
    """One page of the events matching ``query``, newest first (operators only)."""
    _check_operator(actor)
    stmt = _filtered(query)
    per_page = min(max(int(per_page or PER_PAGE), 1), 200)
    total = db.session.scalar(select(func.count()).select_from(
        stmt.with_only_columns(AuditEvent.id).order_by(None).subquery()))
    pages = max(math.ceil(total / per_page), 1)
    number = min(max(_int_or(page, 1), 1), pages)
    rows = db.session.execute(
        stmt.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(per_page).offset((number - 1) * per_page))
    items = [EventRow(event, user) for event, user in rows]
    return EventPage(items, total, number, pages, per_page, query)


def filter_choices(actor: User) -> dict:
    """The actions and object types present in the log, for the filter form."""
    _check_operator(actor)
    actions = db.session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action))
    types = set(db.session.scalars(select(AuditEvent.subject_type).distinct()))
    types |= set(OBJECT_TYPES)
    return {
        "actions": list(actions),
        "object_types": sorted(((t, object_label(t)) for t in types), key=lambda t: t[1]),
    }


def export_csv(actor: User, query: AuditQuery) -> Iterator[str]:
    """The events matching ``query`` as CSV text, newest first, produced in batches.

    The header line comes first. Every cell a spreadsheet could read as a formula is
    prefixed with an apostrophe. Batches are read by position (time, id), so the export
    never holds a cursor open between chunks and never repeats or skips an event.
    """
    _check_operator(actor)
    zone = ZoneInfo(current_app.config.get("TIMEZONE", "UTC"))
    stmt = _filtered(query).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())

    def generate() -> Iterator[str]:
        yield _csv_line(CSV_COLUMNS)
        after: tuple[datetime, int] | None = None
        while True:
            batch = stmt
            if after is not None:
                moment, last_id = after
                batch = batch.where(or_(AuditEvent.created_at < moment,
                                        and_(AuditEvent.created_at == moment,
                                             AuditEvent.id < last_id)))
            rows = db.session.execute(batch.limit(EXPORT_BATCH)).all()
            if not rows:
                return
            yield "".join(_csv_line(_csv_row(event, user, zone)) for event, user in rows)
            after = (rows[-1][0].created_at, rows[-1][0].id)
            for event, _user in rows:  # a long export keeps one batch in memory, not all
                db.session.expunge(event)

    return generate()


def export_stamp() -> str:
    """Now in the marketplace time zone, for an export's file name."""
    zone = ZoneInfo(current_app.config.get("TIMEZONE", "UTC"))
    return datetime.now(zone).strftime("%Y%m%d-%H%M")


def csv_cell(value) -> str:
    """``value`` as a CSV cell that no spreadsheet evaluates as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


# --- helpers -----------------------------------------------------------------------------

def _check_operator(actor: User) -> None:
    if not actor.is_operator:
        raise Forbidden("Only operators can read the audit trail.")


def _filtered(query: AuditQuery):
    stmt = select(AuditEvent, User).outerjoin(User, User.id == AuditEvent.actor_id)
    if query.actor:
        stmt = stmt.where(_actor_clause(query.actor))
    if query.action:
        stmt = stmt.where(_match(AuditEvent.action, query.action))
    if query.object_type:
        stmt = stmt.where(AuditEvent.subject_type == query.object_type)
    if query.object_id is not None:
        stmt = stmt.where(AuditEvent.subject_id == query.object_id)
    zone = ZoneInfo(current_app.config.get("TIMEZONE", "UTC"))
    if query.since:
        stmt = stmt.where(AuditEvent.created_at >= _utc_midnight(query.since, zone))
    if query.until:
        stmt = stmt.where(AuditEvent.created_at < _utc_midnight(query.until + timedelta(days=1),
                                                                zone))
    if query.address:
        stmt = stmt.where(_match(AuditEvent.address, query.address))
    return stmt


def _actor_clause(text: str):
    if text.lower() == SYSTEM:
        return AuditEvent.actor_id.is_(None)
    if "@" in text:
        return func.lower(User.email) == text.lower()
    pattern = f"%{_escape_like(text.lower())}%"
    return or_(func.lower(User.email).like(pattern, escape="\\"),
               func.lower(User.name).like(pattern, escape="\\"))


def _match(column, value: str):
    """Exact, or a prefix when ``value`` ends with ``*``."""
    if value.endswith("*"):
        return column.like(_escape_like(value.rstrip("*")) + "%", escape="\\")
    return column == value


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _utc_midnight(day: date, zone: ZoneInfo) -> datetime:
    local = datetime.combine(day, time.min, tzinfo=zone)
    return local.astimezone(UTC).replace(tzinfo=None)


def _day(raw: str | None, label: str, errors: list[str]) -> date | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.append(f"{label}: a day as YYYY-MM-DD, e.g. 2026-12-01.")
        return None


def _positive_int(raw: str | None, label: str, errors: list[str]) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63:
        return int(raw)
    errors.append(f"{label}: a whole number above 0.")
    return None


def _int_or(raw, default: int) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return default


def _text(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _csv_row(event: AuditEvent, user: User | None, zone: ZoneInfo) -> list:
    moment = event.created_at.replace(tzinfo=UTC)
    return [
        event.id, moment.isoformat().replace("+00:00", "Z"),
        moment.astimezone(zone).isoformat(timespec="seconds"),
        event.actor_id, user.email if user else "", user.name if user else SYSTEM,
        event.action, event.subject_type, event.subject_id,
        _json_or_empty(event.before), _json_or_empty(event.after), event.address,
    ]


def _json_or_empty(value) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _csv_line(values) -> str:
    out = io.StringIO()
    csv.writer(out).writerow([csv_cell(value) for value in values])
    return out.getvalue()
