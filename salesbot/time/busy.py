"""Busy times from the owner's own calendars (SALESBOT_BUSY_ICS): iCalendar addresses or files.

Each feed's last good copy is kept in `$SALESBOT_HOME/busy/` with its busy intervals already expanded
for the booking horizon (recurring events with RRULE, EXDATE and moved occurrences through
recurring-ical-events: RFC 5545's recurrence rules are not something to re-implement by hand). So
every process — serve, the cron sweep, a staff command — reads busy times in milliseconds and
without the network; `serve` refreshes the feeds in the background, and a lead never waits for one.

A feed's address is a secret (whoever has it reads the owner's calendar): messages name a feed by
its number and host only (`feed 1 (https://calendar.google.com/…)`), never its path or token.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

FOLDER = "busy"  # in SALESBOT_HOME
TIMEOUT = 20.0  # seconds for one fetch: a slow calendar server must not hold a refresh for long
MAX_BYTES = 50_000_000  # a real calendar of years is a few MB; a wrong address must not fill memory
REFRESH_EVERY = timedelta(minutes=5)  # how often `serve` asks each feed (a 304 costs the server nothing)
STALE_AFTER = timedelta(hours=1)  # doctor: a copy older than this while refreshes fail is a problem
MARGIN = timedelta(days=3)  # expanded beyond the horizon, so the window need not move every day
SCHEMES = ("http", "https", "webcal")
BEYOND = timedelta(days=28)  # busy times beyond the expanded window are expanded this much at a time


@dataclass(frozen=True)
class Feed:
    source: str  # an address (http, https, webcal) or a file path
    number: int  # its place in SALESBOT_BUSY_ICS, from 1: how messages name it

    @property
    def is_url(self) -> bool:
        return self.source.split(":", 1)[0].lower() in SCHEMES

    @property
    def url(self) -> str:
        """The address fetched: webcal:// is the same feed over https (how calendar apps subscribe)."""
        scheme, rest = self.source.split(":", 1)
        return ("https:" if scheme.lower() == "webcal" else f"{scheme.lower()}:") + rest

    @property
    def label(self) -> str:
        """How logs, errors and doctor name the feed: its number and host, never the secret path."""
        if not self.is_url:
            return f"feed {self.number} ({self.source})"
        host = urllib.parse.urlsplit(self.url).hostname or "?"
        return f"feed {self.number} ({self.source.split(':', 1)[0].lower()}://{host}/…)"

    @property
    def key(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]


def secret_forms(sources: Iterable[str]) -> list[str]:
    """What must never appear in a log: each address as written and as fetched."""
    forms = []
    for feed in feeds_of(sources):
        if feed.is_url:
            forms += [feed.source, feed.url]
    return forms


def feeds_of(sources: Iterable[str]) -> tuple[Feed, ...]:
    return tuple(Feed(source, number) for number, source in enumerate(sources, start=1))


# --- one feed's state on disk ---------------------------------------------------------------------


@dataclass
class FeedState:
    """What is known of a feed: its last good copy (`<key>.ics`) and this record (`<key>.json`)."""

    label: str
    fetched_at: float | None = None  # when the copy was last confirmed current (a 200 or a 304)
    changed_at: float | None = None  # when its content last changed
    etag: str | None = None
    last_modified: str | None = None
    digest: str | None = None  # sha256 of the copy
    error: str | None = None  # the last refresh's failure, None when it succeeded
    error_at: float | None = None
    events: int = 0  # busy occurrences in the window
    window: tuple[float, float] | None = None  # the span expanded (epoch seconds)
    intervals: list[tuple[float, float]] = field(default_factory=list)

    @property
    def has_copy(self) -> bool:
        return self.digest is not None


def _paths(home: Path, feed: Feed) -> tuple[Path, Path]:
    folder = home / FOLDER
    return folder / f"{feed.key}.ics", folder / f"{feed.key}.json"


def read_state(home: Path, feed: Feed) -> FeedState:
    _, meta = _paths(home, feed)
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        data["window"] = tuple(data["window"]) if data.get("window") else None
        data["intervals"] = [tuple(pair) for pair in data.get("intervals", [])]
        data["label"] = feed.label
        return FeedState(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return FeedState(feed.label)


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: a reader (another process) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _save(home: Path, feed: Feed, state: FeedState) -> None:
    _, meta = _paths(home, feed)
    data = asdict(state)
    data.pop("label")
    _write(meta, json.dumps(data).encode())


# --- expanding a calendar into busy intervals ---------------------------------------------------------


class FeedError(Exception):
    """A feed could not be fetched or read; the message never contains the address."""


def _moment(value, tz: ZoneInfo) -> datetime:
    """An iCalendar start or end as an aware datetime: a date is its midnight in the business's zone
    (an all-day event blocks that whole day there), a floating time is read in that zone too."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    return datetime.combine(value, time(0), tzinfo=tz)


def _blocks(event) -> bool:
    """Busy unless the event says otherwise: free (TRANSP:TRANSPARENT, or Outlook's FREE) or cancelled."""
    if str(event.get("STATUS", "")).upper() == "CANCELLED":
        return False
    if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return False
    return str(event.get("X-MICROSOFT-CDO-BUSYSTATUS", "BUSY")).upper() != "FREE"


_EVENT = re.compile(rb"^BEGIN:VEVENT\r?$.*?^END:VEVENT\r?$", re.S | re.M)
_FOLD = re.compile(rb"\r?\n[ \t]")
_PROPERTY = re.compile(rb"^(DTSTART|DTEND|DURATION|RRULE|RDATE|RECURRENCE-ID|UID)[;:](.*?)\r?$", re.M)
PRUNE_FROM = 200  # events: below this, parsing everything costs nothing worth saving
SLACK = timedelta(days=2)  # dates compared as written: a zone can shift an event's day by one


def prune(data: bytes, first: date, last: date) -> bytes:
    """The calendar without the events that cannot touch [first, last], before the slow parse: single
    events wholly outside it, series that ended before it or start after it, with their moved
    occurrences when those lie outside it too. A series with RDATEs, or anything not read plainly
    here, is kept: this only saves time (a calendar of years is mostly past), and
    recurring-ical-events still decides what is busy."""
    events = list(_EVENT.finditer(data))
    if len(events) < PRUNE_FROM:
        return data
    low, high = (first - SLACK).strftime("%Y%m%d").encode(), (last + SLACK).strftime("%Y%m%d").encode()
    facts = [dict(_PROPERTY.findall(_FOLD.sub(b"", match[0]))) for match in events]
    needed: set[bytes | None] = set()  # UIDs with a block that may touch the window: kept whole
    for props in facts:
        if not _outside(props, low, high):
            needed.add(props.get(b"UID"))
    kept, position = [], 0
    for match, props in zip(events, facts, strict=True):
        kept.append(data[position:match.start()])
        position = match.end()
        if props.get(b"UID") in needed or b"UID" not in props:
            kept.append(match[0])
    kept.append(data[position:])
    return b"".join(kept)


def _day(value: bytes | None) -> bytes | None:
    found = re.search(rb"(?:^|[:=])(\d{8})(?:T\d{6}Z?)?$", value.rsplit(b":", 1)[-1] if value else b"")
    return found[1] if found else None


def _outside(props: dict[bytes, bytes], low: bytes, high: bytes) -> bool:
    """Whether this one block (a single event, a series, or a moved occurrence) surely lies outside."""
    starts = _day(props.get(b"DTSTART"))
    if starts is None or b"RDATE" in props:
        return False
    if b"RECURRENCE-ID" in props:  # a moved occurrence: where it was and where it went
        was = _day(props[b"RECURRENCE-ID"])
        if was is None or low <= was <= high:
            return False
    if starts > high:
        return True  # begins after the window (a series too)
    if b"RRULE" in props:
        until = re.search(rb"UNTIL=(\d{8})", props[b"RRULE"])
        return until is not None and until[1] < low
    if b"DURATION" in props:
        return False
    ends = _day(props.get(b"DTEND")) or starts
    return ends < low


def expand(data: bytes, start: datetime, end: datetime, tz: ZoneInfo) -> list[tuple[float, float]]:
    """The busy intervals (epoch seconds) of an iCalendar text that touch [start, end)."""
    import icalendar
    import recurring_ical_events

    data = prune(data, start.astimezone(tz).date(), end.astimezone(tz).date())
    try:
        calendars = [c for c in icalendar.Calendar.from_ical(data, multiple=True) if c.name == "VCALENDAR"]
    except Exception as exc:  # icalendar raises ValueError and others on broken text
        raise FeedError(f"not an iCalendar file ({type(exc).__name__})") from None
    if not calendars:  # an HTML login page, an empty answer
        raise FeedError("not an iCalendar file (no VCALENDAR in it)")
    lo, hi = start.timestamp(), end.timestamp()
    found = []
    for one in calendars:
        # dates as bounds, one day wider each side: floating and all-day events are compared safely
        query = recurring_ical_events.of(one, components=["VEVENT"], skip_bad_series=True)
        for event in query.between(start.astimezone(tz).date() - timedelta(days=1),
                                   end.astimezone(tz).date() + timedelta(days=1)):
            if not _blocks(event) or "DTSTART" not in event:
                continue
            first = _moment(event["DTSTART"].dt, tz)
            last = _moment(event["DTEND"].dt, tz) if "DTEND" in event else \
                first + (event["DURATION"].dt if "DURATION" in event else
                         timedelta(days=1) if not isinstance(event["DTSTART"].dt, datetime) else timedelta(0))
            if last.timestamp() > lo and first.timestamp() < hi:
                found.append((first.timestamp(), last.timestamp()))
    return found


def merge(intervals: Iterable[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Sorted, non-overlapping: (starts, ends)."""
    starts: list[float] = []
    ends: list[float] = []
    for first, last in sorted(intervals):
        if starts and first <= ends[-1]:
            ends[-1] = max(ends[-1], last)
        else:
            starts.append(first)
            ends.append(last)
    return starts, ends


# --- fetching ---------------------------------------------------------------------------------------


@dataclass
class Fetched:
    data: bytes | None  # None: not modified (HTTP 304)
    etag: str | None = None
    last_modified: str | None = None


def fetch(feed: Feed, state: FeedState, timeout: float = TIMEOUT) -> Fetched:
    """The feed's text; a conditional request when there is a copy (If-None-Match, If-Modified-Since),
    so an unchanged calendar answers 304 with no body."""
    if not feed.is_url:
        try:
            with open(feed.source, "rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise FeedError(f"cannot read the file: {exc.strerror}") from None
        if len(data) > MAX_BYTES:
            raise FeedError(f"larger than {MAX_BYTES // 1_000_000} MB")
        return Fetched(data)
    headers = {"User-Agent": "salesbot (busy times)", "Accept": "text/calendar, */*;q=0.5"}
    if state.has_copy:
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
    request = urllib.request.Request(feed.url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(MAX_BYTES + 1)
            etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
    except urllib.error.HTTPError as exc:  # its text is the status, never the address
        if exc.code == 304:
            return Fetched(None, exc.headers.get("ETag") or state.etag,
                           exc.headers.get("Last-Modified") or state.last_modified)
        raise FeedError(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # HTTPException: a reply that is not HTTP, or an address urllib cannot take (user:password@…:
        # InvalidURL, whose text quotes the address); only the kind of failure is said, never the text
        reason = getattr(exc, "reason", None)
        reason = reason if isinstance(reason, str | OSError) and not isinstance(exc, http.client.HTTPException) \
            else type(exc).__name__
        raise FeedError(f"cannot reach it ({reason})") from None
    if len(data) > MAX_BYTES:
        raise FeedError(f"larger than {MAX_BYTES // 1_000_000} MB")
    return Fetched(data, etag, modified)


def window_for(now: datetime, horizon: timedelta) -> tuple[datetime, datetime]:
    return now - timedelta(days=1), now + horizon + MARGIN


def refresh(home: Path, feed: Feed, now: datetime, horizon: timedelta, tz: ZoneInfo,
            timeout: float = TIMEOUT, quiet: bool = False) -> FeedState:
    """Fetch one feed and keep it: a new copy replaces the old only once it reads as a calendar; a
    failure is recorded and the last good copy stays in use."""
    state = read_state(home, feed)
    copy, _ = _paths(home, feed)
    start, end = window_for(now, horizon)
    try:
        fetched = fetch(feed, state, timeout)
        data = fetched.data
        digest = hashlib.sha256(data).hexdigest() if data is not None else state.digest
        changed = data is not None and digest != state.digest
        covers = state.window is not None and state.window[0] <= now.timestamp() - 86400 \
            and state.window[1] >= (now + horizon).timestamp()
        if changed or not covers:
            if data is None:
                try:
                    data = copy.read_bytes()
                except OSError:
                    raise FeedError("its saved copy is gone") from None
            intervals = expand(data, start, end, tz)
            if changed:
                _write(copy, data)
                state.changed_at = now.timestamp()
            state.intervals = intervals
            state.window = (start.timestamp(), end.timestamp())
            state.events = len(intervals)
        state.digest = digest
        state.etag, state.last_modified = fetched.etag, fetched.last_modified
        state.fetched_at = now.timestamp()
        state.error = state.error_at = None
    except FeedError as exc:
        new = state.error != str(exc)  # serve asks every few minutes: a lasting failure is logged once
        state.error, state.error_at = str(exc), now.timestamp()
        (log.debug if quiet or not new else log.warning)("busy times: %s: %s; %s", feed.label, exc,
                    "keeping the copy from " + ago(now, state.fetched_at) if state.has_copy else "no copy yet")
    _save(home, feed, state)
    return state


def ago(now: datetime, stamp: float | None) -> str:
    if stamp is None:
        return "never"
    minutes = int((now.timestamp() - stamp) // 60)
    if minutes < 60:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return f"{minutes // 1440} days ago"


# --- what the calendar asks ---------------------------------------------------------------------------


class _Snapshot(NamedTuple):
    starts: list[float]  # merged busy intervals, sorted
    ends: list[float]
    window: tuple[float, float] | None  # the span they cover (epoch seconds); None: no copy yet
    extra: dict[date, tuple[list[float], list[float]]]  # spans beyond the window by first day, expanded once


class BusyTimes:
    """The merged busy intervals of every feed, as the last refresh left them on disk; `reload`
    picks up what another process (serve's refresher) wrote."""

    def __init__(self, home: Path, feeds: tuple[Feed, ...], tz: ZoneInfo) -> None:
        self.home, self.feeds, self.tz = home, feeds, tz
        self._now = _Snapshot([], [], None, {})
        self.reload()

    def reload(self) -> list[FeedState]:
        states = [read_state(self.home, feed) for feed in self.feeds]
        windows = [state.window for state in states if state.window is not None]
        starts, ends = merge(pair for state in states for pair in state.intervals)
        window = (max(w[0] for w in windows), min(w[1] for w in windows)) if windows else None
        # one assignment: a reader in another thread (serve's refresher writes) sees the old or the new
        self._now = _Snapshot(starts, ends, window, {})
        return states

    def refresh(self, now: datetime, horizon: timedelta, timeout: float = TIMEOUT,
                quiet: bool = False) -> list[FeedState]:
        """Fetch every feed (each keeps its last good copy when it fails), then use what they hold;
        `quiet`: failures are not logged (the caller shows them)."""
        for feed in self.feeds:
            refresh(self.home, feed, now, horizon, self.tz, timeout, quiet)
        return self.reload()

    async def keep_fresh(self, horizon: timedelta, now, every: timedelta = REFRESH_EVERY,
                         sleep=asyncio.sleep) -> None:
        """`serve`'s background task: refresh in a worker thread (parsing a big calendar takes a
        second or two, which the event loop must not wait for), then sleep; never raises, so a feed's
        trouble never stops the bot. `now` is the clock (a callable)."""
        while True:
            try:
                await asyncio.to_thread(self.refresh, now(), horizon)
            except Exception:  # a bug here must not end serve: the last copies stay in use
                log.exception("busy times: the refresh failed")
            await sleep(every.total_seconds())

    def busy(self, start: datetime, end: datetime) -> bool:
        """Does any busy event overlap [start, end)?"""
        lo, hi = start.timestamp(), end.timestamp()
        now = self._now
        if now.window is None:
            return False  # no feed has a copy yet: nothing known to be busy
        if lo >= now.window[0] and hi <= now.window[1]:
            return _overlaps(now.starts, now.ends, lo, hi)
        return _overlaps(*self._beyond(start.astimezone(self.tz).date(), now.extra), lo, hi)

    def _beyond(self, day: date, extra: dict) -> tuple[list[float], list[float]]:
        """Busy times outside the expanded window — a staff move months ahead, or a process reading a
        copy that serve (stopped for days) has not re-expanded: expanded from the copies on demand, a
        span of BEYOND at a time, once."""
        first = date.fromordinal(day.toordinal() - day.toordinal() % BEYOND.days)  # spans on a fixed grid
        if first not in extra:
            start = datetime.combine(first, time(0), tzinfo=self.tz)
            found = []
            for feed in self.feeds:
                copy, _ = _paths(self.home, feed)
                with contextlib.suppress(OSError, FeedError):
                    found += expand(copy.read_bytes(), start, start + BEYOND, self.tz)
            extra[first] = merge(found)
        return extra[first]


def _overlaps(starts: list[float], ends: list[float], lo: float, hi: float) -> bool:
    i = bisect.bisect_right(starts, lo) - 1
    if i >= 0 and ends[i] > lo:
        return True
    return i + 1 < len(starts) and starts[i + 1] < hi


