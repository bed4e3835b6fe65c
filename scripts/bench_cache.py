#!/usr/bin/env python3
"""Benchmark: what prompt caching saves on a real conversation.

An 8-turn sales conversation goes through the real client (real SDK, real HTTP) against the local
Messages API stand-in, which bills caching as documented: an exact prefix match up to a
`cache_control` breakpoint, the model's minimum cacheable length, writes at 1.25x and reads at
0.1x of the input price. Prints the billed input-equivalent tokens with caching divided by the
same conversation uncached. Target: <= 0.30 with the packaged prompt and the default model.

    python scripts/bench_cache.py [--turns 8] [--model claude-sonnet-5-5] [--prompt FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from salesbot import llm
from salesbot.config import DEFAULT_MODEL, PACKAGED_PROMPT
from salesbot.pricing import CACHE_READ_FACTOR, CACHE_WRITE_FACTOR, min_cacheable_tokens
from scripts.fake_claude import CacheBiller, FakeClaude, Reply

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


async def conversation(api: FakeClaude, model: str, prompt: str, turns: int) -> list[llm.Usage]:
    client = llm.ClaudeClient(api_key="bench", base_url=api.url, model=model, fast_model=model, ledger=None)
    history: list[tuple[str, str]] = []
    usages = []
    try:
        for turn in range(turns):
            history.append(("user", LEAD_TURNS[turn % len(LEAD_TURNS)]))
            reply = {"reply": BOT_REPLIES[turn % len(BOT_REPLIES)], "status": "warm", "offer_meeting": turn == 6}
            api.enqueue(Reply(json.dumps(reply, ensure_ascii=False)))
            context = f"Служебно: сегодня вторник, 23 декабря 2025, 14:{turn:02d} (Europe/Moscow). Статус: warm."
            result = await client.complete(
                purpose="dialogue",
                system=client.cached_system(prompt, model),
                messages=llm.conversation_messages(history, context),
            )
            usages.append(result.usage)
            history.append(("assistant", reply["reply"]))
    finally:
        await client.close()
    return usages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--prompt", type=Path, default=PACKAGED_PROMPT)
    opts = parser.parse_args()
    prompt = opts.prompt.read_text(encoding="utf-8")

    with FakeClaude(billing=CacheBiller(min_cacheable_tokens(opts.model))) as api:
        usages = asyncio.run(conversation(api, opts.model, prompt, opts.turns))

    print(f"{'turn':>4} {'input':>7} {'cache write':>12} {'cache read':>11}")
    billed = uncached = 0.0
    for turn, usage in enumerate(usages, start=1):
        print(f"{turn:>4} {usage.input_tokens:>7} {usage.cache_creation_input_tokens:>12} "
              f"{usage.cache_read_input_tokens:>11}")
        billed += (usage.input_tokens + CACHE_WRITE_FACTOR * usage.cache_creation_input_tokens
                   + CACHE_READ_FACTOR * usage.cache_read_input_tokens)
        uncached += usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
    ratio = billed / uncached
    print(f"model {opts.model}, minimum cacheable {min_cacheable_tokens(opts.model)} tokens, {opts.turns} turns")
    print(f"billed input-equivalent tokens: {billed:,.0f} with caching, {uncached:,.0f} without")
    print(f"ratio with/without caching: {ratio:.3f} (target <= 0.30) {'ok' if ratio <= 0.30 else 'MISSED'}")
    sys.exit(0 if ratio <= 0.30 else 1)


if __name__ == "__main__":
    main()
