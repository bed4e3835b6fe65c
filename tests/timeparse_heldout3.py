"""Third held-out corpus (issue 19): how leads really write times, written BEFORE the issue-19 rules
and never used to tune them. scripts/bench_timeparse.py reports it on its own; no test asserts it.

Categories: abbreviations («на след неделе», «сёдня»), numerals with case endings («к 10-ти»), «в пол
12», «к часу», a date after the time, ISO dates with a space or a T, and ranges and parts of a week
(«после 4», «до обеда», «с 11 до 13», «на следующей неделе»), which are never an exact time: they
become a range the engine narrows the offered slots with.

Each entry is (now, phrase, expected); `now` names one of tests/timeparse_heldout.NOWS. `expected`
is "YYYY-MM-DD HH:MM" (local, Moscow); a refusal kind ("need_time" [day], "past", "invalid",
"not_understood"); or a range: "range DAY[/LAST_DAY] START-END", DAY "-" when no day was named,
START-END the local clock window (00:00 for an open start, 24:00 for an open end) or "*" for the
whole day.
"""

HELD_OUT_3 = [
    # abbreviations and spoken forms
    ("tue", "на след. неделе во вторник в 10", "2025-12-30 10:00"),
    ("fri", "на след неделе в пн в 11", "2026-03-16 11:00"),
    ("sun", "в след вторник в 12", "2026-06-02 12:00"),
    ("tue", "сёдня в 18", "2025-12-23 18:00"),
    ("wed", "седня в 15:30", "2026-02-25 15:30"),
    ("fri", "сёдня после обеда", "need_time 2026-03-13"),
    # numerals with case endings
    ("tue", "завтра к 10-ти", "2025-12-24 10:00"),
    ("tue", "в пятницу к 12-ти", "2025-12-26 12:00"),
    ("wed", "к 5-ти вечера", "2026-02-25 17:00"),
    ("sun", "завтра к 9-ти", "2026-06-01 09:00"),
    ("fri", "сегодня к 16-ти", "2026-03-13 16:00"),
    ("tue", "к 7-ми вечера", "2025-12-23 19:00"),
    # «в пол N»: half past N-1
    ("tue", "завтра в пол 12", "2025-12-24 11:30"),
    ("fri", "в понедельник в пол 3", "2026-03-16 14:30"),
    ("wed", "в пол-10 завтра", "2026-02-26 09:30"),
    ("sun", "в пол 2", "2026-06-01 13:30"),
    # «к часу»
    ("tue", "завтра к часу", "2025-12-24 13:00"),
    ("wed", "к часу дня в пятницу", "2026-02-27 13:00"),
    ("fri", "в понедельник к часу", "2026-03-16 13:00"),
    # a date after the time
    ("tue", "в 12:00 26.12", "2025-12-26 12:00"),
    ("fri", "в 10 утра 17.03", "2026-03-17 10:00"),
    ("wed", "15:00 02.03", "2026-03-02 15:00"),
    ("sun", "в 11:30 03.06", "2026-06-03 11:30"),
    ("tue", "в 11:00 32.12", "invalid"),
    # ISO
    ("tue", "2025-12-26 15:00", "2025-12-26 15:00"),
    ("fri", "2026-03-18T11:30", "2026-03-18 11:30"),
    ("wed", "2026-03-03 10:00", "2026-03-03 10:00"),
    ("sun", "2026-06-02 09:00", "2026-06-02 09:00"),
    ("tue", "2025-12-22 10:00", "past"),
    # ranges: a day and a bound, or a window
    ("tue", "завтра после 4", "range 2025-12-24 16:00-24:00"),
    ("fri", "в понедельник после 14", "range 2026-03-16 14:00-24:00"),
    ("wed", "после 16", "range - 16:00-24:00"),
    ("sun", "во вторник до 12", "range 2026-06-02 00:00-12:00"),
    ("tue", "в пятницу до 3", "range 2025-12-26 00:00-15:00"),
    ("tue", "в пятницу с 11 до 13", "range 2025-12-26 11:00-13:00"),
    ("fri", "в среду между 10 и 12", "range 2026-03-18 10:00-12:00"),
    ("wed", "завтра не раньше 15", "range 2026-02-26 15:00-24:00"),
    ("fri", "в понедельник с 10 утра", "range 2026-03-16 10:00-24:00"),
    ("tue", "завтра 15-17", "range 2025-12-24 15:00-17:00"),
    ("tue", "в понедельник до обеда", "range 2025-12-29 00:00-12:00"),
    ("sun", "до обеда", "range - 00:00-12:00"),
    # parts of a week
    ("fri", "на следующей неделе", "range 2026-03-16/2026-03-22 *"),
    ("sun", "на следующей неделе", "range 2026-06-01/2026-06-07 *"),
    ("wed", "на этой неделе", "range 2026-02-25/2026-03-01 *"),
    ("tue", "на след неделе после обеда", "range 2025-12-29/2026-01-04 14:00-18:00"),
    # a day alone: the day is kept
    ("fri", "давайте во вторник", "need_time 2026-03-17"),
    ("tue", "Давайте в пятницу", "need_time 2025-12-26"),
    # never a confident time: two options, unknown words
    ("tue", "после 3 или 4", "not_understood"),
    ("fri", "до 12 или после 15", "not_understood"),
    ("wed", "после праздников", "not_understood"),
    ("sun", "после 3 в пятницу или субботу", "not_understood"),
    ("fri", "к 11-ти или к 12-ти", "not_understood"),
]
