"""A lead's own meeting time, written in their words, as an aware datetime.

Pure rules first: no network, a small fraction of a millisecond a phrase. Only when the rules find
nothing at all does one call to the fast Claude model try, with a calendar of the next two weeks
(models miscount weekdays) and a strict check of what comes back.

How phrases are read (always forward from `now`, in the business time zone):
- a weekday ("в среду") is the next such day, today included while its time is ahead; a weekday
  whose time has passed today means next week;
- "в следующую пятницу", "next friday" and "на следующей неделе в пятницу" mean the Friday of the
  next calendar week (Monday to Sunday), never this week's, even if this week's is still ahead;
  "в эту/ближайшую пятницу" is the plain reading;
- a time with no day ("в 15:00") is today while ahead, otherwise tomorrow;
- a date with no year ("25 декабря", "25.12") is this year while ahead, otherwise next year; a date
  that is today with its time passed, or with a year in the past, has passed;
- "25.12" is a date and "15.00", "10.30" are times; "10.05" after "в"/"к" is a time, else a date;
- an hour with no "утра/дня/вечера/am/pm" from 1 to 7 means afternoon (15:00 for "в 3"): nobody
  books a sales meeting at 3 a.m.; "в 3 утра" is 03:00;
- "через 2 часа" is exact to the minute; "через 3 дня" and "через неделю" are days and need a time.
A refusal is always better than a wrong date: a day with no time asks for the time; two days or two
times, "или", "не", a number the rules cannot place, 25:00 or 30 февраля are not understood; the
past ("вчера в 10:00") is reported as passed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from salesbot.llm import ClaudeClient

log = logging.getLogger(__name__)

Kind = Literal["ok", "need_time", "past", "invalid", "not_understood"]
REASONS: dict[str, str] = {
    "need_time": "no time given",
    "past": "that time has passed",
    "invalid": "impossible date or time",
    "not_understood": "not understood",
}
FALLBACK_HORIZON_DAYS = 180

WEEKDAYS_RU = ["понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье"]
MONTHS_RU_GEN = ["января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября",
                 "октября", "ноября", "декабря"]


@dataclass
class ParseResult:
    text: str
    kind: Kind
    when: datetime | None = None
    source: Literal["rules", "claude"] | None = None
    day: date | None = None  # need_time: the day the lead named ("завтра"), to pair with a later time
    time_only: bool = False  # ok: the lead gave a time and no day ("в 15")

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def error(self) -> str | None:
        return None if self.ok else REASONS[self.kind]

    def as_json(self) -> dict[str, Any]:
        return {"text": self.text, "datetime": self.when.isoformat() if self.when else None,
                "error": self.error, "source": self.source}


def describe(moment: datetime) -> str:
    """`среда, 24 декабря 2025, 11:00 (Europe/Moscow)`."""
    zone = getattr(moment.tzinfo, "key", str(moment.tzinfo))
    return (f"{WEEKDAYS_RU[moment.weekday()]}, {moment.day} {MONTHS_RU_GEN[moment.month - 1]} {moment.year}, "
            f"{moment:%H:%M} ({zone})")


def describe_day(day: date) -> str:
    """`среда, 24 декабря`."""
    return f"{WEEKDAYS_RU[day.weekday()]}, {day.day} {MONTHS_RU_GEN[day.month - 1]}"


# --- normalisation ------------------------------------------------------------------------------

_NUMBER_WORDS = {
    "один": 1, "одну": 1, "одна": 1, "два": 2, "две": 2, "пару": 2, "пара": 2, "три": 3, "четыре": 4,
    "пять": 5, "шесть": 6, "семь": 7, "восемь": 8, "девять": 9, "десять": 10, "одиннадцать": 11,
    "двенадцать": 12, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}
_NUMBER_RE = re.compile(r"\b(" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")\b")
_PUNCT_RE = re.compile(r"[!?,;()«»\"'…]+|(?<!\d)[.:](?!\d)|(?<=\d)\.(?!\d)")


def normalise(text: str) -> str:
    s = text.lower().replace("ё", "е").replace("\u00a0", " ")
    s = re.sub(r"[–—−]", "-", s)
    s = re.sub(r"\b([ap])\.\s?m\.?", r"\1m", s)
    s = _NUMBER_RE.sub(lambda m: str(_NUMBER_WORDS[m.group(1)]), s)
    s = _PUNCT_RE.sub(" ", s)
    return " ".join(s.split())


# --- what the rules collect ---------------------------------------------------------------------


@dataclass
class _Found:
    days: list[tuple] = field(default_factory=list)  # ("offset", n) ("weekday", wd, next) ("date", d, m, y)
    times: list[tuple[int, int]] = field(default_factory=list)
    exact: list[timedelta] = field(default_factory=list)  # "через 2 часа": now + delta
    vague_time: bool = False
    next_week: bool = False
    invalid: bool = False
    ambiguous: bool = False

    def anything(self) -> bool:
        return bool(self.days or self.times or self.exact or self.vague_time or self.next_week or self.invalid
                    or self.ambiguous)


_WEEKDAY_PATTERNS = [
    r"понедельник\w*|пн|пон",
    r"вторник\w*|вт|втор",
    r"сред[аеуы]|ср",
    r"четверг\w*|чт|чет|четв",
    r"пятниц\w*|пт|пят",
    r"суббот\w*|сб|суб",
    r"воскресень\w*|вс|воскр",
]
_WEEKDAYS_EN = ["mon(?:day)?", "tue(?:s|sday)?", "wed(?:nesday)?", "thu(?:r|rs|rsday)?", "fri(?:day)?",
                "sat(?:urday)?", "sun(?:day)?"]
_WEEKDAY_RE = re.compile(
    r"\b(?:(?:в|во|на|on)\s+)?(?P<mod>следующ\w*|след|эт\w+|ближайш\w*|next|this|coming)?\s*(?:(?:в|во|на|on)\s+)?"
    r"(?:" + "|".join(f"(?P<wd{i}>{ru}|{en})" for i, (ru, en) in enumerate(zip(_WEEKDAY_PATTERNS, _WEEKDAYS_EN,
                                                                                   strict=True))) + r")\b"
)

_MONTHS = [
    (r"январ\w*|янв", "jan(?:uary)?"), (r"феврал\w*|фев", "feb(?:ruary)?"), (r"март\w*|мар", "mar(?:ch)?"),
    (r"апрел\w*|апр", "apr(?:il)?"), (r"ма[йяе]", "may"), (r"июн\w*", "june?"), (r"июл\w*", "july?"),
    (r"август\w*|авг", "aug(?:ust)?"), (r"сентябр\w*|сент|сен", "sep(?:t|tember)?"),
    (r"октябр\w*|окт", "oct(?:ober)?"), (r"ноябр\w*|ноя", "nov(?:ember)?"), (r"декабр\w*|дек", "dec(?:ember)?"),
]
_MONTH_ALT = "|".join(f"(?P<m{i}>{ru}|{en})" for i, (ru, en) in enumerate(_MONTHS))
_ORD = r"(?:-?(?:го|е|ое|ого|st|nd|rd|th))?"
_YEAR = r"(?:\s+(?P<y>\d{4})(?:\s*(?:года|год|г))?)?"
_DAY_MONTH_RE = re.compile(r"\b(?P<d>\d{1,2})" + _ORD + r"\s+(?:" + _MONTH_ALT + r")\b" + _YEAR)
_MONTH_DAY_RE = re.compile(r"\b(?:" + _MONTH_ALT + r")\s+(?P<d>\d{1,2})" + _ORD + r"\b(?!\s*(?::|\d))" + _YEAR)
_NUMERIC_DATE_RE = re.compile(r"(?<![\d.:/])(?P<d>\d{1,2})[./](?P<m>\d{1,2})[./](?P<y>\d{4}|\d{2})(?![\d.:/])")
_SLASH_DATE_RE = re.compile(r"(?<![\d./])(?P<d>\d{1,2})/(?P<m>\d{1,2})(?![\d/])")
_DAY_OF_MONTH_RE = re.compile(r"\b(?P<d>\d{1,2})(?:-?(?:го|ого)(?:\s+числа)?|\s+числа)\b")

_DAY_WORDS = [
    (re.compile(r"\bпозавчера\b"), -2), (re.compile(r"\bпослезавтра\b|\bday after tomorrow\b"), 2),
    (re.compile(r"\bзавтра\b|\btomorrow\b"), 1), (re.compile(r"\bсегодня\b|\btoday\b|\btonight\b"), 0),
    (re.compile(r"\bвчера\b|\byesterday\b"), -1),
]
_NEXT_WEEK_RE = re.compile(r"\b(?:на\s+)?следующей\s+неделе\b|\bnext\s+week\b")
_THIS_WEEK_RE = re.compile(r"\b(?:на\s+)?этой\s+неделе\b|\bthis\s+week\b")

_RELATIVE_RE = re.compile(
    r"\b(?:через|in)\s+(?:(?P<n>\d{1,3})\s*)?(?:(?:an?|one)\s+)?"
    r"(?P<unit>минут\w*|мин|час\w*|ч|hours?|minutes?|mins?|дн\w*|день|сут\w*|days?|недел\w*|нед|weeks?)\b"
)
_HALF_HOUR_RE = re.compile(r"\bчерез\s+полчаса\b|\bin\s+half\s+an\s+hour\b")

_Q = r"(?:\s*(?P<q>утра|утром|дня|днем|вечера|вечером|ночи|am|pm)\b)?"
_COLON_TIME_RE = re.compile(r"(?<![\d:])(?P<h>\d{1,2})\s*:\s*(?P<mi>\d{2})(?![\d:])" + _Q)
_DOTTED_RE = re.compile(r"(?<![\d.:/])(?P<a>\d{1,2})\.(?P<b>\d{2})(?![\d.:/])" + _Q)
_DASH_TIME_RE = re.compile(r"(?<![\d\-])(?P<h>\d{1,2})-(?P<mi>\d{2})(?![\d\-])" + _Q)
_UNIT_H = r"(?:\s*(?:часов|часа|час|ч)\b\.?)"
_UNIT_M = r"(?:\s*(?P<mi>\d{1,2})\s*(?:минут\w*|мин)\b\.?)"
_HOURS_FIRST_RE = re.compile(r"\bчасов\s+в\s+(?P<h>\d{1,2})(?!\d)" + _Q)
_PREP_TIME_RE = re.compile(
    r"\b(?:в|во|к|около|at|by|after|после)\s+(?P<h>\d{1,2})(?![\d.:])" + _UNIT_H + "?" + _UNIT_M + "?" + _Q
)
_UNIT_TIME_RE = re.compile(r"\b(?P<h>\d{1,2})" + _UNIT_H + _UNIT_M + "?" + _Q)
_QUALIFIED_RE = re.compile(r"\b(?P<h>\d{1,2})\s*(?P<q>утра|дня|вечера|ночи|am|pm)\b")
_ORDINAL_HOURS = ["первого", "второго", "третьего", "четвертого", "пятого", "шестого", "седьмого", "восьмого",
                  "девятого", "десятого", "одиннадцатого", "двенадцатого"]
_HALF_PAST_RE = re.compile(  # "в полпятого", "в половине пятого": 4:30, i.e. half-way to five
    r"\b(?:в\s+)?пол(?:овин[аеуы])?\s*(?P<ord>" + "|".join(_ORDINAL_HOURS) + r")\b" + _Q
)
_NOON_RE = re.compile(r"\b(?:в\s+)?(?:полдень|noon)\b")
_MIDNIGHT_RE = re.compile(r"\b(?:в\s+)?(?:полночь|midnight)\b")
_ONE_OCLOCK_RE = re.compile(r"\bв\s+час\b(?:\s+(?P<q>дня|ночи))?")
_BARE_NUMBER_RE = re.compile(r"(?<![\d.:/\-])\b(?P<h>\d{1,2})\b(?![\d.:/\-])")
_VAGUE_TIME_RE = re.compile(
    r"\b(?P<morning>утром|с утра|до обеда|morning)\b|\b(?P<day>днем|после обеда|в обед|afternoon)\b"
    r"|\b(?P<evening>вечером|evening|tonight)\b|\b(?P<night>ночью)\b"
)
_PERIOD_QUALIFIER = {"morning": "утра", "day": "дня", "evening": "вечера", "night": "ночи"}
_DURATION_RE = re.compile(r"\b(?:на|for)\s+(?:\d{1,3}\s*)?(?:час\w*|минут\w*|мин|hours?|minutes?)\b")
# Words that change which day is meant ("в первый понедельник", "кроме среды", "или"): refuse.
_DOUBT_RE = re.compile(
    r"\b(?:или|либо|не|нет|кроме|перв\w+|втор(?:ой|ую|ого)|трет\w+|последн\w+|кажд\w+|праздник\w*|"
    r"or|not|except|first|second|last|every)\b"
)
_PREP_BEFORE_RE = re.compile(r"(?:\b(?:в|во|к|около|at|by|с)\s*)$")


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
    period = _VAGUE_TIME_RE.search(s)
    default_q = _PERIOD_QUALIFIER[period.lastgroup] if period else None  # "вечером в 7" is 19:00

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
    for m in list(_RELATIVE_RE.finditer(s)):
        n = int(m.group("n") or 1)
        unit = m.group("unit")
        if unit.startswith(("мин", "min")):
            found.exact.append(timedelta(minutes=n))
        elif unit.startswith(("час", "hour")) or unit == "ч":
            found.exact.append(timedelta(hours=n))
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
        s = _take(s, m)
    for pattern in (_NUMERIC_DATE_RE,):
        for m in list(pattern.finditer(s)):
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

    for m in list(_COLON_TIME_RE.finditer(s)):
        add_time(hour_of(m), int(m.group("mi")))
        s = _take(s, m)
    for m in list(_DOTTED_RE.finditer(s)):
        a, b = int(m.group("a")), int(m.group("b"))
        after_preposition = bool(_PREP_BEFORE_RE.search(s[: m.start()]))
        is_time = m.group("q") or b > 12 or b == 0 or (a <= 23 and after_preposition)
        if is_time:
            add_time(hour_of(m, "a"), b)
        else:
            found.days.append(("date", a, b, None))
        s = _take(s, m)
    for m in list(_DASH_TIME_RE.finditer(s)):
        add_time(hour_of(m), int(m.group("mi")))
        s = _take(s, m)
    for pattern in (_HOURS_FIRST_RE, _PREP_TIME_RE, _UNIT_TIME_RE, _QUALIFIED_RE):
        for m in list(pattern.finditer(s)):
            minute_text = m.groupdict().get("mi")
            minute = int(minute_text) if minute_text else 0
            add_time(hour_of(m), minute)
            s = _take(s, m)
    for m in list(_HALF_PAST_RE.finditer(s)):
        hour = _ORDINAL_HOURS.index(m.group("ord"))  # полпятого: index 4 → 4:30
        add_time(12 if hour == 0 else _hour_with_qualifier(hour, m.group("q") or default_q), 30)
        s = _take(s, m)
    for m in list(_NOON_RE.finditer(s)):
        found.times.append((12, 0))
        s = _take(s, m)
    for m in list(_MIDNIGHT_RE.finditer(s)):
        found.times.append((0, 0))
        s = _take(s, m)
    for m in list(_ONE_OCLOCK_RE.finditer(s)):
        found.times.append((1, 0) if m.group("q") == "ночи" else (13, 0))
        s = _take(s, m)
    if found.days and not found.times:  # "завтра 15", "ср 11": a lone number next to a day is the hour
        bare = list(_BARE_NUMBER_RE.finditer(s))
        if len(bare) == 1:
            add_time(hour_of(bare[0]), 0)
            s = _take(s, bare[0])
    for m in list(_VAGUE_TIME_RE.finditer(s)):
        found.vague_time = True
        s = _take(s, m)
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
    if found.ambiguous or re.search(r"\d", rest) or _DOUBT_RE.search(rest) or len(found.times) > 1:
        return result("not_understood")
    if found.exact:
        if len(found.exact) > 1 or found.days or found.times or found.next_week:
            return result("not_understood")
        return result("ok", (local_now + found.exact[0]).replace(second=0, microsecond=0))
    if found.next_week and not found.days:
        return result("not_understood")  # "на следующей неделе" alone names no day

    today = local_now.date()
    day, how = None, "none"
    if found.days:
        resolved = [_resolve_day(spec, today, found.next_week) for spec in found.days]
        if any(d is None for d, _ in resolved):
            return result("invalid")
        day, how = _agreeing_day(found.days, resolved)
        if day is None:
            return result("not_understood")
    if not found.times:
        if day is not None and day < today:
            return result("past")
        if day is None and not found.vague_time:
            return result("not_understood")
        return result("need_time", day=day)

    hour, minute = found.times[0]
    if day is None:
        moment = datetime.combine(today, time(hour, minute), tzinfo=tz)
        if moment <= local_now:
            moment = datetime.combine(today + timedelta(days=1), time(hour, minute), tzinfo=tz)
        return result("ok", moment, time_only=True)
    moment = datetime.combine(day, time(hour, minute), tzinfo=tz)
    if moment <= local_now:
        if how == "weekday":  # this weekday's time has passed: next week
            moment = datetime.combine(day + timedelta(days=7), time(hour, minute), tzinfo=tz)
        else:
            return result("past")
    return result("ok", moment)


# --- the Claude fallback (its prompt and schema live in prompts.py) -------------------------------


async def parse_with_claude(text: str, now: datetime, tz: ZoneInfo, claude: ClaudeClient,
                            lead_id: int | None = None) -> ParseResult:
    from salesbot import prompts
    from salesbot.errors import LLMUnavailable

    local_now = now.astimezone(tz)
    try:
        answer = await claude.structured(
            purpose="parse_time", model=claude.fast_model, answer_tokens=prompts.FALLBACK_ANSWER_TOKENS,
            schema=prompts.FALLBACK_SCHEMA, lead_id=lead_id,
            messages=[{"role": "user", "content": prompts.fallback_prompt(text, local_now)}],
        )
    except LLMUnavailable as exc:
        log.warning("parse-time fallback unavailable: %s", exc)
        return ParseResult(text, "not_understood")
    data = answer.data
    if data["kind"] == "none":
        return ParseResult(text, "not_understood", source="claude")
    try:
        day = date.fromisoformat(data["date"] or "")
    except ValueError:
        return ParseResult(text, "not_understood", source="claude")
    if data["kind"] == "date_only":
        kind: Kind = "past" if day < local_now.date() else "need_time"
        return ParseResult(text, kind, source="claude")
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", data["time"] or "")
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        return ParseResult(text, "not_understood", source="claude")
    moment = datetime.combine(day, time(int(m[1]), int(m[2])), tzinfo=tz)
    if moment <= local_now:
        return ParseResult(text, "past", source="claude")
    if moment > local_now + timedelta(days=FALLBACK_HORIZON_DAYS):
        return ParseResult(text, "not_understood", source="claude")
    return ParseResult(text, "ok", moment, "claude")


async def parse(text: str, now: datetime, tz: ZoneInfo, claude: ClaudeClient | None = None,
                lead_id: int | None = None) -> ParseResult:
    """Rules first; Claude only when the rules cannot place the phrase at all.

    A day without a time, the past and impossible values are the rules' final word: asking Claude
    about "32 декабря" could only produce a confident wrong date.
    """
    result, _ = parse_rules(text, now, tz)
    if result.kind != "not_understood" or claude is None or not text.strip():
        return result
    return await parse_with_claude(text, now, tz, claude, lead_id)
