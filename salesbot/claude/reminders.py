"""Reminders the model writes: one short message that continues the conversation where the lead went
quiet, from the same playbook and rules as the dialogue (so the system prompt's cache is shared).

The sweep (followups.py) asks once per lead it is about to remind; whatever comes back is checked like a
reply (prompts.reminder_problem: not blank, short, no tag, schema name or instruction quoted), and
anything short of a usable text — Claude down, over budget, an answer that fails the check — is None:
the sweep then sends the template from texts.py. Each call is one `llm_call` row, purpose `reminder`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from salesbot.claude import prompts
from salesbot.errors import LLMUnavailable

log = logging.getLogger(__name__)

PURPOSE = "reminder"


class ReminderWriter:
    def __init__(self, client: Any, prompt: str) -> None:
        self.client = client
        self.prompt = prompt

    async def write(self, history: Sequence[tuple[str, str]], *, step: int, hours: int, with_slots: bool,
                    first_name: str | None, lead_id: int) -> str | None:
        """The reminder's text, or None (the caller falls back to the template)."""
        if not history:
            return None  # nothing to continue: the template says it as well
        instruction = prompts.reminder_instruction(step, hours, with_slots, first_name)
        try:
            result = await self.client.complete(
                purpose=PURPOSE,
                system=prompts.system_blocks(self.prompt, "5m"),
                messages=prompts.reminder_messages(history, instruction),
                schema=prompts.REMINDER_SCHEMA,
                check=prompts.reminder_problem,
                answer_tokens=prompts.REMINDER_ANSWER_TOKENS,
                lead_id=lead_id,
            )
        except LLMUnavailable as exc:
            log.warning("reminder for lead %s: the template instead (%s)", lead_id, exc)
            return None
        return result.data["text"].strip()
