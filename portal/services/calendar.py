"""Working days and the three-working-day appeal deadline.

Working days come from the ``holidays`` package for the configured country
(public holidays off, make-up working days on weekends on), then operator
overrides on top. All datetimes crossing this module's boundary are naive UTC,
as the database holds them; local time exists only inside.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

SLA_WORKING_DAYS = 3
_END_OF_DAY = time(23, 59, 59)


@lru_cache(maxsize=32)
def _country_calendar(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=(year - 1, year, year + 1))


def is_working_day(day: date, country: str, overrides: Mapping[date, bool] | None = None) -> bool:
    """True when ``day`` is a working day: operator override first, then the country's calendar."""
    if overrides and day in overrides:
        return overrides[day]
    calendar = _country_calendar(country, day.year)
    if day in calendar.weekend_workdays:
        return True
    return calendar.is_working_day(day)


def add_working_days(start: date, count: int, country: str,
                     overrides: Mapping[date, bool] | None = None) -> date:
    """The ``count``-th working day strictly after ``start``."""
    day, found = start, 0
    while found < count:
        day += timedelta(days=1)
        if is_working_day(day, country, overrides):
            found += 1
    return day


def due_at(submitted_utc: datetime, *, tz: str, country: str,
           overrides: Mapping[date, bool] | None = None,
           working_days: int = SLA_WORKING_DAYS) -> datetime:
    """End (23:59:59 local) of the third working day after the local submission day, as naive UTC."""
    zone = ZoneInfo(tz)
    local = submitted_utc.replace(tzinfo=timezone.utc).astimezone(zone)
    due_day = add_working_days(local.date(), working_days, country, overrides)
    due_local = datetime.combine(due_day, _END_OF_DAY, tzinfo=zone)
    return due_local.astimezone(timezone.utc).replace(tzinfo=None)


def local_time(value_utc: datetime, tz: str) -> datetime:
    """A naive-UTC database value as an aware datetime in the marketplace time zone."""
    return value_utc.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(tz))
