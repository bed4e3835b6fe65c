"""A lead Claude could not answer is answered for real once Claude is back.

The lead got the polite fallback once; the engine then tries again in the background, with backoff,
for about an hour (RETRY_DELAYS): each try answers the lead's unanswered messages quietly (no second
fallback, no «Минутку»). A lead who writes meanwhile is answered by that message's own turn, and
the retry stops, so each message is answered once. After the hour the lead is handed to staff: the
managers are told who waits and what they wrote. A restart resumes what is still unanswered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from salesbot import texts
from salesbot.dialogue.voice import Voice
from salesbot.store import leads

log = logging.getLogger(__name__)

RETRY_DELAYS = (30, 60, 120, 300, 600, 600, 600, 600, 600)  # seconds between tries: 3510 s, about an hour


class Retry:
    def __init__(self, resume: Callable[[int], Awaitable[None]], voice: Voice,
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self.resume = resume  # Dialogue.resume: the lead's unanswered messages, answered quietly
        self.voice = voice
        self.sleep = sleep
        self.tasks: dict[int, asyncio.Task] = {}

    def later(self, lead_id: int) -> None:
        """Try the lead again later (one retry per lead: a failure inside a retry changes nothing)."""
        if lead_id in self.tasks and not self.tasks[lead_id].done():
            return
        self.tasks[lead_id] = asyncio.get_running_loop().create_task(self._retry(lead_id))

    async def _retry(self, lead_id: int) -> None:
        try:
            for delay in RETRY_DELAYS:
                await self.sleep(delay)
                if leads.last_unanswered(lead_id) is None:
                    return  # answered meanwhile: the lead wrote again and Claude was back
                await self.resume(lead_id)
                if leads.last_unanswered(lead_id) is None:
                    log.info("lead %s answered after Claude came back", lead_id)
                    return
            lead, pending = leads.by_id(lead_id), leads.last_unanswered(lead_id)
            if lead is None or pending is None:
                return
            log.warning("lead %s still unanswered after an hour of retries: handed to the managers", lead_id)
            await self.voice.tell_managers(texts.manager_unanswered(lead.first_name, lead.id, lead.username,
                                                                    pending[1]))
        finally:
            if self.tasks.get(lead_id) is asyncio.current_task():
                del self.tasks[lead_id]

    async def close(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()
