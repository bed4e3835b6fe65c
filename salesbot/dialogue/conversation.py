"""What a Claude turn is given: the conversation so far and the context block (the lead, the time,
what the lead sees on screen)."""

from __future__ import annotations

from datetime import datetime

from salesbot import texts
from salesbot.claude import prompts
from salesbot.dialogue.turn import DialogueConfig, command_of
from salesbot.store import leads, outbox
from salesbot.store.leads import STATE_CONFIRM_CANCEL, STATE_CONFIRM_TIME, STATE_CUSTOM_TIME, LeadState, MeetingState
from salesbot.time.slots import Calendar

STEPS = {STATE_CUSTOM_TIME: "own_time", STATE_CONFIRM_TIME: "confirm_time", STATE_CONFIRM_CANCEL: "confirm_cancel"}


def _not_conversation(role: str, text: str) -> bool:
    """Commands and notes («Минутку», the fallback while Claude was down) are not conversation."""
    return (role == "lead" and command_of(text) is not None) or (role == "bot" and text in (texts.ONE_MOMENT,
                                                                                      texts.FALLBACK))


def history(lead_id: int, upto: int, config: DialogueConfig) -> list[tuple[str, str]]:
    """The conversation up to message `upto` (ours included), as much of it as the window sends
    (positions counted from the lead's first message, so the start stays put and the prefix stays
    cached), the lead's messages still unanswered last (leads.recent_messages: each lead message is
    answered once). A bot message is split into the model's words (`assistant`) and the bot's own
    (`service`: the greeting, slot offers, «Правильно понял…», «записал вас…»), as
    message.model_chars says."""
    total = leads.count_messages(lead_id, upto)
    keep = total - prompts.window_start(total, config.history_turns)
    return prompts.history_of(leads.recent_messages(lead_id, upto, keep), config.max_chars, _not_conversation)


def context(lead: LeadState, meeting: MeetingState | None, now: datetime, calendar: Calendar) -> str:
    tz = calendar.tz
    now = now.astimezone(tz)
    # for Claude the absolute date and year (it also gets today's): no «завтра» to misread
    booked = texts.describe(meeting.starts_at.astimezone(tz)) if meeting else None
    pending = texts.describe(lead.pending_time.astimezone(tz)) if lead.pending_time else None
    keyboard = outbox.showing(lead.id)
    slots = [b.label for row in keyboard or [] for b in row if b.data.startswith("s:")]
    step = STEPS.get(lead.state or "")
    day = texts.day_phrase(lead.pending_day, now.date()) if lead.pending_day else None
    showing = prompts.showing(step, pending, day, slots)
    return prompts.context_block(texts.describe(now), lead.first_name, lead.status, booked,
                                 leads.summary_of(lead.id), showing)
