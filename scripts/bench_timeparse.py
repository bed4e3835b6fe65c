#!/usr/bin/env python3
"""Benchmark: the meeting-time rules on the test corpus (tests/timeparse_corpus.py).

Prints phrases per second, the median time a phrase, the share of realistic phrases the rules
resolve to the right time without Claude, and every wrong date (a refusal is never wrong; a date
other than the one meant, or a date where a refusal was due, is). Targets: >= 95% resolved by the
rules with no wrong date, median under 0.2 ms a phrase. The held-out phrases (never used to tune
the rules) are reported on their own. With dateparser installed (`pip install dateparser`; not a
dependency of salesbot), the same phrases are run through it for comparison.

    python scripts/bench_timeparse.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from salesbot.timeparse import parse_rules
from tests.timeparse_corpus import HELD_OUT, MEANT, NOW, REFUSED, TZ


def expected_at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=TZ)


def score(parse, meant, refused) -> tuple[int, list[tuple[str, str, str]]]:
    """(resolved right, wrong dates) for a parser `parse(phrase) -> aware datetime or None`."""
    resolved, wrong = 0, []
    for phrase, expected in meant:
        got = parse(phrase)
        if got is not None and got == expected_at(expected):
            resolved += 1
        elif got is not None:
            wrong.append((phrase, expected, got.isoformat()))
    for phrase, kind in refused:
        got = parse(phrase)
        if got is not None:
            wrong.append((phrase, kind, got.isoformat()))
    return resolved, wrong


def rules(phrase: str) -> datetime | None:
    return parse_rules(phrase, NOW, TZ)[0].when


def timed(parse, phrases: list[str], rounds: int) -> list[float]:
    per_phrase = []
    for phrase in phrases:
        began = time.perf_counter()
        for _ in range(rounds):
            parse(phrase)
        per_phrase.append((time.perf_counter() - began) / rounds)
    return per_phrase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    opts = parser.parse_args()

    resolved, wrong = score(rules, MEANT, REFUSED)
    held_resolved, held_wrong = score(rules, HELD_OUT, [])
    phrases = [p for p, _ in MEANT + REFUSED]
    per_phrase = timed(rules, phrases, opts.rounds)
    median_ms = statistics.median(per_phrase) * 1000
    share = resolved / len(MEANT)

    print(f"corpus: {len(MEANT)} realistic phrases, {len(REFUSED)} that must be refused")
    print(f"resolved by rules alone: {resolved}/{len(MEANT)} = {share:.1%} (target >= 95%)")
    print(f"wrong dates: {len(wrong)} (target 0)")
    for phrase, expected, got in wrong + held_wrong:
        print(f"  {phrase!r}: expected {expected}, got {got}")
    print(f"held-out phrases (not used to tune the rules): {held_resolved}/{len(HELD_OUT)} resolved, "
          f"{len(held_wrong)} wrong, the rest refused (they would go to the Claude fallback)")
    print(f"speed: {len(phrases) / sum(per_phrase):,.0f} phrases/s, median {median_ms:.3f} ms a phrase "
          f"(target < 0.2 ms), slowest {max(per_phrase) * 1000:.3f} ms")
    compare_dateparser(opts.rounds)
    ok = share >= 0.95 and not wrong and median_ms < 0.2
    sys.exit(0 if ok else 1)


def compare_dateparser(rounds: int) -> None:
    try:
        import dateparser
    except ImportError:
        print("dateparser: not installed (pip install dateparser to compare)")
        return
    settings = {"RELATIVE_BASE": NOW.replace(tzinfo=None), "PREFER_DATES_FROM": "future", "TIMEZONE": TZ.key,
                "RETURN_AS_TIMEZONE_AWARE": True}

    def parse(phrase: str) -> datetime | None:
        got = dateparser.parse(phrase, languages=["ru", "en"], settings=settings)
        return got.astimezone(TZ) if got else None

    resolved, wrong = score(parse, MEANT + HELD_OUT, REFUSED)
    per_phrase = timed(parse, [p for p, _ in MEANT + REFUSED], max(1, rounds // 20))
    print(f"dateparser {dateparser.__version__} on the same phrases: {resolved}/{len(MEANT) + len(HELD_OUT)} "
          f"resolved, {len(wrong)} wrong dates, median {statistics.median(per_phrase) * 1000:.2f} ms a phrase")


if __name__ == "__main__":
    main()
