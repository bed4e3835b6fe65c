"""Small helpers that put leads, messages and meetings into the test database."""

from __future__ import annotations

from datetime import datetime, timedelta

from salesbot.store import Lead, Meeting, Message, utcnow

_next_tg = iter(range(1000, 10**9))


def make_lead(*, telegram: bool = True, messages: list[tuple[str, str]] | None = None,
              last_message_ago: timedelta | None = None, **fields) -> Lead:
    now = utcnow()
    if telegram:
        fields.setdefault("telegram_id", next(_next_tg))
        fields.setdefault("access_hash", 1234567890123)
    fields.setdefault("first_name", "Анна")
    if last_message_ago is not None:
        fields.setdefault("last_message_at", now - last_message_ago)
    lead = Lead.create(**fields)
    for role, text in messages or []:
        Message.create(lead=lead, role=role, text=text)
    return lead


def make_meeting(lead: Lead, starts_at: datetime, *, status: str = "booked", source: str = "slot") -> Meeting:
    return Meeting.create(lead=lead, starts_at=starts_at, status=status, source=source)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
