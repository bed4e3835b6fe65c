#!/usr/bin/env python3
"""Benchmark: the operator commands as whole processes, on an empty and on a large database.

Fills a database with 100,000 leads and 1,000,000 messages, then times `salesbot leads list`
(cold, on an empty database), `leads list --limit 50`, `leads list --json --status warm` and
`leads show` as separate processes, as an operator or a script would run them.

Targets: a cold `leads list` on an empty database under 0.4 s; each query on 100k leads under 0.5 s.

    python scripts/bench_cli.py [--leads 100000] [--messages 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.progress import Progress

from salesbot.store import open_database

console = Console(stderr=True)


def fill(path: Path, leads: int, messages: int) -> int:
    """Fill the database; return the id of a lead with a long conversation."""
    open_database(path).close()
    rng = random.Random(7)
    start = datetime(2025, 1, 1)
    statuses = ["new", "warm", "warm", "hot", "cold"]
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = off")
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("leads", total=leads)
        rows = []
        for i in range(1, leads + 1):
            created = start + timedelta(minutes=rng.randrange(500_000))
            last = created + timedelta(minutes=rng.randrange(10_000))
            rows.append((i, 10_000_000 + i, rng.getrandbits(62), f"user{i}", f"Лид {i}", rng.choice(statuses),
                         str(created), str(last), rng.randrange(3)))
            if len(rows) == 10_000:
                conn.executemany(
                    "INSERT INTO lead (id, telegram_id, access_hash, username, first_name, status, created_at,"
                    " last_message_at, follow_up_count) VALUES (?,?,?,?,?,?,?,?,?)", rows)
                progress.advance(task, len(rows))
                rows = []
        conn.commit()
        heavy = leads // 2
        task = progress.add_task("messages", total=messages)
        batch = []
        for n in range(messages):
            lead_id = heavy if n % 100 == 0 else rng.randrange(1, leads + 1)  # 1% to one long conversation
            role = "lead" if n % 2 else "bot"
            batch.append((lead_id, role, "Здравствуйте! Подскажите, пожалуйста, сколько стоит ваш тариф?",
                          str(start + timedelta(seconds=n))))
            if len(batch) == 50_000:
                conn.executemany("INSERT INTO message (lead_id, role, text, created_at) VALUES (?,?,?,?)", batch)
                progress.advance(task, len(batch))
                batch = []
        conn.commit()
        meetings = [(rng.randrange(1, leads + 1), str(datetime.now() + timedelta(hours=rng.randrange(1, 500))),
                     "slot") for _ in range(2_000)]
        conn.executemany("INSERT INTO meeting (lead_id, starts_at, source) VALUES (?,?,?)", meetings)
        conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    return heavy


def timed(args: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "salesbot", *args], env=env, capture_output=True)
        times.append(time.perf_counter() - began)
        if result.returncode != 0:
            raise SystemExit(f"salesbot {' '.join(args)} failed:\n{result.stderr.decode()}")
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SALESBOT_HOME": str(Path(tmp) / "empty")}
        env.pop("SALESBOT_DB", None)
        timed(["leads", "list"], env, 1)  # creates the empty database; bytecode is warm from here on
        results = [("leads list (empty database)", 0.4, *timed(["leads", "list"], env, opts.runs))]

        db_path = Path(tmp) / "big.db"
        began = time.perf_counter()
        heavy = fill(db_path, opts.leads, opts.messages)
        console.print(f"filled {opts.leads:,} leads and {opts.messages:,} messages in "
                      f"{time.perf_counter() - began:.1f} s")
        env = {**env, "SALESBOT_DB": str(db_path)}
        for label, args in [
            ("leads list --limit 50", ["leads", "list", "--limit", "50"]),
            ("leads list --json --status warm", ["leads", "list", "--json", "--status", "warm"]),
            ("leads show (10 messages)", ["leads", "show", "1"]),
            (f"leads show ({opts.messages // 100:,} messages)", ["leads", "show", str(heavy), "--json"]),
            ("meetings list", ["meetings", "list"]),
        ]:
            results.append((label, 0.5, *timed(args, env, opts.runs)))

    print(f"{'command':45} {'median':>8} {'best':>8} {'target':>8}")
    failed = False
    for label, target, median, best in results:
        mark = "ok" if median < target else "SLOW"
        failed |= median >= target
        print(f"{label:45} {median:7.3f}s {best:7.3f}s {target:7.2f}s  {mark}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
