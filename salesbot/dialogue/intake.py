"""Storing what a lead sends, before anything can fail: the lead row (made on first contact), the
message (a button press stored as its label), and replays of the same Telegram message ignored.

The event loop never waits for the database here: a write that finds another process's lock fails
at once (store.without_waiting), and the message is kept in memory, in arrival order, by a writer
that tries again with backoff for as long as it takes (a long write elsewhere, a full disk). Every
later message waits behind it, so a lead's messages stay in order. Nothing is said to the lead about
a message that is not stored; it is answered once it is. `holding` says how many are kept: serve
does not save its position in Telegram's updates past them (telegram.py), so a crash meanwhile loses
nothing either — Telegram sends them again after the restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import date, datetime

from salesbot import keyboards, links, texts
from salesbot.dialogue.turn import BUTTON, MEDIA, TEXT, Incoming, Sender, Stored
from salesbot.errors import StoreError
from salesbot.keyboards import moment_of
from salesbot.store import leads, without_waiting
from salesbot.store.leads import LeadState
from salesbot.time.slots import Calendar

log = logging.getLogger(__name__)

RETRY_FIRST, RETRY_MOST = 0.2, 5.0  # seconds between the writer's attempts: doubling from the first, up to most

Received = tuple[LeadState, Stored]


class Intake:
    def __init__(self, calendar: Calendar, now: Callable[[], datetime],
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self.calendar = calendar
        self.now = now
        self.sleep = sleep
        self.kept: deque[tuple[Incoming, Callable[[Received | None], None]]] = deque()
        self.writer: asyncio.Task | None = None
        self.answering: set[asyncio.Task] = set()  # messages being answered

    def accept(self, incoming: Incoming, answer: Callable[[LeadState, Stored], Awaitable[None] | None]
               ) -> asyncio.Future:
        """Store the message now or keep it (`receive`), then `answer(lead, message)` in a task of its
        own; returns at once a future done once it is answered (or found a replay, or not a private chat)."""
        done = asyncio.get_running_loop().create_future()
        if not incoming.private:
            done.set_result(None)
            return done

        def stored(received: Received | None) -> None:
            work = answer(*received) if received is not None else None
            if work is None:
                done.set_result(None)
                return
            task = asyncio.get_running_loop().create_task(work)
            self.answering.add(task)
            task.add_done_callback(self.answering.discard)
            task.add_done_callback(lambda _: done.done() or done.set_result(None))

        self.receive(incoming, stored)
        return done

    async def close(self) -> None:
        """Stop retrying what the database refused (Telegram sends it again after the restart)."""
        if self.writer is not None:
            self.writer.cancel()
            await asyncio.gather(self.writer, return_exceptions=True)

    @property
    def holding(self) -> int:
        """Messages received and not stored yet (the database was busy or broken)."""
        return len(self.kept)

    def receive(self, incoming: Incoming, then: Callable[[Received | None], None]) -> None:
        """Store the message now, or keep it for the writer; `then(stored)` is called once it is
        stored (None for a replay of a message stored before) — at once, or later by the writer."""
        if not self.kept:
            try:
                stored = self._store(incoming)
            except StoreError as exc:
                log.warning("could not store a message from Telegram user %s now (%s); kept, retrying",
                            incoming.sender.telegram_id or incoming.sender.lead_id, exc)
            else:
                then(stored)
                return
        self.kept.append((incoming, then))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        delay, failures = RETRY_FIRST, 0
        while self.kept:
            incoming, then = self.kept[0]
            try:
                stored = self._store(incoming)
            except StoreError as exc:
                failures += 1
                if failures in (25, 250):  # about a minute, then about twenty: say it loudly, not every time
                    log.error("%d message(s) received but not stored yet: %s (kept, still retrying)",
                              len(self.kept), exc)
                await self.sleep(delay)
                delay = min(delay * 2, RETRY_MOST)
                continue
            self.kept.popleft()
            delay = RETRY_FIRST
            then(stored)
        if failures:
            log.info("the database is back: every kept message is stored")

    def _store(self, incoming: Incoming) -> Received | None:
        with without_waiting():
            lead = self._lead_for(incoming.sender, (incoming.text or "").strip())
            message = self._record(lead, incoming)
        if message is None:
            log.info("lead %s: Telegram message %s was stored before; ignored", lead.id, incoming.telegram_message_id)
            return None
        return lead, message

    @staticmethod
    def known_lead(sender: Sender) -> LeadState | None:
        if sender.lead_id is not None:
            return leads.by_id(sender.lead_id)
        return leads.by_telegram_id(sender.telegram_id)

    @staticmethod
    def _lead_for(sender: Sender, text: str = "") -> LeadState:
        """The lead writing; a new one keeps the source its deep link's `/start PAYLOAD` carries."""
        if sender.lead_id is not None:
            lead = leads.by_id(sender.lead_id)
            if lead is None:
                raise ValueError(f"no lead {sender.lead_id}")
            return lead
        return leads.upsert_telegram_lead(sender.telegram_id, sender.access_hash, sender.username, sender.first_name,
                                          source=links.start_payload(text))

    def _record(self, lead: LeadState, incoming: Incoming) -> Stored | None:
        """Store the lead's message (before anything can fail); None when it was stored before."""
        kind, text = incoming.kind, (incoming.text or "").strip()
        if kind == BUTTON:
            stored = self._button_label(incoming.button or "")
        elif kind == MEDIA:
            stored = texts.MEDIA_LABELS.get(incoming.media or "", texts.MEDIA_OTHER)
        else:
            stored = text or texts.EMPTY_MESSAGE
        message_id = leads.record_lead_message(lead.id, stored, self.now(), unanswered=kind == TEXT,
                                               telegram_message_id=incoming.telegram_message_id)
        return Stored(message_id, stored) if message_id is not None else None

    def _button_label(self, data: str) -> str:
        if action := keyboards.meeting_action(data):
            return keyboards.meeting_label(action[0])
        if data == keyboards.OWN:
            return texts.BUTTON_OWN_TIME
        if data == keyboards.OTHER:
            return texts.BUTTON_OTHER
        moment = moment_of(data)
        if moment is not None and data.startswith("ok:"):
            return f"{texts.BUTTON_CONFIRM}: {texts.slot_label(moment.astimezone(self.calendar.tz), self._today())}"
        if moment is not None:
            return texts.slot_label(moment.astimezone(self.calendar.tz), self._today())
        return texts.unknown_button(data[:20])

    def _today(self) -> date:
        return self.now().astimezone(self.calendar.tz).date()
