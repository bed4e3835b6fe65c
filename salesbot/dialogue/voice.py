"""How the engine speaks: a reply queued in the outbox (marking what it answers, in one transaction)
and sent at once; notices to managers; a meeting's time as the lead reads it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from salesbot import store, texts
from salesbot.delivery import Outbox
from salesbot.dialogue.turn import Turn
from salesbot.store import leads
from salesbot.time.slots import Calendar
from salesbot.transport import Keyboard


class Voice:
    def __init__(self, outbox: Outbox, calendar: Calendar, manager_ids: tuple[int, ...],
                 now: Callable[[], datetime]) -> None:
        self.outbox = outbox
        self.calendar = calendar
        self.manager_ids = manager_ids
        self.now = now

    async def say(self, turn: Turn, text: str, buttons: Keyboard | None = None, status: str | None = None) -> None:
        """Queue what we say (marking what the turn answers, with the lead's new status) and send it now."""
        lead_id = turn.lead.id
        with store.transaction():
            if turn.answering is not None:
                leads.mark_answered(lead_id, turn.answering, status)
                turn.answering = None
            self.outbox.to_lead(lead_id, text, buttons, model_chars=turn.model_chars(text))
        await self.outbox.deliver(("lead", lead_id))

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
