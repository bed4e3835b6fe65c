"""Meeting slots: pure functions of the clock, the business calendar and the booked meetings."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Calendar:
    tz: ZoneInfo
    work_days: frozenset[int]  # Monday is 0
    opens: time
    closes: time
    slot: timedelta
    min_notice: timedelta
    horizon: timedelta = timedelta(days=60)  # how far ahead a meeting may be booked

    def closing(self, day: date) -> datetime:
        """When the business closes on `day` (a close of 24:00 is the next midnight)."""
        return at_clock(day, self.closes, self.tz)


# A clock time of 24:00 (the end of the day, as a closing time or a window's end) is kept as time.max,
# the last instant of the day; these two helpers are the only places that know it.
END_OF_DAY = time.max


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


Problem = Literal["past", "too_soon", "too_far", "outside_hours", "ends_late", "taken"] | None


def check(start: datetime, now: datetime, cal: Calendar, booked: Iterable[datetime]) -> Problem:
    """Why a meeting cannot start at `start` (None when it can). `ends_late`: it starts in working
    hours but would end after the close; `too_far`: beyond the booking horizon."""
    local = start.astimezone(cal.tz)
    if start <= now:
        return "past"
    if start < now + cal.min_notice:
        return "too_soon"
    if start > now + cal.horizon:
        return "too_far"
    closing = cal.closing(local.date())
    if local.weekday() not in cal.work_days or local.time() < cal.opens or local >= closing:
        return "outside_hours"
    if local + cal.slot > closing:
        return "ends_late"
    if overlaps(start, cal.slot, booked):
        return "taken"
    return None


def _day_starts(day: date, cal: Calendar) -> Iterator[datetime]:
    """The slot grid of one day: from the opening, a slot length apart, each ending by the close."""
    if day.weekday() not in cal.work_days:
        return
    slot = datetime.combine(day, cal.opens, tzinfo=cal.tz)
    closing = cal.closing(day)
    while slot + cal.slot <= closing:
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
