#!/usr/bin/env python3
"""Benchmark: the operator commands as whole processes, on an empty and on a large database.

Fills a database with 100,000 leads, 1,000,000 messages (each bot message with its outbox row) and
a Claude ledger of 500,000 calls, then times `salesbot leads list` (cold, on an empty database),
`leads list --limit 50`, `leads list --json --status warm`, `leads show`, `meetings list`, `usage`,
and `leads list --limit 0` as a table and as JSON (every lead, streamed: its memory peak is printed
too) as separate processes, as an operator or a script would run them. The database is never
ANALYZEd (production databases never are): every plan must be good without statistics.

Targets: a cold `leads list` on an empty database under 0.4 s; each query on 100k leads under 0.5 s;
`leads list --limit 0 --json` under 2 s; memory flat (the peak barely moves between a tenth of the
leads and all of them).

    python scripts/bench_cli.py [--leads 100000] [--messages 1000000] [--calls 500000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console

from salesbot.store import open_database

console = Console(stderr=True)

# Deterministic pseudo-random numbers in SQL: a multiplicative hash of the row number.
HASH = "((({n}) * 2654435761) % 4294967296)"


def fill(path: Path, leads: int, messages: int, calls: int) -> int:
    """Fill the database with one INSERT…SELECT per table (recursive CTEs, no Python loop); return
    the id of a lead with a long conversation. No ANALYZE."""
    open_database(path).close()
    heavy = leads // 2
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = off")
    h = HASH.format(n="i")
    conn.execute(f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {leads})
        INSERT INTO lead (id, telegram_id, access_hash, username, first_name, status, created_at, last_message_at,
                          follow_up_count)
        SELECT i, 10000000 + i, {h} * 7919, 'user' || i, 'Лид ' || i,
               CASE {h} % 5 WHEN 0 THEN 'new' WHEN 3 THEN 'hot' WHEN 4 THEN 'cold' ELSE 'warm' END,
               datetime('2025-01-01', '+' || ({h} % 500000) || ' minutes'),
               datetime('2025-01-01', '+' || ({h} % 500000 + {h} % 10000) || ' minutes'),
               {h} % 3
        FROM n""")
    # 1% of the messages go to one long conversation; every bot message has its outbox row (sent).
    conn.execute(f"""
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {messages} - 1)
        INSERT INTO message (lead_id, role, text, created_at)
        SELECT CASE WHEN i % 100 = 0 THEN {heavy} ELSE {h} % {leads} + 1 END,
               CASE WHEN i % 2 THEN 'lead' ELSE 'bot' END,
               'Здравствуйте! Подскажите, пожалуйста, сколько стоит ваш тариф?',
               datetime('2025-01-01', '+' || i || ' seconds')
        FROM n""")
    conn.execute("""
        INSERT INTO outbox (lead_id, message_id, kind, text, random_id, state, attempts, not_before, created_at,
                            sent_at, telegram_message_id)
        SELECT lead_id, id, 'reply', text, id, 'sent', 1, created_at, created_at, created_at, id
        FROM message WHERE role = 'bot'""")
    conn.execute(f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
        INSERT OR IGNORE INTO meeting (lead_id, starts_at, source)
        SELECT {h} % {leads} + 1, datetime('now', '+' || i || ' hours'), 'slot' FROM n""")
    conn.execute(f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {calls})
        INSERT INTO llm_call (lead_id, purpose, model, input_tokens, output_tokens, cache_creation_input_tokens,
                              cache_read_input_tokens, cache_creation_5m_input_tokens, cache_creation_1h_input_tokens,
                              thinking_tokens, attempts, duration_ms, created_at, error)
        SELECT {h} % {leads} + 1, CASE WHEN i % 10 THEN 'dialogue' ELSE 'parse_time' END,
               CASE WHEN i % 10 THEN 'claude-sonnet-5-5' ELSE 'claude-haiku-5-5' END,
               20 + {h} % 400, 100 + {h} % 300, CASE WHEN i % 7 THEN 0 ELSE 3400 END, 3400 + {h} % 2000,
               CASE WHEN i % 14 THEN 0 ELSE 3400 END, CASE WHEN i % 7 = 0 AND i % 14 THEN 3400 ELSE 0 END,
               {h} % 100, 1, 800 + {h} % 3000, datetime('2025-01-01', '+' || (i * 60) || ' seconds'),
               CASE WHEN i % 500 THEN NULL ELSE 'overloaded' END
        FROM n""")
    conn.commit()
    analysed = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone()[0]
    assert not analysed, "the benchmark must run without statistics"
    conn.close()
    return heavy


# The child reports its own peak memory: VmHWM of /proc/self/status (its address space's high-water
# mark since exec). The parent's rusage would not do: Linux folds the forking parent's high-water mark
# into the child's ru_maxrss at exec, and this script is large once it has filled a database.
CHILD = """
import atexit, sys

def peak():
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                sys.stderr.write('\\nVmHWM ' + line.split()[1] + '\\n')

atexit.register(peak)
sys.argv = ['salesbot', *sys.argv[1:]]
from salesbot.cli import main
main()
"""


def timed(args: list[str], env: dict[str, str], runs: int) -> tuple[float, float, float]:
    """Median and best wall time of `salesbot ARGS` as a process, and its peak memory (MB).
    Its output goes to a file (as a script's redirect would); a --json answer is checked to parse."""
    times, peaks = [], []
    for _ in range(runs):
        with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
            began = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, stdout=stdout, stderr=stderr)
            times.append(time.perf_counter() - began)
            stderr.seek(0)
            errors = stderr.read().decode()
            if result.returncode != 0:
                raise SystemExit(f"salesbot {' '.join(args)} failed:\n{errors}")
            peaks.append(int(errors.rsplit("VmHWM ", 1)[1].split()[0]) / 1024)
            if "--json" in args and len(times) == 1:
                stdout.seek(0)
                json.load(stdout)
    return statistics.median(times), min(times), max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SALESBOT_HOME": str(Path(tmp) / "empty"), "COLUMNS": "160"}
        env.pop("SALESBOT_DB", None)
        timed(["leads", "list"], env, 1)  # creates the empty database; bytecode is warm from here on
        results = [("leads list (empty database)", 0.4, *timed(["leads", "list"], env, opts.runs))]

        databases = {}
        for leads in (opts.leads // 10, opts.leads):
            path = Path(tmp) / f"big-{leads}.db"
            began = time.perf_counter()
            heavy = fill(path, leads, opts.messages * leads // opts.leads, opts.calls * leads // opts.leads)
            console.print(f"filled {leads:,} leads, {opts.messages * leads // opts.leads:,} messages, "
                          f"{opts.calls * leads // opts.leads:,} Claude calls in {time.perf_counter() - began:.1f} s")
            databases[leads] = (path, heavy)
        path, heavy = databases[opts.leads]
        env = {**env, "SALESBOT_DB": str(path)}
        for label, args in [
            ("leads list --limit 50", ["leads", "list", "--limit", "50"]),
            ("leads list --json --status warm", ["leads", "list", "--json", "--status", "warm"]),
            ("leads show (10 messages)", ["leads", "show", "1"]),
            (f"leads show ({opts.messages // 100:,} messages)", ["leads", "show", str(heavy), "--json"]),
            ("meetings list", ["meetings", "list"]),
            (f"usage ({opts.calls:,} calls)", ["usage"]),
            (f"usage --json ({opts.calls:,} calls)", ["usage", "--json"]),
        ]:
            results.append((label, 0.5, *timed(args, env, opts.runs)))
        for leads in (opts.leads // 10, opts.leads):
            env = {**env, "SALESBOT_DB": str(databases[leads][0])}
            for label, args, target in [(f"leads list --limit 0 --json ({leads:,})", ["leads", "list", "--limit", "0",
                                                                                    "--json"], 2.0),
                                        (f"leads list --limit 0 ({leads:,}, table)", ["leads", "list", "--limit",
                                                                                    "0"], None)]:
                results.append((label, target, *timed(args, env, min(opts.runs, 3))))

    print(f"{'command':45} {'median':>8} {'best':>8} {'target':>8} {'max RSS':>9}")
    failed = False
    for label, target, median, best, peak in results:
        mark = "" if target is None else "ok" if median < target else "SLOW"
        failed |= target is not None and median >= target
        shown = "—" if target is None else f"{target:.2f}s"
        print(f"{label:45} {median:7.3f}s {best:7.3f}s {shown:>8} {peak:7.0f} MB  {mark}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
