"""A lead's own meeting time, written in their words, as an aware datetime.

Pure rules first: no network, a small fraction of a millisecond a phrase. Only when the rules cannot
place a phrase does one call to the fast Claude model try, with a calendar of the next two weeks
(models miscount weekdays) and a strict check of what comes back.

Never a confident wrong answer: every word of the phrase must be read by a rule or be known filler
(timewords.FILLER: давайте, можно, удобно, лучше, ну, тогда, пожалуйста, punctuation…); any other
word ("в мае", "после праздников", "по Киеву", "совещание") makes the rules refuse
(`not_understood`, and the phrase goes to the fallback). A misspelt day or month word ("пятнцу",
"послезавра") is read as that word only when every known word within one edit means the same day.

How phrases are read (always forward from `now`, in the business time zone):
- a weekday ("в среду") is the next such day, today included while its time is ahead; a weekday
  whose time has passed today means next week;
- "в следующую пятницу", "next friday" and "на следующей неделе в пятницу" mean the Friday of the
  next calendar week (Monday to Sunday), never this week's, even if this week's is still ahead;
  "в эту/ближайшую пятницу" is the plain reading;
- a time with no day ("в 15:00") is today while ahead, otherwise tomorrow;
- a date with no year ("25 декабря", "25.12", "3.1") is this year while ahead, otherwise next year;
  a date that is today with its time passed, or with a year in the past, has passed;
- "25.12", "03.01", "3.1" are dates and "15.00", "10.30" are times; "10.05" after "в"/"к" is a
  time, else a date ("в 11:00 23.12": the preposition is the time's); "17-30" is a time, "14-16" a
  range; "2025-12-25 11:00" and "2025-12-25T11:00" are read too;
- abbreviations and spoken forms: "на след неделе", "сёдня", "к 11-ти" (11:00), "в пол 11" (10:30),
  "к часу" (13:00);
- an hour with no "утра/дня/вечера/am/pm" from 1 to 7 means afternoon (15:00 for "в 3"): nobody
  books a sales meeting at 3 a.m.; "в 3 утра" is 03:00; the rule applies to the clock hour of
  "полпятого" (16:30) and "без двадцати три" (14:40) too;
- numbers in words are read ("в одиннадцать тридцать", "двадцать восьмого в девять"), and so are
  fractions of the hour ("в половине пятого", "без четверти шесть", "в пять минут третьего");
- "через 2 часа", "через полтора часа", "через час и 20 минут" are exact to the minute; "через 3
  дня" and "через неделю" are days and need a time;
- a part of the day with no time ("завтра утром", "вечером") asks for the time: `need_time`, with
  the day if one was named and `period`, the clock range of that part of the day (PERIODS);
- a range or a bound ("после 3", "до 12", "до обеда", "с 14 до 16", "между 10 и 12", "15-17", "не
  раньше 11") and a part of a week ("на следующей неделе", "на этой неделе", "на выходных") are
  never one time: `range`, with the day (or the days, `day` to `last_day`) and the clock window
  (`period`; time.max is an open end) — the engine offers the free slots inside it.
A refusal is always better than a wrong date: a day with no time asks for the time; two days or two
times, two bounds, a month with no day, an unknown word, 25:00 or 30 февраля are not understood or
impossible; the past ("вчера в 10:00") is reported as passed. How far ahead a meeting may be booked
is the booking's business, not the parser's.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from salesbot.time import words as timewords

log = logging.getLogger(__name__)

Kind = Literal["ok", "need_time", "range", "past", "invalid", "not_understood"]
REASONS: dict[str, str] = {
    "need_time": "no time given",
    "range": "a range, not one time",
    "past": "that time has passed",
    "invalid": "impossible date or time",
    "not_understood": "not understood",
}
FALLBACK_HORIZON_DAYS = 180



@dataclass
class ParseResult:
    text: str
    kind: Kind
    when: datetime | None = None
    source: Literal["rules", "claude"] | None = None
    day: date | None = None  # need_time: the day the lead named ("завтра"), to pair with a later time
    time_only: bool = False  # ok: the lead gave a time and no day ("в 15")
    period: tuple[time, time] | None = None  # need_time: the part of the day named ("утром": 09:00-12:00)
    # range: the days (`day` to `last_day`, or `day` alone; none: the engine picks) and the clock window
    # (`period`, time.max for an open end; none: the whole day) the lead named: "после 3", "на следующей неделе"
    last_day: date | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def error(self) -> str | None:
        if self.kind == "range":
            return f"{REASONS['range']} ({self.window_text()})"
        return None if self.ok else REASONS[self.kind]

    def window_text(self) -> str:
        """A range as `2025-12-25 15:00-24:00`, `2025-12-29/2026-01-04 *`, `- 00:00-12:00` (no day)."""
        days = f"{self.day or '-'}" + (f"/{self.last_day}" if self.last_day else "")
        if self.period is None:
            return f"{days} *"
        start, end = self.period
        return f"{days} {start:%H:%M}-{'24:00' if end == time.max else format(end, '%H:%M')}"

    def as_json(self) -> dict[str, Any]:
        return {"text": self.text, "datetime": self.when.isoformat() if self.when else None,
                "error": self.error, "source": self.source}


# --- normalisation ------------------------------------------------------------------------------

_GLUED_PREP_RE = re.compile(r"\b(в|во|к|на|at)(\d)")  # "в16"
_GLUED_HOURS_RE = re.compile(r"\b(\d{1,2})ч(\d{2})\b")  # "16ч30"
_GLUED_UNIT_RE = re.compile(r"\b(\d{1,2})(ч|час|часа|часов)\b")  # "16ч"
_CASE_ENDING_RE = re.compile(r"\b(\d{1,2})-?(?:ти|ми|х)\b")  # "к 11-ти", "к 7ми", "к 2-х": the number
_ISO_T_RE = re.compile(r"\b(\d{4}-\d{1,2}-\d{1,2})t(?=\d)")  # "2025-12-25t11:00"


def normalise(text: str) -> str:
    """Lower case, ё → е, punctuation dropped (". : / -" kept inside numbers and words), misspelt
    day and month words corrected when unmistakable, numbers in words as digits."""
    s = text.lower().replace("ё", "е").replace("\u00a0", " ")
    s = re.sub(r"[–—−]", "-", s)
    s = re.sub(r"\b([ap])\.\s?m\.?", r"\1m", s)
    s = timewords.decimal_hours(s)
    s = re.sub(r"[^\w\s.:/\-]", " ", s)  # emoji, brackets, quotes, ?!,;…
    s = re.sub(r"(?<!\d)[.:/]|[.:/](?!\d)", " ", s)  # kept only between digits
    s = re.sub(r"(?<!\w)-|-(?!\w)", " ", s)  # kept only inside a word or number ("25-го", "пол-пятого")
    s = _GLUED_HOURS_RE.sub(r"\1:\2", s)
    s = _GLUED_PREP_RE.sub(r"\1 \2", s)
    s = _GLUED_UNIT_RE.sub(r"\1 \2", s)
    s = _CASE_ENDING_RE.sub(r"\1", s)
    s = _ISO_T_RE.sub(r"\1 ", s)
    s = re.sub(r"\btonight\b", "today evening", s)
    s = timewords.correct_spelling(s)
    return " ".join(timewords.numbers_in_words(s).split())


# --- what the rules collect ---------------------------------------------------------------------


@dataclass
class _Found:
    days: list[tuple] = field(default_factory=list)  # ("offset", n) ("weekday", wd, next) ("date", d, m, y)
    times: list[tuple[int, int]] = field(default_factory=list)
    exact: list[timedelta] = field(default_factory=list)  # "через 2 часа": now + delta
    periods: list[str] = field(default_factory=list)  # "утром", "после обеда": keys of PERIODS
    next_week: bool = False
    this_week: bool = False
    weekend: bool = False
    bounds: list[tuple[time | None, time | None]] = field(default_factory=list)  # "после 3": (15:00, None)
    invalid: bool = False
    ambiguous: bool = False
    midnight: bool = False  # «в полночь»: the midnight that ends the day named, not the one that starts it

    def anything(self) -> bool:
        return bool(self.days or self.times or self.exact or self.periods or self.next_week or self.invalid
                    or self.this_week or self.weekend or self.bounds
                    or self.ambiguous)


_WEEKDAY_PATTERNS = [
    r"понедельник|понедельника|понедельнике|пн|пон",
    r"вторник|вторника|вторнике|вт|втор",
    r"среда|среду|среды|среде|ср",
    r"четверг|четверга|четверге|чт|чет|четв",
    r"пятница|пятницу|пятницы|пятнице|пт|пят",
    r"суббота|субботу|субботы|субботе|сб|суб",
    r"воскресенье|воскресенья|воскресенью|вс|воскр",
]
_WEEKDAYS_EN = ["mon(?:day)?", "tue(?:s|sday)?", "wed(?:nesday)?", "thu(?:r|rs|rsday)?", "fri(?:day)?",
                "sat(?:urday)?", "sun(?:day)?"]
_WEEKDAY_RE = re.compile(
    r"\b(?:(?:в|во|на|on)\s+)?(?P<mod>следующ\w*|след|эт\w+|ближайш\w*|next|this|coming)?\s*(?:(?:в|во|на|on)\s+)?"
    r"(?:" + "|".join(f"(?P<wd{i}>{ru}|{en})" for i, (ru, en) in enumerate(zip(_WEEKDAY_PATTERNS, _WEEKDAYS_EN,
                                                                                   strict=True))) + r")\b"
)

_MONTHS = [
    (r"января|январь|янв", "jan(?:uary)?"), (r"февраля|февраль|фев", "feb(?:ruary)?"),
    (r"марта|март|мар", "mar(?:ch)?"), (r"апреля|апрель|апр", "apr(?:il)?"), (r"мая|май", "may"),
    (r"июня|июнь|июн", "june?"), (r"июля|июль|июл", "july?"), (r"августа|август|авг", "aug(?:ust)?"),
    (r"сентября|сентябрь|сент|сен", "sep(?:t|tember)?"), (r"октября|октябрь|окт", "oct(?:ober)?"),
    (r"ноября|ноябрь|ноя", "nov(?:ember)?"), (r"декабря|декабрь|дек", "dec(?:ember)?"),
]
_MONTH_ALT = "|".join(f"(?P<m{i}>{ru}|{en})" for i, (ru, en) in enumerate(_MONTHS))
_ORD = r"(?:-?(?:го|е|ое|ого|st|nd|rd|th))?"
_YEAR = r"(?:\s+(?P<y>\d{4})(?:\s*(?:года|год|г))?)?"
_DAY_MONTH_RE = re.compile(r"\b(?P<d>\d{1,2})" + _ORD + r"\s+(?:" + _MONTH_ALT + r")\b" + _YEAR)
_MONTH_DAY_RE = re.compile(r"\b(?:" + _MONTH_ALT + r")\s+(?P<d>\d{1,2})" + _ORD + r"\b(?!\s*(?::|\d))" + _YEAR)
_NUMERIC_DATE_RE = re.compile(r"(?<![\d.:/])(?P<d>\d{1,2})[./](?P<m>\d{1,2})[./](?P<y>\d{4}|\d{2})(?![\d.:/])")
_SLASH_DATE_RE = re.compile(r"(?<![\d./])(?P<d>\d{1,2})/(?P<m>\d{1,2})(?![\d/])")
_DAY_OF_MONTH_RE = re.compile(r"\b(?P<d>\d{1,2})(?:-?(?:го|ого)(?:\s+числа)?|-ое|-е|\s+числа)\b")

_DAY_WORDS = [
    (re.compile(r"\bпозавчера\b"), -2), (re.compile(r"\bпослезавтра\b|\bday after tomorrow\b"), 2),
    (re.compile(r"\bзавтра\b|\btomorrow\b"), 1), (re.compile(r"\bсегодня\b|\bседня\b|\btoday\b"), 0),
    (re.compile(r"\bвчера\b|\byesterday\b"), -1),
]
_NEXT_WEEK_RE = re.compile(r"\b(?:на\s+)?(?:следующей|след)\s+неделе\b|\bnext\s+week\b")
_THIS_WEEK_RE = re.compile(r"\b(?:на\s+)?этой\s+неделе\b|\bthis\s+week\b")
_WEEKEND_RE = re.compile(r"\b(?:на|в)\s+(?:эти\s+)?выходн(?:ых|ые)\b|\b(?:on\s+the|this)\s+weekend\b")
_ISO_DATE_RE = re.compile(r"(?<![\d.:/\-])(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?![\d\-])")

# "через 2 часа", "через час и 20 минут", "через 1 час 30 минут" (from "полтора часа")
_SPAN_RE = re.compile(
    r"\b(?:через|in)\s+(?:(?P<h>\d{1,2})\s*)?(?:(?:an?|one)\s+)?(?:час\w*|ч|hours?)"
    r"(?:\s+(?:и|and)?\s*(?P<mi>\d{1,2})\s*(?:минут\w*|мин|minutes?|mins?))?\b"
)
_RELATIVE_RE = re.compile(
    r"\b(?:через|in)\s+(?:(?P<n>\d{1,3})\s*)?(?:(?:an?|one)\s+)?"
    r"(?P<unit>минут\w*|мин|дн\w*|день|сут\w*|days?|minutes?|mins?|недел\w*|нед|weeks?)\b"
)
_HALF_HOUR_RE = re.compile(r"\bin\s+half\s+an\s+hour\b")

# Parts of the day: the local clock range each names (ParseResult.period), and how an hour said
# with it is read ("вечером в 7" is 19:00). "ночью" names no business hours: no range.
PERIODS: dict[str, tuple[time, time] | None] = {
    "morning": (time(9), time(12)),       # утром, с утра
    "first_half": (time(9), time(13)),    # в первой половине дня
    "lunch": (time(12), time(14)),        # в обед
    "day": (time(12), time(18)),          # днем
    "after_lunch": (time(14), time(18)),  # после обеда
    "second_half": (time(13), time(18)),  # во второй половине дня
    "evening": (time(18), time(22)),      # вечером
    "night": None,                        # ночью
}
_PERIOD_QUALIFIER = {"morning": "утра", "first_half": None, "lunch": "дня", "day": "дня", "after_lunch": "дня",
                     "second_half": "дня", "evening": "вечера", "night": "ночи"}
_PERIOD_RE = re.compile(
    r"\b(?:(?P<morning>утром|с утра|in the morning|morning)"
    r"|(?P<first_half>(?:в\s+)?первой половине дня|первая половина дня)"
    r"|(?P<second_half>(?:во\s+)?второй половине дня|вторая половина дня)"
    r"|(?P<after_lunch>после обеда|in the afternoon|afternoon)"
    r"|(?P<lunch>в обед|в обеденное время|at lunch)"
    r"|(?P<day>днем)"
    r"|(?P<evening>вечером|in the evening|evening)"
    r"|(?P<night>ночью|at night))\b"
)

_Q = r"(?:\s*(?P<q>утра|утром|дня|днем|вечера|вечером|ночи|am|pm)\b)?"
_COLON_TIME_RE = re.compile(r"(?<![\d:])(?P<h>\d{1,2})\s*:\s*(?P<mi>\d{2})(?![\d:])" + _Q)
_DOTTED_RE = re.compile(r"(?<![\d.:/])(?P<a>\d{1,2})\.(?P<b>\d{1,2})(?![\d.:/])" + _Q)
_DASH_TIME_RE = re.compile(r"(?<![\d\-])(?P<h>\d{1,2})-(?P<mi>\d{2})(?![\d\-])" + _Q)
_UNIT_H = r"(?:\s*(?:часов|часа|час|ч)\b)"
_UNIT_M = r"(?:\s*(?P<mi>\d{1,2})\s*(?:минут\w*|мин)\b)"
_PREP = r"(?:в|во|к|около|at)"
_HOURS_FIRST_RE = re.compile(r"\b(?:часов|часа|часиков|часика)\s+в\s+(?P<h>\d{1,2})(?!\d)" + _Q)
# "в 11 30" (from "в одиннадцать тридцать"): an hour and two-digit minutes after a preposition
_PREP_PAIR_RE = re.compile(
    r"\b" + _PREP + r"\s+(?P<h>\d{1,2})\s+(?P<mi>\d{2})\b(?![\d.:\-]|\s*(?:минут|мин|час|ч\b|дн|недел))" + _Q
)
_PREP_TIME_RE = re.compile(
    r"\b" + _PREP + r"\s+(?P<h>\d{1,2})(?![\d.:\-])" + _UNIT_H + "?" + _UNIT_M + "?" + _Q
)
_UNIT_TIME_RE = re.compile(r"\b(?P<h>\d{1,2})" + _UNIT_H + _UNIT_M + "?" + _Q)
_QUALIFIED_RE = re.compile(r"\b(?P<h>\d{1,2})\s*(?P<q>утра|дня|вечера|ночи|am|pm)\b")
_NOON_RE = re.compile(r"\b(?:в\s+)?(?:полдень|noon)\b")
_MIDNIGHT_RE = re.compile(r"\b(?:в\s+)?(?:полночь|midnight)\b")
_ONE_OCLOCK_RE = re.compile(r"\b(?:в|к|около)\s+(?:час|часу)\b(?:\s+(?P<q>дня|ночи))?")  # "к часу": 13:00
_BARE_NUMBER_RE = re.compile(r"(?<![\d.:/\-])\b(?P<h>\d{1,2})\b(?![\d.:/\-])")
_BARE_PAIR_RE = re.compile(r"(?<![\d.:/\-])\b(?P<h>\d{1,2})\s+(?P<mi>\d{2})\b(?![\d.:/\-])")
_DURATION_RE = re.compile(r"\b(?:на|for)\s+(?:\d{1,3}\s*)?(?:час\w*|минут\w*|мин|hours?|minutes?)\b")
_PREP_BEFORE_RE = re.compile(r"(?:\b(?:в|во|к|около|at|by|с)\s*)$")


# Ranges and bounds: never one time, but a window the offered slots are narrowed to ("после 3",
# "до 12", "с 11 до 13", "между 10 и 12", "15-17", "до обеда"). An hour reads as in a time ("после 3"
# is after 15:00); a qualifier after the second hour ("с 5 до 7 вечера") holds for both.
_HOUR = r"(?P<{h}>\d{{1,2}})(?:[:.](?P<{mi}>\d{{2}}))?(?:\s*(?:часов|часа|час|ч)\b)?"
_QN = r"(?:\s*(?P<{q}>утра|дня|вечера|ночи|am|pm)\b)?"
_H1, _H2 = _HOUR.format(h="h", mi="mi") + _QN.format(q="q1"), _HOUR.format(h="h2", mi="mi2") + _QN.format(q="q")
_FROM_TO_RE = re.compile(r"\b(?:с|со|от|from)\s+" + _H1 + r"\s*(?:до|по|-|to|till|until)\s*" + _H2)
_BETWEEN_RE = re.compile(r"\b(?:между|between)\s+" + _H1 + r"\s+(?:и|and)\s+" + _H2)
_DASH_RANGE_RE = re.compile(r"(?<![\d.:/\-])(?P<h>\d{1,2})-(?P<h2>\d{1,2})(?![\d.:/\-])" + _QN.format(q="q"))
_AFTER_RE = re.compile(r"\b(?:после|не\s+раньше|позже|позднее|с|со|от|after)\s+" + _H1)
_BEFORE_RE = re.compile(r"\b(?:до|не\s+позже|не\s+позднее|раньше|before|by)\s+" + _H1)
_BEFORE_LUNCH_RE = re.compile(r"\bдо\s+обеда\b|\bbefore\s+lunch\b")
LUNCH = time(12)  # "до обеда" ends where "в обед" (PERIODS) begins


def _hour_with_qualifier(hour: int, qualifier: str | None) -> int | None:
    q = qualifier or ""
    if q in ("утра", "утром", "am"):
        if hour == 12 and q == "am":
            return 0
        return hour if 0 <= hour <= 11 else None
    if q in ("дня", "днем"):
        return hour + 12 if 1 <= hour <= 6 else (hour if 12 <= hour <= 18 else None)
    if q in ("вечера", "вечером", "pm"):
        if hour == 12 and q == "pm":
            return 12
        return hour + 12 if 1 <= hour <= 11 else (hour if 12 < hour <= 23 else None)
    if q == "ночи":
        return 0 if hour == 12 else (hour if 0 <= hour <= 5 else None)
    if hour > 23:
        return None
    if 1 <= hour <= 7:
        return hour + 12  # "в 3" in a sales chat is 15:00
    return hour


def _take(s: str, m: re.Match) -> str:
    return s[: m.start()] + " " * (m.end() - m.start()) + s[m.end():]


def _month_of(m: re.Match) -> int:
    return next(i for i in range(12) if m.group(f"m{i}")) + 1


def _collect(s: str) -> tuple[_Found, str]:
    """Find every day and time in the normalised phrase; return them and what is left."""
    found = _Found()
    original = s
    for m in list(_PERIOD_RE.finditer(s)):
        found.periods.append(m.lastgroup)
        s = _take(s, m)
    default_q = _PERIOD_QUALIFIER[found.periods[0]] if len(found.periods) == 1 else None

    def hour_of(m: re.Match, hour_group: str = "h") -> int | None:
        return _hour_with_qualifier(int(m.group(hour_group)), m.groupdict().get("q") or default_q)

    def add_time(hour: int | None, minute: int) -> None:
        if hour is None or not 0 <= hour <= 23 or not 0 <= minute <= 59:
            found.invalid = True
        else:
            found.times.append((hour, minute))

    for m in list(_DURATION_RE.finditer(s)):  # "на 2 часа" is how long, not when
        s = _take(s, m)
    for m in list(_HALF_HOUR_RE.finditer(s)):
        found.exact.append(timedelta(minutes=30))
        s = _take(s, m)
    for m in list(_SPAN_RE.finditer(s)):
        found.exact.append(timedelta(hours=int(m.group("h") or 1), minutes=int(m.group("mi") or 0)))
        s = _take(s, m)
    for m in list(_RELATIVE_RE.finditer(s)):
        n = int(m.group("n") or 1)
        unit = m.group("unit")
        if unit.startswith(("мин", "min")):
            found.exact.append(timedelta(minutes=n))
        elif unit.startswith(("нед", "week")):
            found.days.append(("offset", 7 * n))
        elif m.group("n") is None and unit.startswith(("ден", "дн")):
            found.ambiguous = True  # "через день": tomorrow, or the day after? ask
        else:
            found.days.append(("offset", n))
        s = _take(s, m)
    for pattern, offset in _DAY_WORDS:
        for m in list(pattern.finditer(s)):
            found.days.append(("offset", offset))
            s = _take(s, m)
    for m in list(_NEXT_WEEK_RE.finditer(s)):
        found.next_week = True
        s = _take(s, m)
    for m in list(_THIS_WEEK_RE.finditer(s)):
        found.this_week = True
        s = _take(s, m)
    for m in list(_WEEKEND_RE.finditer(s)):
        found.weekend = True
        s = _take(s, m)
    for m in list(_ISO_DATE_RE.finditer(s)):
        found.days.append(("date", int(m.group("d")), int(m.group("m")), int(m.group("y"))))
        s = _take(s, m)
    for m in list(_NUMERIC_DATE_RE.finditer(s)):
        year = int(m.group("y"))
        found.days.append(("date", int(m.group("d")), int(m.group("m")), year + 2000 if year < 100 else year))
        s = _take(s, m)
    for pattern in (_DAY_MONTH_RE, _MONTH_DAY_RE):
        for m in list(pattern.finditer(s)):
            year = int(m.group("y")) if m.group("y") else None
            found.days.append(("date", int(m.group("d")), _month_of(m), year))
            s = _take(s, m)
    for m in list(_DAY_OF_MONTH_RE.finditer(s)):
        found.days.append(("dom", int(m.group("d"))))
        s = _take(s, m)
    for m in list(_SLASH_DATE_RE.finditer(s)):
        found.days.append(("date", int(m.group("d")), int(m.group("m")), None))
        s = _take(s, m)
    for m in list(_WEEKDAY_RE.finditer(s)):
        weekday = next(i for i in range(7) if m.group(f"wd{i}"))
        modifier = m.group("mod") or ""
        found.days.append(("weekday", weekday, modifier.startswith(("след", "next"))))
        s = _take(s, m)

    def clock(m: re.Match, h: str, mi: str, q: str) -> time | None:
        hour = _hour_with_qualifier(int(m.group(h)), m.groupdict().get(q) or m.groupdict().get("q") or default_q)
        minute = int(m.group(mi)) if m.groupdict().get(mi) else 0
        if hour is None or not 0 <= hour <= 23 or not 0 <= minute <= 59:
            found.invalid = True
            return None
        return time(hour, minute)

    for m in list(_BEFORE_LUNCH_RE.finditer(s)):
        found.bounds.append((None, LUNCH))
        s = _take(s, m)
    for pattern in (_FROM_TO_RE, _BETWEEN_RE):
        for m in list(pattern.finditer(s)):
            found.bounds.append((clock(m, "h", "mi", "q1"), clock(m, "h2", "mi2", "q")))
            s = _take(s, m)
    for m in list(_DASH_RANGE_RE.finditer(s)):
        if int(m.group("h")) < int(m.group("h2")) <= 23:  # "15-17", "5-6 вечера"; "17-30" is a time
            found.bounds.append((clock(m, "h", "mi", "q"), clock(m, "h2", "mi2", "q")))
            s = _take(s, m)
    for pattern, side in ((_AFTER_RE, 0), (_BEFORE_RE, 1)):
        for m in list(pattern.finditer(s)):
            bound = clock(m, "h", "mi", "q1")
            found.bounds.append((bound, None) if side == 0 else (None, bound))
            s = _take(s, m)

    for m in list(_COLON_TIME_RE.finditer(s)):
        add_time(hour_of(m), int(m.group("mi")))
        s = _take(s, m)
    for m in list(_DOTTED_RE.finditer(s)):
        a, b = int(m.group("a")), int(m.group("b"))
        # a preposition right before it in the phrase as written: "в 10.30" is a time; "в 11:00 23.12"
        # is a date (the preposition belongs to the time before it)
        after_preposition = bool(_PREP_BEFORE_RE.search(original[: m.start()]))
        is_time = len(m.group("b")) == 2 and (m.group("q") or b > 12 or b == 0 or (a <= 23 and after_preposition))
        if is_time:
            add_time(hour_of(m, "a"), b)
        else:  # "25.12", "3.1": a date
            found.days.append(("date", a, b, None))
        s = _take(s, m)
    for m in list(_DASH_TIME_RE.finditer(s)):
        hour, minute = int(m.group("h")), int(m.group("mi"))
        if hour < minute <= 23:
            found.ambiguous = True  # "14-16": 14:16, or from 14 to 16? ask
        else:
            add_time(hour_of(m), minute)
        s = _take(s, m)
    for pattern in (_HOURS_FIRST_RE, _PREP_PAIR_RE, _PREP_TIME_RE, _UNIT_TIME_RE, _QUALIFIED_RE):
        for m in list(pattern.finditer(s)):
            minute_text = m.groupdict().get("mi")
            add_time(hour_of(m), int(minute_text) if minute_text else 0)
            s = _take(s, m)
    for m in list(_NOON_RE.finditer(s)):
        found.times.append((12, 0))
        s = _take(s, m)
    for m in list(_MIDNIGHT_RE.finditer(s)):
        found.times.append((0, 0))
        found.midnight = True
        s = _take(s, m)
    for m in list(_ONE_OCLOCK_RE.finditer(s)):
        found.times.append((1, 0) if m.group("q") == "ночи" else (13, 0))
        s = _take(s, m)
    if found.days and not found.times:  # "завтра 15", "ср 11", "завтра 10 45": the hour next to a day
        pairs = list(_BARE_PAIR_RE.finditer(s))
        bare = list(_BARE_NUMBER_RE.finditer(s))
        if len(pairs) == 1 and len(bare) == 2:
            add_time(hour_of(pairs[0]), int(pairs[0].group("mi")))
            s = _take(s, pairs[0])
        elif len(bare) == 1:
            add_time(hour_of(bare[0]), 0)
            s = _take(s, bare[0])
    return found, s


def _resolve_day(spec: tuple, today: date, next_week: bool) -> tuple[date | None, str]:
    """A day spec → (date, how): how is 'weekday', 'date', 'dated' (year given) or 'offset'."""
    kind = spec[0]
    if kind == "offset":
        return today + timedelta(days=spec[1]), "offset"
    if kind == "weekday":
        weekday, explicit_next = spec[1], spec[2]
        if explicit_next or next_week:
            monday_next = today + timedelta(days=7 - today.weekday())
            return monday_next + timedelta(days=weekday), "fixed"
        return today + timedelta(days=(weekday - today.weekday()) % 7), "weekday"
    if kind == "dom":
        day = spec[1]
        for months_ahead in range(3):
            year, month = today.year + (today.month - 1 + months_ahead) // 12, (today.month - 1 + months_ahead) % 12 + 1
            try:
                candidate = date(year, month, day)
            except ValueError:
                continue
            if candidate >= today:
                return candidate, "fixed"
        return None, "invalid"
    day, month, year = spec[1], spec[2], spec[3]
    try:
        if year is not None:
            return date(year, month, day), "dated"
        candidate = date(today.year, month, day)
    except ValueError:
        return None, "invalid"
    if candidate < today:
        try:
            candidate = date(today.year + 1, month, day)
        except ValueError:  # 29 February next year
            return None, "invalid"
    return candidate, "date"


def _agreeing_day(specs: list[tuple], resolved: list[tuple[date, str]]) -> tuple[date | None, str]:
    """One day, or several that name the same day ("в среду, 24 декабря"); anything else is None."""
    if len(resolved) == 1:
        return resolved[0]
    exact = [(d, how) for (d, how), spec in zip(resolved, specs, strict=True) if spec[0] != "weekday"]
    weekdays = [spec for spec in specs if spec[0] == "weekday"]
    if not exact or len({d for d, _ in exact}) != 1:
        return None, "none"
    day, how = exact[0]
    if any(spec[1] != day.weekday() for spec in weekdays):
        return None, "none"  # "в четверг, 24 декабря" when the 24th is a Wednesday: ask again
    return day, how


def parse_rules(text: str, now: datetime, tz: ZoneInfo | None = None) -> tuple[ParseResult, bool]:
    """Parse with the rules alone. Returns the result and whether the rules found anything at all
    (when they found nothing, a Claude fallback may try)."""
    tz = tz or now.tzinfo
    local_now = now.astimezone(tz)
    found, rest = _collect(normalise(text))
    anything = found.anything()

    def result(kind: Kind, when: datetime | None = None, **extra: Any) -> tuple[ParseResult, bool]:
        return ParseResult(text, kind, when, "rules" if anything else None, **extra), anything

    if not anything:
        return result("not_understood")
    if found.invalid:
        return result("invalid")
    # Every word must be read or be known filler: an unknown word ("в выходные", "после 15", "в мае",
    # "по Киеву", "совещание") may change the meaning, so the phrase goes to the fallback instead.
    if found.ambiguous or timewords.unknown_words(rest) or len(found.times) > 1 or len(found.periods) > 1:
        return result("not_understood")
    weeks = found.next_week + found.this_week + found.weekend
    if found.exact:
        if len(found.exact) > 1 or found.days or found.times or weeks or found.periods or found.bounds:
            return result("not_understood")
        return result("ok", (local_now + found.exact[0]).replace(second=0, microsecond=0))
    if len(found.bounds) > 1 or (found.bounds and (found.times or found.periods)) or weeks > 1:
        return result("not_understood")  # "после 3 до обеда", "завтра в 11 после 12": which?
    today = local_now.date()
    if weeks and not found.days:
        # "на следующей неделе", "на этой неделе", "на выходных" (and a part of the day or a bound with
        # it): a range of days; with a time and no day ("на следующей неделе в 11") it names no day
        if found.times:
            return result("not_understood")
        first, last = _week_days(today, found)
        return result("range", day=first, last_day=last, period=_window(found))

    if found.bounds and found.times:
        return result("not_understood")
    today = local_now.date()
    day, how = None, "none"
    if found.days:
        resolved = [_resolve_day(spec, today, found.next_week) for spec in found.days]
        if any(d is None for d, _ in resolved):
            return result("invalid")
        day, how = _agreeing_day(found.days, resolved)
        if day is None:
            return result("not_understood")
    if found.bounds:
        window = _window(found)
        if window is None:
            return result("not_understood")  # "с 16 до 14"
        if day is not None and _ends(day, window[1], tz) <= local_now:
            if how != "weekday":
                return result("past")
            day += timedelta(days=7)  # "в пятницу до 12" on a Friday afternoon: next Friday
        return result("range", day=day, period=window)
    if not found.times:
        period = PERIODS[found.periods[0]] if found.periods else None
        if day is not None and period is not None and datetime.combine(day, period[1], tzinfo=tz) <= local_now:
            if how != "weekday":
                return result("past")  # "сегодня утром" in the afternoon
            day += timedelta(days=7)  # "в пятницу утром" on a Friday afternoon: next Friday
        if day is not None and day < today:
            return result("past")
        if day is None and not found.periods:
            return result("not_understood")
        return result("need_time", day=day, period=period)

    hour, minute = found.times[0]
    if day is None:
        moment = datetime.combine(today, time(hour, minute), tzinfo=tz)
        if moment <= local_now:
            moment = datetime.combine(today + timedelta(days=1), time(hour, minute), tzinfo=tz)
        return result("ok", moment, time_only=True)
    if found.midnight:  # «завтра в полночь» is the night after tomorrow's evening: 24:00 of that day
        day += timedelta(days=1)
    moment = datetime.combine(day, time(hour, minute), tzinfo=tz)
    if moment <= local_now:
        if how == "weekday":  # this weekday's time has passed: next week
            moment = datetime.combine(day + timedelta(days=7), time(hour, minute), tzinfo=tz)
        else:
            return result("past")
    return result("ok", moment)


def _window(found: _Found) -> tuple[time, time] | None:
    """The clock window of a range: its bound (an open start is 00:00, an open end time.max) or its part
    of the day; None for the whole day, or for a bound that ends before it starts."""
    if found.bounds:
        start, end = found.bounds[0]
        window = (start or time(0), end or time.max)
        return window if window[0] < window[1] else None
    return PERIODS[found.periods[0]] if found.periods else None


def _ends(day: date, end: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz) if end == time.max \
        else datetime.combine(day, end, tzinfo=tz)


def _week_days(today: date, found: _Found) -> tuple[date, date]:
    """The days of "на следующей неделе" (Monday to Sunday of the next calendar week), "на этой
    неделе" (today to Sunday) or "на выходных" (this week's Saturday and Sunday, or what is left)."""
    sunday = today + timedelta(days=6 - today.weekday())
    if found.next_week:
        return sunday + timedelta(days=1), sunday + timedelta(days=7)
    if found.weekend:
        return max(today, sunday - timedelta(days=1)), sunday
    return today, sunday


# --- a reader for what the rules cannot place (claude/timereader.py) -------------------------------


class TimeReader(Protocol):
    """Reads a phrase the rules could not place (the Claude fallback); never raises."""

    async def __call__(self, text: str, now: datetime, tz: ZoneInfo, lead_id: int | None) -> ParseResult: ...


async def parse(text: str, now: datetime, tz: ZoneInfo, reader: TimeReader | None = None,
                lead_id: int | None = None) -> ParseResult:
    """Rules first; Claude only when the rules cannot place the phrase at all.

    A day without a time, the past and impossible values are the rules' final word: asking Claude
    about "32 декабря" could only produce a confident wrong date.
    """
    result, _ = parse_rules(text, now, tz)
    if result.kind != "not_understood" or reader is None or not text.strip():
        return result
    return await reader(text, now, tz, lead_id)
