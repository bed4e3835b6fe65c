"""Recording fakes for the dialogue engine: a Transport and a DialogueLLM."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import time, timedelta
from zoneinfo import ZoneInfo

from salesbot.delivery import Outbox
from salesbot.dialogue import Answer, Dialogue, DialogueConfig, Incoming, Sender
from salesbot.time import parse as timeparse
from salesbot.time.slots import Calendar
from salesbot.transport import Keyboard, Peer

MSK = ZoneInfo("Europe/Moscow")
NOW = "2025-12-23 11:05:00"  # the tests' frozen moment, in UTC: a Tuesday, 14:05 in Moscow
CALENDAR = Calendar(tz=MSK, work_days=frozenset(range(5)), opens=time(10), closes=time(19),
                    slot=timedelta(minutes=60), min_notice=timedelta(minutes=120))


@dataclass
class Sent:
    peer: Peer
    text: str
    buttons: Keyboard | None

    @property
    def labels(self) -> list[str]:
        return [b.label for row in self.buttons or [] for b in row]

    def data_of(self, label: str) -> str:
        return next(b.data for row in self.buttons or [] for b in row if b.label == label)


class RecordingTransport:
    """delivery.Transport that records; `fail` makes the next sends raise (one error each)."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.fail: list[BaseException] = []
        self.removed: list[tuple[Peer, int]] = []
        self.ids = iter(range(500, 10**9))

    async def send(self, peer: Peer, text: str, buttons: Keyboard | None, random_id: int) -> int:
        if self.fail:
            raise self.fail.pop(0)
        self.sent.append(Sent(peer, text, buttons))
        return next(self.ids)

    async def remove_buttons(self, peer: Peer, message_id: int) -> None:
        self.removed.append((peer, message_id))

    def to(self, user_id: int) -> list[Sent]:
        return [s for s in self.sent if s.peer.user_id == user_id]

    @property
    def last(self) -> Sent:
        return self.sent[-1]


class FakeLLM:
    """Canned answers (or exceptions) in order; records what it was asked. Time parsing uses the
    real rules (no Claude fallback)."""

    def __init__(self) -> None:
        self.answers: deque = deque()
        self.calls: list[dict] = []
        self.gate: asyncio.Event | None = None  # when set, answer() waits for it

    def enqueue(self, *answers) -> FakeLLM:
        self.answers.extend(answers)
        return self

    async def answer(self, history, context, lead_id) -> Answer:
        self.calls.append({"history": list(history), "context": context, "lead_id": lead_id})
        if self.gate is not None:
            await self.gate.wait()
        item = self.answers.popleft() if self.answers else Answer("Понял вас!", "warm", False)
        if isinstance(item, BaseException):
            raise item
        return item

    async def parse_time(self, text, now, calendar, lead_id):
        return (timeparse.parse_rules(text, now, calendar.tz))[0]


class ManualSleep:
    """The outbox's waits (retries, pacing): recorded, and never really slept."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


def make_outbox(transport, managers=(777,), rate=1000.0, sleep=None) -> Outbox:
    return Outbox(transport, managers=tuple(managers), rate=rate, sleep=sleep or ManualSleep())


def make_engine(llm=None, transport=None, managers=(777,), max_chars=2000):
    llm = llm or FakeLLM()
    transport = transport or RecordingTransport()
    config = DialogueConfig(calendar=CALENDAR, manager_ids=tuple(managers), max_chars=max_chars)
    return Dialogue(llm, transport, config, outbox=make_outbox(transport, managers)), llm, transport


def tg(user_id=101, text="", *, button=None, media=None, private=True, first_name="Анна", username="anna",
       access_hash=5550001) -> Incoming:
    return Incoming(Sender(telegram_id=user_id, access_hash=access_hash, username=username, first_name=first_name),
                    text=text, button=button, media=media, private=private)


def run_frozen(coro):
    """Run `coro` (serve through the offline Telegram) with the clock frozen at NOW."""
    from freezegun import freeze_time

    with freeze_time(NOW, real_asyncio=True):
        return asyncio.run(coro)


def engine_with(llm):
    """What `serving` builds the engine from: a transport in, the engine with `llm` out (no managers)."""
    return lambda transport: make_engine(llm=llm, transport=transport, managers=())[0]
