"""Meeting slots: pure functions of the clock, the business calendar and the booked meetings."""

from __future__ import annotations

from collections.abc import Iterable
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
    horizon: timedelta = timedelta(days=14)

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


Problem = Literal["past", "too_soon", "outside_hours", "taken"] | None


def check(start: datetime, now: datetime, cal: Calendar, booked: Iterable[datetime]) -> Problem:
    """Why a meeting cannot start at `start` (None when it can)."""
    local = start.astimezone(cal.tz)
    if start <= now:
        return "past"
    if start < now + cal.min_notice:
        return "too_soon"
    if local.weekday() not in cal.work_days or local.time() < cal.opens or local + cal.slot > cal.closing(local.date()):
        return "outside_hours"
    if overlaps(start, cal.slot, booked):
        return "taken"
    return None


def free_slots(now: datetime, cal: Calendar, booked: Iterable[datetime], count: int = 3,
               after: datetime | None = None) -> list[datetime]:
    """The next `count` free slot starts (aware, in the business zone) within the horizon.

    Slots step by the slot length from the opening time of each working day; a slot must end by
    the close, start after the minimum notice and not overlap a booked meeting.
    """
    booked = list(booked)
    local_now = now.astimezone(cal.tz)
    start_from = max(now + cal.min_notice, after or now)
    found: list[datetime] = []
    day = local_now.date()
    while len(found) < count and datetime.combine(day, time(0), tzinfo=cal.tz) <= local_now + cal.horizon:
        if day.weekday() in cal.work_days:
            slot = datetime.combine(day, cal.opens, tzinfo=cal.tz)
            while len(found) < count:
                if check(slot, now, cal, booked) is None and slot >= start_from:
                    found.append(slot)
                elif check(slot, now, cal, []) == "outside_hours":
                    break
                slot += cal.slot
        day += timedelta(days=1)
    return found
