"""`salesbot meetings export --ics FILE`: the meetings as an iCalendar file (RFC 5545), built with the
`icalendar` library (imported here only, so other commands do not load it).

- Each meeting is one VEVENT whose UID is derived from its id alone (`salesbot-meeting-<id>@salesbot`):
  importing a newer export updates the events instead of duplicating them. A moved meeting is a
  new meeting (a new event); the old one stays in the file as cancelled, so calendars drop it.
- Times carry the business time zone (TZID, with its VTIMEZONE definition in the file); DTEND is the
  start plus the slot length.
- STATUS: booked → TENTATIVE until the lead confirms, then CONFIRMED; cancelled → CANCELLED; done and
  no-show → CONFIRMED, with the outcome in the title. SEQUENCE grows as a meeting moves along
  (booked 0, confirmed 1, cancelled or an outcome 2), so a calendar takes the later export's version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from salesbot.store.queries import MeetingInfo

PRODID = "-//salesbot//meetings//RU"
_OUTCOME = {"done": "состоялась", "no_show": "клиент не пришёл", "cancelled": "отменена"}


def uid(meeting_id: int) -> str:
    return f"salesbot-meeting-{meeting_id}@salesbot"


def _status(meeting: MeetingInfo) -> tuple[str, int]:
    if meeting.status == "cancelled":
        return "CANCELLED", 2
    if meeting.status in ("done", "no_show"):
        return "CONFIRMED", 2
    return ("CONFIRMED", 1) if meeting.confirmed_at else ("TENTATIVE", 0)


def _printable(text: str) -> str:
    """RFC 5545 3.3.11: TEXT holds no control characters but the line break (a lead names itself)."""
    return _CONTROL.sub("\ufffd", text)


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def _description(meeting: MeetingInfo) -> str:
    lines = [f"Лид {meeting.lead_id}: {_printable(meeting.lead_name)}"]
    if meeting.telegram_link:
        lines.append(f"Telegram: {meeting.telegram_link}")
    lines.append("Время: выбрано из слотов" if meeting.source == "slot" else "Время: предложено клиентом")
    if meeting.confirmed_at:
        lines.append(f"Клиент подтвердил: {meeting.confirmed_at:%d.%m.%Y %H:%M}")
    if meeting.status in _OUTCOME:
        lines.append(f"Итог: {_OUTCOME[meeting.status]}")
    if meeting.cancel_reason:
        lines.append(f"Причина отмены: {_printable(meeting.cancel_reason)}")
    if meeting.moved_to:
        lines.append(f"Перенесена: встреча {meeting.moved_to}")
    lines.append(f"salesbot leads show {meeting.lead_id}")
    return "\n".join(lines)


def calendar_bytes(meetings: Iterable[MeetingInfo], length: timedelta, now: datetime | None = None) -> bytes:
    """The iCalendar file of `meetings` (their times are aware, in the business zone)."""
    from icalendar import Calendar, Event

    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", "salesbot: встречи")
    for meeting in meetings:
        status, sequence = _status(meeting)
        title = f"Встреча: {_printable(meeting.lead_name)}"
        if meeting.status in _OUTCOME:
            title += f" ({_OUTCOME[meeting.status]})"
        event = Event()
        event.add("uid", uid(meeting.id))
        event.add("dtstamp", stamp)
        event.add("created", meeting.created_at.astimezone(UTC))
        event.add("dtstart", meeting.starts_at)
        event.add("dtend", meeting.starts_at + length)
        event.add("summary", title)
        event.add("description", _description(meeting))
        event.add("status", status)
        event.add("sequence", sequence)
        if meeting.telegram_link:
            event.add("url", meeting.telegram_link)
        calendar.add_component(event)
    calendar.add_missing_timezones()
    return calendar.to_ical()
