"""Read-side queries behind `leads list`, `leads show`, `meetings list` and `meetings export`.

They return plain dataclasses with aware datetimes in the business time zone; the CLI decides how
to draw them (a rich table, or JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from peewee import JOIN

from salesbot.errors import NotFoundError, SalesbotError, quoted
from salesbot.store import (
    LEAD_STATUSES,
    Lead,
    Meeting,
    Message,
    Outbox,
    db,
    display_name,
    leads,
    to_local,
    to_utc_naive,
    utcnow,
)

# Matches the expression of the lead_activity indexes (migration 002) so ORDER BY … LIMIT uses them.


def check_status(value: str | None) -> str | None:
    if value is None:
        return None
    status = value.strip().lower()
    if status not in LEAD_STATUSES:
        raise SalesbotError(f"unknown status {quoted(value)}; use one of: {', '.join(LEAD_STATUSES)}")
    return status


def _local(value: datetime | None, tz: ZoneInfo) -> datetime | None:
    return to_local(value, tz) if value else None


@dataclass
class LeadSummary:
    id: int
    first_name: str | None
    username: str | None
    status: str
    state: str | None
    telegram_id: int | None
    created_at: datetime
    last_message_at: datetime | None
    follow_up_count: int
    last_follow_up_at: datetime | None
    opted_out: bool
    cold_reason: str | None
    next_meeting: datetime | None
    opted_out_reason: str | None = None
    unanswered: int = 0  # lead messages Claude could not answer: someone should reply by hand
    undelivered: int = 0  # our messages Telegram did not take (outbox rows `failed`)
    source: str | None = None  # the deep link the lead came through (`/start SOURCE`)
    taken_over: bool = False  # a person has the conversation: the bot is quiet for this lead (salesbot/inbox)

    @property
    def name(self) -> str:
        return display_name(self.first_name, self.username)


def _summary(lead: Lead, next_meeting: datetime | None, tz: ZoneInfo, unanswered: int = 0,
             undelivered: int = 0) -> LeadSummary:
    return LeadSummary(
        id=lead.id,
        first_name=lead.first_name,
        username=lead.username,
        status=lead.status,
        state=lead.state,
        telegram_id=lead.telegram_id,
        created_at=to_local(lead.created_at, tz),
        last_message_at=_local(lead.last_message_at, tz),
        follow_up_count=lead.follow_up_count,
        last_follow_up_at=_local(lead.last_follow_up_at, tz),
        opted_out=bool(lead.opted_out),
        cold_reason=lead.cold_reason,
        next_meeting=_local(next_meeting, tz),
        opted_out_reason=lead.opted_out_reason,
        unanswered=unanswered or 0,
        undelivered=undelivered or 0,
        source=lead.source,
    )


# Fixed SQL read straight from the cursor: `leads list --limit 0` on 100k leads built every row as a
# Peewee model first (3.6 s and 342 MB as JSON). The ORDER BY matches the lead_activity indexes
# (migration 002), so rows come in index order with no sort, and the plan needs no statistics.
_LEADS_SQL = """
SELECT l.id, l.first_name, l.username, l.status, l.state, l.telegram_id, l.created_at, l.last_message_at,
       l.follow_up_count, l.last_follow_up_at, l.opted_out, l.cold_reason,
       (SELECT min(m.starts_at) FROM meeting AS m INDEXED BY meeting_lead
        WHERE m.lead_id = l.id AND m.status = 'booked' AND m.starts_at >= ?),
       l.opted_out_reason,
       (SELECT count(*) FROM message AS u WHERE u.lead_id = l.id AND u.unanswered = 1),
       (SELECT count(*) FROM outbox AS o WHERE o.lead_id = l.id AND o.state = 'failed'),
       l.source, coalesce(l.takeover_until > ?, 0)
FROM lead AS l WHERE l.deleted_at IS NULL {where}
ORDER BY coalesce(l.last_message_at, l.created_at) DESC, l.id DESC {limit}
"""


def _stored_local(tz: ZoneInfo):
    """Stored naive-UTC text (as the cursor returns it) → aware local datetime."""
    utc = ZoneInfo("UTC")

    def convert(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text).replace(tzinfo=utc).astimezone(tz)

    return convert


def iter_leads(tz: ZoneInfo, status: str | None = None, limit: int | None = 50,
               source: str | None = None) -> Iterator[LeadSummary]:
    """Leads, newest activity first, streamed from the cursor (memory stays flat for any number);
    forgotten leads (`leads delete`) are not listed."""
    where = ("AND l.status = ? " if status else "") + ("AND l.source = ?" if source else "")
    params: list = [str(utcnow()), str(utcnow())] + ([status] if status else []) + ([source] if source else [])
    if limit:
        params.append(limit)
    cursor = db.execute_sql(_LEADS_SQL.format(where=where, limit="LIMIT ?" if limit else ""), params)
    local = _stored_local(tz)
    while rows := cursor.fetchmany(1000):
        for (lead_id, first_name, username, status_, state, telegram_id, created_at, last_message_at, follow_ups,
             last_follow_up_at, opted_out, cold_reason, next_meeting, opted_out_reason, unanswered,
             undelivered, lead_source, taken_over) in rows:
            yield LeadSummary(lead_id, first_name, username, status_, state, telegram_id, local(created_at),
                              local(last_message_at), follow_ups, local(last_follow_up_at), bool(opted_out),
                              cold_reason, local(next_meeting), opted_out_reason, unanswered, undelivered,
                              lead_source, bool(taken_over))


@dataclass
class ConversationLine:
    role: str
    text: str
    created_at: datetime
    unanswered: bool = False  # a lead message Claude could not answer
    delivery: str | None = None  # our message: queued | sent | failed (None: from before the outbox)
    delivery_error: str | None = None  # why Telegram did not take it
    buttons: list[str] | None = None  # our message: the labels of the buttons it offered


@dataclass
class MeetingInfo:
    id: int
    lead_id: int
    lead_name: str
    starts_at: datetime
    status: str
    source: str
    created_at: datetime
    username: str | None = None
    telegram_id: int | None = None
    telegram_link: str | None = None  # tg://user?id=…: opens the lead's chat in a Telegram app
    confirmed_at: datetime | None = None  # the lead pressed «Подтверждаю»
    outcome: str | None = None  # done | no_show, once staff marked it
    cancelled_by: str | None = None  # lead | staff
    cancel_reason: str | None = None
    moved_to: int | None = None  # the meeting that replaced this one


@dataclass
class LeadDetail:
    lead: LeadSummary
    messages: list[ConversationLine] = field(default_factory=list)
    meetings: list[MeetingInfo] = field(default_factory=list)
    summary: str | None = None  # what the model learned: need, budget, deadline, who decides, contact
    reminders_queued: int = 0  # claimed by the sweep, not sent by serve yet (lead.follow_up_count counts them)

    @property
    def reminders_sent(self) -> int:
        return self.lead.follow_up_count - self.reminders_queued


def _meeting_info(meeting: Meeting, lead: Lead, tz: ZoneInfo) -> MeetingInfo:
    return MeetingInfo(
        id=meeting.id,
        lead_id=lead.id,
        lead_name=lead.display_name,
        starts_at=to_local(meeting.starts_at, tz),
        status=meeting.status,
        source=meeting.source,
        created_at=to_local(meeting.created_at, tz),
        username=lead.username,
        telegram_id=lead.telegram_id,
        telegram_link=f"tg://user?id={lead.telegram_id}" if lead.telegram_id else None,
        confirmed_at=_local(meeting.confirmed_at, tz),
        outcome=meeting.status if meeting.status in ("done", "no_show") else None,
        cancelled_by=meeting.cancelled_by,
        cancel_reason=meeting.cancel_reason,
        moved_to=meeting.moved_to,
    )


def lead_detail(lead_id: int, tz: ZoneInfo) -> LeadDetail:
    lead = Lead.get_or_none(Lead.id == lead_id)
    if lead is None:
        raise NotFoundError(f"no lead with id {lead_id} (see `salesbot leads list`)")
    if lead.deleted_at is not None:
        raise NotFoundError(f"lead {lead_id} was deleted (`leads delete`) on {lead.deleted_at:%Y-%m-%d}: "
                            "nothing of it is kept but an anonymous count in the funnel")
    rows = (Message.select(Message.role, Message.text, Message.created_at, Message.unanswered, Outbox.state,
                           Outbox.error, Outbox.buttons)
            .join(Outbox, JOIN.LEFT_OUTER, on=(Outbox.message == Message.id))
            .where(Message.lead == lead).order_by(Message.id).tuples())
    messages = [ConversationLine(role=role, text=text, created_at=to_local(created_at, tz), unanswered=bool(flag),
                                 delivery=state, delivery_error=error if state == "failed" else None,
                                 buttons=_labels(buttons))
                for role, text, created_at, flag, state, error, buttons in rows]
    next_meeting = leads.next_meeting_start(lead.id, utcnow())
    summary = _summary(lead, next_meeting, tz, sum(line.unanswered for line in messages),
                       sum(line.delivery == "failed" for line in messages))
    queued = Outbox.select().where(Outbox.lead == lead, Outbox.kind == "reminder", Outbox.state == "queued").count()
    meetings = [_meeting_info(meeting, lead, tz)
                for meeting in Meeting.select().where(Meeting.lead == lead).order_by(Meeting.starts_at)]
    return LeadDetail(lead=summary, messages=messages, meetings=meetings, summary=lead.summary,
                      reminders_queued=queued)


MEETING_STATUSES = ("booked", "cancelled", "done", "no_show")
OUTCOMES = ("done", "no_show")  # what staff mark a meeting that has started


def check_meeting_status(value: str | None) -> str | None:
    if value is None:
        return None
    status = value.strip().lower().replace("-", "_")
    if status not in MEETING_STATUSES:
        raise SalesbotError(f"unknown meeting status {value!r}; use one of: {', '.join(MEETING_STATUSES)}")
    return status


def _labels(keyboard: str | None) -> list[str] | None:
    """The labels of an outbox row's keyboard (delivery stores [[[label, data], …], …])."""
    if not keyboard:
        return None
    try:
        return [str(button[0]) for row in json.loads(keyboard) for button in row]
    except (ValueError, TypeError, IndexError):
        return None


def list_meetings(tz: ZoneInfo, *, past: bool = False, status: str | None = None, limit: int | None = None,
                  now: datetime | None = None) -> list[MeetingInfo]:
    """Upcoming meetings soonest first (booked ones unless `status` says otherwise), or with `past`
    those that have started, latest first (any status unless `status` is given)."""
    now = now or utcnow()
    query = Meeting.select(Meeting, Lead).join(Lead)
    if past:
        query = query.where(Meeting.starts_at < now).order_by(Meeting.starts_at.desc(), Meeting.id.desc())
    else:
        query = query.where(Meeting.starts_at >= now).order_by(Meeting.starts_at, Meeting.id)
        status = status or "booked"
    if status:
        query = query.where(Meeting.status == status)
    if limit:
        query = query.limit(limit)
    return [_meeting_info(meeting, meeting.lead, tz) for meeting in query]


def all_meetings(tz: ZoneInfo) -> list[MeetingInfo]:
    """Every meeting, in time order (the iCalendar export)."""
    query = Meeting.select(Meeting, Lead).join(Lead).order_by(Meeting.starts_at, Meeting.id)
    return [_meeting_info(meeting, meeting.lead, tz) for meeting in query]


# --- follow-ups stats --------------------------------------------------------------------------------

FOLLOW_UP_STEPS = ("follow_up_1", "follow_up_2", "hot_1", "hot_2")  # outbox.follow_up_step (migration 009)
REPLY_WINDOWS = (24, 72)  # hours
BOOKED_WITHIN_DAYS = 7


@dataclass
class FollowUpStep:
    """One reminder step's outcome: of the reminders sent, how many leads wrote back within 24 h and
    72 h, booked a meeting afterwards, or went cold."""

    step: str
    sent: int
    replied_24h: int
    replied_72h: int
    booked: int
    went_cold: int
    maturing: int  # sent under 72 h ago: their replies (and bookings, cold) may still come
    reply_rate_24h: float | None
    reply_rate_72h: float | None
    booking_rate: float | None


@dataclass
class FollowUpStats:
    since: datetime | None
    steps: list[FollowUpStep]


# Per reminder sent (an outbox row of the sweep, `sent`): did the lead write after it (a lead message
# with a higher id than the reminder's own message: a lead who wrote before it went out was not
# reminded), within 24 h and 72 h of the send; did they book a meeting within 7 days and before the
# next reminder; are they cold for want of a reply (cold_reason is cleared when a cold lead writes)
# and silent ever since.
_STATS_SQL = f"""
SELECT o.follow_up_step, count(*),
  sum(EXISTS (SELECT 1 FROM message AS r WHERE r.lead_id = o.lead_id AND r.id > o.message_id AND r.role = 'lead'
              AND r.created_at <= datetime(o.sent_at, '+{REPLY_WINDOWS[0]} hours'))),
  sum(EXISTS (SELECT 1 FROM message AS r WHERE r.lead_id = o.lead_id AND r.id > o.message_id AND r.role = 'lead'
              AND r.created_at <= datetime(o.sent_at, '+{REPLY_WINDOWS[1]} hours'))),
  sum(EXISTS (SELECT 1 FROM meeting AS m WHERE m.lead_id = o.lead_id AND m.created_at >= o.sent_at
              AND m.created_at <= datetime(o.sent_at, '+{BOOKED_WITHIN_DAYS} days')
              AND NOT EXISTS (SELECT 1 FROM outbox AS n WHERE n.lead_id = o.lead_id AND n.id > o.id
                              AND n.follow_up_step IS NOT NULL AND n.state = 'sent' AND n.sent_at < m.created_at))),
  sum(l.cold_reason = 'no_reply'
      AND NOT EXISTS (SELECT 1 FROM message AS r WHERE r.lead_id = o.lead_id AND r.id > o.message_id
                      AND r.role = 'lead')),
  sum(o.sent_at > ?)
FROM outbox AS o JOIN lead AS l ON l.id = o.lead_id
WHERE o.follow_up_step IS NOT NULL AND o.state = 'sent' AND o.sent_at >= ?
GROUP BY o.follow_up_step
"""


def follow_up_stats(since: datetime | None = None, now: datetime | None = None) -> FollowUpStats:
    """Each reminder step's outcome, from the outbox, message and meeting rows (every step listed,
    with zeros when none was sent)."""
    now_db = to_utc_naive(now) if now else utcnow()
    mature = str(now_db - timedelta(hours=REPLY_WINDOWS[-1]))
    start = str(to_utc_naive(since)) if since else ""
    found = {row[0]: row[1:] for row in db.execute_sql(_STATS_SQL, (mature, start)).fetchall()}

    def rate(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    steps = []
    for step in FOLLOW_UP_STEPS:
        sent, day, three_days, booked, cold, maturing = (value or 0 for value in found.get(step, (0,) * 6))
        steps.append(FollowUpStep(step, sent, day, three_days, booked, cold, maturing, rate(day, sent),
                                  rate(three_days, sent), rate(booked, sent)))
    return FollowUpStats(since=since, steps=steps)


EARLIEST, LATEST = 1970, 9000


def parse_moment(text: str, tz: ZoneInfo) -> datetime:
    """An ISO 8601 date or time; without an offset it is in `tz`."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SalesbotError(f"expected an ISO 8601 time like 2025-12-23T14:05, got {quoted(text)}") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=tz)
    if not EARLIEST <= moment.year <= LATEST:  # the calendar's arithmetic must stay inside datetime's range
        raise SalesbotError(f"a time between the years {EARLIEST} and {LATEST}, please; got {quoted(text)}")
    return moment


def parse_since(text: str, tz: ZoneInfo, now: datetime | None = None) -> datetime:
    """`2025-12-01`, `2025-12-01T09:00`, or a span back from now: `24h`, `7d`, `2w`."""
    value = text.strip()
    now = now or datetime.now(tz)
    units = {"h": 3600, "d": 86400, "w": 7 * 86400}
    if value[:-1].isdigit() and value[-1:].lower() in units:
        try:
            return now - timedelta(seconds=int(value[:-1]) * units[value[-1].lower()])
        except (OverflowError, ValueError):  # further back than the year 1
            raise SalesbotError(f"the span {quoted(value)} reaches back before the calendar starts; "
                                "use a shorter one") from None
    try:
        return parse_moment(value, tz)
    except SalesbotError:
        raise SalesbotError(f"expected a date like 2025-12-01, a time like 2025-12-01T09:00, "
                            f"or a span like 7d or 24h; got {quoted(text)}") from None
