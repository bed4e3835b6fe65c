"""The outbox: a message to a lead or a manager is a row first, and `sent` only once Telegram accepted it.

A transactional outbox: the engine writes the message and its outbox row in
the same transaction as its decision; `Outbox.deliver` then sends the chat's queued rows oldest
first and records what came back:

    queued ──► sent     Telegram's message id stored
       │
       ├─────► failed   Telegram refused for good (blocked, deleted, too long), or a transient
       │                failure outlived MAX_ATTEMPTS; the error is stored, managers are told
       └─────► (gone)   a reminder whose lead wrote after it was queued, or that would go out
                        outside the send window or days, is dropped with its message (claim given back);
                        so is a message about a meeting that is no longer true (store/outbox.stale_reason)

Delivery is per chat and in order: a row waits for the rows before it. A flood wait or a dropped
connection delays only that chat (a retry is scheduled for it alone); other chats go on. One pacer
keeps the whole bot under Telegram's ~30 messages a second, live replies first, reminders in what
is left (core.telegram.org/bots/faq: "avoid sending more than 30 messages per second").

The `outbox` table is written by store/outbox.py; the `message` rows it delivers by store/leads.py.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from salesbot import texts
from salesbot.store import db, leads, outbox, stamp
from salesbot.store.outbox import STAFF, Key, Row, StaffRow
from salesbot.transport import BotUnauthorized, Keyboard, Peer, SendError, Transport

log = logging.getLogger(__name__)

# core.telegram.org/method/messages.sendMessage: MESSAGE_TOO_LONG / MESSAGE_EMPTY; the length is
# counted in UTF-16 code units, as message entities are (core.telegram.org/api/entities).
MAX_UTF16 = 4096
MAX_ATTEMPTS = 5  # transient failures (connection, server) of one message before it is `failed`
BACKOFF = (2.0, 10.0, 30.0, 60.0)  # seconds before attempts 2, 3, 4, 5
POLL_SECONDS = 5.0  # how often a running `serve` looks for rows queued by another process (the sweep)
WEBHOOKS: Key = ("webhooks", 0)  # the background task delivering webhook events (salesbot/webhooks.py)
RATE = 28.0  # messages a second for the whole bot, under Telegram's ~30 (core.telegram.org/bots/faq)
PRIORITY = {"reply": 0, "notice": 0, "reminder": 1, "staff": 2}



def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_UTF16) -> list[str]:
    """`text` in pieces Telegram accepts: at most `limit` UTF-16 units each, cut at a paragraph, a
    line, a sentence or a space where possible; blank pieces are dropped (MESSAGE_EMPTY)."""
    pieces: list[str] = []
    rest = text.strip()
    while rest:
        if utf16_len(rest) <= limit:
            pieces.append(rest)
            break
        head = rest
        while utf16_len(head) > limit:  # the longest prefix within the limit (surrogates counted twice)
            head = head[: len(head) - max(1, (utf16_len(head) - limit) // 2)]
        for separators in (("\n\n",), ("\n",), (". ", "! ", "? "), (" ",)):  # the most natural cut first
            cut = max(head.rfind(sep) for sep in separators)
            if cut > len(head) // 2:
                head = head[: cut + 1]
                break
        pieces.append(head.strip())
        rest = rest[len(head):].strip()
    return [piece for piece in pieces if piece]


# --- the outbox table ---------------------------------------------------------------------------------


def queue_to_lead(lead_id: int, text: str, now: datetime, buttons: Keyboard | None = None,
                  kind: str = "reply", follow_up_step: str | None = None, model_chars: int = 0,
                  meeting_id: int | None = None, about: str | None = None) -> list[int]:
    """Store what we say to a lead and queue it: one message and outbox row per piece of a long
    text (the buttons go with the last piece). Returns the outbox row ids; nothing for a blank text.
    `follow_up_step` names a reminder of the sweep (`follow-ups stats` counts by it). The first
    `model_chars` characters of `text` are the model's words (message.model_chars, per piece).
    `meeting_id` and `about` name the meeting a message is about: it is checked again just before it
    goes out (outbox.stale_reason)."""
    pieces = split_text(text)
    ids = []
    at = 0
    with db.atomic():
        if leads.is_forgotten(lead_id):
            return []  # `leads delete` ran while this was being decided: nothing more is said or kept
        for number, piece in enumerate(pieces, start=1):
            at = text.index(piece, at)  # pieces are stripped slices of the text, in order
            model = max(0, min(len(piece), model_chars - at))
            message_id = leads.record_bot_message(lead_id, piece, now, model)
            ids.append(outbox.insert(lead_id, None, message_id, kind, piece, buttons if number == len(pieces)
                                     else None, now, follow_up_step, meeting_id, about))
    return ids


def queue_to_chat(chat_id: int, text: str, now: datetime, buttons: Keyboard | None = None) -> list[int]:
    """Queue a notice to a manager (no conversation of ours to store it in)."""
    pieces = split_text(text)
    with db.atomic():
        return [outbox.insert(None, chat_id, None, "notice", piece, buttons if n == len(pieces) else None, now)
                for n, piece in enumerate(pieces, start=1)]


def queue_message(lead_id: int, message_id: int, text: str, now: datetime) -> list[int]:
    """Queue a stored message to the lead (a person's words, salesbot/inbox): its pieces, each tied to it."""
    with db.atomic():
        return [outbox.insert(lead_id, None, message_id, "reply", piece, None, now) for piece in split_text(text)]


def queue_staff(lead_id: int, text: str, now: datetime, buttons: Keyboard | None = None,
                forward_id: int | None = None) -> list[int]:
    """Queue a line for the lead's topic in the staff group (a forward of the lead's message when
    `forward_id` is given; `text` then says what it is)."""
    pieces = split_text(text) or ([texts.MEDIA_OTHER] if forward_id else [])
    with db.atomic():
        return [outbox.insert(lead_id, None, None, "staff", piece, buttons if n == len(pieces) else None, now,
                              forward_id=forward_id if n == len(pieces) else None)
                for n, piece in enumerate(pieces, start=1)]


def queued_staff(now: datetime) -> list[StaffRow]:
    return outbox.queued_staff(now)


def next_staff_due() -> datetime | None:
    value = outbox.next_staff_due()
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None



# --- pacing ------------------------------------------------------------------------------------------


class Pacer:
    """At most `rate` sends a second for the whole bot; when sends wait, lower priority numbers go first."""

    def __init__(self, rate: float, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.interval = 1.0 / rate
        # the event loop's clock by default: it runs on under freezegun's real_asyncio, time.monotonic does not
        self.clock = clock or (lambda: asyncio.get_running_loop().time())
        self.sleep = sleep
        self.next_at = 0.0
        self.waiting: list[tuple[int, int, asyncio.Future]] = []
        self.order = itertools.count()
        self.runner: asyncio.Task | None = None

    async def turn(self, priority: int) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiting, (priority, next(self.order), future))
        if self.runner is None or self.runner.done():
            self.runner = asyncio.get_running_loop().create_task(self._run())
        await future

    async def _run(self) -> None:
        while self.waiting:
            delay = self.next_at - self.clock()
            if delay > 0:
                await self.sleep(delay)
            _, _, future = heapq.heappop(self.waiting)
            if not future.done():
                future.set_result(None)
                self.next_at = max(self.clock(), self.next_at) + self.interval


# --- the deliverer -----------------------------------------------------------------------------------


class StaffQueue(Protocol):
    """The staff inbox as the outbox sees it (salesbot/inbox/inbox.py)."""

    async def deliver(self) -> None: ...

    def sent(self, row: Row) -> None: ...

    def failed(self, row: Row, reason: str, unreachable: bool) -> None: ...


class Outbox:
    """Queues and delivers. `deliver(key)` sends a chat's due rows now (the engine calls it right after
    queueing, so a reply goes out at once); `run()` is the background loop of `serve` that picks up
    what was queued elsewhere (the reminder sweep), or earlier (before a restart), and retries."""

    def __init__(self, transport: Transport, *, managers: tuple[int, ...] = (),
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, rate: float = RATE,
                 on_unauthorized: Callable[[BotUnauthorized], None] | None = None,
                 may_remind: Callable[[datetime], bool] | None = None) -> None:
        self.transport = transport
        self.may_remind = may_remind  # the reminders' send window and days (followups.Policy.in_window)
        self.managers = managers
        self.now = now
        self.sleep = sleep
        self.pacer = Pacer(rate, sleep=sleep)
        self.on_unauthorized = on_unauthorized
        self._locks: dict[Key, asyncio.Lock] = {}
        self._tasks: dict[Key, asyncio.Task] = {}  # retries and background deliveries, one per chat
        self.stopped: BotUnauthorized | None = None
        self.webhooks: Any = None  # a salesbot.webhooks.WebhookSender when SALESBOT_WEBHOOK_URL is set
        # The staff inbox (salesbot/inbox), when a staff group is set: it delivers the STAFF queue,
        # and hears of every message to a lead that went out or failed (to mirror it in the topic).
        self.staff: StaffQueue | None = None

    # -- queueing --

    def to_lead(self, lead_id: int, text: str, buttons: Keyboard | None = None, kind: str = "reply",
                model_chars: int = 0) -> list[int]:
        return queue_to_lead(lead_id, text, self.now(), buttons, kind, model_chars=model_chars)

    def to_managers(self, text: str) -> None:
        for manager in self.managers:
            queue_to_chat(manager, text, self.now())

    # -- sending --

    async def deliver(self, key: Key, due_by: datetime | None = None) -> None:
        """Send the chat's queued rows, oldest first, while they are due; schedule a retry for the first
        that must wait (a later row never overtakes it)."""
        if self.stopped is not None:
            return
        if key == STAFF:  # the group's own pace and topics; without a staff group the posts wait
            if self.staff is not None:
                await self.staff.deliver()
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            while True:
                found = outbox.next_queued(key)
                if found is None:
                    return
                row, not_before = found
                limit = max(due_by or self.now(), self.now())
                if not_before > stamp(limit):
                    self._retry(key, datetime.fromisoformat(not_before).replace(tzinfo=UTC))
                    return
                due_by = None
                if not await self._send_one(row):
                    return

    async def _send_one(self, row: Row) -> bool:
        """One attempt at one row; True when the chat may go on to its next row."""
        peer = self._peer(row)
        if peer is None:
            outbox.mark_failed(row, "the lead is gone")
            return True
        if self._dropped(row):
            return True
        await self.pacer.turn(PRIORITY[row.kind])
        if self._dropped(row):  # the turn may have come much later
            return True
        try:
            telegram_id = await self.transport.send(peer, row.text, row.buttons, row.random_id)
        except BotUnauthorized as exc:
            self.stopped = exc
            log.error("Telegram no longer accepts the bot (%s): delivery stops", exc)
            if self.on_unauthorized is not None:
                self.on_unauthorized(exc)
            return False
        except SendError as exc:
            return self._on_error(row, exc)
        with db.atomic():  # the topic's line is queued with the row's new state, or neither
            outbox.mark_sent(row, telegram_id, self.now())
            if self.staff is not None and row.lead_id is not None:
                self.staff.sent(row)
        return True

    def _dropped(self, row: Row) -> bool:
        """A message that depends on state, checked again just before it goes out: dropped when the
        state it was written for is gone (a reminder of the sweep, a message about a meeting)."""
        if row.kind == "reminder":
            return self._reminder_dropped(row)
        reason = outbox.stale_reason(row, self.now())
        if reason is None:
            return False
        log.info("%s %s to lead %s dropped before sending: %s", (row.about or "").replace("_", " "), row.id,
                 row.lead_id, reason)
        outbox.drop(row)
        return True

    def _reminder_dropped(self, row: Row) -> bool:
        """Checked just before a reminder goes out (again after its turn, and after every flood wait):
        a lead who wrote since it was queued is not reminded; outside the send window or days it is not
        held till morning (its slots and its decision would be stale, and it would hold up the chat):
        it is dropped and the claim given back, so the next sweep inside the window decides afresh."""
        if not leads.still_quiet(row.lead_id, row.created_at):
            log.info("lead %s wrote before reminder %s went out: dropped", row.lead_id, row.id)
        elif self.may_remind is not None and not self.may_remind(self.now()):
            log.info("reminder %s to lead %s is outside the send window now: dropped, a later sweep decides again",
                     row.id, row.lead_id)
        else:
            return False
        outbox.drop(row)
        return True

    def _on_error(self, row: Row, exc: SendError) -> bool:
        now = self.now()
        if exc.retry_after is not None:  # Telegram's own instruction: not a failed attempt
            log.info("flood wait %.0f s for %s", exc.retry_after, _who(row))
            at = now + timedelta(seconds=exc.retry_after)
            outbox.mark_later(row, exc.reason, at, count_attempt=False)
            self._retry(row.key, at)
            return False
        if exc.permanent or row.attempts + 1 >= MAX_ATTEMPTS:
            self._give_up(row, exc)
            return True
        at = now + timedelta(seconds=BACKOFF[min(row.attempts, len(BACKOFF) - 1)])
        log.warning("could not send to %s (%s); retrying at %s", _who(row), exc.reason, at.strftime("%H:%M:%S"))
        outbox.mark_later(row, exc.reason, at, count_attempt=True)
        self._retry(row.key, at)
        return False

    def _give_up(self, row: Row, exc: SendError) -> None:
        log.warning("message %s to %s not delivered: %s", row.id, _who(row), exc.reason)
        with db.atomic():
            outbox.mark_failed(row, exc.reason)
            if self.staff is not None and row.lead_id is not None:
                self.staff.failed(row, exc.reason, exc.unreachable)
        if row.lead_id is None:
            return  # a notice to a manager: the log is all that is left
        if exc.unreachable:
            leads.opt_out(row.lead_id, exc.reason)
        lead = leads.by_id(row.lead_id)
        if lead is not None and lead.telegram_id is not None:
            self.to_managers(texts.manager_undelivered(lead.first_name, lead.id, lead.username, exc.reason))
            self.kick()

    def _peer(self, row: Row) -> Peer | None:
        if row.lead_id is None:
            return Peer(user_id=row.chat_id)
        lead = leads.by_id(row.lead_id)
        if lead is None:
            return None
        return Peer(user_id=lead.telegram_id, access_hash=lead.access_hash, lead_id=lead.id)

    def _retry(self, key: Key, at: datetime) -> None:
        task = self._tasks.get(key)
        if task is not None and not task.done() and task is not asyncio.current_task():
            return

        async def later() -> None:
            await self.sleep(max(0.0, (at - self.now()).total_seconds()))
            self._tasks.pop(key, None)
            await self.deliver(key, due_by=at)

        self._tasks[key] = asyncio.get_running_loop().create_task(later())

    def kick(self) -> None:
        """Deliver whatever is due, in the background (a chat already being delivered is left to it)."""
        for key in outbox.due_keys(self.now()):
            if key in self._tasks and not self._tasks[key].done():
                continue
            if self._locks.get(key) is not None and self._locks[key].locked():
                continue
            self._tasks[key] = asyncio.get_running_loop().create_task(self.deliver(key))

    async def drain(self) -> None:
        """Deliver everything due now, chat after chat, and return (the terminal chat; tests)."""
        for key in outbox.due_keys(self.now()):
            await self.deliver(key)

    async def run(self, heartbeat: Callable[[], None] | None = None, poll: float = POLL_SECONDS) -> None:
        """The background loop of `serve`: every `poll` seconds, deliver what is due."""
        while self.stopped is None:
            self.kick()
            self._kick_webhooks()
            if heartbeat is not None:
                heartbeat()
            await self.sleep(poll)

    def _kick_webhooks(self) -> None:
        """One round of webhook delivery in the background, unless one is still going."""
        if self.webhooks is None:
            return
        task = self._tasks.get(WEBHOOKS)
        if task is None or task.done():
            self._tasks[WEBHOOKS] = asyncio.get_running_loop().create_task(self._webhooks_round())

    async def _webhooks_round(self) -> None:
        try:
            await self.webhooks.deliver_due()
        except Exception:  # a failed round is retried at the next poll
            log.exception("webhook delivery failed")

    async def close(self) -> None:
        tasks = [task for task in self._tasks.values() if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()


def _who(row: Row) -> str:
    return f"lead {row.lead_id}" if row.lead_id is not None else f"manager {row.chat_id}"
