"""Reminders the model writes: one short message that continues the conversation where the lead went
quiet, from the same playbook and rules as the dialogue (so the system prompt's cache is shared).

The sweep (followups.py) asks once per lead it is about to remind; whatever comes back is checked like a
reply (prompts.reminder_problem: not blank, short, no tag, schema name or instruction quoted), and
anything short of a usable text — Claude down, over budget, an answer that fails the check — is None:
the sweep then sends the template from texts.py. Each call is one `llm_call` row, purpose `reminder`.

One sweep asks one lead after another, and a cron sweep must end: after MAX_FAILURES failed calls in a
row (Claude is down: each failure can take the whole call deadline) or once BUDGET_SECONDS of the
sweep have gone to Claude, the rest of that sweep's leads get the template without a call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from salesbot.claude import prompts
from salesbot.errors import LLMUnavailable

log = logging.getLogger(__name__)

PURPOSE = "reminder"
MAX_FAILURES = 3
BUDGET_SECONDS = 300.0


class ReminderWriter:
    def __init__(self, client: Any, prompt: str, *, budget: float = BUDGET_SECONDS, max_failures: int = MAX_FAILURES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.prompt = prompt
        self.clock = clock
        self.until = clock() + budget
        self.max_failures = max_failures
        self.failures = 0  # in a row
        self.stopped: str | None = None  # why the rest of the sweep gets templates

    async def write(self, history: Sequence[tuple[str, str]], *, step: int, hours: int, with_slots: bool,
                    first_name: str | None, lead_id: int) -> str | None:
        """The reminder's text, or None (the caller falls back to the template)."""
        if not history:
            return None  # nothing to continue: the template says it as well
        if self.stopped is None and self.clock() >= self.until:
            self.stopped = "the sweep's time for Claude is used up"
            log.warning("reminders: %s; the rest get the templates", self.stopped)
        if self.stopped is not None:
            return None
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
            self.failures += 1
            if self.failures >= self.max_failures:
                self.stopped = f"{self.failures} Claude calls failed in a row"
                log.warning("reminders: %s; the rest get the templates", self.stopped)
            return None
        self.failures = 0
        return result.data["text"].strip()
