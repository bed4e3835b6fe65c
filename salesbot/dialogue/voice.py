"""How the engine speaks: a reply queued in the outbox (marking what it answers, in one transaction)
and sent at once; notices to managers; a meeting's time as the lead reads it.

A reply the database refuses (another process's long write, a full disk) is not lost: it is kept, in
order, and queued by a background task as soon as the database takes it (the lead's later replies
wait behind it), then sent. Until then the lead's message stays unanswered in the database, so a
restart in the meantime answers it again rather than never.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from salesbot import store, texts
from salesbot.delivery import Outbox
from salesbot.dialogue.turn import Turn
from salesbot.errors import StoreError
from salesbot.store import leads
from salesbot.time.slots import Calendar
from salesbot.transport import Keyboard

log = logging.getLogger(__name__)

RETRY_FIRST, RETRY_MOST = 0.2, 5.0  # seconds between attempts to queue a kept reply


@dataclass(frozen=True)
class _Reply:
    lead_id: int
    answering: int | None
    status: str | None
    text: str
    buttons: Keyboard | None
    model_chars: int = 0  # how much of `text` is the model's words (message.model_chars)


class Voice:
    def __init__(self, outbox: Outbox, calendar: Calendar, manager_ids: tuple[int, ...],
                 now: Callable[[], datetime]) -> None:
        self.outbox = outbox
        self.calendar = calendar
        self.manager_ids = manager_ids
        self.now = now
        self.kept: list[_Reply] = []
        self.writer: asyncio.Task | None = None

    async def say(self, turn: Turn, text: str, buttons: Keyboard | None = None, status: str | None = None) -> None:
        """Queue what we say (marking what the turn answers, with the lead's new status) and send it now."""
        reply = _Reply(turn.lead.id, turn.answering, status, text, buttons, turn.model_chars(text))
        turn.answering = None
        if any(kept.lead_id == reply.lead_id for kept in self.kept) or not self._queue(reply):
            self.kept.append(reply)
            if self.writer is None or self.writer.done():
                self.writer = asyncio.get_running_loop().create_task(self._write())
            return
        await self.outbox.deliver(("lead", reply.lead_id))

    async def close(self) -> None:
        """Stop retrying the kept replies: their messages stay unanswered, and the next start answers them."""
        if self.writer is not None:
            self.writer.cancel()
            await asyncio.gather(self.writer, return_exceptions=True)

    def _queue(self, reply: _Reply) -> bool:
        try:
            with store.without_waiting(), store.transaction():
                if reply.answering is not None:
                    leads.mark_answered(reply.lead_id, reply.answering, reply.status)
                self.outbox.to_lead(reply.lead_id, reply.text, reply.buttons, model_chars=reply.model_chars)
        except StoreError as exc:
            log.warning("could not queue a reply to lead %s now (%s); kept, retrying", reply.lead_id, exc)
            return False
        return True

    async def _write(self) -> None:
        delay = RETRY_FIRST
        while self.kept:
            reply = self.kept[0]
            if not self._queue(reply):
                await self.outbox.sleep(delay)
                delay = min(delay * 2, RETRY_MOST)
                continue
            self.kept.pop(0)
            delay = RETRY_FIRST
            await self.outbox.deliver(("lead", reply.lead_id))

    async def note(self, lead_id: int, text: str) -> None:
        """Something said that answers nothing («Минутку…», the fallback after a failure)."""
        self.outbox.to_lead(lead_id, text)
        await self.outbox.deliver(("lead", lead_id))

    async def tell_managers(self, text: str) -> None:
        self.outbox.to_managers(text)
        for manager in self.manager_ids:
            await self.outbox.deliver(("chat", manager))

    def today(self) -> date:
        """Today in the business's zone: a lead reads «сегодня», «завтра» and no year for this one."""
        return self.now().astimezone(self.calendar.tz).date()

    def when(self, moment: datetime) -> str:
        """A meeting's time as the lead reads it: «в четверг, 26 ноября, в 11:00 по московскому времени»."""
        return texts.meeting_time(moment.astimezone(self.calendar.tz), self.today())


def joined(prefix: str | None, text: str) -> str:
    """Claude's reply, then what the engine says about the meeting, as one message."""
    return f"{prefix}\n\n{text}" if prefix else text
