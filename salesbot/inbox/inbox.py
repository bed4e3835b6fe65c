"""The staff side of every conversation: the topic's lines, the takeover pause and the handoff.

What the lead says is mirrored into the lead's topic when it is stored; what the bot (or a person)
says to the lead is mirrored when Telegram accepted it (`sent`), so the topic shows what the lead
really got, in order. While a person has the conversation (`takeover_until` in the future) the bot
stays quiet for that lead; the pause ends with `/bot`, the card's button, `salesbot leads release`,
or by itself SALESBOT_TAKEOVER_HOURS after the last staff message (`tick`). A handoff is a pause the
lead asked for: the lead is told honestly when a person will answer, staff are alerted in the topic
(managers mentioned) and in private, and once more after HANDOFF_REPEAT of working time without a
staff message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from salesbot import delivery, texts
from salesbot.delivery import STAFF, Outbox
from salesbot.store import db, leads
from salesbot.store.leads import LeadState
from salesbot.store.outbox import Row
from salesbot.time.slots import Calendar, clock_label
from salesbot.transport import Button, Keyboard

log = logging.getLogger(__name__)

HANDOFF_REPEAT = timedelta(minutes=30)  # of working time without a staff message: the alert once more
TICK_SECONDS = 60.0
MENTION = "[[@{id}]]"  # a manager mentioned in a staff post; telegram.py makes it a mention entity


@dataclass(frozen=True)
class InboxConfig:
    calendar: Calendar
    staff_chat: int | None = None  # the forum supergroup's -100… id
    manager_ids: tuple[int, ...] = ()
    takeover: timedelta = timedelta(hours=12)


# Card buttons (callback data, at most 64 bytes): take over, give back, mark cold; and in private,
# a meeting's outcome.
TAKE, RELEASE, COLD, DONE, NO_SHOW = "it", "ib", "ic", "md", "mn"


def card_buttons(lead_id: int) -> Keyboard:
    return [[Button(texts.STAFF_BUTTON_TAKE, f"{TAKE}:{lead_id}"),
             Button(texts.STAFF_BUTTON_RELEASE, f"{RELEASE}:{lead_id}")],
            [Button(texts.STAFF_BUTTON_COLD, f"{COLD}:{lead_id}")]]


def staff_button(data: str) -> tuple[str, int] | None:
    action, _, number = data.partition(":")
    if action in (TAKE, RELEASE, COLD, DONE, NO_SHOW) and number.isdigit():
        return action, int(number)
    return None


def working_time(start: datetime, end: datetime, cal: Calendar) -> timedelta:
    """How much of [start, end) falls in working hours (SALESBOT_WORK_DAYS, SALESBOT_WORK_HOURS)."""
    total = timedelta()
    day = start.astimezone(cal.tz).date()
    last = end.astimezone(cal.tz).date()
    while day <= last:
        if day.weekday() in cal.work_days:
            opens = datetime.combine(day, cal.opens, tzinfo=cal.tz)
            closes = datetime.combine(day, cal.closes, tzinfo=cal.tz)
            lo, hi = max(opens, start), min(closes, end)
            if hi > lo:
                total += hi - lo
        day += timedelta(days=1)
    return total


def next_opening(now: datetime, cal: Calendar) -> datetime | None:
    """`now` when it is working time, else when work starts next (None: no working days at all)."""
    local = now.astimezone(cal.tz)
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        if day.weekday() not in cal.work_days:
            continue
        opens = datetime.combine(day, cal.opens, tzinfo=cal.tz)
        closes = datetime.combine(day, cal.closes, tzinfo=cal.tz)
        if local < closes:
            return max(opens, local)
    return None


class Inbox:
    """The outbox's StaffQueue (delivery.py) and the engine's view of the staff side."""

    def __init__(self, outbox: Outbox | None, config: InboxConfig,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), poster=None) -> None:
        self.outbox = outbox
        self.config = config
        self.now = now
        self.poster = poster  # inbox/poster.py GroupPoster, when serve has a staff group
        self.resume: Callable[[int], Awaitable[None]] | None = None  # the engine answers a released lead
        self._tasks: set[asyncio.Task] = set()
        if config.staff_chat is not None and outbox is not None:  # the CLI has no outbox: serve delivers
            outbox.staff = self

    @property
    def mirrored(self) -> bool:
        return self.config.staff_chat is not None

    def is_staff(self, telegram_id: int | None) -> bool:
        return telegram_id is not None and telegram_id in self.config.manager_ids

    def paused(self, lead_id: int) -> bool:
        state = leads.inbox_state(lead_id)
        return state is not None and state.paused(self.now())

    # -- the outbox's StaffQueue --

    async def deliver(self) -> None:
        if self.poster is not None:
            await self.poster.deliver()

    def sent(self, row: Row) -> None:
        """A message to the lead went out: its line in the topic (a person's own words from the topic
        are there already)."""
        author = leads.message_author(row.id)
        if author is None:
            return
        role, staff_id = author
        if role == "manager" and staff_id is not None:
            return
        line = (texts.TERMINAL_LINE if role == "manager" else texts.BOT_LINE).format(text=row.text)
        if row.buttons:
            line += "\n" + texts.BUTTONS_LINE.format(labels=" · ".join(b.label for r in row.buttons for b in r))
        delivery.queue_staff(row.lead_id, line, self.now())
        self._kick()

    def failed(self, row: Row, reason: str, unreachable: bool) -> None:
        delivery.queue_staff(row.lead_id, texts.undelivered_in_topic(reason), self.now())
        self._kick()

    # -- the lead's side --

    def holds(self, lead: LeadState, message, incoming) -> bool:
        """A lead's message was stored: mirror it; True when a person has this lead, so the bot stays
        quiet (a button press is the lead's own choice on the bot's keyboard: the bot still acts)."""
        media = incoming.media if incoming.kind == "media" else None
        self.heard(lead, "" if media else message.text, media, incoming.telegram_message_id)
        return incoming.kind != "button" and self.paused(lead.id)

    def heard(self, lead: LeadState, text: str, media: str | None, telegram_message_id: int | None) -> None:
        """A lead's message was stored: its line in the topic; media the bot cannot read is forwarded
        as it is, and staff are alerted."""
        if not self.mirrored:
            return  # without a staff group everything is as before: the conversation is in the database
        if media is not None and not text.strip():
            what = texts.MEDIA_LABELS.get(media, texts.MEDIA_OTHER)
            delivery.queue_staff(lead.id, texts.LEAD_LINE.format(text=what), self.now(), forward_id=telegram_message_id)
            if media != "sticker":  # something to read or hear that the bot cannot: a person looks
                delivery.queue_staff(lead.id, texts.media_alert(lead.first_name, lead.id, lead.username, what),
                                     self.now())
        else:
            delivery.queue_staff(lead.id, texts.LEAD_LINE.format(text=text), self.now())
        self._kick()

    def handoff_text(self) -> str:
        """What the lead is told: a person answers soon (working time), or when work starts."""
        now = self.now()
        opening = next_opening(now, self.config.calendar)
        if opening is None or opening <= now:
            return texts.HANDOFF_SOON
        cal = self.config.calendar
        day = opening.astimezone(cal.tz).date()
        when = f"{texts.day_phrase(day, now.astimezone(cal.tz).date())} после {clock_label(cal.opens)}"
        return texts.handoff_later(when)

    def handoff(self, lead: LeadState, reason: str, reply: str) -> str:
        """The lead asked for a person: the bot pauses and staff are alerted. Returns what the lead is
        told: Claude's reply, then when a person will answer."""
        now = self.now()
        leads.start_handoff(lead.id, now, now + self.config.takeover, reason)
        log.info("lead %s asked for a person: the bot pauses", lead.id)
        self._alert(lead, reason, repeat=False)
        return f"{reply}\n\n{self.handoff_text()}" if reply.strip() else self.handoff_text()

    def _alert(self, lead: LeadState, reason: str, repeat: bool) -> None:
        mentions = " ".join(MENTION.format(id=m) for m in self.config.manager_ids)
        if self.mirrored:
            delivery.queue_staff(lead.id, texts.handoff_alert(mentions, lead.first_name, lead.id, lead.username,
                                                              reason, repeat), self.now())
        self.outbox.to_managers(texts.handoff_alert("", lead.first_name, lead.id, lead.username, reason, repeat))
        self._kick(managers=True)

    # -- staff actions (the topic, the card's buttons, the CLI) --

    def reply(self, lead_id: int, text: str, staff_id: int | None) -> list[int]:
        """A person's words to the lead: stored (role manager), queued, and the bot pauses."""
        now = self.now()
        with db.atomic():
            message_id = leads.record_staff_message(lead_id, "manager", text, staff_id, now)
            ids = delivery.queue_message(lead_id, message_id, text, now)
            leads.take_over(lead_id, staff_id, now, now + self.config.takeover)
        return ids

    def note(self, lead_id: int, text: str, staff_id: int | None) -> None:
        leads.record_staff_message(lead_id, "note", text, staff_id, self.now())

    def take_over(self, lead_id: int, staff_id: int | None, who: str) -> None:
        now = self.now()
        leads.take_over(lead_id, staff_id, now, now + self.config.takeover, answered=False)
        if self.mirrored:
            delivery.queue_staff(lead_id, texts.taken_over(who), now)
        self._kick()

    async def release(self, lead_id: int, who: str, expired: bool = False) -> bool:
        """The bot has the lead again; a message of theirs left unanswered is answered now."""
        if not leads.release(lead_id):
            return False
        log.info("lead %s is the bot's again (%s)", lead_id, "expired" if expired else who)
        if self.mirrored:
            delivery.queue_staff(lead_id, texts.released(who, expired), self.now())
            self._kick()
        if self.resume is not None and leads.last_unanswered(lead_id) is not None:
            await self.resume(lead_id)
        return True

    def mark_cold(self, lead_id: int, who: str) -> None:
        leads.mark_cold_by_staff(lead_id, self.now())
        if self.mirrored:
            delivery.queue_staff(lead_id, texts.marked_cold(who), self.now())
            self._kick()

    # -- time --

    async def tick(self) -> None:
        """Takeovers that ran out end; handoffs left unanswered for HANDOFF_REPEAT of working time
        are alerted once more."""
        now = self.now()
        for lead_id in leads.takeovers_ended(now):
            state = leads.inbox_state(lead_id)
            by_terminal = state is not None and state.takeover_by == leads.RELEASED_FROM_TERMINAL
            await self.release(lead_id, texts.TERMINAL_STAFF, expired=not by_terminal)
        for state in leads.handoffs_waiting():
            if state.handoff_alerts >= 2 or working_time(state.handoff_at, now, self.config.calendar) < HANDOFF_REPEAT:
                continue
            lead = leads.by_id(state.lead_id)
            leads.handoff_alerted(state.lead_id, 2)
            last = leads.recent_lead_texts(state.lead_id, 1)
            self._alert(lead, last[0] if last else "", repeat=True)

    async def run(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a broken database must not stop serve; the next tick tries again
                log.exception("the inbox's periodic check failed")
            await sleep(TICK_SECONDS)

    def _kick(self, managers: bool = False) -> None:
        """Deliver the staff queue (and the managers' notices) in the background (serve is running)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # the CLI: serve's delivery loop picks the rows up
        for key in [STAFF, *(("chat", m) for m in (self.config.manager_ids if managers else ()))]:
            task = loop.create_task(self.outbox.deliver(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.poster is not None:
            await self.poster.close()


def meeting_keyboard(meeting_id: int) -> Keyboard:
    return [[Button(texts.STAFF_BUTTON_DONE, f"{DONE}:{meeting_id}"),
             Button(texts.STAFF_BUTTON_NO_SHOW, f"{NO_SHOW}:{meeting_id}")]]


