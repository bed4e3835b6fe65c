#!/usr/bin/env python3
"""Benchmark: `salesbot funnel` on 100,000 leads, as a whole process, without ANALYZE.

The database is filled as scripts/bench_cli.py fills it (100k leads, 1M messages, 500k Claude calls),
then given what the funnel reads: a source on most leads (eight deep links), the bot's first answer,
a status history (creation, and warm/hot steps as the leads' statuses imply), and 20,000 meetings
of every status. Then `funnel` (a table with bars), `funnel --json`, `funnel --by week --json` and
`funnel --since` are timed as separate processes. Target: each under 2 s.

    python scripts/bench_funnel.py [--leads 100000] [--messages 1000000] [--calls 500000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bench_cli import HASH, console, fill, timed

SOURCES = ("vk_ads", "yandex_direct", "site", "avito", "instagram", "telegram_channel", "friends", "expo_2025")


def fill_owner(path: Path, leads: int) -> None:
    """What the funnel reads beyond bench_cli's data, in SQL (no Python loop), no ANALYZE."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = off")
    h = HASH.format(n="id")
    cases = " ".join(f"WHEN {i} THEN '{source}'" for i, source in enumerate(SOURCES))
    conn.execute(f"UPDATE lead SET source = CASE {h} % 10 {cases} ELSE NULL END,"
                 f" first_answer_at = CASE WHEN {h} % 20 THEN datetime(created_at, '+' || ({h} % 90) || ' seconds')"
                 " END")
    conn.execute("INSERT INTO lead_status_change (lead_id, at, from_status, to_status)"
                 " SELECT id, created_at, NULL, 'new' FROM lead")
    conn.execute("INSERT INTO lead_status_change (lead_id, at, from_status, to_status)"
                 " SELECT id, datetime(created_at, '+5 minutes'), 'new', 'warm' FROM lead"
                 " WHERE status IN ('warm', 'hot', 'cold')")
    conn.execute("INSERT INTO lead_status_change (lead_id, at, from_status, to_status)"
                 " SELECT id, datetime(created_at, '+30 minutes'), 'warm', 'hot' FROM lead WHERE status = 'hot'")
    conn.execute("INSERT INTO lead_status_change (lead_id, at, from_status, to_status)"
                 " SELECT id, last_message_at, 'warm', 'cold' FROM lead WHERE status = 'cold'")
    i = HASH.format(n="i")
    conn.execute(f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
        INSERT OR IGNORE INTO meeting (lead_id, starts_at, status, source, created_at)
        SELECT {i} % {leads} + 1, datetime('2025-01-01', '+' || i || ' hours'),
               CASE i % 4 WHEN 0 THEN 'done' WHEN 1 THEN 'no_show' WHEN 2 THEN 'cancelled' ELSE 'done' END,
               'slot', datetime('2025-01-01', '+' || i || ' hours', '-2 days')
        FROM n""")
    conn.commit()
    assert not conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone()[0]
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.db"
        began = time.perf_counter()
        fill(path, opts.leads, opts.messages, opts.calls)
        fill_owner(path, opts.leads)
        console.print(f"filled {opts.leads:,} leads, {opts.messages:,} messages, {opts.calls:,} Claude calls, "
                      f"20,000 meetings in {time.perf_counter() - began:.1f} s")
        env = {**os.environ, "SALESBOT_HOME": str(Path(tmp) / "home"), "SALESBOT_DB": str(path), "COLUMNS": "160"}
        results = []
        for label, args in [
            ("funnel (table, bars)", ["funnel"]),
            ("funnel --json", ["funnel", "--json"]),
            ("funnel --by week --json", ["funnel", "--by", "week", "--json"]),
            ("funnel --since 2025-06-01 --json", ["funnel", "--since", "2025-06-01", "--json"]),
        ]:
            results.append((label, 2.0, *timed(args, env, opts.runs)))

    print(f"{'command':45} {'median':>8} {'best':>8} {'target':>8} {'max RSS':>9}")
    failed = False
    for label, target, median, best, peak in results:
        mark = "ok" if median < target else "SLOW"
        failed |= median >= target
        print(f"{label:45} {median:7.3f}s {best:7.3f}s {target:7.2f}s {peak:7.0f} MB  {mark}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
