"""What staff do to a meeting from the terminal: cancel it, move it, record how it went.

Each change and the messages it sends are one transaction: the meeting row (leads.py writes it), the
message to the lead and the notices to managers queued in the outbox (delivery.py), which `serve`
delivers. Nothing here talks to Telegram, so the commands work while `serve` is down (the lead is
told once it runs). A lead of `salesbot chat` has no Telegram to be told on.

Staff may move a meeting to any free time in working hours, sooner than the leads' minimum notice
and beyond their booking horizon; a time that is taken, past, outside hours, on a holiday or day off,
in a break or busy in the owner's calendar is refused with the reason (the one calendar: slots.check).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from salesbot import delivery, keyboards, store, texts
from salesbot.errors import NotFoundError, SalesbotError
from salesbot.store import leads, outbox
from salesbot.store.leads import LeadState, MeetingState
from salesbot.time import parse as timeparse
from salesbot.time.calendar import DAY_NAMES
from salesbot.time.slots import Calendar, clock_label, free_slots

log = logging.getLogger(__name__)

STAFF_HORIZON = timedelta(days=3660)


@dataclass
class Change:
    """What a command did, for the CLI to show."""

    meeting_id: int
    lead_id: int
    lead_name: str
    starts_at: datetime  # in the business zone
    status: str  # the meeting's status now
    lead_told: bool  # a message to the lead was queued
    new_meeting_id: int | None = None  # a move: the meeting that replaced it
    new_starts_at: datetime | None = None


def parse_when(text: str, now: datetime, calendar: Calendar) -> datetime:
    """WHEN of `meetings move`: ISO 8601 (`2025-12-24T11:00`, in the business zone unless it has an
    offset), or a phrase as `parse-time` reads it with the rules (`завтра в 11`)."""
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        result = timeparse.parse_rules(value, now, calendar.tz)[0]
        if not result.ok:
            raise SalesbotError(f"{result.error}: {text!r} (give a day and time, e.g. 'завтра в 11:00' or "
                                "2025-12-24T11:00)") from None
        return result.when
    if moment.tzinfo is None:
        if len(value) <= 10:  # a date alone
            raise SalesbotError(f"no time given: {text!r} (e.g. 2025-12-24T11:00)")
        moment = moment.replace(tzinfo=calendar.tz)
    return moment


def _meeting(meeting_id: int) -> MeetingState:
    meeting = leads.meeting_by_id(meeting_id)
    if meeting is None:
        raise NotFoundError(f"no meeting with id {meeting_id} (see `salesbot meetings list`)")
    return meeting


def _upcoming(meeting_id: int, now: datetime, calendar: Calendar) -> MeetingState:
    meeting = _meeting(meeting_id)
    when = _local_text(meeting.starts_at, calendar)
    if meeting.status != "booked":
        raise SalesbotError(f"meeting {meeting_id} ({when}) is {meeting.status.replace('_', '-')}, not booked")
    if meeting.starts_at <= now:
        raise SalesbotError(f"meeting {meeting_id} ({when}) has already started; "
                            f"mark it with `salesbot meetings done {meeting_id}` or `no-show {meeting_id}`")
    return meeting


def _local_text(moment: datetime, calendar: Calendar, now: datetime | None = None) -> str:
    """The time for the operator (`describe`), or, given `now`, as a lead reads it (texts.meeting_time)."""
    local = moment.astimezone(calendar.tz)
    return texts.describe(local) if now is None else texts.meeting_time(local, now.astimezone(calendar.tz).date())


def _lead(meeting: MeetingState) -> LeadState:
    lead = leads.by_id(meeting.lead_id)
    assert lead is not None  # meeting.lead_id is a foreign key with ON DELETE CASCADE
    return lead


def _name(lead: LeadState) -> str:
    return store.display_name(lead.first_name, lead.username, lead.id)


def _tell_managers(managers: tuple[int, ...], text: str, now: datetime) -> None:
    for manager in managers:
        delivery.queue_to_chat(manager, text, now)


def _as_the_lead_knows_it(meeting: MeetingState) -> MeetingState:
    """The meeting the lead last heard of: staff moves whose news never went out (serve was down)
    are walked back to the time the lead was given, so «вместо …» names a time the lead knows."""
    while meeting.source == "staff" and not outbox.told_of(meeting.id):
        earlier = leads.moved_from(meeting.id)
        if earlier is None:
            break
        meeting = earlier
    return meeting


def cancel(meeting_id: int, reason: str | None, now: datetime, calendar: Calendar,
           managers: tuple[int, ...] = ()) -> Change:
    """Cancel a booked meeting; the lead is told, with free slots to book another, and so are managers."""
    meeting = _upcoming(meeting_id, now, calendar)
    lead = _lead(meeting)
    when = _local_text(meeting.starts_at, calendar, now)
    known = _local_text(_as_the_lead_knows_it(meeting).starts_at, calendar, now)
    reason = (reason or "").strip() or None
    with store.transaction():
        if not leads.cancel_meeting(meeting.id, "staff", now, reason):
            raise SalesbotError(f"meeting {meeting_id} changed meanwhile; see `salesbot meetings list`")
        outbox.withdraw_about(meeting.id)  # its reminder, the news of an earlier move: stale now
        told = lead.telegram_id is not None
        if told:
            # not the slot just cancelled: offering it back would read as a joke
            booked = [*leads.booked_starts(now - calendar.slot), meeting.starts_at]
            slots = free_slots(now, calendar, booked)
            delivery.queue_to_lead(lead.id, texts.staff_cancelled(known, reason), now,
                                   keyboards.slots(slots, calendar.tz), meeting_id=meeting.id,
                                   about="staff_cancelled")
        _tell_managers(managers, texts.manager_meeting_cancelled(lead.first_name, lead.id, lead.username, when,
                                                                 by_staff=True, reason=reason), now)
    log.info("staff cancelled meeting %s of lead %s (%s)", meeting.id, lead.id, when)
    return Change(meeting.id, lead.id, _name(lead), meeting.starts_at.astimezone(calendar.tz), "cancelled", told)


_REFUSALS = {
    "past": "that time has passed",
    "taken": "that time is taken by another meeting",
    "busy": "the owner's calendar is busy then (SALESBOT_BUSY_ICS)",
    "too_far": f"more than {STAFF_HORIZON.days // 365} years ahead (the limit for staff moves)",
}


def _refusal(problem: str, start: datetime, calendar: Calendar) -> str:
    local = start.astimezone(calendar.tz)
    if problem in ("outside_hours", "ends_late"):
        hours = "; ".join(f"{','.join(DAY_NAMES[d] for d in sorted(days))} {clock_label(first)}-{clock_label(last)}"
                          for days, (first, last) in calendar.schedule())
        what = "it would end after closing" if problem == "ends_late" else "outside working hours"
        return f"{what} ({hours}, {calendar.slot.total_seconds() / 60:.0f}-minute meetings)"
    if problem == "day_off":
        reason = getattr(calendar.days_off, "reason", lambda day: None)(local.date()) or "day off"
        if reason.startswith("holiday: "):
            return f"{local:%Y-%m-%d} is a public holiday ({reason.removeprefix('holiday: ')}; SALESBOT_HOLIDAYS)"
        return f"{local:%Y-%m-%d} is a day off (SALESBOT_DAYS_OFF)"
    if problem == "break" and (span := calendar.in_break(local, calendar.slot)):
        return f"it overlaps the break {clock_label(span[0])}-{clock_label(span[1])} (SALESBOT_BREAKS)"
    return _REFUSALS.get(problem, problem)


def move(meeting_id: int, start: datetime, now: datetime, calendar: Calendar,
         managers: tuple[int, ...] = ()) -> Change:
    """Move a booked meeting to `start`, atomically (a new booked meeting replaces it); the lead gets
    the new time with «Подтверждаю» / «Перенести» / «Отменить», and managers are told."""
    meeting = _upcoming(meeting_id, now, calendar)
    lead = _lead(meeting)
    old, new = _local_text(meeting.starts_at, calendar, now), _local_text(start, calendar, now)
    known = _local_text(_as_the_lead_knows_it(meeting).starts_at, calendar, now)
    staff_calendar = dataclasses.replace(calendar, min_notice=timedelta(0), horizon=STAFF_HORIZON)
    with store.transaction():
        problem, previous = leads.book(lead.id, start, "staff", now, staff_calendar, by="staff")
        if problem:
            raise SalesbotError(f"cannot move meeting {meeting_id} to {new}: {_refusal(problem, start, calendar)}")
        if previous is None:
            raise SalesbotError(f"meeting {meeting_id} is already at {new}")
        replacement = leads.booked_meeting(lead.id, now)
        assert replacement is not None  # booked just now, in this transaction
        outbox.withdraw_about(meeting.id)  # its reminder, the news of an earlier move: stale now
        told = lead.telegram_id is not None
        if told:
            delivery.queue_to_lead(lead.id, texts.staff_moved(known, new), now, keyboards.meeting(replacement.id),
                                   meeting_id=replacement.id, about="staff_moved")
        _tell_managers(managers, texts.manager_meeting_moved(lead.first_name, lead.id, lead.username, old, new,
                                                             by_staff=True), now)
    log.info("staff moved meeting %s of lead %s: %s -> %s (meeting %s)", meeting.id, lead.id, old, new,
             replacement.id)
    return Change(meeting.id, lead.id, _name(lead), meeting.starts_at.astimezone(calendar.tz), "cancelled", told,
                  replacement.id, start.astimezone(calendar.tz))


def mark(meeting_id: int, outcome: str, now: datetime, calendar: Calendar) -> Change:
    """How a meeting that has started went: `done` or `no_show` (a no-show lead is offered new slots
    once by the next sweep, meeting_reminders.py)."""
    meeting = _meeting(meeting_id)
    when = _local_text(meeting.starts_at, calendar)
    if meeting.status == "cancelled":
        raise SalesbotError(f"meeting {meeting_id} ({when}) was cancelled; there is no outcome to record")
    if meeting.starts_at > now:
        raise SalesbotError(f"meeting {meeting_id} ({when}) has not started yet; "
                            f"to call it off use `salesbot meetings cancel {meeting_id}`")
    if not leads.set_outcome(meeting.id, outcome, now):
        raise SalesbotError(f"meeting {meeting_id} changed meanwhile; see `salesbot meetings list --past`")
    lead = _lead(meeting)
    log.info("meeting %s of lead %s marked %s", meeting.id, lead.id, outcome)
    return Change(meeting.id, lead.id, _name(lead), meeting.starts_at.astimezone(calendar.tz), outcome, False)
