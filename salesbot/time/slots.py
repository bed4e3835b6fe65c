"""Meeting slots: pure functions of the clock, the business calendar and the booked meetings.

One question decides every time the bot offers, a lead proposes, staff move a meeting to or the
reminder's buttons show: `check` — is this time free, and if not, why. The slot grid and the
offers are built from it, so nothing the calendar blocks (a holiday, a day off, a break, a busy
event in the owner's calendar, another meeting) is ever offered or booked.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from salesbot.time.calendar import END_OF_DAY, Span


class Busy(Protocol):
    def busy(self, start: datetime, end: datetime) -> bool: ...


@dataclass(frozen=True)
class Calendar:
    tz: ZoneInfo
    work_days: frozenset[int]  # Monday is 0
    opens: time
    closes: time
    slot: timedelta
    min_notice: timedelta
    horizon: timedelta = timedelta(days=60)  # how far ahead a meeting may be booked
    day_hours: Mapping[int, Span] = field(default_factory=dict)  # per weekday, instead of opens-closes
    breaks: tuple[Span, ...] = ()  # every working day; no meeting overlaps one
    days_off: Container[date] = frozenset()  # public holidays and the business's own days off
    busy: Busy | None = None  # the owner's busy times (busy.BusyTimes)

    def hours(self, day: date) -> Span | None:
        """The working hours of `day`'s weekday, or None when the business does not work that weekday
        (days off and holidays are not asked here: see `check`)."""
        if day.weekday() not in self.work_days:
            return None
        return self.day_hours.get(day.weekday(), (self.opens, self.closes))

    def closing(self, day: date) -> datetime:
        """When the business closes on `day` (a close of 24:00 is the next midnight)."""
        hours = self.hours(day)
        return at_clock(day, hours[1] if hours else self.closes, self.tz)

    def in_break(self, start: datetime, length: timedelta) -> Span | None:
        """The break a meeting from `start` (local) would overlap, if any."""
        day = start.date()
        for first, last in self.breaks:
            if at_clock(day, first, self.tz) < start + length and start < at_clock(day, last, self.tz):
                return first, last
        return None

    def is_working_day(self, day: date) -> bool:
        return self.hours(day) is not None and day not in self.days_off

    def schedule(self) -> list[tuple[frozenset[int], Span]]:
        """The weekly hours as (days, span) groups, days with the same hours together, Monday first."""
        groups: dict[Span, set[int]] = {}
        for weekday in sorted(self.work_days):
            groups.setdefault(self.day_hours.get(weekday, (self.opens, self.closes)), set()).add(weekday)
        return sorted(((frozenset(days), span) for span, days in groups.items()), key=lambda g: min(g[0]))


def clock_label(moment: time) -> str:
    """`10:00`, or `24:00` for the end of the day."""
    return "24:00" if moment == END_OF_DAY else f"{moment:%H:%M}"


def at_clock(day: date, moment: time, tz: ZoneInfo) -> datetime:
    """`moment` on `day` in `tz`; the end of the day is the next midnight."""
    if moment == END_OF_DAY:
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return datetime.combine(day, moment, tzinfo=tz)


def overlaps(start: datetime, length: timedelta, booked: Iterable[datetime]) -> bool:
    return any(other < start + length and start < other + length for other in booked)


Problem = Literal["past", "too_soon", "too_far", "day_off", "outside_hours", "ends_late", "break", "taken",
                  "busy"] | None


def check(start: datetime, now: datetime, cal: Calendar, booked: Iterable[datetime]) -> Problem:
    """Why a meeting cannot start at `start` (None when it can). `day_off`: a public holiday or one of
    the business's days off; `ends_late`: it starts in working hours but would end after the close;
    `break`: it overlaps a break; `taken`: another meeting; `busy`: an event in the owner's calendar;
    `too_far`: beyond the booking horizon."""
    local = start.astimezone(cal.tz)
    if start <= now:
        return "past"
    if start < now + cal.min_notice:
        return "too_soon"
    if start > now + cal.horizon:
        return "too_far"
    day = local.date()
    if day in cal.days_off:
        return "day_off"
    hours = cal.hours(day)
    closing = cal.closing(day)
    if hours is None or local.time() < hours[0] or local >= closing:
        return "outside_hours"
    if local + cal.slot > closing:
        return "ends_late"
    if cal.in_break(local, cal.slot):
        return "break"
    if overlaps(start, cal.slot, booked):
        return "taken"
    if cal.busy is not None and cal.busy.busy(start, start + cal.slot):
        return "busy"
    return None


def _day_starts(day: date, cal: Calendar) -> Iterator[datetime]:
    """The slot grid of one day: from the opening and again from the end of each break, a slot length
    apart, each ending by the next break or the close."""
    hours = cal.hours(day)
    if hours is None or day in cal.days_off:
        return
    closing = cal.closing(day)
    starts = [datetime.combine(day, hours[0], tzinfo=cal.tz)]
    starts += [at_clock(day, last, cal.tz) for first, last in cal.breaks if hours[0] < last < hours[1]]
    for begin, following in zip(starts, [*starts[1:], None], strict=True):
        slot = begin
        while slot + cal.slot <= closing and (following is None or slot < following):
            yield slot
            slot += cal.slot


def _free_on(day: date, now: datetime, cal: Calendar, booked: list[datetime]) -> list[datetime]:
    return [slot for slot in _day_starts(day, cal) if check(slot, now, cal, booked) is None]


def _days_from(moment: datetime, cal: Calendar, now: datetime) -> Iterator[date]:
    """Days from `moment`'s (local) date on, up to the booking horizon."""
    day = moment.astimezone(cal.tz).date()
    last = (now + cal.horizon).astimezone(cal.tz).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


def _spread(slots: list[datetime], count: int) -> list[datetime]:
    """`count` of a day's free slots spread over it (the first, then evenly on), not adjacent hours."""
    if len(slots) <= count:
        return slots
    return [slots[i * len(slots) // count] for i in range(count)]


PER_DAY = 2  # offered slots: up to two a day...
OFFER_DAYS = 3  # ...over the next three days that have any


def free_slots(now: datetime, cal: Calendar, booked: Iterable[datetime], *, per_day: int = PER_DAY,
               days: int = OFFER_DAYS, after: datetime | None = None) -> list[datetime]:
    """Free slot starts to offer (aware, in the business zone): up to `per_day` a day, spread over the
    day, over the next `days` working days that have a free slot, within the booking horizon.

    Slots step by the slot length from the opening time of each working day; a slot must end by
    the close, start after the minimum notice and not overlap a booked meeting.
    """
    booked = list(booked)
    start_from = max(now + cal.min_notice, after or now)
    found: list[datetime] = []
    used_days = 0
    for day in _days_from(start_from, cal, now):
        free = [slot for slot in _free_on(day, now, cal, booked) if slot >= start_from]
        if free:
            found += _spread(free, per_day)
            used_days += 1
            if used_days == days:
                break
    return found


def slots_around(wanted: datetime, now: datetime, cal: Calendar, booked: Iterable[datetime],
                 count: int = 4) -> list[datetime]:
    """The free slots nearest to `wanted` (taken, or outside hours) from both sides of it: half before
    and half after where there are, the rest from the other side; in time order."""
    booked = list(booked)
    before: list[datetime] = []
    day = wanted.astimezone(cal.tz).date()
    first = now.astimezone(cal.tz).date()
    while day >= first and len(before) < count:  # back towards now, nearest first
        before += [slot for slot in reversed(_free_on(day, now, cal, booked)) if slot < wanted][: count - len(before)]
        day -= timedelta(days=1)
    after: list[datetime] = []
    for day in _days_from(wanted, cal, now):
        after += [slot for slot in _free_on(day, now, cal, booked) if slot > wanted][: count - len(after)]
        if len(after) >= count:
            break
    take_before = min(len(before), max(count // 2, count - len(after)))
    chosen = before[:take_before] + after[: count - take_before]
    return sorted(chosen)


def slots_in(day: date, period: tuple[time, time], now: datetime, cal: Calendar,
             booked: Iterable[datetime]) -> list[datetime]:
    """Every free slot of `day` that starts within `period` (a part of the day, local clock times)."""
    booked = list(booked)
    start, end = period
    return [slot for slot in _free_on(day, now, cal, booked) if start <= slot.time() < end]


def free_between(start: datetime, end: datetime, now: datetime, cal: Calendar,
                 booked: Iterable[datetime]) -> list[datetime]:
    """Every free slot start in [start, end): the grid the bot's offers are chosen from (`salesbot
    slots` lists exactly these)."""
    booked = list(booked)
    found: list[datetime] = []
    day, last = start.astimezone(cal.tz).date(), end.astimezone(cal.tz).date()
    while day <= last:
        found += [slot for slot in _free_on(day, now, cal, booked) if start <= slot < end]
        day += timedelta(days=1)
    return found


def closed_because(day: date, cal: Calendar) -> str | None:
    """Why nothing at all can be booked on `day` (`holiday: …`, `day off`, `not a working day`), or None."""
    reason = getattr(cal.days_off, "reason", None)
    if reason is not None and (why := reason(day)):
        return why
    if day in cal.days_off:
        return "day off"
    return None if cal.hours(day) is not None else "not a working day"
