#!/usr/bin/env python3
"""Benchmark: the meeting-time rules on the test corpora.

A wrong datetime (a datetime other than the one meant, or a datetime where a refusal was due) is the
one failure that books the wrong meeting, so they come first, per corpus; a refusal is never wrong
(the phrase goes to the Claude fallback, or the lead is asked again). Then, per corpus, how many
phrases the rules answered right (the right datetime, or the right refusal and, for a day named with
no time, the right day) and how many they refused. Corpora:

- tuning: tests/timeparse_corpus.py (MEANT, REFUSED and RANGES), the phrases the rules were written against;
- held-out 1: its HELD_OUT list, written after the first rules and never used to tune them;
- held-out 2: tests/timeparse_heldout.py, written before the issue-12 rules and never used to tune them,
  with several reference "now"s;
- held-out 3: tests/timeparse_heldout3.py, written before the issue-19 rules (abbreviations, case
  endings, «в пол 11», «к часу», a date after the time, ISO, ranges and parts of a week) and never
  used to tune them.

A range («после 3», «на следующей неделе») is judged like a datetime: the window meant is correct,
another window is wrong (it would narrow the offered slots to the wrong ones).

Then the median time a phrase over all of them. Targets: no wrong datetime anywhere, >= 95% of the
tuning corpus's realistic phrases resolved by the rules, median under 0.2 ms a phrase (exit 1
otherwise). With dateparser installed (`pip install dateparser`; not a dependency of salesbot), the
same phrases are run through it for comparison.

    python scripts/bench_timeparse.py [--rounds 200] [--refused]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from datetime import time as clock
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from salesbot.time.parse import ParseResult, parse_rules
from tests.timeparse_corpus import HELD_OUT, MEANT, NOW, RANGES, REFUSED, TZ
from tests.timeparse_heldout import HELD_OUT_2, NOWS
from tests.timeparse_heldout3 import HELD_OUT_3

Case = tuple[datetime, str, str]  # (now, phrase, expected: "YYYY-MM-DD HH:MM" or a kind [+ " YYYY-MM-DD"])
CORPORA: dict[str, list[Case]] = {
    "tuning": [(NOW, p, e) for p, e in MEANT + REFUSED + RANGES],
    "held-out 1": [(NOW, p, e) for p, e in HELD_OUT],
    "held-out 2": [(NOWS[n], p, e) for n, p, e in HELD_OUT_2],
    "held-out 3": [(NOWS[n], p, e) for n, p, e in HELD_OUT_3],
}


def expected_at(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=TZ)
    except ValueError:
        return None


def range_text(result: ParseResult) -> str:
    """A range as the corpora write it: `range 2025-12-25 15:00-24:00`, `range 2025-12-29/2026-01-04 *`."""
    days = f"{result.day or '-'}" + (f"/{result.last_day}" if result.last_day else "")
    if result.period is None:
        return f"range {days} *"
    start, end = result.period
    return f"range {days} {start:%H:%M}-{'24:00' if end == clock.max else format(end, '%H:%M')}"


def judge(expected: str, when: datetime | None, kind: str | None = None, day=None,
          window: str | None = None) -> str:
    """'correct', 'wrong' (a datetime or a range that is not the one meant) or 'refused'."""
    meant = expected_at(expected)
    if when is not None:
        return "correct" if meant is not None and when == meant else "wrong"
    if window is not None:
        return "correct" if window == expected else "wrong"
    if meant is None and kind is not None:
        want_kind, _, want_day = expected.partition(" ")
        if kind == want_kind and (not want_day or str(day) == want_day):
            return "correct"
    return "refused"


def rules(now: datetime, phrase: str) -> ParseResult:
    return parse_rules(phrase, now, TZ)[0]


def score(cases: list[Case], verdict: Callable[[Case], tuple[str, str]]) -> dict[str, list]:
    out: dict[str, list] = {"correct": [], "wrong": [], "refused": []}
    for case in cases:
        outcome, got = verdict(case)
        out[outcome].append((case, got))
    return out


def rules_verdict(case: Case) -> tuple[str, str]:
    now, phrase, expected = case
    r = rules(now, phrase)
    window = range_text(r) if r.kind == "range" else None
    got = r.when.strftime("%Y-%m-%d %H:%M") if r.when else window or r.kind + (f" {r.day}" if r.day else "")
    return judge(expected, r.when, r.kind, r.day, window), got


def timed(cases: list[Case], rounds: int) -> list[float]:
    per_phrase = []
    for now, phrase, _ in cases:
        began = time.perf_counter()
        for _ in range(rounds):
            parse_rules(phrase, now, TZ)
        per_phrase.append((time.perf_counter() - began) / rounds)
    return per_phrase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--refused", action="store_true", help="list the phrases the rules refused")
    opts = parser.parse_args()

    results = {name: score(cases, rules_verdict) for name, cases in CORPORA.items()}
    print("WRONG datetimes and ranges (target 0 in every corpus):")
    for name, res in results.items():
        print(f"  {name}: {len(res['wrong'])}")
        for (now, phrase, expected), got in res["wrong"]:
            print(f"    {phrase!r} (now {now:%Y-%m-%d %H:%M}): expected {expected}, got {got}")
    print()
    for name, res in results.items():
        total = len(CORPORA[name])
        print(f"{name}: {len(res['correct'])}/{total} correct, {len(res['wrong'])} wrong, "
              f"{len(res['refused'])} refused (they would go to the Claude fallback or ask again)")
        if opts.refused:
            for (now, phrase, expected), got in res["refused"]:
                print(f"    refused {phrase!r} (now {now:%Y-%m-%d %H:%M}): expected {expected}, got {got}")
    meant_resolved = sum(1 for (_, _, e), _ in results["tuning"]["correct"] if expected_at(e))
    share = meant_resolved / len(MEANT)
    print(f"tuning, realistic phrases resolved by the rules alone: {meant_resolved}/{len(MEANT)} = {share:.1%} "
          f"(target >= 95%)")

    every_case = [case for cases in CORPORA.values() for case in cases]
    per_phrase = timed(every_case, opts.rounds)
    median_ms = statistics.median(per_phrase) * 1000
    print(f"speed: {len(every_case)} phrases, {len(every_case) / sum(per_phrase):,.0f} phrases/s, "
          f"median {median_ms:.3f} ms a phrase (target < 0.2 ms), slowest {max(per_phrase) * 1000:.3f} ms")
    compare_dateparser()
    ok = share >= 0.95 and not any(res["wrong"] for res in results.values()) and median_ms < 0.2
    sys.exit(0 if ok else 1)


def compare_dateparser() -> None:
    try:
        import dateparser
    except ImportError:
        print("dateparser: not installed (pip install dateparser to compare)")
        return

    def verdict(case: Case) -> tuple[str, str]:
        now, phrase, expected = case
        settings = {"RELATIVE_BASE": now.replace(tzinfo=None), "PREFER_DATES_FROM": "future", "TIMEZONE": TZ.key,
                    "RETURN_AS_TIMEZONE_AWARE": True}
        got = dateparser.parse(phrase, languages=["ru", "en"], settings=settings)
        when = got.astimezone(TZ) if got else None
        return judge(expected, when), str(when)

    for name, cases in CORPORA.items():
        res = score(cases, verdict)
        print(f"dateparser {dateparser.__version__}, {name}: {len(res['correct'])}/{len(cases)} correct "
              f"(refusals not told apart), {len(res['wrong'])} wrong")


if __name__ == "__main__":
    main()
