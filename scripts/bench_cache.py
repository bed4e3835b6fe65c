#!/usr/bin/env python3
"""Benchmark: what prompt caching costs at the pace of a sales chat.

Sales conversations (8 lead messages each) go through the real engine's Claude side
(ClaudeDialogue, the real client and SDK over real HTTP) against the local Messages API stand-in,
which bills caching as documented (scripts/fake_claude.py: exact prefixes, each model's minimum,
5-minute and 1-hour entries that expire on a simulated clock, thinking at the requested effort).
Leads answer every 1 minute, 10 minutes or 2 hours; the bot is quiet: one conversation at a time,
the next lead writing one pace after the previous conversation ended, so the bot hears one message
per pace. Each pace is run with four cache layouts:

- none:   no breakpoints at all;
- 5m:     system prompt and history breakpoint with the 5-minute TTL (today's layout);
- 1h:     both with the 1-hour TTL;
- new:    salesbot's layout: the system prompt for an hour unless the bot is slower than that,
          the history breakpoint's TTL (or none) from how fast this lead answers (prompts.CachePlanner).

Prints dollars per 1,000 conversations at Anthropic's list prices (salesbot/pricing.py): the input
side (what caching changes) and the total with output, and the new layout's billed/uncached input
ratio. Targets: at each pace the new layout's input cost within 10% of the cheapest of {none, 5m,
1h}; at 10 minutes at most 0.45x today's (5m) layout; billed/uncached input <= 0.60 at 10 minutes
and <= 1.10 at 2 hours. `--isolated` runs each conversation on a cold bot instead (informational).

    python scripts/bench_cache.py [--conversations 20] [--model claude-sonnet-5-5] [--isolated]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from salesbot.claude import client as llm
from salesbot.claude import prompts
from salesbot.claude.dialogue import ClaudeDialogue
from salesbot.claude.pricing import Tokens, cost_usd, uncached_cost_usd
from salesbot.config import DEFAULT_MODEL, PACKAGED_PROMPT
from scripts.fake_claude import FakeClaude, Reply

LEAD_TURNS = [
    "Здравствуйте! Нам нужен сайт для сети кофеен, три точки в Казани.",
    "Сейчас есть страница во ВКонтакте и всё. Хотим меню, адреса и онлайн-заказ навынос.",
    "А сколько примерно будет стоить с онлайн-оплатой?",
    "Дороговато. Фрилансер предлагал за 60 тысяч.",
    "Понятно. А сроки какие, к весне успеете?",
    "Интеграция с iiko нужна, у нас касса на ней.",
    "Хорошо, давайте обсудим подробнее с руководителем проектов.",
    "Лучше в четверг после обеда.",
]
BOT_REPLIES = [
    "Здравствуйте! Отличная задача. Подскажите, сайт у вас уже есть или делаем с нуля?",
    "Понял: меню, адреса трёх кофеен и заказ навынос с оплатой онлайн. Это ближе к небольшому магазину.",
    "Ориентир — от 250 000 ₽ за интернет-магазин с онлайн-оплатой; точнее посчитаем после консультации.",
    "Бывает и так. У нас договор, поэтапная оплата и три месяца гарантийной поддержки после запуска.",
    "Типичный срок 8–12 недель, так что к весне реально, если начнём в ближайший месяц.",
    "С iiko работали, интеграцию обсудим на консультации — руководитель проектов оценит объём.",
    "Отлично! Выберите удобное время для видеозвонка на 30–40 минут:",
    "Записал. До встречи!",
]
PACES = (("1 min", 60.0), ("10 min", 600.0), ("2 h", 7200.0))
LAYOUTS = ("none", "5m", "1h", "new")


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class Fixed:
    """A layout that always asks for the same TTL (None: no breakpoint)."""

    def __init__(self, ttl: str | None) -> None:
        self.ttl = ttl

    def plan(self, key: Any, now: float, unknown: str | None) -> str | None:
        return self.ttl

    def used(self, key: Any, now: float, ttl: str | None) -> None:
        pass


def responder(body: dict[str, Any]) -> Reply:
    """The scripted reply for this turn, addressed to this lead (every conversation is its own)."""
    turn = sum(1 for m in body["messages"] if m["role"] == "user") - 1
    lead = body["messages"][0]["content"][0]["text"].rsplit("лид ", 1)[-1].split(".")[0]
    text = BOT_REPLIES[min(turn, len(BOT_REPLIES) - 1)] + f" (№{lead})"
    return Reply(json.dumps({"status": "warm", "offer_meeting": turn == 6, "meeting_action": "none", "summary": "",
                             "proposed_time": "", "handoff": False, "reply": text}, ensure_ascii=False))


async def run(layout: str, pace: float, conversations: int, model: str, prompt: str, isolated: bool) -> list[Tokens]:
    clock = SimClock()
    rows: list[dict[str, Any]] = []  # the ledger rows the client writes, one per call
    with FakeClaude(responder, clock=clock) as api:
        client = llm.ClaudeClient(api_key="bench", base_url=api.url, model=model, fast_model=model,
                                  ledger=rows.append, sleep=clock.sleep, clock=clock)
        dialogue = ClaudeDialogue(client, prompt)
        if layout != "new":
            dialogue.planner = Fixed(None if layout == "none" else layout)
        try:
            for lead in range(conversations):
                if isolated:
                    clock.now += 86_400  # a day later: nothing cached is left
                    dialogue.planner = dialogue.planner if layout != "new" else prompts.CachePlanner()
                history: list[tuple[str, str]] = []
                for turn, text in enumerate(LEAD_TURNS):
                    clock.now += pace
                    history.append(("user", text if turn else f"{text} Меня зовут Анна, лид {lead + 1}."))
                    context = prompts.context_block(f"вторник, 23 декабря 2025, 14:{turn:02d}", "Анна", "warm", None)
                    answer = await dialogue.answer(history, context, lead_id=lead + 1)
                    history.append(("assistant", answer.reply))
        finally:
            await client.close()
    assert all(row["attempts"] == 1 for row in rows), "a retry: the layout or the caps are wrong"
    return [Tokens(input=r["input_tokens"], output=r["output_tokens"], writes_5m=r["cache_creation_5m_input_tokens"],
                   writes_1h=r["cache_creation_1h_input_tokens"], reads=r["cache_read_input_tokens"]) for r in rows]


def dollars(model: str, calls: list[Tokens], conversations: int) -> tuple[float, float, float]:
    """(input $, total $, uncached input $) per 1,000 conversations."""
    total = sum(cost_usd(model, c) for c in calls)
    output = sum(cost_usd(model, Tokens(output=c.output)) for c in calls)
    uncached_input = sum(uncached_cost_usd(model, c) - cost_usd(model, Tokens(output=c.output)) for c in calls)
    scale = 1000 / conversations
    return (total - output) * scale, total * scale, uncached_input * scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--prompt", type=Path, default=PACKAGED_PROMPT)
    parser.add_argument("--isolated", action="store_true", help="every conversation on a cold bot")
    opts = parser.parse_args()
    prompt = opts.prompt.read_text(encoding="utf-8").strip()

    results: dict[tuple[str, str], tuple[float, float, float]] = {}
    for pace_name, pace in PACES:
        for layout in LAYOUTS:
            calls = asyncio.run(run(layout, pace, opts.conversations, opts.model, prompt, opts.isolated))
            results[(pace_name, layout)] = dollars(opts.model, calls, opts.conversations)

    print(f"{opts.model}, {opts.conversations} conversations of {len(LEAD_TURNS)} lead messages"
          f"{' (each on a cold bot)' if opts.isolated else ''}; $ per 1,000 conversations, input (total with output)")
    print(f"| pace | {' | '.join(LAYOUTS)} | new vs cheapest | new vs 5m | billed/uncached input (new) |")
    print("|---" * (len(LAYOUTS) + 4) + "|")
    ok = True
    for pace_name, _ in PACES:
        cells = [f"{results[(pace_name, layout)][0]:.2f} ({results[(pace_name, layout)][1]:.2f})" for layout in LAYOUTS]
        new_input, _, uncached = results[(pace_name, "new")]
        cheapest = min(results[(pace_name, layout)][0] for layout in ("none", "5m", "1h"))
        vs_cheapest, ratio = new_input / cheapest, new_input / uncached
        vs_today = new_input / results[(pace_name, "5m")][0]
        ok &= vs_cheapest <= 1.10
        if pace_name == "10 min":
            ok &= vs_today <= 0.45 and ratio <= 0.60
        if pace_name == "2 h":
            ok &= ratio <= 1.10
        print(f"| {pace_name} | {' | '.join(cells)} | {vs_cheapest:.2f}x | {vs_today:.2f}x | {ratio:.2f} |")
    print("targets: new within 1.10x of the cheapest at each pace; at 10 min <= 0.45x of 5m and billed/uncached "
          f"<= 0.60; at 2 h billed/uncached <= 1.10: {'ok' if ok else 'MISSED'}")
    sys.exit(0 if ok or opts.isolated else 1)


if __name__ == "__main__":
    main()
