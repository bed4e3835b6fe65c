"""The dialogue's Claude turn: the cached playbook, the conversation, one structured call.

`Answer` is what one turn of the dialogue schema (prompts.DIALOGUE_SCHEMA) says; the engine
(salesbot/dialogue/) decides what the lead sees from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from salesbot.claude import prompts
from salesbot.claude.timereader import ClaudeTimeReader
from salesbot.time import parse as timeparse
from salesbot.time.slots import Calendar


@dataclass
class Answer:
    reply: str
    status: str
    offer_meeting: bool
    meeting_action: str = "none"  # none | move | cancel: what the lead wants done with the booked meeting
    proposed_time: str = ""  # the lead's own words for a meeting time ("в пятницу в 11"), when written
    summary: str = ""  # what the model knows of the lead (need, budget, deadline, who decides, contact)
    handoff: bool = False  # the lead asks for a person, or the model cannot help: staff take over (inbox/)


class ClaudeDialogue:
    """The real DialogueLLM (dialogue/turn.py): one structured call a turn.

    It remembers when each prefix was last sent (prompts.CachePlanner) so every breakpoint gets the
    TTL the bot's and the lead's pace calls for.
    """

    def __init__(self, client: Any, prompt: str) -> None:
        self.client = client
        self.prompt = prompt
        self.planner = prompts.CachePlanner()
        self.reader = ClaudeTimeReader(client)

    async def answer(self, history: list[tuple[str, str]], context: str, lead_id: int) -> Answer:
        model = self.client.model
        now = self.client.clock()
        system_key, lead_key = prompts.prompt_key(model, self.prompt), ("lead", lead_id)
        system_ttl, history_ttl = prompts.ordered(self.planner.plan(system_key, now, unknown="1h"),
                                                  self.planner.plan(lead_key, now, unknown="5m"))
        messages = prompts.conversation_messages(history, context, history_ttl)
        result = await self.client.complete(
            purpose="dialogue",
            system=prompts.system_blocks(self.prompt, system_ttl),
            messages=messages,
            schema=prompts.DIALOGUE_SCHEMA,
            check=prompts.reply_problem,
            answer_tokens=prompts.DIALOGUE_ANSWER_TOKENS,
            lead_id=lead_id,
        )
        self.planner.used(system_key, now, system_ttl)
        self.planner.used(lead_key, now, history_ttl if prompts.has_history_breakpoint(messages) else None)
        data = result.data
        return Answer(reply=data["reply"], status=data["status"], offer_meeting=data["offer_meeting"],
                      meeting_action=data["meeting_action"], proposed_time=data["proposed_time"],
                      summary=data["summary"], handoff=bool(data.get("handoff", False)))

    async def parse_time(self, text: str, now: datetime, calendar: Calendar, lead_id: int) -> timeparse.ParseResult:
        return await timeparse.parse(text, now, calendar.tz, self.reader, lead_id)
