"""Staff and meetings in the terminal: cancel and move reach the lead through the outbox, the outcome is
stored, the list shows who and how, the .ics export round-trips; migration 008 keeps every meeting."""

import json
import sqlite3
from datetime import datetime, timedelta

import pytest
from freezegun import freeze_time

from salesbot import texts
from salesbot.store import Meeting, MeetingReminder, Outbox, open_database
from tests.engine_fakes import MSK, NOW, RecordingTransport, make_engine, make_outbox, tg
from tests.factories import database_at, make_lead, make_meeting

WED_10 = datetime(2025, 12, 24, 7, 0)  # naive UTC, as stored: Wednesday 10:00 in Moscow
MEETING_BUTTONS = [texts.BUTTON_MEETING_CONFIRM, texts.BUTTON_MEETING_MOVE, texts.BUTTON_MEETING_CANCEL]


@pytest.fixture
def booked(db, monkeypatch):
    monkeypatch.setenv("SALESBOT_MANAGER_IDS", "777")
    with freeze_time(NOW, real_asyncio=True):
        lead = make_lead(username="anna", telegram_id=4242)
        yield lead, make_meeting(lead, WED_10)


def queued_to(lead) -> list[Outbox]:
    return list(Outbox.select().where(Outbox.lead == lead.id).order_by(Outbox.id))


def notices() -> list[str]:
    return [row.text for row in Outbox.select().where(Outbox.chat_id == 777)]


def deliver(aio) -> RecordingTransport:
    """What the running serve does with the queued rows."""
    transport = RecordingTransport()
    aio.run(make_outbox(transport, managers=(777,)).drain())
    return transport


def test_staff_cancel_reaches_the_lead_who_can_book_again(booked, run, aio):
    lead, meeting = booked
    result = run("meetings", "cancel", str(meeting.id), "--reason", "руководитель проектов заболел")
    assert f"Meeting {meeting.id} (lead {lead.id} Анна @anna, Wed 24.12.2025 10:00) cancelled" in result.stdout
    assert "serve is not running" in result.stderr  # queued all the same: serve sends it once it runs
    stored = Meeting.get_by_id(meeting.id)
    assert (stored.status, stored.cancelled_by, stored.cancel_reason) == ("cancelled", "staff",
                                                                          "руководитель проектов заболел")
    (row,) = queued_to(lead)
    assert row.state == "queued"
    assert notices() == [texts.manager_meeting_cancelled("Анна", lead.id, "anna",
                                                         "завтра, 24 декабря, в 10:00 по московскому времени",
                                                         by_staff=True, reason="руководитель проектов заболел")]
    transport = deliver(aio)
    (told,) = transport.to(4242)
    assert told.text == texts.staff_cancelled("завтра, 24 декабря, в 10:00 по московскому времени",
                                              "руководитель проектов заболел")
    assert "Ср, 24 дек, 10:00" not in told.labels and told.labels[-1] == texts.BUTTON_OWN_TIME
    dialogue, _, transport = make_engine()  # the lead picks a new time from that very message
    aio.run(dialogue.handle(tg(4242, button=told.data_of(told.labels[0]))))
    assert transport.to(4242)[-1].text.startswith("Отлично, записал вас на встречу: сегодня, в 17:00")
    again = run("meetings", "cancel", str(meeting.id), code=1)
    assert "is cancelled, not booked" in again.stderr


def test_staff_move_reaches_the_lead_with_the_meeting_buttons(booked, run, aio):
    lead, meeting = booked
    result = run("meetings", "move", str(meeting.id), "завтра в 12")
    new = Meeting.get(Meeting.status == "booked")
    assert new.starts_at == datetime(2025, 12, 24, 9, 0) and new.source == "staff"  # staff set this time
    old = Meeting.get_by_id(meeting.id)
    assert (old.status, old.moved_to, old.cancelled_by) == ("cancelled", new.id, "staff")
    assert f"it is now meeting {new.id}" in result.stdout
    transport = deliver(aio)
    (told,) = transport.to(4242)
    assert told.text == texts.staff_moved("завтра, 24 декабря, в 10:00 по московскому времени",
                                          "завтра, 24 декабря, в 12:00 по московскому времени")
    assert told.labels == MEETING_BUTTONS and told.data_of(texts.BUTTON_MEETING_CONFIRM) == f"mc:{new.id}"
    assert notices()[-1].startswith("🔁 Встреча перенесена (из терминала): Анна (@anna)")
    # staff are not held to the leads' two hours' notice; ISO works too
    run("meetings", "move", str(new.id), "2025-12-23T15:00")
    assert Meeting.get(Meeting.status == "booked").starts_at == datetime(2025, 12, 23, 12, 0)


@pytest.mark.parametrize("when, says", [
    ("в четверг в 10", "that time is taken by another meeting"),
    ("2025-12-23T09:00", "that time has passed"),
    ("вчера в 10", "that time has passed: 'вчера в 10'"),
    ("в субботу в 12", "outside working hours (mon,tue,wed,thu,fri 10:00-19:00, 60-minute meetings)"),
    ("в четверг в 18:30", "it would end after closing"),
    ("когда-нибудь", "not understood: 'когда-нибудь'"),
    ("2025-12-26", "no time given"),
])
def test_staff_move_is_refused_with_the_reason(booked, run, when, says):
    lead, meeting = booked
    other = make_lead(first_name="Борис")
    make_meeting(other, datetime(2025, 12, 25, 7, 0))  # Thursday 10:00
    result = run("meetings", "move", str(meeting.id), when, code=1)
    assert says in result.stderr
    assert Meeting.get_by_id(meeting.id).status == "booked" and Outbox.select().count() == 0


def test_done_and_no_show_are_stored(db, run):
    with freeze_time(NOW):
        lead = make_lead(username="anna")
        past = make_meeting(lead, datetime(2025, 12, 23, 7, 0))  # this morning
        ahead = make_meeting(lead, WED_10)
        gone = make_meeting(lead, datetime(2025, 12, 22, 7, 0), status="cancelled")
        assert "marked done" in run("meetings", "done", str(past.id)).stdout
        stored = Meeting.get_by_id(past.id)
        assert (stored.status, stored.outcome_at) == ("done", datetime(2025, 12, 23, 11, 5))
        run("meetings", "no-show", str(past.id))  # a correction
        assert Meeting.get_by_id(past.id).status == "no_show"
        assert "has not started yet" in run("meetings", "done", str(ahead.id), code=1).stderr
        assert "was cancelled" in run("meetings", "no-show", str(gone.id), code=1).stderr
        assert "no meeting with id 99" in run("meetings", "done", "99", code=1).stderr
        assert "no meeting with id" in run("meetings", "done", "999999", code=1).stderr
        too_big = run("meetings", "done", "99999999999999999999", code=1).stderr  # past SQLite's integers
        assert "less than or equal to 9223372036854775807" in too_big
        assert [m.status for m in Meeting.select().order_by(Meeting.id)] == ["no_show", "booked", "cancelled"]
        assert MeetingReminder.select().count() == 0  # the offer of new slots is the sweep's (test_meeting_reminders)


def test_meetings_list_shows_the_lead_the_confirmation_and_the_outcome(db, run):
    with freeze_time(NOW):
        lead = make_lead(username="anna", telegram_id=4242)
        chat_lead = make_lead(telegram=False, first_name="Терминал")
        confirmed = make_meeting(lead, WED_10)
        Meeting.update(confirmed_at=datetime(2025, 12, 23, 10, 0)).where(Meeting.id == confirmed.id).execute()
        make_meeting(chat_lead, datetime(2025, 12, 25, 7, 0))
        done = make_meeting(lead, datetime(2025, 12, 22, 7, 0), status="done")
        table = run("meetings", "list").stdout
        assert "Анна @anna" in table and "tg://user?id=4242" in table and "23.12 13:00" in table
        assert "(terminal chat)" in table and "22.12.2025" not in table  # upcoming only
        rows = json.loads(run("meetings", "list", "--json").stdout)
        assert [(r["id"], r["username"], r["telegram_link"], r["confirmed_at"], r["outcome"]) for r in rows] == [
            (confirmed.id, "anna", "tg://user?id=4242", "2025-12-23T13:00:00+03:00", None),
            (confirmed.id + 1, None, None, None, None)]
        past = json.loads(run("meetings", "list", "--past", "--json").stdout)
        assert [(r["id"], r["status"], r["outcome"]) for r in past] == [(done.id, "done", "done")]
        assert "done" in run("meetings", "list", "--past").stdout
        assert json.loads(run("meetings", "list", "--past", "--status", "no-show", "--json").stdout) == []
        # an outcome is only ever a past meeting's: asking for it needs no --past
        outcomes = json.loads(run("meetings", "list", "--status", "done", "--json").stdout)
        assert [(r["id"], r["status"]) for r in outcomes] == [(done.id, "done")]
        assert "22.12.2025" in run("meetings", "list", "--status", "done").stdout
        assert "unknown meeting status 'maybe'" in run("meetings", "list", "--status", "maybe", code=1).stderr


def ics_events(data: bytes):
    from icalendar import Calendar

    calendar = Calendar.from_ical(data)
    return calendar, {str(event["uid"]): event for event in calendar.walk("VEVENT")}


def test_the_ics_export_round_trips_with_the_right_times_and_stable_uids(booked, run, tmp_path, monkeypatch):
    lead, meeting = booked
    Meeting.update(confirmed_at=datetime(2025, 12, 23, 10, 0)).where(Meeting.id == meeting.id).execute()
    done = make_meeting(lead, datetime(2025, 12, 22, 12, 30), status="done")
    monkeypatch.setenv("SALESBOT_SLOT_MINUTES", "45")
    path = tmp_path / "meetings.ics"
    assert "Wrote 2 meeting(s)" in run("meetings", "export", "--ics", str(path)).stdout
    calendar, events = ics_events(path.read_bytes())
    assert set(events) == {f"salesbot-meeting-{meeting.id}@salesbot", f"salesbot-meeting-{done.id}@salesbot"}
    assert [tz["tzid"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/Moscow"]
    event = events[f"salesbot-meeting-{meeting.id}@salesbot"]
    start, end = event.decoded("dtstart"), event.decoded("dtend")
    assert event["dtstart"].params["TZID"] == "Europe/Moscow"
    assert start == datetime(2025, 12, 24, 10, 0, tzinfo=MSK) and start.utcoffset() == timedelta(hours=3)
    assert (start.hour, end - start) == (10, timedelta(minutes=45))
    assert (str(event["status"]), event["sequence"], str(event["summary"])) == ("CONFIRMED", 1,
                                                                                 "Встреча: Анна @anna")
    assert str(event["url"]) == "tg://user?id=4242" and "tg://user?id=4242" in str(event["description"])
    past = events[f"salesbot-meeting-{done.id}@salesbot"]
    assert past.decoded("dtstart") == datetime(2025, 12, 22, 15, 30, tzinfo=MSK)
    assert "состоялась" in str(past["summary"])

    # staff move it: the next export updates the same event (cancelled) and adds the new one
    run("meetings", "move", str(meeting.id), "в пятницу в 11")
    again = run("meetings", "export", "--ics", "-").stdout_bytes
    _, later = ics_events(again)
    assert len(later) == 3 and set(events) < set(later)
    moved = later[f"salesbot-meeting-{meeting.id}@salesbot"]
    assert (str(moved["status"]), moved["sequence"]) == ("CANCELLED", 2)
    (new_uid,) = set(later) - set(events)
    assert later[new_uid].decoded("dtstart") == datetime(2025, 12, 26, 11, 0, tzinfo=MSK)
    assert str(later[new_uid]["status"]) == "TENTATIVE"  # not confirmed yet


def test_migration_008_keeps_every_meeting_and_its_indexes(tmp_path):
    path = tmp_path / "old.db"
    database_at(path, 7)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO lead (telegram_id, first_name) VALUES (42, 'Ольга')")
        conn.execute("INSERT INTO meeting (lead_id, starts_at, status, source, created_at) VALUES"
                     " (1, '2025-12-24 07:00:00', 'booked', 'slot', '2025-12-20 09:00:00'),"
                     " (1, '2025-12-22 07:00:00', 'cancelled', 'custom', '2025-12-19 09:00:00')")
    open_database(path).close()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, lead_id, starts_at, status, source, created_at, confirmed_at, moved_to"
                            " FROM meeting ORDER BY id").fetchall()
        indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                                                    " AND tbl_name = 'meeting'")}
        conn.execute("UPDATE meeting SET status = 'done' WHERE id = 2")  # the new statuses are allowed
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE meeting SET status = 'maybe' WHERE id = 2")  # and still checked
        with pytest.raises(sqlite3.IntegrityError):  # one booked meeting per start, as before
            conn.execute("INSERT INTO meeting (lead_id, starts_at, source) VALUES (1, '2025-12-24 07:00:00', 'slot')")
    assert rows == [(1, 1, "2025-12-24 07:00:00", "booked", "slot", "2025-12-20 09:00:00", None, None),
                    (2, 1, "2025-12-22 07:00:00", "cancelled", "custom", "2025-12-19 09:00:00", None, None)]
    assert {"meeting_lead", "meeting_upcoming", "meeting_booked_start"} <= indexes


def test_migration_014_lets_a_meeting_come_from_staff_and_keeps_every_row(tmp_path):
    from salesbot.store import MIGRATIONS

    path = tmp_path / "old.db"
    database_at(path, [name for name, _ in MIGRATIONS].index("014_staff_moves"))
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO lead (telegram_id, first_name) VALUES (42, 'Ольга')")
        conn.execute("INSERT INTO meeting (lead_id, starts_at, status, source, created_at) VALUES"
                     " (1, '2025-12-24 07:00:00', 'booked', 'custom', '2025-12-20 09:00:00')")
        conn.execute("INSERT INTO meeting_reminder (meeting_id, kind, created_at)"
                     " VALUES (1, '24h', '2025-12-23 07:00')")
    open_database(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        assert conn.execute("SELECT id, source, status FROM meeting").fetchall() == [(1, "custom", "booked")]
        assert conn.execute("SELECT meeting_id, kind FROM meeting_reminder").fetchall() == [(1, "24h")]  # not cascaded
        conn.execute("UPDATE meeting SET source = 'staff' WHERE id = 1")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE meeting SET source = 'robot' WHERE id = 1")  # still checked
        indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                                                    " AND tbl_name = 'meeting'")}
    assert {"meeting_lead", "meeting_upcoming", "meeting_booked_start"} <= indexes
