import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from salesbot import prompts
from salesbot.timeparse import describe, parse, parse_rules
from scripts.fake_claude import Error, Reply
from tests.timeparse_corpus import MEANT, NOW, REFUSED, TZ

MSK = ZoneInfo("Europe/Moscow")
NY = ZoneInfo("America/New_York")


def at(text: str, tz=MSK) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=tz)


@pytest.mark.parametrize("phrase, expected", MEANT)
def test_phrases_a_lead_writes(phrase, expected):
    result, found = parse_rules(phrase, NOW, TZ)
    assert found and result.kind == "ok", f"{phrase!r}: {result.kind}"
    assert result.when == at(expected)
    assert result.when.utcoffset() == timedelta(hours=3)
    assert result.source == "rules"


@pytest.mark.parametrize("phrase, kind", REFUSED)
def test_refusals(phrase, kind):
    result, _ = parse_rules(phrase, NOW, TZ)
    assert (result.kind, result.when) == (kind, None), phrase


def test_corpus_is_large_enough():
    assert len(MEANT) + len(REFUSED) >= 80 + 3


@pytest.mark.parametrize("now, phrase, expected", [
    # year end
    ("2025-12-31 18:00", "завтра в 12", "2026-01-01 12:00"),
    ("2025-12-31 18:00", "в пятницу в 10", "2026-01-02 10:00"),
    ("2025-12-31 18:00", "1.01 в 10", "2026-01-01 10:00"),
    ("2025-12-31 18:00", "31 декабря в 10", "past"),
    ("2025-12-31 18:00", "31 декабря в 19", "2025-12-31 19:00"),
    ("2025-12-31 18:00", "через 2 дня в 11", "2026-01-02 11:00"),
    # month ends, February
    ("2026-01-31 12:00", "завтра в 10", "2026-02-01 10:00"),
    ("2026-02-28 12:00", "завтра в 10", "2026-03-01 10:00"),
    ("2026-02-10 12:00", "29 февраля в 10", "invalid"),
    ("2027-03-01 12:00", "29 февраля в 10", "invalid"),
    ("2028-02-10 12:00", "29 февраля в 10", "2028-02-29 10:00"),
    ("2026-01-31 12:00", "30 числа в 10", "2026-03-30 10:00"),
    # weekday anchors: on a Sunday, the next calendar week starts tomorrow
    ("2025-12-28 12:00", "в следующий вторник в 10", "2025-12-30 10:00"),
    ("2025-12-28 12:00", "во вторник в 10", "2025-12-30 10:00"),
    ("2025-12-28 12:00", "в воскресенье в 11", "2026-01-04 11:00"),
    ("2025-12-28 12:00", "в воскресенье в 13", "2025-12-28 13:00"),
    ("2025-12-26 10:00", "в следующую пятницу в 10", "2026-01-02 10:00"),
    ("2025-12-26 10:00", "в пятницу в 10", "2026-01-02 10:00"),
    ("2025-12-26 10:00", "в пятницу в 11", "2025-12-26 11:00"),
    ("2025-12-27 10:00", "в понедельник в 11", "2025-12-29 11:00"),
])
def test_calendar_edges(now, phrase, expected):
    result, _ = parse_rules(phrase, at(now), MSK)
    if ":" in expected:
        assert result.when == at(expected), phrase
    else:
        assert result.kind == expected, phrase


def test_two_time_zones_for_the_same_instant():
    instant = datetime(2025, 12, 23, 11, 5, tzinfo=ZoneInfo("UTC"))  # 14:05 Moscow, 06:05 New York
    assert parse_rules("сегодня в 10", instant, MSK)[0].kind == "past"
    ny = parse_rules("сегодня в 10", instant, NY)[0]
    assert ny.when == datetime(2025, 12, 23, 10, 0, tzinfo=NY) and ny.when.utcoffset() == timedelta(hours=-5)
    assert parse_rules("в 15", instant, MSK)[0].when.isoformat() == "2025-12-23T15:00:00+03:00"
    assert parse_rules("в 15", instant, NY)[0].when.isoformat() == "2025-12-23T15:00:00-05:00"


def test_daylight_saving_shift_is_applied():
    now = datetime(2026, 3, 6, 12, 0, tzinfo=NY)  # Friday; clocks go forward on Sunday 8 March
    result, _ = parse_rules("в понедельник в 11", now, NY)
    assert result.when.isoformat() == "2026-03-09T11:00:00-04:00"


def test_describe_in_russian():
    assert describe(at("2025-12-24 11:00")) == "среда, 24 декабря 2025, 11:00 (Europe/Moscow)"


def test_rules_with_freezegun_now():
    with freeze_time("2025-12-23 11:05:00"):  # UTC
        now = datetime.now(MSK)
        assert parse_rules("в среду в 11:00", now, MSK)[0].when == at("2025-12-24 11:00")


# --- the Claude fallback, against the local Messages API stand-in -----------------------------


def fallback_answer(kind, day="", hour=""):
    return Reply(json.dumps({"kind": kind, "date": day, "time": hour}))


def test_fallback_only_when_rules_find_nothing(claude, fake_api):
    fake_api.enqueue(fallback_answer("datetime", "2026-01-05", "11:00"))
    result = claude.run(parse("в первый понедельник после праздников в 11", NOW, TZ, claude))
    assert (result.kind, result.source, result.when) == ("ok", "claude", at("2026-01-05 11:00"))
    body = fake_api.bodies[0]
    assert body["model"] == "claude-haiku-5-5"
    assert body["output_config"]["format"]["schema"] == prompts.FALLBACK_SCHEMA
    prompt = body["messages"][0]["content"][0]["text"] if isinstance(body["messages"][0]["content"], list) \
        else body["messages"][0]["content"]
    # the calendar names weekdays correctly: 23 December 2025 was a Tuesday, the 24th a Wednesday
    assert "2025-12-23: вторник" in prompt and "2025-12-24: среда" in prompt and "2026-01-06: вторник" in prompt
    assert "вторник, 23 декабря 2025, 14:05" in prompt

    assert claude.run(parse("завтра", NOW, TZ, claude)).kind == "need_time"  # a day, no time: no call
    assert claude.run(parse("32 декабря в 10", NOW, TZ, claude)).kind == "invalid"  # impossible: no call
    assert claude.run(parse("вчера в 10", NOW, TZ, claude)).kind == "past"  # the past: no call
    assert claude.run(parse("в среду в 11", NOW, TZ, claude)).source == "rules"
    assert len(fake_api.requests) == 1


@pytest.mark.parametrize("answer, kind", [
    (fallback_answer("datetime", "2025-12-22", "11:00"), "past"),          # in the past
    (fallback_answer("datetime", "2025-12-23", "10:00"), "past"),          # earlier today
    (fallback_answer("datetime", "2025-02-30", "11:00"), "not_understood"),  # no such date
    (fallback_answer("datetime", "2025-12-25", "26:00"), "not_understood"),  # no such time
    (fallback_answer("datetime", "2026-12-25", "11:00"), "not_understood"),  # beyond 180 days
    (fallback_answer("datetime", "", ""), "not_understood"),
    (Reply(json.dumps({"kind": "datetime", "date": None, "time": None})), "not_understood"),  # off the schema
    (fallback_answer("date_only", "2025-12-25"), "need_time"),
    (fallback_answer("none"), "not_understood"),
    (Reply('{"kind": "maybe"}'), "not_understood"),                         # off the schema
    (Reply("завтра в 11"), "not_understood"),                               # not JSON
])
def test_fallback_answers_are_checked(claude, fake_api, answer, kind):
    fake_api.enqueue(answer)
    result = claude.run(parse("когда-нибудь на неделе после праздников", NOW, TZ, claude))
    assert (result.kind, result.when) == (kind, None)


def test_fallback_when_claude_is_unavailable_is_not_understood(claude, fake_api):
    fake_api.enqueue(*[Error(529, "overloaded_error")] * 3)
    result = claude.run(parse("в первый понедельник после праздников", NOW, TZ, claude))
    assert (result.kind, result.error, result.when) == ("not_understood", "not understood", None)
    assert len(fake_api.requests) == 3
