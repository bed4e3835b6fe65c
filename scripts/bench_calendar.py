#!/usr/bin/env python3
"""Benchmark: `salesbot slots` for 60 days with a busy feed of 5,000 events, half of them recurring.

The feed is served over HTTP on 127.0.0.1 (tests/feed_server.py: ETag, Last-Modified, 304) as a
Google calendar would serve it: two years of history and three months ahead, weekly, fortnightly,
daily-every-7 and monthly series (some ending, some with EXDATEs and moved occurrences), all-day
events, times in Moscow, London and UTC. Measured:

- cold: the first `slots` (a 200: the feed parsed and expanded, then the listing) — what serve's
  background refresh pays when the owner's calendar changes; no lead waits for it;
- warm: `slots` again (a 304: the saved expansion is used) — what the command costs day to day;
- the listing alone, and a lead's offer (free_slots), with the busy times loaded;
- loading the busy times from SALESBOT_HOME (what the sweep and each staff command do);
- the whole `salesbot slots --days 60 --json` process (Python's start and imports included).

Two feeds: an owner's calendar of two years, where most series have ended (3% still run: ~500
busy times in the 60 days), and a stress case where every series still runs (~13,000). Targets:
on the first, cold `slots` under 1 s; on both, warm `slots` under 0.5 s and a lead's offer under
10 ms (exit 1 otherwise). Events that cannot touch the window (past single events, ended series) are
pruned before the parse (busy.prune), which is what keeps a calendar of years cheap.

    python scripts/bench_calendar.py [--events 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from salesbot import runtime
from salesbot.config import load_settings
from salesbot.store import leads
from salesbot.time.slots import free_between, free_slots
from tests.feed_server import FeedServer

ZONES = ("Europe/Moscow", "Europe/Moscow", "Europe/Moscow", "Europe/London")


def feed(events: int, today: date, running: float, seed: int = 21) -> bytes:
    """A big owner's calendar: `events` VEVENTs, every second one a series; a `running` share of the
    series still runs (no end, or one after today), the rest ended at some point in the past."""
    rnd = random.Random(seed)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//salesbot bench//EN", "X-WR-TIMEZONE:Europe/Moscow"]
    for i in range(events):
        series = i % 2 == 0 and i % 50 != 1 and i % 10 != 3
        rule = None
        if series:
            rule = rnd.choice(("FREQ=WEEKLY", "FREQ=WEEKLY;INTERVAL=2", "FREQ=DAILY;INTERVAL=7", "FREQ=MONTHLY"))
            if rnd.random() < running:  # still running: no end, or one ahead
                day = today - timedelta(days=rnd.randint(0, 730))
                if rnd.random() < 0.5:
                    rule += f";UNTIL={today + timedelta(days=rnd.randint(1, 400)):%Y%m%d}T000000Z"
            else:  # an old series that ended (a project, a course, a former weekly call)
                day = today - timedelta(days=rnd.randint(120, 730))
                rule += f";UNTIL={day + timedelta(days=rnd.randint(7, 110)):%Y%m%d}T000000Z"
        else:
            day = today + timedelta(days=rnd.randint(-730, 90))
        start = datetime(day.year, day.month, day.day, rnd.randint(8, 19), rnd.choice((0, 15, 30, 45)))
        end = start + timedelta(minutes=rnd.choice((15, 30, 45, 60, 90, 120)))
        zone = ZONES[i % len(ZONES)]
        lines += ["BEGIN:VEVENT", f"UID:event-{i}@bench", "DTSTAMP:20260101T000000Z", f"SUMMARY:Event {i}"]
        if i % 50 == 1:
            lines += [f"DTSTART;VALUE=DATE:{day:%Y%m%d}", f"DTEND;VALUE=DATE:{day + timedelta(days=1):%Y%m%d}"]
        elif i % 10 == 3:
            lines += [f"DTSTART:{start:%Y%m%dT%H%M%S}Z", f"DTEND:{end:%Y%m%dT%H%M%S}Z"]
        else:
            lines += [f"DTSTART;TZID={zone}:{start:%Y%m%dT%H%M%S}", f"DTEND;TZID={zone}:{end:%Y%m%dT%H%M%S}"]
        if i % 7 == 5:
            lines.append("TRANSP:TRANSPARENT")
        if rule:
            lines.append(f"RRULE:{rule}")
            if i % 10 == 0:
                lines.append(f"EXDATE;TZID={zone}:{start + timedelta(days=7):%Y%m%dT%H%M%S}")
        lines.append("END:VEVENT")
        if rule and i % 20 == 0:  # a moved occurrence of the series
            moved = start + timedelta(days=14)
            lines += ["BEGIN:VEVENT", f"UID:event-{i}@bench", "DTSTAMP:20260101T000000Z",
                      f"RECURRENCE-ID;TZID={zone}:{moved:%Y%m%dT%H%M%S}",
                      f"DTSTART;TZID={zone}:{moved + timedelta(hours=2):%Y%m%dT%H%M%S}",
                      f"DTEND;TZID={zone}:{moved + timedelta(hours=3):%Y%m%dT%H%M%S}", "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


def timed(call, rounds: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def scenario(name: str, data: bytes, rounds: int) -> tuple[float, float, float]:
    """One feed, measured in a fresh SALESBOT_HOME: (cold, warm, offer) in seconds."""
    home = Path(tempfile.mkdtemp(prefix="bench-calendar-"))
    server = FeedServer()
    server.put("/calendar/ical/private-bench/basic.ics", data)
    os.environ.update({"SALESBOT_HOME": str(home),
                       "SALESBOT_BUSY_ICS": server.url("/calendar/ical/private-bench/basic.ics"),
                       "SALESBOT_BREAKS": "13:00-14:00", "SALESBOT_DAYS_OFF": "2026-01-10..2026-01-18"})
    settings = load_settings()
    runtime.open_store(settings)  # a new database is made once per home, not per `slots`
    try:
        print(f"\n{name}: {data.count(b'BEGIN:VEVENT'):,} events ({data.count(b'RRULE:'):,} series, "
              f"{data.count(b'RECURRENCE-ID'):,} moved occurrences), {len(data) / 1e6:.1f} MB over HTTP on 127.0.0.1")
        cold, listing = timed(lambda: runtime.free_times(settings, None, 60), 1)
        print(f"  slots, 60 days, cold (200: parse + expand + list): {cold * 1000:8.1f} ms "
              f"({len(listing.slots)} free slots; {listing.feeds[0].events:,} busy times in the window)")
        warm, listing = timed(lambda: runtime.free_times(settings, None, 60), rounds)
        assert server.statuses()[-1] == 304, server.statuses()
        print(f"  slots, 60 days, warm (304: the saved expansion):   {warm * 1000:8.1f} ms (median of {rounds})")
        cal = listing.calendar
        now = datetime.now(UTC)
        booked = leads.booked_starts(now)
        only, _ = timed(lambda: free_between(now, now + timedelta(days=60), now, cal, booked), rounds * 4)
        print(f"  the listing alone (busy times loaded):             {only * 1000:8.1f} ms")
        offer, _ = timed(lambda: free_slots(now, cal, booked), rounds * 20)
        print(f"  a lead's offer (free_slots):                       {offer * 1000:8.2f} ms")
        load, _ = timed(lambda: runtime.calendar(settings), rounds)
        print(f"  the calendar with its busy times, read from home:  {load * 1000:8.1f} ms")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "salesbot", "slots", "--days", "60", "--json"], check=True,
                       stdout=subprocess.DEVNULL, env=os.environ)
        print(f"  the whole `salesbot slots --days 60 --json`:       {(time.perf_counter() - started) * 1000:8.1f} ms "
              "(a process: Python's start and imports included)")
    finally:
        server.stop()
    return cold, warm, offer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    today = datetime.now(UTC).date()
    started = time.perf_counter()
    import icalendar  # noqa: F401 - imported once per process, measured apart
    import recurring_ical_events  # noqa: F401

    print(f"importing icalendar and recurring-ical-events: {(time.perf_counter() - started) * 1000:.0f} ms "
          "(once per process; serve has them imported when a feed changes)")
    cold, warm, offer = scenario("an owner's calendar of two years (3% of the series still running)",
                                 feed(args.events, today, running=0.03), args.rounds)
    stress = scenario("stress: every series still running (~200 busy times a day)",
                      feed(args.events, today, running=1.0), args.rounds)
    ok = cold < 1.0 and warm < 0.5 and offer < 0.010 and stress[1] < 0.5
    print("\ntarget (cold slots < 1 s, warm < 500 ms, an offer < 10 ms; stress warm < 500 ms):",
          "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
