"""The parse-time fallback: the fast model reads a phrase the rules could not place at all.

A time.parse.TimeReader. The rules stay the final word on what they understand; the model only gets
phrases they refused, and its answer is checked like any input (a time that has passed or lies past
FALLBACK_HORIZON_DAYS is not taken).
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from salesbot.claude import prompts
from salesbot.errors import LLMUnavailable
from salesbot.time.parse import FALLBACK_HORIZON_DAYS, Kind, ParseResult

log = logging.getLogger(__name__)


class ClaudeTimeReader:
    def __init__(self, claude: Any) -> None:
        self.claude = claude

    async def __call__(self, text: str, now: datetime, tz: ZoneInfo, lead_id: int | None = None) -> ParseResult:
        claude = self.claude
        local_now = now.astimezone(tz)
        try:
            answer = await claude.complete(
                purpose="parse_time", model=claude.fast_model, answer_tokens=prompts.FALLBACK_ANSWER_TOKENS,
                schema=prompts.FALLBACK_SCHEMA, lead_id=lead_id,
                messages=[{"role": "user", "content": prompts.fallback_prompt(text, local_now)}],
            )
        except LLMUnavailable as exc:
            log.warning("parse-time fallback unavailable: %s", exc)
            return ParseResult(text, "not_understood")
        return read_answer(text, answer.data, local_now, tz)


def read_answer(text: str, data: dict[str, Any], local_now: datetime, tz: ZoneInfo) -> ParseResult:
    if data["kind"] == "none":
        return ParseResult(text, "not_understood", source="claude")
    try:
        day = date.fromisoformat(data["date"] or "")
    except ValueError:
        return ParseResult(text, "not_understood", source="claude")
    if data["kind"] == "date_only":
        kind: Kind = "past" if day < local_now.date() else "need_time"
        return ParseResult(text, kind, source="claude", day=day if kind == "need_time" else None)  # kept
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", data["time"] or "")
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        return ParseResult(text, "not_understood", source="claude")
    moment = datetime.combine(day, time(int(m[1]), int(m[2])), tzinfo=tz)
    if moment <= local_now:
        return ParseResult(text, "past", source="claude")
    if moment > local_now + timedelta(days=FALLBACK_HORIZON_DAYS):
        return ParseResult(text, "not_understood", source="claude")
    return ParseResult(text, "ok", moment, "claude")
