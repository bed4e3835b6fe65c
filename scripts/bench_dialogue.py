#!/usr/bin/env python3
"""Benchmark: the dialogue engine under many leads at once.

200 leads each write 5 messages, every lead sending its next message when the previous answer
arrives, all leads at the same time; the language model is a stand-in that answers in 200 ms; the
store is a real SQLite file; the transport records and discards. Prints the wall time against the
ideal (5 x 200 ms), whether any lead's messages or answers came out of order, and the engine's own
CPU time per message. Targets: wall within 2x of the ideal, nothing reordered, overhead < 5 ms.

A second run sends each lead's 5 messages in one burst, to show the flood handling (one
"минутку" and one batched call instead of five calls).

    python scripts/bench_dialogue.py [--leads 200] [--messages 5] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from salesbot import texts
from salesbot.delivery import Outbox
from salesbot.dialogue import Answer, Dialogue, DialogueConfig, Incoming, Sender
from salesbot.store import Lead, Message, open_database
from salesbot.time.slots import Calendar


class SlowModel:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.calls = 0

    async def answer(self, history, context, lead_id) -> Answer:
        self.calls += 1
        await asyncio.sleep(self.latency)
        return Answer(f"ответ на «{history[-1][1]}»", "warm", False)

    async def parse_time(self, text, now, calendar, lead_id):
        raise AssertionError("not used")


class NullTransport:
    def __init__(self) -> None:
        self.received: dict[int, list[str]] = defaultdict(list)

    async def send(self, peer, text, buttons, random_id) -> int:
        self.received[peer.user_id].append(text)
        return len(self.received[peer.user_id])

    async def remove_buttons(self, peer, message_id) -> None:
        pass


def engine(latency: float) -> tuple[Dialogue, SlowModel, NullTransport]:
    calendar = Calendar(tz=ZoneInfo("Europe/Moscow"), work_days=frozenset(range(5)),
                        opens=datetime.min.time().replace(hour=10), closes=datetime.min.time().replace(hour=19),
                        slot=timedelta(hours=1), min_notice=timedelta(hours=2))
    model, transport = SlowModel(latency), NullTransport()
    # Telegram's pace (25 messages/s for the whole bot) is delivery's, measured by bench_delivery.py;
    # here the outbox sends as fast as the engine queues, so the figure is the engine's own.
    outbox = Outbox(transport, rate=1e9)
    return Dialogue(model, transport, DialogueConfig(calendar=calendar), outbox=outbox), model, transport


async def conversation(dialogue: Dialogue, user_id: int, messages: int) -> None:
    for n in range(messages):
        await dialogue.handle(Incoming(Sender(telegram_id=user_id, access_hash=user_id, first_name=f"Лид {user_id}"),
                                       text=f"сообщение {n}"))


async def burst(dialogue: Dialogue, user_id: int, messages: int) -> None:
    sender = Sender(telegram_id=user_id, access_hash=user_id, first_name=f"Лид {user_id}")
    await asyncio.gather(*(dialogue.handle(Incoming(sender, text=f"сообщение {n}")) for n in range(messages)))


def check_order(transport: NullTransport, leads: int, messages: int) -> int:
    """Leads whose stored messages or received answers are out of order."""
    bad = 0
    for lead in Lead.select().where(Lead.telegram_id.between(1, leads)):
        stored = [t for (t,) in Message.select(Message.text).where((Message.lead == lead) & (Message.role == "lead"))
                  .order_by(Message.id).tuples()]
        answers = [t for t in transport.received[lead.telegram_id] if t != texts.ONE_MOMENT]
        expected = [f"сообщение {n}" for n in range(messages)]
        quoted = [a.split("«", 1)[1].rstrip("»") for a in answers]
        if stored != expected or quoted != sorted(quoted, key=expected.index):
            bad += 1
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.2)
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        open_database(Path(tmp) / "bench.db")
        dialogue, model, transport = engine(opts.latency)

        async def run(kind) -> float:
            began = time.perf_counter()
            await asyncio.gather(*(kind(dialogue, user_id, opts.messages) for user_id in range(1, opts.leads + 1)))
            return time.perf_counter() - began

        cpu_began = time.process_time()
        wall = asyncio.run(run(conversation))
        cpu = time.process_time() - cpu_began
        total = opts.leads * opts.messages
        ideal = opts.messages * opts.latency
        reordered = check_order(transport, opts.leads, opts.messages)
        overhead_ms = cpu / total * 1000
        print(f"{opts.leads} leads x {opts.messages} messages, model latency {opts.latency * 1000:.0f} ms, "
              f"{model.calls} model calls")
        print(f"wall {wall:.2f} s, ideal {ideal:.2f} s: {wall / ideal:.2f}x (target <= 2x)")
        print(f"leads with messages or answers out of order: {reordered} (target 0)")
        print(f"engine CPU per message: {overhead_ms:.2f} ms (target < 5 ms; includes SQLite writes)")

        Message.delete().execute()
        Lead.delete().execute()
        dialogue, model, transport = engine(opts.latency)
        wall_burst = asyncio.run(run(burst))
        notes = sum(t == texts.ONE_MOMENT for texts_ in transport.received.values() for t in texts_)
        print(f"burst: {total} messages at once in {wall_burst:.2f} s with {model.calls} model calls "
              f"and {notes} 'минутку' notes")
        ok = wall <= 2 * ideal and reordered == 0 and overhead_ms < 5
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
