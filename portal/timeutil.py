"""Time in one convention: naive UTC datetimes in the database, local time only on display."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Now, as a naive UTC datetime (the form every DateTime column holds)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
