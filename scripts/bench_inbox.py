"""Benchmark: the staff inbox under a burst, through `serve`, the real TelegramClient and the offline
Telegram with its forum supergroup (tests/fake_forum.py).

N leads write two messages each at the same moment. Claude answers at once. Measured:
- the leads' side: real seconds until every lead is answered (the group must not slow it);
- the group's side: virtual minutes until every lead's topic holds its card and all its lines
  (the group's clock is the fake's: a FLOOD_WAIT or the 20-a-minute pace costs no real time),
  the posts made for the lines (merging), the most posts in any 60 s, and FLOOD_WAITs met.
Targets: every lead answered within 5 s of real time; no more than 20 posts in any minute and no
FLOOD_WAIT; for 12 leads, every line in its topic within 5 minutes.

Run: python scripts/bench_inbox.py [--leads 12]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytest
from freezegun import freeze_time

from salesbot import runtime, telegram
from salesbot.config import load_settings
from salesbot.dialogue import Answer, Dialogue, DialogueConfig
from salesbot.inbox import Inbox, InboxConfig
from tests.engine_fakes import CALENDAR, make_outbox
from tests.fake_telegram import API_HASH, API_ID, BOT_TOKEN, FakeTelegram, serving, until


class EchoModel:
    async def answer(self, history, context, lead_id) -> Answer:
        return Answer(f"ответ на «{history[-1][1]}»", "warm", False)

    async def parse_time(self, text, now, calendar, lead_id):
        raise AssertionError("not used")


async def one_run(server: FakeTelegram, settings, leads: int) -> dict:
    group = server.add_group()

    def engine(transport):
        outbox = make_outbox(transport, ())
        inbox = Inbox(outbox, InboxConfig(calendar=CALENDAR, staff_chat=group.marked_id,
                                          takeover=timedelta(hours=12)))
        return Dialogue(EchoModel(), transport, DialogueConfig(calendar=CALENDAR), outbox=outbox, inbox=inbox)

    users = [server.add_user(10_000 + n, f"Лид{n:03d}", None) for n in range(leads)]

    def topic_lines(user) -> str:
        topic = next((t for t in group.topics.values() if t.title.startswith(user.first_name)), None)
        return "" if topic is None else "\n".join(p.text for p in group.in_topic(topic.id))

    def mirrored() -> bool:
        return all(topic_lines(u).count("👤") == 2 and topic_lines(u).count("🤖") == len(server.messages_to(u))
                   for u in users)

    async with serving(server, settings, engine):
        loop = asyncio.get_running_loop()  # real time (freezegun's real_asyncio leaves the loop's clock alone)
        started_real, started_virtual = loop.time(), server.clock.now()
        for user in users:
            server.write(user, f"{user.id}: здравствуйте")
            server.write(user, f"{user.id}: сколько стоит?")
        await until(lambda: all(server.texts_to(u) and server.texts_to(u)[-1].endswith("сколько стоит?»")
                                for u in users), timeout=120)
        answered = loop.time() - started_real
        await server.clock.run_until(mirrored, limit=3 * 3600)
        drained = (server.clock.now() - started_virtual) / 60
    times = group.bot_posts_at_all
    busiest = max((sum(1 for t in times if start <= t < start + 60) for start in times), default=0)
    floods = [e for e, _ in server.refusals if e.startswith("FLOOD_WAIT")]
    lines = sum(topic_lines(u).count("👤") + topic_lines(u).count("🤖") for u in users)
    return {"answered": answered, "drained": drained, "posts": len(times), "lines": lines, "busiest": busiest,
            "floods": len(floods), "topics": len(group.topics) - 1}


def measure(leads: int) -> dict:
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(telegram, "DRAIN_SECONDS", 0.2)
    with tempfile.TemporaryDirectory() as home:
        for key, value in {"SALESBOT_HOME": home, "TELEGRAM_API_ID": str(API_ID), "TELEGRAM_API_HASH": API_HASH,
                           "TELEGRAM_BOT_TOKEN": BOT_TOKEN, "ANTHROPIC_API_KEY": "sk-ant-bench-0000000000"}.items():
            monkeypatch.setenv(key, value)
        settings = load_settings(cwd=Path(home))
        database = runtime.open_store(settings)
        server = FakeTelegram()
        server.install(monkeypatch)
        try:  # frozen wall time that the fake's clock moves: the outbox and the group pace see its minutes
            with freeze_time(datetime.now(UTC), real_asyncio=True):
                return asyncio.run(one_run(server, settings, leads))
        finally:
            monkeypatch.undo()
            database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=12)
    opts = parser.parse_args()
    os.environ.setdefault("COLUMNS", "120")
    r = measure(opts.leads)
    print(f"{opts.leads} leads x 2 messages at once through serve and the offline Telegram's forum group")
    print(f"leads: every lead answered in {r['answered']:.2f} s of real time (target < 5 s)")
    print(f"group: {r['topics']} topics; {r['lines']} lines in {r['posts']} posts (cards and topics included) "
          f"within {r['drained']:.1f} virtual minutes; busiest minute {r['busiest']} posts (limit 20); "
          f"FLOOD_WAITs {r['floods']}")
    ok = r["answered"] < 5 and r["busiest"] <= 20 and r["floods"] == 0 and (opts.leads > 12 or r["drained"] <= 5)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
