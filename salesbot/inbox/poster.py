"""Posting into the staff group: one topic per lead, everything in order, under the group's pace.

The outbox's STAFF queue (delivery.py) holds the lines; `GroupPoster.deliver` sends them oldest
first. Telegram lets a bot post about 20 messages a minute in one group (core.telegram.org/bots/faq:
"your bot will not be able to send more than 20 messages per minute to the same group"), so the
poster keeps to POSTS_PER_MINUTE in any 60 seconds; the lines that wait meanwhile for one topic go
out as one post (merged, in order, within Telegram's 4096 characters), so a busy minute costs few
posts and nothing is dropped. A lead's replies are another queue: they never wait for the group.

A lead's first line opens its topic (`messages.createForumTopic`) and the lead's card goes first.
A topic staff deleted is opened again; a closed one is reopened. When the group takes no posts (the
bot lacks "Manage topics", or was removed), the cause is logged once, the posts wait, and the poster
tries again every RETRY_SECONDS, or at once when Telegram says the group changed (`kick`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from salesbot import delivery
from salesbot.delivery import BACKOFF, MAX_ATTEMPTS, MAX_UTF16, utf16_len
from salesbot.store import leads, outbox
from salesbot.store.outbox import StaffRow, random_id
from salesbot.transport import (
    BotUnauthorized,
    GroupUnavailable,
    Keyboard,
    Peer,
    SendError,
    StaffTransport,
    TopicClosed,
    TopicGone,
)

log = logging.getLogger(__name__)

POSTS_PER_MINUTE = 18  # under Telegram's 20 a minute in one group (bots/faq), with room for a retry
RETRY_SECONDS = 60.0  # a group that takes no posts is tried again this often
CAUSES = {
    "CHAT_ADMIN_REQUIRED": "the bot is not an admin with the right to manage topics in the staff group",
    "CHANNEL_PRIVATE": "the bot is not a member of the staff group (removed, or never added)",
    "CHANNEL_INVALID": "SALESBOT_STAFF_CHAT names no group the bot knows (check the -100… id)",
    "CHAT_WRITE_FORBIDDEN": "the bot may not write in the staff group",
    "CHANNEL_FORUM_MISSING": "topics are off in the staff group (turn on Topics in the group's settings)",
}


def cause_text(cause: str) -> str:
    return CAUSES.get(cause, f"Telegram refuses posts to the staff group ({cause})")


class GroupPoster:
    """Delivers the STAFF queue into `chat_id`'s topics. `card(lead_id)` is the lead's card (text and
    buttons) and `title(lead_id)` its topic's title; `peer(lead_id)` whom a forward comes from."""

    def __init__(self, transport: StaffTransport, chat_id: int, *, card: Callable[[int], tuple[str, Keyboard]],
                 title: Callable[[int], str], peer: Callable[[int], Peer | None],
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 turn: Callable[[], Awaitable[None]] | None = None) -> None:
        self.transport = transport
        self.chat_id = chat_id
        self.card, self.title, self.peer = card, title, peer
        self.now, self.sleep = now, sleep
        self.turn = turn  # the bot-wide pacer (delivery.Pacer), staff posts last
        self.posted: list[float] = []  # times of the last minute's posts
        self.hold_until: float = 0.0  # a FLOOD_WAIT from Telegram
        self.broken: str | None = None  # why the group takes no posts, logged once
        self._lock = asyncio.Lock()
        self._retry: asyncio.Task | None = None
        self._retry_at: float | None = None
        self._kicks: set[asyncio.Task] = set()
        self._broken_until = 0.0  # while the group takes no posts, the outbox's polls do not retry before this

    def kick(self) -> None:
        """Try now (Telegram said the group changed: rights given, the bot added back)."""
        task = asyncio.get_running_loop().create_task(self.deliver(force=True))
        self._kicks.add(task)
        task.add_done_callback(self._kicks.discard)

    async def close(self) -> None:
        tasks = [t for t in (self._retry, *self._kicks) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- pace --

    def _clock(self) -> float:
        return self.now().timestamp()

    def _wait(self, posts: int = 1) -> float:
        """Seconds until `posts` more may go out."""
        now = self._clock()
        self.posted = [t for t in self.posted if now - t < 60.0]
        wait = max(0.0, self.hold_until - now)
        over = len(self.posted) + posts - POSTS_PER_MINUTE
        if over > 0:
            wait = max(wait, self.posted[over - 1] + 60.0 - now)
        return wait

    async def _count(self) -> None:
        if self.turn is not None:
            await self.turn()
        self.posted.append(self._clock())

    def _later(self, seconds: float) -> None:
        at = self._clock() + seconds
        if self._retry is not None and not self._retry.done():
            if self._retry is asyncio.current_task() or (self._retry_at is not None and self._retry_at <= at):
                return
            self._retry.cancel()

        async def again() -> None:
            await self.sleep(seconds)
            self._retry = None
            await self.deliver(force=True)

        self._retry_at = at
        self._retry = asyncio.get_running_loop().create_task(again())

    # -- delivery --

    def _resting(self, force: bool) -> bool:
        return not force and self.broken is not None and self._clock() < self._broken_until

    async def deliver(self, force: bool = False) -> None:
        """Post what is due, oldest first, merged per topic, while the pace allows. While the group takes
        no posts, only the poster's own retry or a kick (`force`) tries again, not every outbox poll."""
        if self._resting(force):
            return
        async with self._lock:
            if self._resting(force):  # it broke while this call waited for the lock
                return
            while True:
                rows = delivery.queued_staff(self.now())
                if not rows:
                    later = delivery.next_staff_due()
                    if later is not None:
                        self._later(max(0.0, (later - self.now()).total_seconds()))
                    return
                batch = _batch(rows)
                wait = self._wait()
                if wait > 0:
                    self._later(wait)
                    return
                try:
                    await self._post(batch)
                except GroupUnavailable as exc:
                    self._broken(exc.cause)
                    self._broken_until = self._clock() + RETRY_SECONDS
                    self._later(RETRY_SECONDS)
                    return
                except BotUnauthorized:
                    return  # the outbox stops serve; nothing is lost
                except SendError as exc:
                    if not self._failed(batch, exc):
                        return
                    continue
                if self.broken is not None:
                    log.warning("the staff group takes posts again; the waiting ones go out now")
                    self.broken = None

    def _broken(self, cause: str) -> None:
        if cause != self.broken:
            log.error("cannot post to the staff group %s: %s; the posts wait and go out once it is fixed "
                      "(leads are answered as always)", self.chat_id, cause_text(cause))
        self.broken = cause

    def _failed(self, batch: list[StaffRow], exc: SendError) -> bool:
        """A post was refused: True to go on with the next."""
        ids = [row.id for row in batch]
        now = self.now()
        if exc.retry_after is not None:
            self.hold_until = self._clock() + exc.retry_after
            log.info("the staff group asks to wait %.0f s", exc.retry_after)
            self._later(exc.retry_after)
            return False
        if exc.rejected or batch[0].attempts + 1 >= MAX_ATTEMPTS:
            log.warning("staff post %s refused for good: %s", ids, exc.reason)
            outbox.staff_failed(ids, exc.reason)
            return True
        delay = BACKOFF[min(batch[0].attempts, len(BACKOFF) - 1)]
        outbox.staff_later(ids, exc.reason, now + timedelta(seconds=delay), count_attempt=True)
        self._later(delay)
        return False

    async def _post(self, batch: list[StaffRow]) -> None:
        lead_id = batch[0].lead_id
        for _ in range(3):  # a deleted topic is opened again, a closed one reopened
            topic = await self._topic(lead_id)
            try:
                telegram_id = await self._send(topic, batch)
            except TopicGone:
                log.info("the topic of lead %s was deleted; opening a new one", lead_id)
                leads.set_topic(lead_id, None, None)
                continue
            except TopicClosed:
                try:
                    await self.transport.reopen_topic(self.chat_id, topic)
                except TopicGone:
                    leads.set_topic(lead_id, None, None)
                continue
            outbox.staff_sent([row.id for row in batch], telegram_id, self.now())
            return
        raise SendError("the topic could not be opened", rejected=False)

    async def _topic(self, lead_id: int) -> int:
        """The lead's topic in this group, opened (with the card first) when there is none."""
        state = leads.inbox_state(lead_id)
        if state is not None and state.topic_id is not None and state.topic_chat_id == self.chat_id:
            return state.topic_id
        wait = self._wait(3)  # the topic, its card and the first lines go out together
        if wait > 0:
            raise SendError("the group's pace", retry_after=wait)
        await self._count()
        topic = await self.transport.create_topic(self.chat_id, self.title(lead_id), random_id())
        leads.set_topic(lead_id, self.chat_id, topic)
        log.info("opened a topic for lead %s in the staff group", lead_id)
        text, buttons = self.card(lead_id)
        await self._count()
        await self.transport.post(self.chat_id, topic, text, buttons, random_id())
        return topic

    async def _send(self, topic: int, batch: list[StaffRow]) -> int | None:
        await self._count()
        head = batch[0]
        if head.forward_id is not None:
            peer = self.peer(head.lead_id)
            if peer is not None and peer.user_id is not None:
                return await self.transport.forward(self.chat_id, topic, peer, head.forward_id, head.random_id)
        return await self.transport.post(self.chat_id, topic, "\n".join(row.text for row in batch), head.buttons,
                                         head.random_id)


def _batch(rows: list[StaffRow]) -> list[StaffRow]:
    """The oldest line and the lines after it for the same topic that can share its post: plain text
    (no buttons, no forward), in order, within one message's length."""
    head = rows[0]
    batch = [head]
    if head.buttons or head.forward_id is not None:
        return batch
    length = utf16_len(head.text)
    for row in rows[1:]:
        if row.lead_id != head.lead_id:
            continue
        if row.buttons or row.forward_id is not None:
            break
        length += 1 + utf16_len(row.text)
        if length > MAX_UTF16:
            break
        batch.append(row)
    return batch



