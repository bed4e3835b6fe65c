"""What the cron sweep sends about meetings, with `now` passed in: it claims and queues; `serve` delivers.

**Before a meeting.** Each booked meeting of a Telegram lead who has not opted out is reminded at
each lead time of SALESBOT_MEETING_REMINDERS (default 24 h and 2 h before it), with the buttons
«Подтверждаю», «Перенести», «Отменить». A reminder falls due at `start - lead time` and stays due
until the next (shorter) one falls due, or, for the last, until half its lead time is left: a sweep
inside the send window in that span sends it; one that never comes in it (a 2-hour reminder for a
10:00 meeting while the window opens at 10:00) is not sent late. A reminder that fell due before the
meeting was booked (booked 20 hours ahead: no 24-hour reminder) is not sent either.

**After a no-show.** A meeting staff marked `no_show` gets one message offering new slots, unless the
lead has booked again (or had a later meeting) meanwhile.

**Each at most once, never for a cancelled or moved meeting.** Every message is claimed by a row in
`meeting_reminder` (unique per meeting and kind: `24h`, `2h`, … or `no_show`), inserted only while the
meeting still has the status it is about, in the same transaction that queues the message.
Overlapping sweeps cannot both claim it. A moved meeting is cancelled and its replacement is a new
meeting, whose reminders count afresh.

**Checked again before it goes out.** Each queued message names its meeting (outbox `meeting_id`,
`about`): `serve` drops a reminder whose meeting was moved, cancelled or has started, or whose lead
said /stop, and a no-show offer once the lead booked again (delivery.stale_reason); staff changes
withdraw what is still queued about the meeting they change (meeting_changes.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from salesbot import delivery, keyboards, store, texts
from salesbot.store import Meeting, db, leads, to_utc_naive
from salesbot.time.slots import Calendar, free_slots

log = logging.getLogger(__name__)

NO_SHOW = "no_show"


@dataclass(frozen=True)
class Plan:
    lead_times: tuple[timedelta, ...]  # how long before a meeting each reminder goes, longest first
    calendar: Calendar  # the business's zone, and the slots a no-show lead is offered


@dataclass
class MeetingAction:
    meeting_id: int
    lead_id: int
    kind: str  # 24h, 2h, … (a reminder before the meeting) or no_show
    starts_at: datetime  # in the business zone
    first_name: str | None
    outcome: str  # would_send (dry run) | queued | claimed_elsewhere (another sweep, or the meeting changed)


def label(lead_time: timedelta) -> str:
    """`24h`, `2h`, `90m`: the kind a reminder is logged under."""
    minutes = int(lead_time.total_seconds() // 60)
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def due_kind(starts_at: datetime, booked_at: datetime, now: datetime, lead_times: tuple[timedelta, ...]
             ) -> str | None:
    """The reminder due for a meeting at `now` (the module docstring), or None. Times naive UTC."""
    for i, lead_time in enumerate(lead_times):
        next_lead = lead_times[i + 1] if i + 1 < len(lead_times) else timedelta(0)
        opens, closes = starts_at - lead_time, starts_at - max(next_lead, lead_time / 2)
        if opens <= now < closes and booked_at < opens:
            return label(lead_time)
    return None


_UPCOMING_SQL = """
SELECT m.id, m.lead_id, m.starts_at, m.created_at, l.first_name,
       (SELECT group_concat(r.kind) FROM meeting_reminder AS r WHERE r.meeting_id = m.id)
FROM meeting AS m JOIN lead AS l ON l.id = m.lead_id
WHERE m.status = 'booked' AND m.starts_at > ? AND m.starts_at <= ?
  AND l.telegram_id IS NOT NULL AND l.access_hash IS NOT NULL AND l.opted_out = 0 AND l.status != 'lost'
ORDER BY m.starts_at, m.id
"""

# A no-show not offered new slots yet, whose lead has no later meeting (booked again, or anything since).
_NO_SHOW_SQL = """
SELECT m.id, m.lead_id, m.starts_at, l.first_name
FROM meeting AS m JOIN lead AS l ON l.id = m.lead_id
WHERE m.status = 'no_show'
  AND l.telegram_id IS NOT NULL AND l.access_hash IS NOT NULL AND l.opted_out = 0 AND l.status != 'lost'
  AND NOT EXISTS (SELECT 1 FROM meeting_reminder AS r WHERE r.meeting_id = m.id AND r.kind = 'no_show')
  AND NOT EXISTS (SELECT 1 FROM meeting AS later WHERE later.lead_id = m.lead_id AND later.id > m.id)
ORDER BY m.id
"""


def _stored(value: str) -> datetime:
    return Meeting.starts_at.python_value(value)


def due(now: datetime, plan: Plan) -> list[MeetingAction]:
    """Everything due about meetings at `now`: reminders first, then no-show offers."""
    now_db = to_utc_naive(now)
    found: list[MeetingAction] = []
    if plan.lead_times:
        rows = db.execute_sql(_UPCOMING_SQL, (str(now_db), str(now_db + plan.lead_times[0]))).fetchall()
        for meeting_id, lead_id, starts_at, created_at, first_name, sent in rows:
            kind = due_kind(_stored(starts_at), _stored(created_at), now_db, plan.lead_times)
            if kind is not None and kind not in (sent or "").split(","):
                found.append(MeetingAction(meeting_id, lead_id, kind, _local(starts_at, plan), first_name,
                                           "would_send"))
    for meeting_id, lead_id, starts_at, first_name in db.execute_sql(_NO_SHOW_SQL).fetchall():
        found.append(MeetingAction(meeting_id, lead_id, NO_SHOW, _local(starts_at, plan), first_name, "would_send"))
    return found


def _local(stored: str, plan: Plan) -> datetime:
    return store.to_local(_stored(stored), plan.calendar.tz)


def sweep(now: datetime, plan: Plan, in_window: bool, *, dry_run: bool = False) -> list[MeetingAction]:
    """Queue what is due about meetings (with dry_run, only list it); nothing outside the send window."""
    if not in_window:
        return []
    actions = due(now, plan)
    if not dry_run:
        for action in actions:
            action.outcome = "queued" if _claim_and_queue(action, now, plan) else "claimed_elsewhere"
            log.info("meeting %s of lead %s: %s %s", action.meeting_id, action.lead_id, action.kind, action.outcome)
    return actions


def _claim_and_queue(action: MeetingAction, now: datetime, plan: Plan) -> bool:
    when = texts.meeting_time(action.starts_at, now.astimezone(action.starts_at.tzinfo).date())
    with store.transaction():
        if action.kind == NO_SHOW:
            if not leads.claim_meeting_reminder(action.meeting_id, NO_SHOW, "no_show", now):
                return False
            cal = plan.calendar
            slots = free_slots(now, cal, leads.booked_starts(now - cal.slot))
            text = texts.no_show_offer(action.first_name, when) + ("" if slots else f"\n\n{texts.NO_SLOTS}")
            delivery.queue_to_lead(action.lead_id, text, now, keyboards.slots(slots, cal.tz),
                                   meeting_id=action.meeting_id, about="no_show")
        else:
            if not leads.claim_meeting_reminder(action.meeting_id, action.kind, "booked", now):
                return False
            delivery.queue_to_lead(action.lead_id, texts.meeting_reminder(action.first_name, when), now,
                                   keyboards.meeting(action.meeting_id), meeting_id=action.meeting_id,
                                   about="meeting_reminder")
    return True
