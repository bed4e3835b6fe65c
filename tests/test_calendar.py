"""The calendar the business really keeps: public holidays, days off, breaks, hours per day and the
owner's own busy calendar, served over HTTP on 127.0.0.1 as Google and Yandex serve theirs.

The feed (tests/data/calendar/owner.ics) holds, in the week of 16 March 2026 (Moscow time):
a weekly Monday 10:00 planning meeting (RRULE) with 23 March excluded (EXDATE) and 30 March moved to
Tuesday 31 March 15:00 (RECURRENCE-ID); a call at 09:00 London time (12:00 in Moscow) on Tuesday 17; a
dentist 08:30-09:30 UTC (11:30-12:30 in Moscow) on Wednesday 18; an all-day conference on Wednesday 25;
a free (TRANSPARENT) reminder and a CANCELLED meeting on Thursday 19, which block nothing.
"""

import asyncio
import json
import logging
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from salesbot import keyboards, runtime, texts
from salesbot.config import load_settings
from salesbot.dialogue import Answer, Dialogue, DialogueConfig
from salesbot.errors import ConfigError
from salesbot.store import Meeting
from salesbot.time import busy
from salesbot.time.slots import check, free_between, free_slots
from tests.engine_fakes import MSK, FakeLLM, RecordingTransport, make_outbox, tg
from tests.factories import make_lead, make_meeting
from tests.feed_server import FeedServer

DATA = Path(__file__).parent / "data" / "calendar"
OWNER = (DATA / "owner.ics").read_bytes()
NOW = "2026-03-13 09:00:00"  # UTC: Friday 13 March 2026, 12:00 in Moscow
SECRET = "private-5f3a9c0e1d7b2a64"  # the part of the address that gives the calendar away
GRID = [time(h) for h in (10, 11, 12, 14, 15, 16, 17, 18)]  # 10:00-19:00, a break 13:00-14:00


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MSK)


# Every slot the calendar blocks in the two weeks from Monday 16 March, and why.
BLOCKED = {
    at(16, 10): "busy",  # the weekly planning meeting
    at(17, 12): "busy",  # 09:00 in London
    at(18, 11): "busy", at(18, 12): "busy",  # the dentist, 11:30-12:30
    **{at(25, h.hour): "busy" for h in GRID},  # the all-day conference
    **{at(d, h.hour): "day_off" for d in (26, 27) for h in GRID},  # SALESBOT_DAYS_OFF
}


@pytest.fixture
def feeds():
    server = FeedServer()
    server.put(f"/calendar/ical/{SECRET}/basic.ics", OWNER)
    yield server
    server.stop()


@pytest.fixture
def owner_env(monkeypatch, feeds):
    monkeypatch.setenv("SALESBOT_BUSY_ICS", feeds.url(f"/calendar/ical/{SECRET}/basic.ics"))
    monkeypatch.setenv("SALESBOT_BREAKS", "13:00-14:00")
    monkeypatch.setenv("SALESBOT_DAYS_OFF", "2026-03-26..2026-03-27")
    monkeypatch.setenv("SALESBOT_MANAGER_IDS", "777")
    return feeds


@pytest.fixture
def in_march(db):
    with freeze_time(NOW, real_asyncio=True) as clock:
        yield clock


@pytest.fixture
def cal(owner_env, in_march):
    """The calendar as runtime builds it from the settings, its feed fetched once (as serve does)."""
    calendar = runtime.calendar(load_settings())
    calendar.busy.refresh(datetime.now(UTC), calendar.horizon)
    return calendar


def two_weeks(calendar) -> list[datetime]:
    return free_between(at(16, 0), at(30, 0), datetime.now(UTC), calendar, [])


def test_busy_events_breaks_and_days_off_are_never_free_and_the_times_around_them_are(cal):
    expected = [at(d, h.hour, h.minute) for d in range(16, 30) if date(2026, 3, d).weekday() < 5 for h in GRID]
    expected = [slot for slot in expected if slot not in BLOCKED]
    assert two_weeks(cal) == expected
    # the exception and the moved occurrence: Monday 23 and 30 at 10:00 are free, Tuesday 31 at 15:00 not
    assert at(23, 10) in expected and at(30, 10) in free_between(at(30, 0), at(31, 0), datetime.now(UTC), cal, [])
    assert at(31, 15) not in free_between(at(31, 0), at(31, 23), datetime.now(UTC), cal, [])
    # free and cancelled events block nothing
    assert {at(19, 14), at(19, 16)} <= set(expected)
    now = datetime.now(UTC)
    for slot, problem in BLOCKED.items():
        assert check(slot, now, cal, []) == problem, slot
    assert check(at(16, 13), now, cal, []) == "break"
    assert check(at(16, 12, 30), now, cal, []) == "break"  # it would run into the break
    assert check(at(16, 14), now, cal, []) is None and check(at(17, 13, 0), now, cal, []) == "break"
    assert check(at(16, 11), now, cal, []) is None  # right after the planning meeting


def test_the_bot_never_offers_or_books_a_blocked_time_and_says_why(cal, aio):
    llm, transport = FakeLLM(), RecordingTransport()
    dialogue = Dialogue(llm, transport, DialogueConfig(calendar=cal, manager_ids=(777,)),
                        outbox=make_outbox(transport))
    llm.enqueue(Answer("Давайте созвонимся!", "hot", True))
    aio.run(dialogue.handle(tg(text="Хочу встречу")))
    offered = transport.last.labels[:-1]
    # two a day, spread: today from 14:00 (the notice); Monday from 11:00 (10:00 is the planning); Tuesday
    # 10:00 and 15:00 out of seven free (12:00 is London's call)
    assert offered == ["Сегодня, 14:00", "Сегодня, 16:00", "Пн, 16 мар, 11:00", "Пн, 16 мар, 15:00",
                       "Вт, 17 мар, 10:00", "Вт, 17 мар, 15:00"]
    cases = [("в понедельник в 10:00", texts.BUSY), ("25 марта в 15:00", texts.BUSY),
             ("26 марта в 11:00", texts.DAY_OFF), ("в понедельник в 13:00", texts.in_break("13:00", "14:00"))]
    for phrase, reason in cases:
        aio.run(dialogue.handle(tg(text=texts.BUTTON_OWN_TIME, button=keyboards.OWN)))
        aio.run(dialogue.handle(tg(text=phrase)))
        answer = transport.last
        assert answer.text == f"{reason} {texts.NEAREST_SLOTS}", phrase
        now = datetime.now(UTC)
        for label in answer.labels[:-1]:  # the nearest free times, each really free
            moment = keyboards.moment_of(answer.data_of(label))
            assert check(moment, now, cal, []) is None, (phrase, label)
    # a forged (or stale) button for a busy time books nothing
    aio.run(dialogue.handle(tg(button=keyboards.slot_data("s", at(16, 10)))))
    assert Meeting.select().count() == 0 and transport.last.text.startswith(texts.BUSY)
    aio.run(dialogue.handle(tg(button=keyboards.slot_data("s", at(16, 11)))))
    assert Meeting.get().starts_at == datetime(2026, 3, 16, 8, 0)  # 11:00 in Moscow, stored in UTC


def test_staff_cannot_move_a_meeting_onto_a_busy_time_a_break_or_a_day_off(cal, run):
    lead = make_lead(username="anna")
    meeting = make_meeting(lead, datetime(2026, 3, 17, 7, 0))  # Tuesday 10:00 in Moscow
    for when, says in [("2026-03-16T10:00", "the owner's calendar is busy then"),
                       ("2026-03-16T13:00", "it overlaps the break 13:00-14:00 (SALESBOT_BREAKS)"),
                       ("2026-03-26T11:00", "2026-03-26 is a day off (SALESBOT_DAYS_OFF)"),
                       ("2026-05-01T11:00", "2026-05-01 is a public holiday (Праздник Весны и Труда; "
                                            "SALESBOT_HOLIDAYS)"),
                       ("2026-09-07T10:00", "the owner's calendar is busy then")]:  # beyond the expanded window
        assert says in run("meetings", "move", str(meeting.id), when, code=1).stderr, when
    run("meetings", "move", str(meeting.id), "2026-03-16T11:00")
    assert Meeting.get(Meeting.status == "booked").starts_at == datetime(2026, 3, 16, 8, 0)


def test_the_hot_reminder_buttons_skip_what_the_calendar_blocks(cal, owner_env):
    from salesbot import followups

    policy = runtime.policy(load_settings())
    keyboard = followups.slot_keyboard(datetime.now(UTC), policy)
    moments = [keyboards.moment_of(b.data) for row in keyboard for b in row if b.data.startswith("s:")]
    assert moments and all(check(m, datetime.now(UTC), policy.calendar, []) is None for m in moments)
    assert at(16, 10) not in moments and at(16, 11) in moments


def test_the_slots_command_lists_what_the_bot_offers(cal, run):
    make_meeting(make_lead(), datetime(2026, 3, 16, 13, 0))  # Monday 16:00 is booked by another lead
    listed = json.loads(run("slots", "--json", "--days", "14").stdout)
    now = datetime.now(UTC)
    starts = [datetime.fromisoformat(item["start"]) for item in listed]
    assert all(datetime.fromisoformat(i["end"]) - datetime.fromisoformat(i["start"]) == timedelta(hours=1)
               for i in listed)
    assert listed[0]["start"] == "2026-03-13T14:00:00+03:00"  # Friday: from the two hours' notice on
    assert starts == free_between(now, now + timedelta(days=14), now, cal, [at(16, 16)])
    assert at(16, 16) not in starts and not set(starts) & set(BLOCKED)
    offered = free_slots(now, cal, [at(16, 16)])  # what a lead is offered: chosen from that very list
    assert set(offered) <= set(starts) and offered[0] == starts[0]
    table = run("slots", "--from", "2026-03-23", "--days", "7").stdout
    assert "Mon 2026-03-23  10:00 11:00 12:00 14:00" in table
    assert "Wed 2026-03-25  nothing free" in table and "Thu 2026-03-26  day off" in table
    assert "Sat 2026-03-28  not a working day" in table


def test_the_last_copy_holds_when_the_feed_fails_or_stops(cal, owner_env, in_march, run, caplog):
    feeds = owner_env
    feeds.fail = 500
    in_march.tick(timedelta(minutes=5))
    with caplog.at_level(logging.INFO):
        states = cal.busy.refresh(datetime.now(UTC), cal.horizon)
    assert states[0].error == "HTTP 500" and states[0].has_copy
    assert check(at(16, 10), datetime.now(UTC), cal, []) == "busy"
    # another process (the sweep, a staff command) reads the same last copy from SALESBOT_HOME
    fresh = runtime.calendar(load_settings())
    assert two_weeks(fresh) == two_weeks(cal) and at(16, 10) not in two_weeks(fresh)
    result = run("slots", "--json", "--days", "5")
    assert "HTTP 500; its copy from" in result.stderr and "is used" in result.stderr
    assert at(16, 10).isoformat() not in result.stdout and at(16, 11).isoformat() in result.stdout
    feeds.stop()
    result = run("slots", "--days", "5")
    assert "cannot reach it" in result.stderr and "Mon 2026-03-16  11:00 12:00 14:00" in result.stdout
    doctor = run("doctor", "--json", code=1).stdout
    (line,) = [f for f in json.loads(doctor)["findings"] if f["area"] == "calendar"]
    assert line["status"] == "note" and "the last refresh failed (cannot reach it" in line["message"]
    in_march.tick(timedelta(hours=2))  # serve has failed to refresh it for two hours: a problem
    run("slots", "--days", "1")
    (line,) = [f for f in json.loads(run("doctor", "--json", code=1).stdout)["findings"] if f["area"] == "calendar"]
    assert line["status"] == "problem" and "using the copy from 2 h ago" in line["message"]
    # the address is a secret: not in a log line, an error, doctor or --json
    everything = caplog.text + result.stdout + result.stderr + doctor
    assert SECRET not in everything and "feed 1 (http://127.0.0.1/…)" in everything


def test_a_copy_not_refreshed_for_days_still_blocks_to_the_horizon(cal, in_march):
    """serve stopped for ten days: the sweep and staff commands read the old copy, whose expansion ends
    before the new horizon; what lies beyond is expanded from the copy when asked."""
    in_march.tick(timedelta(days=10))
    stale = runtime.calendar(load_settings())
    now = datetime.now(UTC)
    assert busy.read_state(stale.busy.home, stale.busy.feeds[0]).window[1] < (now + stale.horizon).timestamp()
    assert check(at(18, 10, month=5), now, stale, []) == "busy"  # a Monday beyond the old expansion
    assert check(at(18, 11, month=5), now, stale, []) is None


def test_an_unchanged_feed_is_asked_conditionally_and_a_changed_one_replaces_the_copy(cal, owner_env, in_march):
    feeds = owner_env
    assert feeds.statuses() == [200]
    in_march.tick(timedelta(minutes=5))
    state = cal.busy.refresh(datetime.now(UTC), cal.horizon)[0]
    path, headers, status = feeds.log[-1]
    assert status == 304 and headers["If-None-Match"] == feeds.log[0][1].get("If-None-Match", headers["If-None-Match"])
    assert "If-Modified-Since" in headers and state.error is None and state.events > 0
    assert state.fetched_at == datetime.now(UTC).timestamp()  # confirmed current, kept
    assert check(at(16, 10), datetime.now(UTC), cal, []) == "busy"
    # the owner moves the dentist: a new ETag, a 200, the new busy time
    feeds.put(path, OWNER.replace(b"20260318T083000Z", b"20260318T113000Z").replace(b"20260318T093000Z",
                                                                                 b"20260318T123000Z"))
    in_march.tick(timedelta(minutes=5))
    cal.busy.refresh(datetime.now(UTC), cal.horizon)
    assert feeds.statuses()[-1] == 200
    now = datetime.now(UTC)
    assert check(at(18, 11), now, cal, []) is None and check(at(18, 14), now, cal, []) == "busy"
    # a body that is not a calendar (a login page) is refused; the good copy stays
    feeds.put(path, b"<html><body>Sign in</body></html>")
    in_march.tick(timedelta(minutes=5))
    state = cal.busy.refresh(datetime.now(UTC), cal.horizon)[0]
    assert state.error.startswith("not an iCalendar file") and check(at(18, 14), now, cal, []) == "busy"


def test_serve_refreshes_in_the_background_and_a_lead_never_waits_for_a_feed(cal, owner_env, aio):
    """A feed that hangs: the lead is answered from the last copy while the refresh waits in its thread."""
    import threading

    feeds = owner_env
    feeds.hold = threading.Event()
    llm, transport = FakeLLM(), RecordingTransport()
    dialogue = Dialogue(llm, transport, DialogueConfig(calendar=cal, manager_ids=(777,)),
                        outbox=make_outbox(transport))
    llm.enqueue(Answer("Давайте созвонимся!", "hot", True))
    sleeps: list[float] = []

    async def scenario():
        started = asyncio.Event()

        async def sleep(seconds):
            sleeps.append(seconds)
            started.set()
            await asyncio.Event().wait()  # the next round never comes in this test

        task = asyncio.create_task(cal.busy.keep_fresh(cal.horizon, lambda: datetime.now(UTC), sleep=sleep))
        await asyncio.sleep(0)
        await dialogue.handle(tg(text="Хочу встречу"))  # the feed is still hanging
        answered = transport.last.labels[0], len(feeds.log)
        feeds.hold.set()
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        return answered

    assert aio.run(scenario()) == ("Сегодня, 14:00", 1)  # answered while the feed's request was unanswered
    assert sleeps == [busy.REFRESH_EVERY.total_seconds()] and feeds.statuses()[-1] == 304


def test_serve_refreshes_the_feeds_beside_the_bot(owner_env, in_march, monkeypatch):
    """`salesbot serve` as runtime wires it: the engine's calendar is the one the refresher updates."""
    from salesbot import telegram

    feeds = owner_env
    seen = {}

    class Claude:
        async def check_prompt(self, prompt):
            return 1000

        async def close(self):
            pass

    async def bot(settings, build, unanswered, heartbeat):
        engine, _ = build(RecordingTransport())
        seen["calendar"] = engine.calendar
        assert await asyncio.to_thread(feeds.answered.wait, 10)  # asked in the background meanwhile

    monkeypatch.setattr(runtime, "claude_client", lambda settings: Claude())
    monkeypatch.setattr(telegram, "serve", bot)
    runtime.serve(load_settings())
    assert feeds.statuses() == [200]
    assert check(at(16, 10), datetime.now(UTC), seen["calendar"], []) == "busy"
    assert check(at(16, 11), datetime.now(UTC), seen["calendar"], []) is None


# --- public holidays and the settings ---------------------------------------------------------------


def test_russian_holidays_include_the_governments_transfers(db, monkeypatch):
    with freeze_time("2025-12-30 17:00:00", real_asyncio=True):  # Tuesday 20:00 in Moscow, after closing
        calendar = runtime.calendar(load_settings())
        for day in (date(2025, 12, 31), date(2026, 1, 9), *(date(2026, 1, d) for d in range(1, 9))):
            assert day in calendar.days_off, day
        assert date(2026, 1, 12) not in calendar.days_off and date(2025, 12, 30) not in calendar.days_off
        now = datetime.now(UTC)
        listed = free_between(now, now + timedelta(days=14), now, calendar, [])
        assert listed[0] == datetime(2026, 1, 12, 10, 0, tzinfo=MSK)  # nothing from 31 December to 11 January
        monkeypatch.setenv("SALESBOT_HOLIDAYS", "none")
        assert date(2026, 1, 9) not in runtime.calendar(load_settings()).days_off


def test_a_week_with_nothing_free_tells_the_lead_the_first_free_day(db, aio, monkeypatch):
    with freeze_time("2025-12-30 17:00:00", real_asyncio=True):
        llm, transport = FakeLLM(), RecordingTransport()
        dialogue = Dialogue(llm, transport, DialogueConfig(calendar=runtime.calendar(load_settings())),
                            outbox=make_outbox(transport))
        llm.enqueue(Answer("Давайте созвонимся!", "hot", True))
        aio.run(dialogue.handle(tg(text="Хочу встречу")))
        assert transport.last.text == ("Давайте созвонимся!\n\n"
                                       + texts.first_free_day("в понедельник, 12 января 2026 года"))
        assert transport.last.labels[0] == "Пн, 12 янв 2026, 10:00"


def test_hours_per_day(db, monkeypatch, aio):
    monkeypatch.setenv("SALESBOT_WORK_HOURS", "mon-thu 10:00-19:00; fri 10:00-16:00")
    with freeze_time(NOW, real_asyncio=True):
        calendar = runtime.calendar(load_settings())
        now = datetime.now(UTC)
        friday = free_between(at(20, 0), at(21, 0), now, calendar, [])
        assert friday[-1] == at(20, 15) and check(at(20, 15, 30), now, calendar, []) == "ends_late"
        assert check(at(19, 18), now, calendar, []) is None
        assert check(at(21, 11), now, calendar, []) == "outside_hours"  # Saturday
        transport = RecordingTransport()
        dialogue = Dialogue(FakeLLM(), transport, DialogueConfig(calendar=calendar), outbox=make_outbox(transport))
        aio.run(dialogue.handle(tg(text=texts.BUTTON_OWN_TIME, button=keyboards.OWN)))
        aio.run(dialogue.handle(tg(text="в пятницу в 17:00")))
        assert transport.last.text.startswith(texts.outside_hours("по пятницам", "10:00", "16:00"))
        aio.run(dialogue.handle(tg(text="в субботу в 11:00")))
        assert transport.last.text.startswith(texts.outside_schedule([("с понедельника по четверг", "10:00", "19:00"),
                                                                      ("по пятницам", "10:00", "16:00")]))
    monkeypatch.setenv("SALESBOT_WORK_DAYS", "mon-sat")
    with pytest.raises(ConfigError, match="SALESBOT_WORK_DAYS lists other days"):
        runtime.calendar(load_settings())


@pytest.mark.parametrize("name, value, says", [
    ("SALESBOT_WORK_HOURS", "mon-thu 10:00-19:00; fri", "expected days and hours"),
    ("SALESBOT_WORK_HOURS", "mon-fri 10:00-19:00; fri 10:00-16:00", "fri is given hours twice"),
    ("SALESBOT_WORK_HOURS", "mon-fri 19:00-10:00", "must end after it starts"),
    ("SALESBOT_WORK_HOURS", "xyz 10:00-12:00", "unknown day"),
    ("SALESBOT_DAYS_OFF", "2026-01-18..2026-01-10", "ends before it starts"),
    ("SALESBOT_DAYS_OFF", "10.01.2026", "expected dates like 2026-03-09"),
    ("SALESBOT_BREAKS", "13:00", "expected a range like 10:00-19:00"),
    ("SALESBOT_HOLIDAYS", "zz", "unknown country code"),
    ("SALESBOT_BUSY_ICS", f"ftp://example.com/{SECRET}.ics", "address 1 is not http, https or webcal"),
    ("SALESBOT_BUSY_ICS", "/nowhere/owner.ics", "neither an http(s)/webcal address nor an existing file"),
])
def test_calendar_settings_are_checked(db, monkeypatch, name, value, says):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=re.escape(says)) as raised:
        runtime.calendar(load_settings())
    assert SECRET not in str(raised.value)


def test_calendar_settings_read_well(db, monkeypatch):
    monkeypatch.setenv("SALESBOT_DAYS_OFF", "2026-01-10..2026-01-18, 2026-03-09")
    monkeypatch.setenv("SALESBOT_BREAKS", "13:00-14:00; 16:00-16:15")
    monkeypatch.setenv("SALESBOT_HOLIDAYS", "kz")
    monkeypatch.setenv("SALESBOT_BUSY_ICS", f"webcal://calendar.yandex.ru/export/ics.xml?private_token={SECRET} "
                                            f"{DATA / 'owner.ics'}")
    settings = load_settings()
    calendar = runtime.calendar(settings)
    assert date(2026, 1, 14) in calendar.days_off and date(2026, 3, 9) in calendar.days_off
    assert date(2026, 1, 19) not in calendar.days_off
    assert calendar.breaks == ((time(13), time(14)), (time(16), time(16, 15)))
    assert calendar.days_off.reason(date(2026, 3, 8)).startswith("holiday: ")  # Kazakhstan's 8 March
    labels = [feed.label for feed in calendar.busy.feeds]
    assert labels == ["feed 1 (webcal://calendar.yandex.ru/…)", f"feed 2 ({DATA / 'owner.ics'})"]
    assert calendar.busy.feeds[0].url.startswith("https://calendar.yandex.ru/export/")
    secrets = settings.secrets()
    assert any(SECRET in s and s.startswith("https://") for s in secrets)


def test_pruning_a_calendar_of_years_keeps_every_busy_time(monkeypatch):
    """A big calendar is pruned of what cannot touch the window before it is parsed: the busy times
    must be exactly those of the whole calendar, edge cases included."""
    past = []
    for i in range(busy.PRUNE_FROM + 50):  # plenty of single events, long past
        day = date(2024, 1, 1) + timedelta(days=i)
        past += ["BEGIN:VEVENT", f"UID:old-{i}@test", "DTSTAMP:20260301T000000Z",
                 f"DTSTART;TZID=Europe/Moscow:{day:%Y%m%d}T100000", f"DTEND;TZID=Europe/Moscow:{day:%Y%m%d}T110000",
                 "END:VEVENT"]
    past += [
        # a series that ended in 2025, one occurrence of which was moved into the window
        "BEGIN:VEVENT", "UID:ended@test", "DTSTAMP:20260301T000000Z", "DTSTART;TZID=Europe/Moscow:20250106T150000",
        "DTEND;TZID=Europe/Moscow:20250106T160000", "RRULE:FREQ=WEEKLY;UNTIL=20250331T000000Z", "END:VEVENT",
        "BEGIN:VEVENT", "UID:ended@test", "DTSTAMP:20260301T000000Z",
        "RECURRENCE-ID;TZID=Europe/Moscow:20250113T150000", "DTSTART;TZID=Europe/Moscow:20260320T150000",
        "DTEND;TZID=Europe/Moscow:20260320T160000", "END:VEVENT",
        # a vacation that began before the window and runs into it
        "BEGIN:VEVENT", "UID:vacation@test", "DTSTAMP:20260301T000000Z", "DTSTART;VALUE=DATE:20260301",
        "DTEND;VALUE=DATE:20260318", "END:VEVENT",
        # a series with no end, begun two years ago; and one with a folded RRULE line
        "BEGIN:VEVENT", "UID:forever@test", "DTSTAMP:20260301T000000Z", "DTSTART:20240103T070000Z",
        "DTEND:20240103T073000Z", "RRULE:FREQ=WEEKLY", "END:VEVENT",
        "BEGIN:VEVENT", "UID:folded@test", "DTSTAMP:20260301T000000Z", "DTSTART:20240104T070000Z",
        "DTEND:20240104T073000Z", "RRULE:FREQ=WEEKLY;UN", " TIL=20260402T000000Z", "END:VEVENT",
    ]
    text = OWNER.replace(b"END:VCALENDAR", ("\r\n".join(past) + "\r\nEND:VCALENDAR").encode())
    start, end = at(14, 0), at(14, 0) + timedelta(days=64)
    pruned = busy.prune(text, start.date(), end.date())
    assert pruned.count(b"BEGIN:VEVENT") < 20 < text.count(b"BEGIN:VEVENT")
    for uid in (b"ended@test", b"vacation@test", b"forever@test", b"folded@test", b"weekly-planning@test"):
        assert uid in pruned
    found = sorted(busy.expand(text, start, end, MSK))
    monkeypatch.setattr(busy, "PRUNE_FROM", 10**9)
    assert found == sorted(busy.expand(text, start, end, MSK))
    assert (at(20, 15).timestamp(), at(20, 16).timestamp()) in found  # the occurrence moved into the window
