#!/usr/bin/env python3
"""Benchmark: the meeting-time rules on the test corpus (tests/timeparse_corpus.py).

Prints phrases per second, the median time a phrase, the share of realistic phrases the rules
resolve to the right time without Claude, and every wrong date (a refusal is never wrong; a date
other than the one meant, or a date where a refusal was due, is). Targets: >= 95% resolved by the
rules with no wrong date, median under 0.2 ms a phrase.

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
from tests.timeparse_corpus import MEANT, NOW, REFUSED, TZ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    opts = parser.parse_args()

    resolved, wrong = 0, []
    for phrase, expected in MEANT:
        result, _ = parse_rules(phrase, NOW, TZ)
        if result.ok:
            if result.when == datetime.strptime(expected, "%Y-%m-%d %H:%M").replace(tzinfo=TZ):
                resolved += 1
            else:
                wrong.append((phrase, expected, result.when.isoformat()))
    for phrase, kind in REFUSED:
        result, _ = parse_rules(phrase, NOW, TZ)
        if result.ok:
            wrong.append((phrase, kind, result.when.isoformat()))

    phrases = [p for p, _ in MEANT + REFUSED]
    per_phrase = []
    for phrase in phrases:
        began = time.perf_counter()
        for _ in range(opts.rounds):
            parse_rules(phrase, NOW, TZ)
        per_phrase.append((time.perf_counter() - began) / opts.rounds)
    total_time = sum(per_phrase)
    median_ms = statistics.median(per_phrase) * 1000
    share = resolved / len(MEANT)

    print(f"corpus: {len(MEANT)} realistic phrases, {len(REFUSED)} that must be refused")
    print(f"resolved by rules alone: {resolved}/{len(MEANT)} = {share:.1%} (target >= 95%)")
    print(f"wrong dates: {len(wrong)} (target 0)")
    for phrase, expected, got in wrong:
        print(f"  {phrase!r}: expected {expected}, got {got}")
    print(f"speed: {len(phrases) / total_time:,.0f} phrases/s, median {median_ms:.3f} ms a phrase "
          f"(target < 0.2 ms), slowest {max(per_phrase) * 1000:.3f} ms")
    ok = share >= 0.95 and not wrong and median_ms < 0.2
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
