"""The three-working-day appeal SLA: calendar overrides, due dates, reminders and figures.

Working days are the country calendar (``portal.services.calendar``) with the
operators' overrides on top. Times are naive UTC in and out; the marketplace's
local time only decides which day it is.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import holidays
from flask import current_app
from sqlalchemy import func, select, update

from portal.extensions import db
from portal.models import Appeal, AppealDecision, CalendarDay, Notification, Role, User
from portal.services import calendar
from portal.services.audit import record_event
from portal.services.errors import Forbidden, NotFound, ValidationError
from portal.services.mail import send_mails
from portal.timeutil import utcnow

MAX_NOTE = 200
#: How far back the median time to decision looks.
FIGURES_WINDOW = timedelta(days=30)


# --- due dates ----------------------------------------------------------------------

@dataclass(frozen=True)
class Due:
    """Where an appeal stands against its deadline, as the seller and the reviewers see it."""

    at: datetime  # naive UTC
    local: datetime  # aware, marketplace time zone
    overdue: bool
    due_today: bool
    working_days_left: int  # working days after today up to the due day; 0 when due today

    @property
    def soon(self) -> bool:
        """Due today or on the next working day (and not overdue yet)."""
        return not self.overdue and self.working_days_left <= 1

    @property
    def countdown(self) -> str:
        if self.overdue:
            return "overdue"
        if self.due_today:
            return "due today"
        n = self.working_days_left
        return f"due in {n} working day{'' if n == 1 else 's'}"

    @property
    def css(self) -> str:
        if self.overdue:
            return "due-overdue"
        return "due-today" if self.due_today else "due-soon" if self.soon else "due-later"


def _zone_and_country() -> tuple[str, str]:
    cfg = current_app.config
    return cfg.get("TIMEZONE", "Asia/Shanghai"), cfg.get("COUNTRY", "CN")


def compute_due(submitted_at: datetime, overrides: dict[date, bool] | None = None) -> datetime:
    """The due time (naive UTC) of an appeal submitted at ``submitted_at`` (naive UTC)."""
    tz, country = _zone_and_country()
    if overrides is None:
        overrides = calendar_overrides()
    return calendar.due_at(submitted_at, tz=tz, country=country, overrides=overrides)


def due_status(due_at: datetime, *, now: datetime | None = None,
               overrides: dict[date, bool] | None = None) -> Due:
    """How ``due_at`` stands at ``now``: overdue, due today, or working days left."""
    tz, country = _zone_and_country()
    now = now or utcnow()
    if overrides is None:
        overrides = calendar_overrides()
    local_due = calendar.local_time(due_at, tz)
    today = calendar.local_time(now, tz).date()
    overdue = now > due_at
    left, day = 0, today
    while day < local_due.date():
        day += timedelta(days=1)
        left += calendar.is_working_day(day, country, overrides)
    return Due(due_at, local_due, overdue, not overdue and local_due.date() == today, left)


# --- calendar overrides --------------------------------------------------------------

def calendar_overrides() -> dict[date, bool]:
    """Every operator override: day -> working?"""
    return dict(db.session.execute(select(CalendarDay.day, CalendarDay.working)).all())


def list_calendar_days() -> list[CalendarDay]:
    """The overrides, in date order."""
    return list(db.session.scalars(select(CalendarDay).order_by(CalendarDay.day)))


@dataclass(frozen=True)
class DayInfo:
    day: date
    working: bool
    why: str  # "weekend", a holiday's name, "make-up working day", "override: …", ""


def upcoming_days(count: int = 21, *, start: date | None = None) -> list[DayInfo]:
    """The next ``count`` days as the SLA counts them, with the reason for each day off."""
    tz, country = _zone_and_country()
    start = start or calendar.local_time(utcnow(), tz).date()
    overrides = {d.day: d for d in list_calendar_days()}
    working_overrides = {k: v.working for k, v in overrides.items()}
    names = holidays.country_holidays(country, years=(start.year, start.year + 1))
    workdays = getattr(names, "weekend_workdays", set())
    out = []
    for offset in range(count):
        day = start + timedelta(days=offset)
        working = calendar.is_working_day(day, country, working_overrides)
        if day in overrides:
            why = "override" + (f": {overrides[day].note}" if overrides[day].note else "")
        elif day in workdays:
            why = "make-up working day"
        elif day in names:
            why = names.get(day)
        else:
            why = "" if working else "weekend"
        out.append(DayInfo(day, working, why))
    return out


def set_calendar_day(actor: User, day: date | str, working: bool, note: str = "", *,
                     address: str | None = None) -> CalendarDay:
    """An operator marks ``day`` as a holiday (``working`` False) or a make-up working day.

    Open appeals get their due times recomputed.
    """
    _require_operator(actor)
    day, note = _parse_day(day), (note or "").strip()
    if len(note) > MAX_NOTE:
        raise ValidationError(f"Keep the note under {MAX_NOTE} characters.", "note")
    row = db.session.scalar(select(CalendarDay).where(CalendarDay.day == day))
    before = {"working": row.working, "note": row.note} if row else None
    if row is None:
        row = CalendarDay(day=day, created_by_id=actor.id)
        db.session.add(row)
    row.working, row.note = bool(working), note
    db.session.flush()
    record_event(actor, "calendar.set", row, before=before,
                 after={"day": day.isoformat(), "working": row.working, "note": note},
                 address=address)
    _recompute_open_due_dates(actor, address)
    db.session.commit()
    return row


def delete_calendar_day(actor: User, day_id: int, *, address: str | None = None) -> None:
    """An operator removes an override; the country calendar applies to that day again."""
    _require_operator(actor)
    row = db.session.get(CalendarDay, day_id)
    if row is None:
        raise NotFound("No such calendar day.")
    record_event(actor, "calendar.delete", row,
                 before={"day": row.day.isoformat(), "working": row.working, "note": row.note},
                 address=address)
    db.session.delete(row)
    db.session.flush()
    _recompute_open_due_dates(actor, address)
    db.session.commit()


def _recompute_open_due_dates(actor: User, address: str | None) -> None:
    overrides = calendar_overrides()
    for appeal in db.session.scalars(select(Appeal).where(Appeal.decision.is_(None))):
        due = compute_due(appeal.submitted_at, overrides)
        if due != appeal.due_at:
            record_event(actor, "appeal.due", appeal, before={"due_at": appeal.due_at.isoformat()},
                         after={"due_at": due.isoformat()}, address=address)
            appeal.due_at = due


def _parse_day(day: date | str) -> date:
    if isinstance(day, date):
        return day
    try:
        return date.fromisoformat((day or "").strip())
    except ValueError:
        raise ValidationError("Enter the day as YYYY-MM-DD.", "day") from None


def _require_operator(actor: User) -> None:
    if actor is None or not actor.is_operator:
        raise Forbidden("Only operators change the working-day calendar.")


# --- reminders and notifications -------------------------------------------------------

_KINDS = {
    "due_soon": (Appeal.reminded_due_soon_at, "reminded_due_soon_at"),
    "overdue": (Appeal.reminded_overdue_at, "reminded_overdue_at"),
}


def send_reminders(now: datetime | None = None) -> int:
    """Notify reviewers of open appeals due within one working day, and of overdue ones.

    Each kind goes out once per appeal, even with several workers running this
    at the same time (a conditional UPDATE claims it). The assignee is told, or
    every reviewer and operator when nobody has claimed the appeal; with
    ``SMTP_HOST`` set, by email too. Returns the number of notifications made.
    """
    now = now or utcnow()
    overrides = calendar_overrides()
    made, mails = 0, []
    for appeal in db.session.scalars(select(Appeal).where(Appeal.decision.is_(None))
                                     .order_by(Appeal.due_at)).all():
        due = due_status(appeal.due_at, now=now, overrides=overrides)
        kind = "overdue" if due.overdue else "due_soon" if due.soon else None
        if kind is None or not _claim_reminder(appeal.id, kind, now):
            continue
        text = _reminder_text(appeal, kind, due)
        for user in _recipients(appeal):
            db.session.add(Notification(user_id=user.id, kind=kind, text=text,
                                        appeal_id=appeal.id, created_at=now))
            mails.append((user.email, text))
            made += 1
    db.session.commit()
    _send_mails(mails)
    return made


def _claim_reminder(appeal_id: int, kind: str, now: datetime) -> bool:
    column, name = _KINDS[kind]
    result = db.session.execute(
        update(Appeal).where(Appeal.id == appeal_id, column.is_(None), Appeal.decision.is_(None))
        .values({name: now}).execution_options(synchronize_session=False))
    return result.rowcount == 1


def _reminder_text(appeal: Appeal, kind: str, due: Due) -> str:
    version = appeal.version
    what = f"Appeal #{appeal.id} on {version.asset.name} {version.label}"
    offset = due.local.strftime("%z")
    when = f"{due.local:%Y-%m-%d %H:%M} GMT{offset[:3]}:{offset[3:]}"
    if kind == "overdue":
        return f"{what} is overdue: it was due {when}."
    if due.due_today:
        return f"{what} is due today: {when}."
    return f"{what} is due by the end of the next working day: {when}."


def _recipients(appeal: Appeal) -> list[User]:
    owner_id = appeal.version.asset.owner_id
    if appeal.reviewer is not None and appeal.reviewer.active:
        return [appeal.reviewer]
    staff = db.session.scalars(select(User).where(
        User.role.in_([Role.reviewer, Role.operator]), User.active.is_(True),
        User.id != owner_id).order_by(User.id))
    return list(staff)


def _send_mails(mails: list[tuple[str, str]]) -> None:
    """Email each (address, text) when SMTP is configured; a mail failure is logged only,
    since the in-app notification already exists."""
    url = current_app.config.get("PUBLIC_URL", "")
    send_mails([
        (address, text.split(":")[0],
         f"{text}\n\nOpen the appeal queue in Assay{f' ({url})' if url else ''} to review it.\n")
        for address, text in mails
    ])


def list_notifications(actor: User, *, limit: int = 100) -> list[Notification]:
    """The actor's notifications, newest first."""
    return list(db.session.scalars(select(Notification).where(Notification.user_id == actor.id)
                                   .order_by(Notification.id.desc()).limit(limit)))


def unread_count(actor: User) -> int:
    return db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == actor.id, Notification.read_at.is_(None))) or 0


def mark_read(actor: User, notification_id: int | None = None) -> int:
    """Mark one notification (or all of the actor's) read; returns how many changed."""
    stmt = update(Notification).where(Notification.user_id == actor.id,
                                      Notification.read_at.is_(None))
    if notification_id is not None:
        stmt = stmt.where(Notification.id == notification_id)
    result = db.session.execute(stmt.values(read_at=utcnow())
                                .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount


# --- figures ------------------------------------------------------------------------

@dataclass(frozen=True)
class Figures:
    open: int
    due_today: int
    overdue: int
    decided_30d: int
    median_to_decision: timedelta | None  # over the last 30 days
    within_sla_30d: int  # decided by their due time, last 30 days

    @property
    def median_text(self) -> str:
        if self.median_to_decision is None:
            return "—"
        hours = self.median_to_decision.total_seconds() / 3600
        if hours < 1:
            return f"{hours * 60:.0f} min"
        return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def sla_figures(now: datetime | None = None) -> Figures:
    """Open appeals, those due today and overdue, and the median time from submission
    to decision over the last 30 days (withdrawn appeals left out)."""
    now = now or utcnow()
    overrides = calendar_overrides()
    open_due = db.session.scalars(select(Appeal.due_at).where(Appeal.decision.is_(None))).all()
    states = [due_status(d, now=now, overrides=overrides) for d in open_due]
    decided = db.session.execute(
        select(Appeal.submitted_at, Appeal.decided_at, Appeal.due_at).where(
            Appeal.decision.in_([AppealDecision.accepted, AppealDecision.denied]),
            Appeal.decided_at >= now - FIGURES_WINDOW)).all()
    spans = [decided_at - submitted for submitted, decided_at, _ in decided]
    return Figures(
        open=len(states), due_today=sum(s.due_today for s in states),
        overdue=sum(s.overdue for s in states), decided_30d=len(decided),
        median_to_decision=statistics.median(spans) if spans else None,
        within_sla_30d=sum(decided_at <= due for _, decided_at, due in decided),
    )


@dataclass(frozen=True)
class Overview:
    """The operators' SLA page: figures, the overrides and the days ahead."""

    figures: Figures
    overrides: list[CalendarDay]
    upcoming: list[DayInfo]


def overview(actor: User, *, days: int = 28) -> Overview:
    """SLA figures, the calendar overrides and the next ``days`` days, for an operator."""
    _require_operator(actor)
    return Overview(sla_figures(), list_calendar_days(), upcoming_days(days))
