"""The business's own calendar as the operator writes it: working hours (also per day of the week),
breaks, its own days off, and public holidays.

Public holidays come from the `holidays` package: it keeps Russia's production calendar with the
government's yearly transfers of days off (31 December 2025 and 9 January 2026 were days off) and
cites its sources, which a table kept by hand here would not. Parsers take (setting name, text) and
raise ConfigError naming the setting; what they return is what slots.Calendar holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, time
from typing import Any

from salesbot.errors import ConfigError, quoted

# A clock time of 24:00 (the end of the day, as a closing time or a window's end) is kept as time.max,
# the last instant of the day; slots.at_clock and slots.clock_label are the only places that read it.
END_OF_DAY = time.max
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The same days as a Russian operator writes them: «пн-пт», «Пн–Чт», «понедельник»
RU_DAY_NAMES = (("пн", "пон"), ("вт", "вто"), ("ср", "сре"), ("чт", "чет"), ("пт", "пят"), ("сб", "суб"),
                ("вс", "вос"))
LETTERS = r"[a-zA-Zа-яА-ЯёЁ]"
Span = tuple[time, time]
# What a word processor or a phone types for "-" in 10:00-19:00: en dash, em dash, minus, hyphen.
_DASHES = re.compile(r"\s*[\u2010-\u2015\u2212-]\s*")


def dashes(value: str) -> str:
    """`10:00 – 19:00`, `пн—пт` → `10:00-19:00`, `пн-пт`."""
    return _DASHES.sub("-", value)


def parse_clock(name: str, value: str) -> time:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if not m or int(m[1]) > 24 or int(m[2]) > 59 or (int(m[1]) == 24 and int(m[2])):
        raise ConfigError(f"{name}: expected a time like 10:00, got {quoted(value)}")
    hour, minute = int(m[1]), int(m[2])
    return END_OF_DAY if hour == 24 else time(hour, minute)


def parse_span(name: str, value: str) -> Span:
    start, sep, end = dashes(value.strip()).partition("-")
    if not sep:
        raise ConfigError(f"{name}: expected a range like 10:00-19:00, got {quoted(value)}")
    first, last = parse_clock(name, start), parse_clock(name, end)
    if first >= last:
        raise ConfigError(f"{name}: the range must end after it starts, got {quoted(value)}")
    return first, last


def parse_days(name: str, value: str) -> frozenset[int]:
    """`mon-fri`, `пн-пт`, `mon,wed,fri` or ISO numbers `1-5` (Monday is 1) → weekday numbers (Monday 0)."""

    def one(token: str) -> int:
        token = token.strip().lower().rstrip(".")
        if token[:3] in DAY_NAMES:
            return DAY_NAMES.index(token[:3])
        for number, (short, prefix) in enumerate(RU_DAY_NAMES):
            if token == short or token.startswith(prefix):
                return number
        if token.isdigit() and 1 <= int(token) <= 7:
            return int(token) - 1
        raise ConfigError(f"{name}: unknown day {quoted(token)} (use mon..sun, пн..вс or 1..7)")

    days: set[int] = set()
    for part in dashes(value).split(","):
        if "-" in part:
            a, b = (one(x) for x in part.split("-", 1))
            if a > b:
                raise ConfigError(f"{name}: day range {quoted(part.strip())} runs backwards")
            days.update(range(a, b + 1))
        elif part.strip():
            days.add(one(part))
    if not days:
        raise ConfigError(f"{name}: no days given")
    return frozenset(days)


@dataclass(frozen=True)
class WorkHours:
    """SALESBOT_WORK_HOURS: one span for every working day (`10:00-19:00`, the days are
    SALESBOT_WORK_DAYS), or a span per day (`mon-thu 10:00-19:00; fri 10:00-16:00`: the days named
    are the working days)."""

    spans: tuple[tuple[int, Span], ...]  # (weekday, span), per-day form only
    every_day: Span | None = None  # the one-span form

    @property
    def per_day(self) -> bool:
        return self.every_day is None

    def by_day(self) -> dict[int, Span]:
        return dict(self.spans)


def parse_work_hours(name: str, value: str) -> WorkHours:
    text = dashes(value.strip())
    if not re.search(LETTERS, text):
        return WorkHours((), parse_span(name, text))
    spans: dict[int, Span] = {}
    for part in filter(None, (p.strip() for p in re.split(r"[;\n]", text))):
        m = re.fullmatch(r"(.+?)\s+(\S+\s*-\s*\S+)", part)
        if not m or not re.search(LETTERS, m[1]):
            raise ConfigError(f"{name}: expected days and hours like `mon-thu 10:00-19:00; fri 10:00-16:00`, "
                              f"got {quoted(part)}")
        days, span = m[1], parse_span(name, m[2])
        for day in parse_days(name, days.replace(" ", "")):
            if day in spans:
                raise ConfigError(f"{name}: {DAY_NAMES[day]} is given hours twice")
            spans[day] = span
    return WorkHours(tuple(sorted(spans.items())))


def parse_breaks(name: str, value: str) -> tuple[Span, ...]:
    """`13:00-14:00`, several separated by commas or semicolons; no meeting overlaps one."""
    breaks = [parse_span(name, part) for part in re.split(r"[,;]", value) if part.strip()]
    return tuple(sorted(breaks))


def parse_days_off(name: str, value: str) -> tuple[tuple[date, date], ...]:
    """`2026-01-10..2026-01-18, 2026-03-09`: dates and ranges (both ends included)."""
    ranges = []
    value = re.sub(r"\s*[\u2013\u2014]\s*", "..", value)  # 2026-01-10–2026-01-18: an en dash between dates
    for part in filter(None, (p.strip() for p in re.split(r"[,;\s]+", value))):
        first, sep, last = part.partition("..")
        try:
            start = date.fromisoformat(first)
            end = date.fromisoformat(last) if sep else start
        except ValueError:
            raise ConfigError(f"{name}: expected dates like 2026-03-09 or ranges like 2026-01-10..2026-01-18, "
                              f"got {quoted(part)}") from None
        if end < start:
            raise ConfigError(f"{name}: the range {quoted(part)} ends before it starts")
        ranges.append((start, end))
    return tuple(sorted(ranges))


NO_HOLIDAYS = ("none", "off", "no", "")


def parse_holidays(name: str, value: str) -> str | None:
    """`ru` (the default), another country code (`kz`, `de`, or with a region: `de-by`), or `none`.
    Checked against the countries the `holidays` package knows."""
    code = value.strip().upper()
    if code.lower() in NO_HOLIDAYS:
        return None
    country, _, region = code.partition("-")
    import holidays

    supported = holidays.list_supported_countries()
    if country not in supported:
        raise ConfigError(f"{name}: unknown country code {quoted(value)} (a two-letter code like ru, kz, by, "
                          "de, or none)")
    if region and region not in supported[country]:
        raise ConfigError(f"{name}: {country} has no region {quoted(region)} (known: "
                          f"{', '.join(supported[country][:20]) or 'none'})")
    return code


def public_holidays(code: str | None) -> Any:
    """The holidays of `code` as a date container (years filled in as they are asked), or None."""
    if code is None:
        return None
    import holidays

    country, _, region = code.partition("-")
    return holidays.country_holidays(country, subdiv=region or None, language=_language(country))


def _language(country: str) -> str | None:
    import holidays

    languages = getattr(holidays.country_holidays(country, years=()), "supported_languages", ())
    return "ru" if "ru" in languages else None


class DaysOff:
    """Days nothing is booked: public holidays and the business's own days off."""

    def __init__(self, ranges: Iterable[tuple[date, date]] = (), holidays: Any = None) -> None:
        self.ranges = tuple(ranges)
        self.holidays = holidays

    def reason(self, day: date) -> str | None:
        """`holiday: <name>` or `day off`, or None when the day is not off."""
        if any(first <= day <= last for first, last in self.ranges):
            return "day off"
        if self.holidays is not None and day in self.holidays:
            return f"holiday: {self.holidays.get(day)}"
        return None

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.reason(day) is not None

    def __bool__(self) -> bool:
        return bool(self.ranges) or self.holidays is not None

    def __repr__(self) -> str:
        return f"DaysOff({len(self.ranges)} ranges, holidays={'yes' if self.holidays is not None else 'no'})"
