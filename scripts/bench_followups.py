#!/usr/bin/env python3
"""Benchmark: the reminder sweep on databases that were never analysed, as production's are.

Builds databases of 10,000, 100,000 and 1,000,000 Telegram leads with one INSERT…SELECT over a
recursive CTE (and one more per dependent table), never ANALYZE: most leads are due (step 1, step 2,
hot), the rest are not, each for one reason (opted out, a meeting, a reminder still queued, an
unanswered message, the lead spoke last, too recent, cold). Then:

1. the plan options for the due query at 100k leads, each timed over a full listing: the old query
   as it was (no hint) without statistics, after `PRAGMA optimize`, after a full `ANALYZE`; the
   new query without a hint, and with `INDEXED BY lead_reminder` (what salesbot runs);
2. the dry run (due listing with previews, reasons, next due) at each size: wall time, and memory
   peak (tracemalloc, a separate run) — it must not grow with the leads;
3. at 100k: the dry run's --json output written to a file, against the old per-action conversion;
   and a real run (claim and queue; serve delivers).

Targets: dry run at 100k under 3 s and at 1M under 30 s; memory flat.

    python scripts/bench_followups.py [--sizes 10000,100000,1000000] [--no-options] [--no-real]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import tracemalloc
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from time import perf_counter
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from salesbot import followups
from salesbot.store import db, open_database
from salesbot.time.slots import Calendar

NOW = datetime(2025, 12, 24, 9, 0, tzinfo=UTC)  # Wednesday 12:00 in Moscow: inside the send window
NOW_DB = "2025-12-24 09:00:00"
MSK = ZoneInfo("Europe/Moscow")
POLICY = followups.Policy(tz=MSK, calendar=Calendar(tz=MSK, work_days=frozenset(range(5)), opens=time(10),
                                                    closes=time(19), slot=timedelta(hours=1),
                                                    min_notice=timedelta(hours=2)))

# Each lead's kind, from a multiplicative hash of its id (deterministic, well spread): a share of 100.
KINDS = [  # (name, share, the reason it is not due, or None when due)
    ("due1", 52, None), ("due2", 15, None), ("hot", 5, None),
    ("booked", 4, "has_meeting"), ("stopped", 3, "opted_out"), ("queued", 3, "reminder_queued"),
    ("unanswered", 3, "owed_answer"), ("spoke_last", 4, "lead_spoke_last"),
    ("recent", 7, "not_silent_long_enough"), ("cold", 4, None),
]
BUCKET = "((l.id * 2654435761) % 4294967296) % 100"


def _kind_case() -> str:
    parts, upto = [], 0
    for name, share, _ in KINDS:
        upto += share
        parts.append(f"WHEN {BUCKET} < {upto} THEN '{name}'")
    assert upto == 100
    return "CASE " + " ".join(parts) + " END"


def fill(path: Path, leads: int) -> dict[str, int]:
    """The database, built in SQL; returns how many leads of each kind it holds."""
    open_database(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = off")
    conn.execute("PRAGMA journal_mode = off")
    conn.execute("CREATE TEMP TABLE kind (id INTEGER PRIMARY KEY, kind TEXT NOT NULL)")
    conn.execute(f"""
        WITH RECURSIVE n(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM n WHERE id < {leads})
        INSERT INTO kind (id, kind) SELECT l.id, {_kind_case()} FROM n AS l""")
    wrote = (f"datetime('{NOW_DB}', '-' || CASE k.kind WHEN 'recent' THEN 2 ELSE 30 + (k.id * 7919) % 100 END"
             " || ' hours')")
    conn.execute(f"""
        INSERT INTO lead (id, telegram_id, access_hash, username, first_name, status, created_at, last_message_at,
                          follow_up_count, last_follow_up_at, opted_out, cold_reason)
        SELECT k.id, 10000000 + k.id, k.id * 7919, 'user' || k.id,
               CASE WHEN k.id % 10 = 0 THEN NULL ELSE 'Лид ' || k.id END,
               CASE k.kind WHEN 'hot' THEN 'hot' WHEN 'booked' THEN 'hot' WHEN 'cold' THEN 'cold'
                           ELSE CASE k.id % 2 WHEN 0 THEN 'new' ELSE 'warm' END END,
               {wrote}, {wrote},
               CASE k.kind WHEN 'due2' THEN 1 WHEN 'queued' THEN 1 WHEN 'cold' THEN 2 ELSE 0 END,
               CASE k.kind WHEN 'due2' THEN datetime('{NOW_DB}', '-26 hours') WHEN 'cold' THEN '2025-12-01' END,
               k.kind = 'stopped', CASE k.kind WHEN 'cold' THEN 'no_reply' END
        FROM kind AS k ORDER BY k.id""")
    conn.execute("""
        INSERT INTO message (lead_id, role, text, created_at, unanswered)
        SELECT k.id, 'lead', 'Сколько стоит сайт?', l.last_message_at, k.kind = 'unanswered'
        FROM kind AS k JOIN lead AS l ON l.id = k.id ORDER BY k.id""")
    conn.execute("""
        INSERT INTO message (lead_id, role, text, created_at)
        SELECT k.id, 'bot', 'От 120 000 ₽. Для какого бизнеса?', datetime(l.last_message_at, '+1 minute')
        FROM kind AS k JOIN lead AS l ON l.id = k.id WHERE k.kind != 'spoke_last' ORDER BY k.id""")
    conn.execute("""
        INSERT INTO outbox (lead_id, message_id, kind, text, random_id, state, attempts, not_before, created_at,
                            sent_at)
        SELECT m.lead_id, m.id, 'reply', m.text, m.id, 'sent', 1, m.created_at, m.created_at, m.created_at
        FROM message AS m WHERE m.role = 'bot' ORDER BY m.id""")
    # Step 2 is due after a sent step 1; a queued step 1 waits for serve.
    conn.execute(f"""
        INSERT INTO message (lead_id, role, text, created_at)
        SELECT k.id, 'bot', 'Здравствуйте! Возвращаюсь к вашему вопросу', datetime('{NOW_DB}', '-26 hours')
        FROM kind AS k WHERE k.kind IN ('due2', 'queued') ORDER BY k.id""")
    conn.execute(f"""
        INSERT INTO outbox (lead_id, message_id, kind, text, random_id, state, attempts, not_before, created_at,
                            sent_at, follow_up_step)
        SELECT m.lead_id, m.id, 'reminder', m.text, m.id, CASE k.kind WHEN 'due2' THEN 'sent' ELSE 'queued' END,
               k.kind = 'due2', m.created_at, m.created_at, CASE k.kind WHEN 'due2' THEN m.created_at END,
               'follow_up_1'
        FROM message AS m JOIN kind AS k ON k.id = m.lead_id
        WHERE m.created_at = datetime('{NOW_DB}', '-26 hours') AND m.role = 'bot' ORDER BY m.id""")
    conn.execute(f"""
        INSERT INTO meeting (lead_id, starts_at, source)
        SELECT k.id, datetime('{NOW_DB}', '+2 days', '+' || k.id || ' minutes'), 'slot'
        FROM kind AS k WHERE k.kind = 'booked'""")
    counts = dict(conn.execute("SELECT kind, count(*) FROM kind GROUP BY kind").fetchall())
    conn.commit()
    assert not conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone()[0], \
        "the benchmark must run without statistics"
    conn.close()
    return counts


# The due query as it was before issue 14 (new and warm only; no hint), on the index it was meant for.
OLD_INDEX = ("CREATE INDEX IF NOT EXISTS lead_follow_up ON lead (id) WHERE status IN ('new', 'warm') AND opted_out = 0"
             " AND telegram_id IS NOT NULL AND access_hash IS NOT NULL AND follow_up_count < 2")
OLD_DUE_SQL = """
SELECT l.id, l.telegram_id, l.access_hash, l.first_name, l.follow_up_count, l.last_message_at,
       l.last_follow_up_at, l.status
FROM lead AS l
WHERE l.status IN ('new', 'warm') AND l.opted_out = 0 AND l.telegram_id IS NOT NULL
  AND l.access_hash IS NOT NULL AND l.follow_up_count < 2
  AND ((l.follow_up_count = 0 AND l.last_message_at <= :first)
       OR (l.follow_up_count = 1 AND l.last_follow_up_at <= :second))
  AND NOT EXISTS (SELECT 1 FROM meeting AS m WHERE m.lead_id = l.id AND m.status = 'booked' AND m.starts_at >= :now)
  AND (SELECT role FROM message AS x WHERE x.lead_id = l.id ORDER BY x.id DESC LIMIT 1) = 'bot'
  AND NOT EXISTS (SELECT 1 FROM message AS u WHERE u.lead_id = l.id AND u.unanswered = 1)
  AND coalesce((SELECT o.state FROM outbox AS o WHERE o.lead_id = l.id ORDER BY o.id DESC LIMIT 1), 'sent') = 'sent'
  AND l.id > :after
ORDER BY l.id
LIMIT :page
"""


PATIENCE = 30.0  # seconds: a plan slower than this is stopped, its pace reported (it took 13 minutes once)


def list_all(sql: str) -> tuple[int, float, str, bool]:
    """Every page of a due query: (rows, seconds, the plan's first line, stopped). A plan that needs
    more than PATIENCE seconds is stopped after the page that crossed it."""
    params = followups._params(NOW, POLICY, after=0, page=followups.PAGE)
    plan = db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    began, count = perf_counter(), 0
    while rows := db.execute_sql(sql, params).fetchall():
        count += len(rows)
        params["after"] = rows[-1][0]
        if perf_counter() - began > PATIENCE:
            return count, perf_counter() - began, plan[0][3], True
    return count, perf_counter() - began, plan[0][3], False


def options(path: Path) -> None:
    """The plan options for the due query, on a copy of the database (ANALYZE changes it)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "options.db"
        shutil.copy(path, copy)
        open_database(copy)
        db.execute_sql(OLD_INDEX)
        new_unhinted = followups._DUE_SQL.replace("INDEXED BY lead_reminder", "")
        runs = [("old query, no hint, no statistics (production before)", OLD_DUE_SQL),
                ("new query, no hint, no statistics", new_unhinted),
                ("new query, INDEXED BY lead_reminder, no statistics", followups._DUE_SQL)]
        for label, sql in runs:
            print(f"  {label:60} {_fmt(list_all(sql))}")
        began = perf_counter()
        db.execute_sql("PRAGMA optimize")
        print(f"  PRAGMA optimize took {perf_counter() - began:.2f} s; statistics now: "
              f"{_stat_rows()} rows in sqlite_stat1")
        print(f"  {'old query after PRAGMA optimize':60} {_fmt(list_all(OLD_DUE_SQL))}")
        began = perf_counter()
        db.execute_sql("ANALYZE")
        print(f"  ANALYZE took {perf_counter() - began:.2f} s")
        for label, sql in [("old query after ANALYZE", OLD_DUE_SQL), ("new query, no hint, after ANALYZE",
                                                                    new_unhinted),
                           ("new query, INDEXED BY, after ANALYZE", followups._DUE_SQL)]:
            print(f"  {label:60} {_fmt(list_all(sql))}")
        db.close()


def _stat_rows() -> int:
    try:
        return db.execute_sql("SELECT count(*) FROM sqlite_stat1").fetchone()[0]
    except Exception:  # no statistics table at all
        return 0


def _fmt(result: tuple[int, float, str, bool]) -> str:
    count, seconds, plan, stopped = result
    if stopped:
        return f"stopped after {seconds:.0f} s at {count:,} rows ({seconds / count * 1000:.1f} ms a row)  [{plan}]"
    return f"{seconds:7.2f} s  {count:>8,} rows  [{plan}]"


def dry_run(path: Path, counts: dict[str, int]) -> tuple[float, float]:
    """The dry run's wall time, and its memory peak in a second, traced run."""
    open_database(path)
    expected_due = sum(counts.get(name, 0) for name, _, reason in KINDS if reason is None and name != "cold")
    began = perf_counter()
    result = followups.sweep(NOW, POLICY, dry_run=True, keep=0, on_action=lambda action: None)
    seconds = perf_counter() - began
    assert result.count("would_send") == expected_due == result.diagnosis.due, (result.summary, expected_due)
    for name, _, reason in KINDS:
        if reason is not None:
            assert result.diagnosis.not_due.get(reason) == counts.get(name), (reason, result.diagnosis.not_due)
    tracemalloc.start()
    followups.sweep(NOW, POLICY, dry_run=True, keep=0, on_action=lambda action: None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    db.close()
    return seconds, peak / 2**20


def json_output(path: Path) -> tuple[float, float]:
    """The dry run as `follow-ups run --dry-run --json` writes it (to a file): the streamed writer
    with the direct conversion, against the old per-action `render.dumps` (the generic dataclass walk)."""
    from salesbot.cli import render

    open_database(path)
    timings = []
    for old in (False, True):
        with tempfile.TemporaryFile("w+") as sink:
            stdout, sys.stdout = sys.stdout, sink
            try:
                began = perf_counter()
                if old:
                    result = followups.sweep(NOW, POLICY, dry_run=True, keep=0,
                                             on_action=lambda action: sink.write(render.dumps(action) + ", "))
                else:
                    writer = render.JsonActions()
                    result = followups.sweep(NOW, POLICY, dry_run=True, keep=0, on_action=writer)
                    writer.close({"summary": result.summary, "not_due": result.diagnosis.not_due})
                timings.append(perf_counter() - began)
            finally:
                sys.stdout = stdout
    db.close()
    return timings[0], timings[1]


def real_run(path: Path) -> tuple[int, float]:
    open_database(path)
    began = perf_counter()
    result = followups.sweep(NOW, POLICY, keep=0)
    seconds = perf_counter() - began
    assert sum(followups.sweep(NOW, POLICY, keep=0).outcomes.values()) == 0  # never twice
    db.close()
    return result.count("queued"), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--no-options", action="store_true", help="skip the plan options")
    parser.add_argument("--no-real", action="store_true", help="skip the real run")
    opts = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # a log file sees each figure as it comes
    sizes = [int(size) for size in opts.sizes.split(",")]
    targets = {100_000: 3.0, 1_000_000: 30.0}
    failed = False
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            path = Path(tmp) / f"sweep-{size}.db"
            began = perf_counter()
            counts = fill(path, size)
            print(f"built {size:,} leads in {perf_counter() - began:.1f} s (no ANALYZE)", flush=True)
            if size == 100_000 and not opts.no_options:
                print("due query, full listing at 100,000 leads:")
                options(path)
            seconds, peak = dry_run(path, counts)
            due = sum(counts.get(name, 0) for name, _, reason in KINDS if reason is None and name != "cold")
            rows.append((size, due, seconds, peak))
            if size == 100_000:
                new, old = json_output(path)
                print(f"dry run --json at 100,000 leads, written to a file: {new:.2f} s "
                      f"(with the old per-action dataclass walk and dumps: {old:.2f} s)")
            if size == 100_000 and not opts.no_real:
                queued, real = real_run(path)
                print(f"real run at 100,000 leads (claim and queue; serve delivers): {real:.2f} s for {queued:,} "
                      f"reminders ({real / queued * 1000:.3f} ms each)")
            path.unlink()
    print(f"{'leads':>10} {'due':>10} {'dry run':>9} {'per lead':>10} {'memory peak':>12} {'target':>8}")
    for size, due, seconds, peak in rows:
        target = targets.get(size)
        mark = "" if target is None else "ok" if seconds < target else "SLOW"
        failed |= target is not None and seconds >= target
        print(f"{size:>10,} {due:>10,} {seconds:8.2f}s {seconds / size * 1e6:8.1f}µs {peak:9.1f} MB "
              f"{'' if target is None else f'< {target:.0f} s':>8} {mark}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
