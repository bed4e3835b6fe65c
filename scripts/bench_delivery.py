"""Benchmark: delivery through `serve`, the real TelegramClient and the offline Telegram (tests/fake_telegram.py).

200 leads × 5 messages, each lead writing its next message once it has the answer to the last (a
conversation, so the engine's flood handling stays out of it). Claude answers at once; what is
measured is the way from the engine's decision to Telegram's acceptance: the outbox, the pacer,
Telethon's sender, MTProto encryption both ways, the fake server.

Two runs:
- throughput: every lead at once, so the pacer (Telegram's ~30 messages/s for the whole bot) is
  the bottleneck. Target: >= 25 messages/s, every chat's replies in order.
- latency: the leads' messages arrive at 20 a second in all (below the pace). Target: p95 of
  the added latency (reply queued → accepted by Telegram) under 100 ms, when nothing floods.

Run: python scripts/bench_delivery.py [--leads 200] [--messages 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytest

from salesbot import delivery, runtime
from salesbot.config import load_settings
from salesbot.delivery import Outbox
from salesbot.dialogue import Answer, Dialogue
from tests.engine_fakes import CALENDAR
from tests.fake_telegram import API_HASH, API_ID, BOT_TOKEN, FakeTelegram, serving, until


class EchoModel:
    """Claude at once: the reply names the message it answers, so order can be checked."""

    async def answer(self, history, context, lead_id) -> Answer:
        return Answer(f"ответ на «{history[-1][1]}»", "warm", False)

    async def parse_time(self, text, now, calendar, lead_id):
        raise AssertionError("not used")


async def one_run(server: FakeTelegram, settings, leads: int, messages: int, rate: float | None) -> dict:
    from salesbot.dialogue import DialogueConfig

    queued: dict[str, float] = {}
    accepted: dict[str, float] = {}
    real_queue = delivery.queue_to_lead

    def timed_queue(lead_id, text, now, buttons=None, kind="reply", **more):
        queued[text] = time.perf_counter()
        return real_queue(lead_id, text, now, buttons, kind, **more)

    delivery.queue_to_lead = timed_queue
    seen = 0

    def engine(transport):
        return Dialogue(EchoModel(), transport, DialogueConfig(calendar=CALENDAR), outbox=Outbox(transport))

    users = [server.add_user(10_000 + n, f"Лид {n}", None) for n in range(leads)]
    try:
        async with serving(server, settings, engine):
            began = time.perf_counter()
            pending = {user.id: 0 for user in users}

            def check_arrivals() -> None:
                nonlocal seen
                for sent in server.sent[seen:]:
                    accepted.setdefault(sent.text, time.perf_counter())
                seen = len(server.sent)

            async def lead(user) -> None:
                for n in range(messages):
                    if rate is not None:
                        await asyncio.sleep(max(0.0, began + (n * leads + users.index(user)) / rate
                                                - time.perf_counter()))
                    server.write(user, f"{user.id}:{n}")
                    await until(lambda n=n: len(server.messages_to(user)) > n, timeout=600)
                    check_arrivals()
                    pending[user.id] = n + 1

            watcher_stop = asyncio.Event()

            async def watch() -> None:
                while not watcher_stop.is_set():
                    check_arrivals()
                    await asyncio.sleep(0.002)

            watcher = asyncio.create_task(watch())
            await asyncio.gather(*(lead(user) for user in users))
            watcher_stop.set()
            await watcher
            elapsed = time.perf_counter() - began
    finally:
        delivery.queue_to_lead = real_queue
    in_order = all([m.text for m in server.messages_to(user)] == [f"ответ на «{user.id}:{n}»" for n in range(messages)]
                   for user in users)
    latencies = sorted(accepted[text] - queued[text] for text in queued if text in accepted)
    return {"sent": len(latencies), "elapsed": elapsed, "rate": len(latencies) / elapsed, "in_order": in_order,
            "p50": statistics.median(latencies) * 1000, "p95": latencies[int(len(latencies) * 0.95) - 1] * 1000}


def measure(leads: int, messages: int, rate: float | None) -> dict:
    monkeypatch = pytest.MonkeyPatch()
    with tempfile.TemporaryDirectory() as home:
        for key, value in {"SALESBOT_HOME": home, "TELEGRAM_API_ID": str(API_ID), "TELEGRAM_API_HASH": API_HASH,
                           "TELEGRAM_BOT_TOKEN": BOT_TOKEN, "ANTHROPIC_API_KEY": "sk-ant-bench-0000000000"}.items():
            monkeypatch.setenv(key, value)
        settings = load_settings(cwd=Path(home))
        database = runtime.open_store(settings)
        server = FakeTelegram()
        server.install(monkeypatch)
        try:
            return asyncio.run(one_run(server, settings, leads, messages, rate))
        finally:
            monkeypatch.undo()
            database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20.0, help="messages a second in the latency run")
    opts = parser.parse_args()
    os.environ.setdefault("COLUMNS", "120")
    burst = measure(opts.leads, opts.messages, None)
    paced = measure(opts.leads, opts.messages, opts.rate)
    print(f"{opts.leads} leads x {opts.messages} messages through serve, the real TelegramClient and the "
          f"offline Telegram; pacer {delivery.RATE:.0f} messages/s")
    print(f"throughput: {burst['sent']} replies in {burst['elapsed']:.1f} s = {burst['rate']:.1f} messages/s "
          f"(target >= 25), every chat in order: {burst['in_order']}")
    print(f"latency at {opts.rate:.0f} messages/s in: added latency (queued -> accepted) p50 {paced['p50']:.1f} ms, "
          f"p95 {paced['p95']:.1f} ms (target < 100 ms), in order: {paced['in_order']}")
    ok = burst["rate"] >= 25 and burst["in_order"] and paced["in_order"] and paced["p95"] < 100
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
