"""The words of meeting-time phrases (salesbot/timeparse.py): numbers in words, the filler the rules
may skip, and a spelling check that reads a misspelt day or month word only when it is unmistakable.

Nothing here decides a date: timeparse does. This module only rewrites words into the forms the
rules read ("двадцать пятого" → "25-го", "без четверти шесть" → "5:45", "пятнцу" → "пятницу").
"""

from __future__ import annotations

import re
from collections import defaultdict

# --- numbers ------------------------------------------------------------------------------------

CARDINALS = {
    "ноль": 0, "один": 1, "одна": 1, "одну": 1, "два": 2, "две": 2, "три": 3,
    "четыре": 4, "пять": 5, "шесть": 6, "семь": 7, "восемь": 8, "девять": 9, "десять": 10,
    "одиннадцать": 11, "двенадцать": 12, "тринадцать": 13, "четырнадцать": 14, "пятнадцать": 15,
    "шестнадцать": 16, "семнадцать": 17, "восемнадцать": 18, "девятнадцать": 19, "двадцать": 20,
    "тридцать": 30, "сорок": 40, "пятьдесят": 50,
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12,
}
_TENS = {"двадцать": 20, "тридцать": 30, "сорок": 40, "пятьдесят": 50}
_UNITS = {w: n for w, n in CARDINALS.items() if 1 <= n <= 9 and not w.isascii()}
# genitive, as in "без двадцати пяти три" (25 minutes to three)
GENITIVES = {
    "одной": 1, "двух": 2, "трех": 3, "четырех": 4, "пяти": 5, "шести": 6, "семи": 7, "восьми": 8,
    "девяти": 9, "десяти": 10, "одиннадцати": 11, "двенадцати": 12, "тринадцати": 13, "четырнадцати": 14,
    "пятнадцати": 15, "шестнадцати": 16, "семнадцати": 17, "восемнадцати": 18, "девятнадцати": 19,
    "двадцати": 20, "тридцати": 30, "сорока": 40, "пятидесяти": 50, "четверти": 15,
}
_GEN_TENS = {"двадцати": 20, "тридцати": 30, "сорока": 40, "пятидесяти": 50}
_GEN_UNITS = {w: n for w, n in GENITIVES.items() if 1 <= n <= 9}
# the hour being run through: "полпятого" is 4:30, "в четверть девятого" 8:15
HOUR_ORDINALS = ["первого", "второго", "третьего", "четвертого", "пятого", "шестого", "седьмого", "восьмого",
                 "девятого", "десятого", "одиннадцатого", "двенадцатого"]
# day of the month in words: "двадцать восьмого", "тридцатого числа", "на первое"
_DAY_ORDINAL_STEMS = {
    "перв": 1, "втор": 2, "трет": 3, "четверт": 4, "пят": 5, "шест": 6, "седьм": 7, "восьм": 8, "девят": 9,
    "десят": 10, "одиннадцат": 11, "двенадцат": 12, "тринадцат": 13, "четырнадцат": 14, "пятнадцат": 15,
    "шестнадцат": 16, "семнадцат": 17, "восемнадцат": 18, "девятнадцат": 19, "двадцат": 20, "тридцат": 30,
}
DAY_ORDINALS = {stem + ("ьего" if stem == "трет" else "ого"): n for stem, n in _DAY_ORDINAL_STEMS.items()}
DAY_ORDINALS.update({stem + ("ье" if stem == "трет" else "ое"): n for stem, n in _DAY_ORDINAL_STEMS.items()})


def _alt(words) -> str:
    return "|".join(sorted(words, key=len, reverse=True))


_COMPOUND_RE = re.compile(rf"\b({_alt(_TENS)})\s+({_alt(_UNITS)})\b")
_CARDINAL_RE = re.compile(rf"\b({_alt(CARDINALS)})\b")
_ZERO_RE = re.compile(r"\b0\s+(\d)\b")  # "ноль пять" → "0 5" → "05"
_HOUR_ORD = _alt(HOUR_ORDINALS)
_MINUTES_GEN = rf"(?:(?:{_alt(_GEN_TENS)})\s+(?:{_alt(_GEN_UNITS)})|{_alt(GENITIVES)}|\d{{1,2}})"
_HALF_RE = re.compile(rf"\bпол(?:овин[аеуы])?[\s-]*(?P<ord>{_HOUR_ORD})\b")
# "в пол 11", "пол-10": half past the hour before, as "пол-одиннадцатого" (a digit, not a word)
_HALF_DIGIT_RE = re.compile(r"\bпол(?:овин[аеуы])?[\s-]*(?P<h>\d{1,2})\b(?![.:\d]|\s*(?:час|мин))")
_QUARTER_RE = re.compile(rf"\bчетверть\s+(?P<ord>{_HOUR_ORD})\b")
_MINUTES_PAST_RE = re.compile(rf"\b(?P<n>\d{{1,2}})\s+минут[уы]?\s+(?P<ord>{_HOUR_ORD})\b")
_TO_RE = re.compile(rf"\bбез\s+(?P<n>{_MINUTES_GEN})(?:\s+минут)?\s+(?P<h>\d{{1,2}}|час)\b")
_DAY_ORD_RE = re.compile(rf"\b(?:(?P<tens>20|30)\s+)?(?P<ord>{_alt(DAY_ORDINALS)})\b")
_ONE_AND_HALF_RE = re.compile(r"\bполтор[аы]\s+(час\w*)")
_N_AND_HALF_RE = re.compile(r"\b(\d{1,2})\s+с\s+половиной\s+(час\w*)")
_DECIMAL_HALF_RE = re.compile(r"\b(\d{1,2})[.,]5\s*(час\w*)")
_HALF_HOUR_RE = re.compile(r"\bпол\s*часа\b")
_COUPLE_RE = re.compile(r"\bпар[уа]\s+(час\w*|минут\w*)")  # "пару часов" is 2; "пару дней" is vague: left


def _minutes_gen(text: str) -> int:
    if text.isdigit():
        return int(text)
    parts = text.split()
    return sum(GENITIVES[p] for p in parts)


def _clock(hour: int, minute: int) -> str:
    return f"{hour or 12}:{minute:02d}"  # the hour before "первого" is 12, not 0


def decimal_hours(s: str) -> str:
    """"1,5 часа" (before commas are dropped as punctuation) → "1 час 30 минут"."""
    return _DECIMAL_HALF_RE.sub(r"\1 час 30 минут", s)


def numbers_in_words(s: str) -> str:
    """Rewrite numbers said in words into the digit forms the rules read."""
    s = _ONE_AND_HALF_RE.sub(r"1 час 30 минут", s)
    s = _HALF_HOUR_RE.sub("30 минут", s)
    s = _COUPLE_RE.sub(r"2 \1", s)
    s = _COMPOUND_RE.sub(lambda m: str(_TENS[m[1]] + _UNITS[m[2]]), s)
    s = _CARDINAL_RE.sub(lambda m: str(CARDINALS[m[1]]), s)
    s = _ZERO_RE.sub(r"0\1", s)
    s = _N_AND_HALF_RE.sub(r"\1 час 30 минут", s)
    # fractions of the hour, before the ordinals below are read as days
    s = _HALF_RE.sub(lambda m: _clock(HOUR_ORDINALS.index(m["ord"]), 30), s)
    s = _HALF_DIGIT_RE.sub(lambda m: _clock(int(m["h"]) - 1, 30) if 1 <= int(m["h"]) <= 12 else m[0], s)
    s = _QUARTER_RE.sub(lambda m: _clock(HOUR_ORDINALS.index(m["ord"]), 15), s)
    s = _MINUTES_PAST_RE.sub(lambda m: _clock(HOUR_ORDINALS.index(m["ord"]), int(m["n"]))
                             if 1 <= int(m["n"]) <= 59 else m[0], s)
    s = _TO_RE.sub(_to_the_hour, s)
    s = _DAY_ORD_RE.sub(_day_ordinal, s)
    return s


def _to_the_hour(m: re.Match) -> str:
    """"без четверти шесть" → 5:45; "без двадцати три" → 2:40."""
    minutes = _minutes_gen(m["n"])
    hour = 1 if m["h"] == "час" else int(m["h"])
    if not 1 <= minutes <= 59 or not 1 <= hour <= 24:
        return m[0]
    return _clock(hour - 1, 60 - minutes)


def _day_ordinal(m: re.Match) -> str:
    n = DAY_ORDINALS[m["ord"]] + (int(m["tens"]) if m["tens"] else 0)
    if (m["tens"] and DAY_ORDINALS[m["ord"]] > 9) or n > 31:
        return m[0]
    return f"{n}-го"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- filler: words that may stand around a time without changing it ------------------------------

FILLER = _words("""
в во на к ко и а ну да ок окей ага угу хорошо отлично супер конечно тогда пожалуйста плиз спасибо
привет здравствуйте здрасте давайте давай можно можем могу смогу сможем сможете сможешь удобно удобнее
лучше мне нам вам тебе меня нас я мы вы бы было будет будем буду подойдет подходит устроит устраивает
получится норм нормально созвон созвониться созвонимся встреча встречу встретиться встретимся звонок
позвонить позвоните наберите свяжемся связаться тоже уже вот так значит если примерно где-то ровно мск msk
at on in the ok okay please let lets s
""")
_FILLER_PHRASES_RE = re.compile(
    r"\bпо\s+(?:мск|москве|московскому(?:\s+времени)?)\b"
    r"|\b(?:добр(?:ый|ое|ого)|хорошего)\s+(?:день|утро|вечер|дня|утра|вечера)\b"
)


def unknown_words(rest: str) -> list[str]:
    """What is left of a phrase after the rules took what they read, less the known filler."""
    return [w for w in _FILLER_PHRASES_RE.sub(" ", rest).split() if w not in FILLER]


# --- misspellings: one edit from exactly one day or month word ----------------------------------

_TARGETS: dict[str, str] = {}
for _meaning, _forms in {
    "пн": "понедельник понедельника понедельнике",
    "вт": "вторник вторника вторнике",
    "ср": "среда среду среды среде",
    "чт": "четверг четверга четверге",
    "пт": "пятница пятницу пятницы пятнице",
    "сб": "суббота субботу субботы субботе",
    "вс": "воскресенье воскресенья воскресенью",
    "янв": "января январь январе", "фев": "февраля февраль феврале", "мар": "марта март марте",
    "апр": "апреля апрель апреле", "июн": "июня июнь июне", "июл": "июля июль июле",
    "авг": "августа август августе", "сен": "сентября сентябрь сентябре", "окт": "октября октябрь октябре",
    "ноя": "ноября ноябрь ноябре", "дек": "декабря декабрь декабре",
    "сегодня": "сегодня", "завтра": "завтра", "послезавтра": "послезавтра", "вчера": "вчера",
    "позавчера": "позавчера",
}.items():
    for _form in _forms.split():
        _TARGETS[_form] = _meaning

# Other words the rules know, and common words one edit from a day or month word: a token near one
# of these is not corrected (it is left as it is, and so refused).
_OTHER_WORDS = _words("""
утра утром утро дня днем день вечера вечером вечер ночи ночью ночь обеда обед полдень полночь часа часов
час часик часиков минут минуты минуту неделю недели неделе неделя недель дней дни суток сутки месяц
месяца года год числа через после до с по или не нет кроме между раньше позже позднее каждый каждую
каждое первый первую первой второй вторую третий следующий следующую следующей следующее этот эту этой
ближайший ближайшую половине половина четверть четверти без среди завтрак завтрака завтраку завтраком
моя мое мои мой мне марка марки карта карте парта выходные выходных выходным праздники праздников
понедельникам вторникам средам четвергам пятницам субботам воскресеньям понедельники вторники четверги
сред мая мае май пару пара
""") | FILLER | frozenset(CARDINALS) | frozenset(GENITIVES) | frozenset(DAY_ORDINALS)

_KNOWN: dict[str, str | None] = {w: None for w in _OTHER_WORDS} | _TARGETS
_INDEX: dict[str, set[str]] = defaultdict(set)
for _word in _KNOWN:
    _INDEX[_word].add(_word)
    for _i in range(len(_word)):
        _INDEX[_word[:_i] + _word[_i + 1:]].add(_word)
_CYRILLIC_RE = re.compile(r"[а-я]{4,}")


def _within_one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein (optimal string alignment) distance of at most 1."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = next((k for k in range(len(short)) if short[k] != long[k]), len(short))
    return short[i:] == long[i + 1:]


def near_words(token: str) -> set[str]:
    """Every known word within one edit of `token`."""
    keys = {token} | {token[:i] + token[i + 1:] for i in range(len(token))}
    candidates = set().union(*(_INDEX.get(k, ()) for k in keys))
    return {w for w in candidates if _within_one_edit(token, w)}


def correct(token: str) -> str:
    """A misspelt day or month word ("пятнцу", "послезавра") as the word, when every known word
    within one edit means that same day or month; any other token is returned as it is."""
    if token in _KNOWN or not _CYRILLIC_RE.fullmatch(token):
        return token
    near = near_words(token)
    meanings = {_KNOWN[w] for w in near}
    if len(meanings) != 1 or None in meanings:
        return token
    return min(near, key=lambda w: (len(w) != len(token), w))


def correct_spelling(s: str) -> str:
    return " ".join(correct(token) for token in s.split())
