"""`salesbot chat --demo`: the dialogue with canned answers instead of Claude, in-process.

No key, no network, no second process: a DialogueLLM whose answers follow a short sales script
(the web studio of the packaged playbook), and the rule-based time parser for the lead's own time
(no Claude fallback). Enough to walk through greeting → questions → the meeting offer → booking.
"""

from __future__ import annotations

from datetime import datetime

from salesbot.dialogue import Answer
from salesbot.time import parse as timeparse
from salesbot.time.slots import Calendar

# (reply, status, offer_meeting) for the lead's 1st, 2nd, 3rd and later messages
DEMO_REPLIES = [
    ("Здравствуйте! Рад помочь. Расскажите, пожалуйста, для какой задачи вы ищете решение?", "new", False),
    ("Понял вас. Под такую задачу подойдёт корпоративный сайт — от 120 000 ₽. Какие сроки для вас важны?", "warm",
     False),
    ("Отлично, это как раз наш профиль. Предлагаю бесплатную консультацию: руководитель проектов покажет похожие "
     "работы и назовёт точную цену. Выберите удобное время:", "hot", True),
]

# The same walk for any business: `chat --demo` with the business's own SALESBOT_PROMPT_FILE must
# not rehearse the web studio's prices.
NEUTRAL_REPLIES = [
    ("Здравствуйте! Рад помочь. Расскажите, пожалуйста, что вас интересует?", "new", False),
    ("Понял вас, спасибо. Подскажите, когда вам было бы удобно это обсудить?", "warm", False),
    ("Предлагаю бесплатную консультацию: специалист ответит на ваши вопросы и подскажет следующий шаг. "
     "Выберите удобное время:", "hot", True),
]


# Once the lead has a meeting: what is left to say (moving or cancelling is in the buttons under the
# booking confirmation, or in words: «перенесите на пятницу», «отмените встречу»).
AFTER_BOOKING = ("Встреча назначена — руководитель проектов подготовит примеры работ. Если планы изменятся, "
                 "её можно перенести или отменить: кнопками под подтверждением или просто напишите.", "hot", False)
BOOKED_MARK = "У клиента уже назначена встреча"  # how the engine's context says so (prompts.context_block)


def demo_reply(lead_turns: int, replies: list[tuple[str, str, bool]] = DEMO_REPLIES) -> tuple[str, str, bool]:
    """The canned answer to the lead's `lead_turns`-th message (the last one repeats)."""
    return replies[max(1, min(lead_turns, len(replies))) - 1]


class DemoDialogue:
    """A DialogueLLM (conversation.DialogueLLM) that never calls Claude."""

    def __init__(self, neutral: bool = False) -> None:
        self.calls = 0
        self.replies = NEUTRAL_REPLIES if neutral else DEMO_REPLIES

    async def answer(self, history: list[tuple[str, str]], context: str, lead_id: int) -> Answer:
        self.calls += 1
        booked = BOOKED_MARK in context
        turns = sum(1 for role, _ in history if role == "user")
        reply, status, offer = AFTER_BOOKING if booked else demo_reply(turns, self.replies)
        return Answer(reply=reply, status=status, offer_meeting=offer)

    async def parse_time(self, text: str, now: datetime, calendar: Calendar, lead_id: int) -> timeparse.ParseResult:
        return await timeparse.parse(text, now, calendar.tz, None, lead_id)
