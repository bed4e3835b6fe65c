"""Read-side queries behind `leads list`, `leads show` and `meetings list`.

They return plain dataclasses with aware datetimes in the business time zone; the CLI decides how
to draw them (a rich table, or JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from peewee import JOIN, SQL, Case, fn

from salesbot import leads, pricing
from salesbot.errors import NotFoundError, SalesbotError, quoted
from salesbot.store import (
    LEAD_STATUSES,
    Lead,
    LlmCall,
    Meeting,
    Message,
    Outbox,
    display_name,
    to_local,
    to_utc_naive,
    utcnow,
)

# Matches the expression of the lead_activity indexes (migration 002) so ORDER BY … LIMIT uses them.
ACTIVITY = SQL("coalesce(last_message_at, created_at)")


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
    )


def _next_meeting_subquery(now: datetime):
    return (
        Meeting.select(fn.MIN(Meeting.starts_at))
        .where((Meeting.lead == Lead.id) & (Meeting.status == "booked") & (Meeting.starts_at >= now))
    )


def list_leads(tz: ZoneInfo, status: str | None = None, limit: int | None = 50) -> list[LeadSummary]:
    """Leads, newest activity first (their last message, or when they were created)."""
    now = utcnow()
    unanswered = Message.select(fn.COUNT(Message.id)).where((Message.lead == Lead.id) & Message.unanswered)
    undelivered = Outbox.select(fn.COUNT(Outbox.id)).where((Outbox.lead == Lead.id) & (Outbox.state == "failed"))
    query = Lead.select(Lead, _next_meeting_subquery(now).alias("next_meeting"), unanswered.alias("unanswered"),
                        undelivered.alias("undelivered"))
    if status:
        query = query.where(Lead.status == status)
    query = query.order_by(ACTIVITY.desc(), Lead.id.desc())
    if limit:
        query = query.limit(limit)
    return [_summary(lead, _parse_dt(lead.next_meeting), tz, lead.unanswered, lead.undelivered) for lead in query]


def _parse_dt(value) -> datetime | None:
    # A subquery's value comes back as the stored text, not through the field's converter.
    if value is None or isinstance(value, datetime):
        return value
    return Meeting.starts_at.python_value(value)


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


@dataclass
class LeadDetail:
    lead: LeadSummary
    messages: list[ConversationLine] = field(default_factory=list)
    meetings: list[MeetingInfo] = field(default_factory=list)


def _meeting_info(meeting: Meeting, lead: Lead, tz: ZoneInfo) -> MeetingInfo:
    return MeetingInfo(
        id=meeting.id,
        lead_id=lead.id,
        lead_name=lead.display_name,
        starts_at=to_local(meeting.starts_at, tz),
        status=meeting.status,
        source=meeting.source,
        created_at=to_local(meeting.created_at, tz),
    )


def lead_detail(lead_id: int, tz: ZoneInfo) -> LeadDetail:
    lead = Lead.get_or_none(Lead.id == lead_id)
    if lead is None:
        raise NotFoundError(f"no lead with id {lead_id} (see `salesbot leads list`)")
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
    meetings = [_meeting_info(meeting, lead, tz)
                for meeting in Meeting.select().where(Meeting.lead == lead).order_by(Meeting.starts_at)]
    return LeadDetail(lead=summary, messages=messages, meetings=meetings)


def _labels(keyboard: str | None) -> list[str] | None:
    """The labels of an outbox row's keyboard (delivery stores [[[label, data], …], …])."""
    if not keyboard:
        return None
    try:
        return [str(button[0]) for row in json.loads(keyboard) for button in row]
    except (ValueError, TypeError, IndexError):
        return None


def upcoming_meetings(tz: ZoneInfo, limit: int | None = None, now: datetime | None = None) -> list[MeetingInfo]:
    now = now or utcnow()
    query = (
        Meeting.select(Meeting, Lead)
        .join(Lead)
        .where((Meeting.status == "booked") & (Meeting.starts_at >= now))
        .order_by(Meeting.starts_at, Meeting.id)
    )
    if limit:
        query = query.limit(limit)
    return [_meeting_info(meeting, meeting.lead, tz) for meeting in query]


@dataclass
class UsageRow:
    purpose: str
    model: str
    calls: int
    failures: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int  # all cache writes; the 5m and 1h split follows
    cache_read_input_tokens: int
    cache_hit_ratio: float | None  # share of input tokens read from cache
    cost_usd: float | None
    uncached_cost_usd: float | None
    saved_usd: float | None
    cache_creation_5m_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0
    thinking_tokens: int = 0  # part of output_tokens


@dataclass
class UsageReport:
    since: datetime | None
    rows: list[UsageRow]
    total: UsageRow


_SUMS = ("calls", "failures", "input_tokens", "output_tokens", "cache_creation_input_tokens",
         "cache_read_input_tokens", "cache_creation_5m_input_tokens", "cache_creation_1h_input_tokens",
         "thinking_tokens")


def _tokens(sums: dict[str, int]) -> pricing.Tokens:
    """Ledger sums as priced tokens. Writes not split by TTL (rows from before migration 006, or an
    answer without `usage.cache_creation`) are 5-minute writes, the API's default TTL."""
    five, hour = sums["cache_creation_5m_input_tokens"], sums["cache_creation_1h_input_tokens"]
    unsplit = max(0, sums["cache_creation_input_tokens"] - five - hour)
    return pricing.Tokens(input=sums["input_tokens"], output=sums["output_tokens"], writes_5m=five + unsplit,
                          writes_1h=hour, reads=sums["cache_read_input_tokens"])


def _usage_row(purpose: str, model: str, bands: dict[int, dict[str, int]]) -> UsageRow:
    """One purpose and model; `bands` holds its sums per prompt-size band (0, or the long-prompt
    threshold the calls were above), so a model priced by prompt length is priced per band."""
    sums = {k: sum(b[k] for b in bands.values()) for k in _SUMS}
    price = pricing.price_of(model)
    cost = uncached = None
    if price is not None:
        cost = uncached = 0.0
        for band, band_sums in bands.items():
            long_prompt = price.long_above is not None and band >= price.long_above
            tokens = _tokens(band_sums)
            cost += pricing.cost_usd(model, tokens, long_prompt)
            uncached += pricing.uncached_cost_usd(model, tokens, long_prompt)
    all_input = sums["input_tokens"] + sums["cache_creation_input_tokens"] + sums["cache_read_input_tokens"]
    return UsageRow(
        purpose=purpose, model=model, **sums,
        cache_hit_ratio=(sums["cache_read_input_tokens"] / all_input) if all_input else None,
        cost_usd=cost, uncached_cost_usd=uncached,
        saved_usd=(uncached - cost) if cost is not None and uncached is not None else None,
    )


def usage_report(since: datetime | None = None) -> UsageReport:
    """Claude usage per purpose and model from the ledger, with its cost at list prices and what
    caching saved. Grouped by prompt-size band too, for models priced by prompt length."""
    prompt = (LlmCall.input_tokens + LlmCall.cache_creation_input_tokens + LlmCall.cache_read_input_tokens)
    low, high = pricing.LONG_PROMPT_BANDS
    band = Case(None, ((prompt > high, high), (prompt > low, low)), 0)
    query = LlmCall.select(
        LlmCall.purpose,
        LlmCall.model,
        band,
        fn.COUNT(LlmCall.id),
        fn.SUM(LlmCall.error.is_null(False).cast("integer")),
        *(fn.SUM(getattr(LlmCall, k)) for k in _SUMS[2:]),
    ).group_by(LlmCall.purpose, LlmCall.model, band).order_by(LlmCall.purpose, LlmCall.model)
    if since is not None:
        query = query.where(LlmCall.created_at >= to_utc_naive(since))
    grouped: dict[tuple[str, str], dict[int, dict[str, int]]] = {}
    for purpose, model, band_value, *sums in query.tuples():
        grouped.setdefault((purpose, model), {})[band_value] = {k: v or 0 for k, v in zip(_SUMS, sums, strict=True)}
    rows = [_usage_row(purpose, model, bands) for (purpose, model), bands in grouped.items()]
    total = _usage_row("all", "all", {0: {k: sum(getattr(r, k) for r in rows) for k in _SUMS}})
    costs = [r for r in rows if r.cost_usd is not None]
    total.cost_usd = sum(r.cost_usd for r in costs) if costs else None
    total.uncached_cost_usd = sum(r.uncached_cost_usd for r in costs) if costs else None
    total.saved_usd = (total.uncached_cost_usd - total.cost_usd) if costs else None
    return UsageReport(since=since, rows=rows, total=total)


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
