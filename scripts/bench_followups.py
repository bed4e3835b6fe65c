#!/usr/bin/env python3
"""Benchmark: the reminder sweep over many leads.

Fills a database with 100,000 Telegram leads, most of them due for a reminder (the rest: hot, opted
out, spoke last, booked, too recent), then times a dry run and a real run (the sweep claims and
queues; delivery is serve's, measured by bench_delivery.py). Memory is measured with tracemalloc for the
full set and for a tenth of it: the rows are streamed, so the peak must not grow with the leads.
Targets: a dry run over 100k leads under 3 s; memory flat.

    python scripts/bench_followups.py [--leads 100000]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from salesbot import followups
from salesbot.store import db, open_database

NOW = datetime(2025, 12, 24, 9, 0, tzinfo=UTC)  # Wednesday 12:00 in Moscow: inside the send window


def fill(path: Path, leads: int) -> int:
    """Leads and their last two messages; returns how many should be due."""
    open_database(path).close()
    rng = random.Random(3)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = off")
    due = 0
    lead_rows, message_rows, meeting_rows = [], [], []
    for i in range(1, leads + 1):
        kind = rng.choices(["due1", "due2", "hot", "stopped", "spoke_last", "booked", "recent"],
                           [60, 20, 4, 4, 4, 4, 4])[0]
        wrote = NOW - timedelta(hours=30 + rng.randrange(100)) if kind != "recent" else NOW - timedelta(hours=2)
        count, last_follow_up = (1, str((NOW - timedelta(hours=26)).replace(tzinfo=None))) if kind == "due2" \
            else (0, None)
        status = "hot" if kind == "hot" else rng.choice(["new", "warm"])
        wrote_db = str(wrote.replace(tzinfo=None))
        lead_rows.append((i, 10_000_000 + i, rng.getrandbits(62), f"Лид {i}", status, wrote_db, wrote_db, count,
                          last_follow_up, int(kind == "stopped")))
        message_rows.append((i, "lead", "Сколько стоит?", wrote_db))
        if kind != "spoke_last":
            message_rows.append((i, "bot", "От 120 000 ₽.", str((wrote + timedelta(minutes=1)).replace(tzinfo=None))))
        if kind == "booked":
            meeting_rows.append((i, str((NOW + timedelta(days=2, minutes=i)).replace(tzinfo=None)), "slot"))
        due += kind in ("due1", "due2")
    conn.executemany("INSERT INTO lead (id, telegram_id, access_hash, first_name, status, created_at, last_message_at,"
                     " follow_up_count, last_follow_up_at, opted_out) VALUES (?,?,?,?,?,?,?,?,?,?)", lead_rows)
    conn.executemany("INSERT INTO message (lead_id, role, text, created_at) VALUES (?,?,?,?)", message_rows)
    conn.executemany("INSERT INTO meeting (lead_id, starts_at, source) VALUES (?,?,?)",
                     [(lead, start, source) for lead, start, source in meeting_rows])
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    return due


def measure(leads: int) -> dict[str, float]:
    policy = followups.Policy(tz=ZoneInfo("Europe/Moscow"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep.db"
        expected = fill(path, leads)
        open_database(path)
        plan = db.execute_sql("EXPLAIN QUERY PLAN " + followups._DUE_SQL,
                              ("x", "x", "x", 0, 1)).fetchall()
        uses_index = any("lead_follow_up" in str(row) for row in plan)

        tracemalloc.start()
        began = time.perf_counter()
        dry = followups.sweep(NOW, policy, dry_run=True, keep=0)
        dry_seconds = time.perf_counter() - began
        dry_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert dry.count("would_send") == expected == followups.count_due(NOW, policy)

        began = time.perf_counter()
        real = followups.sweep(NOW, policy, keep=0)
        real_seconds = time.perf_counter() - began
        assert expected == real.count("queued")
        again = followups.sweep(NOW, policy)
        assert sum(again.outcomes.values()) == 0  # never twice
        db.close()
    return {"due": expected, "dry": dry_seconds, "real": real_seconds, "dry_peak_mb": dry_peak / 2**20,
            "uses_index": uses_index}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    opts = parser.parse_args()
    small = measure(opts.leads // 10)
    full = measure(opts.leads)
    print(f"{opts.leads:,} leads, {full['due']:,} due (query uses the lead_follow_up index: {full['uses_index']})")
    print(f"dry run: {full['dry']:.2f} s (target < 3 s)")
    print(f"real run (claim and queue; serve delivers): {full['real']:.2f} s for {full['due']:,} reminders "
          f"({full['real'] / full['due'] * 1000:.3f} ms each)")
    print(f"dry-run memory peak (tracemalloc): {small['dry_peak_mb']:.1f} MB at {opts.leads // 10:,} leads, "
          f"{full['dry_peak_mb']:.1f} MB at {opts.leads:,} leads")
    sys.exit(0 if full["dry"] < 3 else 1)


if __name__ == "__main__":
    main()
