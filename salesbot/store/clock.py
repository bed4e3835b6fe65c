"""Times as the store keeps them: naive UTC, written the way Peewee's DateTimeField writes them
(the README's Database section). The one place that converts between aware moments and stored values."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    """Now as stored: naive UTC (freezegun-friendly)."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_utc_naive(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is required")
    return moment.astimezone(UTC).replace(tzinfo=None)


def to_local(stored: datetime, tz: ZoneInfo) -> datetime:
    return stored.replace(tzinfo=UTC).astimezone(tz)


def stamp(moment: datetime) -> str:
    """An aware moment (or one already naive UTC) as the text SQLite stores and compares."""
    return str(to_utc_naive(moment) if moment.tzinfo else moment)
