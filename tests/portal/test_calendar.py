"""The appeal deadline on real calendars (holidays package), exact datetimes."""

from datetime import date, datetime

import pytest

from portal.services.calendar import add_working_days, due_at, is_working_day

SH = "Asia/Shanghai"


def utc(*args) -> datetime:
    return datetime(*args)


def test_friday_before_spring_festival_2026():
    # Fri 13 Feb 2026, 10:00 Shanghai = 02:00 UTC. Working days after it: Sat 14 Feb (make-up day),
    # then the festival (16-20 Feb) and Mon 23 Feb (day off) → Tue 24, Wed 25.
    due = due_at(utc(2026, 2, 13, 2, 0), tz=SH, country="CN")
    assert due == utc(2026, 2, 25, 15, 59, 59)  # Wed 25 Feb 23:59:59 +08:00


def test_submission_on_make_up_saturday():
    # Sat 28 Feb 2026 is a make-up working day; the count starts the day after: Mon 2, Tue 3, Wed 4 Mar.
    assert is_working_day(date(2026, 2, 28), "CN")
    due = due_at(utc(2026, 2, 28, 1, 0), tz=SH, country="CN")
    assert due == utc(2026, 3, 4, 15, 59, 59)


def test_submission_at_2359_local_counts_that_local_day():
    # Mon 30 Nov 2026 23:59 Shanghai = 15:59 UTC the same day → Tue, Wed, Thu (3 Dec).
    due = due_at(utc(2026, 11, 30, 15, 59), tz=SH, country="CN")
    assert due == utc(2026, 12, 3, 15, 59, 59)
    # One minute later it is Tue 1 Dec locally → Wed, Thu, Fri (4 Dec).
    assert due_at(utc(2026, 11, 30, 16, 0), tz=SH, country="CN") == utc(2026, 12, 4, 15, 59, 59)


def test_other_country_and_zone_thanksgiving():
    # Wed 25 Nov 2026 09:00 New York (EST, UTC-5): Thu 26 is Thanksgiving, so Fri 27, Mon 30, Tue 1 Dec.
    due = due_at(utc(2026, 11, 25, 14, 0), tz="America/New_York", country="US")
    assert due == utc(2026, 12, 2, 4, 59, 59)  # Tue 1 Dec 23:59:59 -05:00


def test_operator_overrides_win():
    overrides = {date(2026, 12, 1): False, date(2026, 12, 5): True}  # a holiday, a make-up Saturday
    assert add_working_days(date(2026, 11, 30), 3, "CN", overrides) == date(2026, 12, 4)
    assert add_working_days(date(2026, 12, 2), 3, "CN", overrides) == date(2026, 12, 5)


@pytest.mark.parametrize("day,expected", [
    (date(2026, 10, 1), False),  # National Day
    (date(2026, 10, 10), True),  # make-up Saturday
    (date(2026, 10, 11), False),  # ordinary Sunday
    (date(2026, 10, 12), True),
])
def test_cn_working_days(day, expected):
    assert is_working_day(day, "CN") is expected
