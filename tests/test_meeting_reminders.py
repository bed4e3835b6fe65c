"""Meeting reminders and the no-show offer, decided by the sweep under freezegun and delivered by the outbox."""

import json
from datetime import UTC, datetime, time, timedelta

import pytest
from freezegun import freeze_time

from salesbot import meeting_reminders, texts
from salesbot.followups import Policy
from salesbot.meeting_reminders import Plan
from salesbot.store import Lead, Meeting, MeetingReminder, Outbox, leads, to_utc_naive
from tests.engine_fakes import CALENDAR, MSK, RecordingTransport, make_engine, make_outbox, tg
from tests.factories import make_lead, make_meeting

BOOKED_AT = datetime(2025, 12, 22, 9, 0, tzinfo=UTC)  # Monday 12:00 in Moscow
STARTS = datetime(2025, 12, 25, 12, 0, tzinfo=UTC)  # Thursday 15:00 in Moscow
# the meeting's time as the lead reads it, a day before (the 24 h reminder) and on the day (the 2 h one)
WHEN_DAY_BEFORE = "завтра, 25 декабря, в 15:00 по московскому времени"
WHEN_ON_THE_DAY = "сегодня, в 15:00 по московскому времени"
PLAN = Plan(lead_times=(timedelta(hours=24), timedelta(hours=2)), calendar=CALENDAR)
POLICY = Policy(tz=MSK)  # the send window, 10:00-20:00 Moscow
MEETING_BUTTONS = [texts.BUTTON_MEETING_CONFIRM, texts.BUTTON_MEETING_MOVE, texts.BUTTON_MEETING_CANCEL]


def sweep(now=None, dry_run=False, policy=POLICY):
    now = now or datetime.now(UTC)
    return meeting_reminders.sweep(now, PLAN, policy.in_window(now), dry_run=dry_run)


def walk(clock, start, end, step=timedelta(minutes=15), on_step=None, policy=POLICY):
    """A cron sweep every `step` from `start` to `end`: (when, kind, meeting id) of what each queued."""
    queued = []
    moment = start
    while moment <= end:
        clock.move_to(moment)
        if on_step:
            on_step(moment)
        queued += [(moment, a.kind, a.meeting_id) for a in sweep(policy=policy) if a.outcome == "queued"]
        moment += step
    return queued


def booked_lead(starts=STARTS, booked_at=None, **fields):
    """A lead with a meeting at `starts`, booked at `booked_at` (default: now)."""
    lead = make_lead(username="anna", **fields)
    meeting = make_meeting(lead, to_utc_naive(starts))
    if booked_at is not None:
        Meeting.update(created_at=to_utc_naive(booked_at)).where(Meeting.id == meeting.id).execute()
    return lead, meeting


def test_reminded_24_hours_and_2_hours_before_exactly_once_each(db, aio):
    with freeze_time(BOOKED_AT) as clock:
        lead, meeting = booked_lead()
        queued = walk(clock, BOOKED_AT, STARTS + timedelta(hours=1))
        assert queued == [(STARTS - timedelta(hours=24), "24h", meeting.id),
                          (STARTS - timedelta(hours=2), "2h", meeting.id)]
        assert [r.kind for r in MeetingReminder.select().order_by(MeetingReminder.id)] == ["24h", "2h"]
        clock.move_to(STARTS - timedelta(hours=1))  # serve sends them while they are true (after the start: never)
        transport = RecordingTransport()
        aio.run(make_outbox(transport, managers=()).drain())  # what serve does with them
        assert [(s.peer.user_id, s.text, s.labels) for s in transport.sent] == [
            (lead.telegram_id, texts.meeting_reminder("Анна", WHEN_DAY_BEFORE), MEETING_BUTTONS),
            (lead.telegram_id, texts.meeting_reminder("Анна", WHEN_ON_THE_DAY), MEETING_BUTTONS)]
        assert {row.state for row in Outbox.select()} == {"sent"}


def test_a_reminder_is_pressed_through_the_engine(db, aio):
    with freeze_time(STARTS - timedelta(hours=24), real_asyncio=True):
        lead, meeting = booked_lead(booked_at=BOOKED_AT)
        sweep()
        dialogue, _, transport = make_engine()
        aio.run(dialogue.outbox.drain())
        reminder = transport.to(lead.telegram_id)[-1]
        assert reminder.labels == MEETING_BUTTONS
        aio.run(dialogue.handle(tg(lead.telegram_id, button=reminder.data_of(texts.BUTTON_MEETING_CONFIRM))))
        assert Meeting.get_by_id(meeting.id).confirmed_at == to_utc_naive(STARTS - timedelta(hours=24))
        assert transport.to(lead.telegram_id)[-1].text == texts.meeting_confirmed(WHEN_DAY_BEFORE)


def test_none_after_a_cancel_and_a_moved_meeting_is_reminded_at_its_new_time(db):
    with freeze_time(BOOKED_AT) as clock:
        lead, meeting = booked_lead()
        cancelled_lead, cancelled = booked_lead(starts=STARTS + timedelta(hours=1))
        leads.cancel_meeting(cancelled.id, "lead", BOOKED_AT)
        moved_to = STARTS + timedelta(days=1)  # Friday 15:00

        def cancel_after_the_first(moment):
            if moment == STARTS - timedelta(hours=20):  # after the 24-hour reminder, before the 2-hour one
                leads.cancel_meeting(meeting.id, "lead", moment)
                assert leads.book(lead.id, moved_to, "slot", moment, CALENDAR)[0] is None

        queued = walk(clock, BOOKED_AT, moved_to, on_step=cancel_after_the_first)
        moved = Meeting.get(Meeting.status == "booked").id
        assert queued == [(STARTS - timedelta(hours=24), "24h", meeting.id),
                          (moved_to - timedelta(hours=24), "24h", moved),
                          (moved_to - timedelta(hours=2), "2h", moved)]


@pytest.mark.parametrize("starts, booked, expected", [
    # booked 20 hours ahead: the 24-hour reminder fell due before the booking, only the 2-hour one goes
    (STARTS, STARTS - timedelta(hours=20), ["2h"]),
    # a 10:00 meeting: its 2-hour span (08:00-09:00) lies outside the send window, so only the 24-hour one
    (datetime(2025, 12, 25, 7, 0, tzinfo=UTC), BOOKED_AT, ["24h"]),
])
def test_when_reminders_go(db, starts, booked, expected):
    with freeze_time(booked) as clock:
        lead, meeting = booked_lead(starts=starts)
        queued = walk(clock, booked, starts)
        assert [kind for _, kind, _ in queued] == expected
        for moment, _, _ in queued:
            assert POLICY.in_window(moment)


def test_a_reminder_due_before_the_window_opens_goes_when_it_opens(db):
    starts = datetime(2025, 12, 25, 7, 0, tzinfo=UTC)  # Thursday 10:00 Moscow: the 24-hour one is due at 10:00
    noon = Policy(tz=MSK, window=(time(12), time(20)))
    with freeze_time(BOOKED_AT) as clock:
        booked_lead(starts=starts)
        queued = walk(clock, BOOKED_AT, starts, policy=noon)
        assert [(when, kind) for when, kind, _ in queued] == [(datetime(2025, 12, 24, 9, 0, tzinfo=UTC), "24h")]


@pytest.mark.parametrize("fields", [{"opted_out": True}, {"telegram": False}, {"access_hash": None}])
def test_who_is_not_reminded(db, fields):
    with freeze_time(BOOKED_AT) as clock:
        booked_lead(**fields)
        assert walk(clock, STARTS - timedelta(hours=24), STARTS, step=timedelta(hours=1)) == []


def test_two_sweeps_at_once_claim_a_reminder_once(db):
    with freeze_time(STARTS - timedelta(hours=24)):
        booked_lead(booked_at=BOOKED_AT)
        now = datetime.now(UTC)
        seen_by_both = meeting_reminders.due(now, PLAN)  # both sweeps read before either claims
        assert [a.outcome for a in sweep()] == ["queued"]
        assert meeting_reminders._claim_and_queue(seen_by_both[0], now, PLAN) is False
        assert Outbox.select().count() == 1


def test_a_meeting_cancelled_between_the_read_and_the_claim_is_not_reminded(db):
    with freeze_time(STARTS - timedelta(hours=24)):
        lead, meeting = booked_lead(booked_at=BOOKED_AT)
        now = datetime.now(UTC)
        (due,) = meeting_reminders.due(now, PLAN)
        leads.cancel_meeting(meeting.id, "lead", now)  # the lead cancels while the sweep runs
        assert meeting_reminders._claim_and_queue(due, now, PLAN) is False
        assert Outbox.select().count() == 0 and MeetingReminder.select().count() == 0
        assert meeting_reminders.due(now, PLAN) == []  # and the next sweep (or a dry run) does not list it


def test_a_no_show_is_offered_new_slots_once(db, aio):
    with freeze_time("2025-12-23 11:05:00") as clock:  # Tuesday 14:05 in Moscow
        lead, meeting = booked_lead(starts=datetime(2025, 12, 23, 7, 0, tzinfo=UTC))  # this morning, 10:00
        again, booked_again = booked_lead(starts=datetime(2025, 12, 23, 8, 0, tzinfo=UTC))
        make_meeting(again, datetime(2025, 12, 26, 8, 0))  # this one booked another meeting meanwhile
        assert leads.set_outcome(meeting.id, "no_show", datetime.now(UTC))
        assert leads.set_outcome(booked_again.id, "no_show", datetime.now(UTC))
        actions = sweep()
        assert [(a.meeting_id, a.kind, a.outcome) for a in actions] == [(meeting.id, "no_show", "queued")]
        clock.tick(timedelta(minutes=15))
        assert sweep() == []
        transport = RecordingTransport()
        aio.run(make_outbox(transport, managers=()).drain())
        (offer,) = transport.sent
        assert offer.text == texts.no_show_offer("Анна", "сегодня, в 10:00 по московскому времени")
        assert offer.labels[0] == "Вт, 23 дек, 17:00" and offer.labels[-1] == texts.BUTTON_OWN_TIME


def test_the_dry_run_lists_meeting_reminders_beside_the_follow_ups(db, run):
    with freeze_time(STARTS - timedelta(hours=2)):
        lead, meeting = booked_lead(booked_at=BOOKED_AT)
        result = run("follow-ups", "run", "--dry-run", "--json")
        data = json.loads(result.stdout)
        assert [(m["meeting_id"], m["lead_id"], m["kind"], m["outcome"]) for m in data["meetings"]] == [
            (meeting.id, lead.id, "2h", "would_send")]
        assert data["meetings"][0]["starts_at"] == "2025-12-25T15:00:00+03:00"
        table = run("follow-ups", "run", "--dry-run").stdout
        assert "Meeting messages that would go now" in table and "reminder 2h before" in table
        assert MeetingReminder.select().count() == 0 and Outbox.select().count() == 0  # a dry run changes nothing


def test_the_meeting_settings(run, monkeypatch):
    from salesbot import runtime
    from salesbot.config import load_settings

    assert runtime.calendar(load_settings()).horizon == timedelta(days=60)
    monkeypatch.setenv("SALESBOT_BOOKING_DAYS", "10")
    assert runtime.calendar(load_settings()).horizon == timedelta(days=10)
    assert runtime.meeting_plan(load_settings()).lead_times == (timedelta(hours=24), timedelta(hours=2))

    monkeypatch.setenv("SALESBOT_MEETING_REMINDERS", "2h, 1d,30m")
    assert load_settings().meeting_reminders == (timedelta(days=1), timedelta(hours=2), timedelta(minutes=30))
    monkeypatch.setenv("SALESBOT_MEETING_REMINDERS", "off")
    assert load_settings().meeting_reminders == ()
    monkeypatch.setenv("SALESBOT_MEETING_REMINDERS", "2 hours")
    assert "SALESBOT_MEETING_REMINDERS" in run("follow-ups", "run", "--dry-run", code=1).stderr  # the sweep uses it


def test_a_reminder_through_the_telegram_harness_cancel_asks_once_then_frees_the_slot(db, aio):
    """The sweep's reminder goes out as a real SendMessageRequest with inline buttons; the lead's
    presses come back as real callback updates (tests/test_telegram.py's harness)."""
    from telethon.tl import functions

    from salesbot import telegram
    from tests.telegram_fakes import CapturingClient
    from tests.test_telegram import callback_event, handled

    client = CapturingClient()
    with freeze_time(STARTS - timedelta(hours=2), real_asyncio=True):
        lead, meeting = booked_lead(booked_at=BOOKED_AT, telegram_id=101)
        transport = telegram.TelethonTransport(client)
        engine, _, _ = make_engine(transport=transport, managers=())
        handlers = telegram.BotHandlers(engine, transport)
        sweep()
        aio.run(engine.outbox.drain())
        (reminder,) = client.sent
        assert reminder.message == texts.meeting_reminder("Анна", WHEN_ON_THE_DAY)
        buttons = [b for row in reminder.reply_markup.rows for b in row.buttons]
        assert [(b.text, b.type.data) for b in buttons] == [
            (texts.BUTTON_MEETING_CONFIRM, f"mc:{meeting.id}".encode()),
            (texts.BUTTON_MEETING_MOVE, f"mm:{meeting.id}".encode()),
            (texts.BUTTON_MEETING_CANCEL, f"mx:{meeting.id}".encode())]
        reminder_id = len(client.requests)
        press = handlers.on_callback
        handled(aio, handlers, press(callback_event(client, f"mx:{meeting.id}".encode(), msg_id=reminder_id)))
        answer, edit, question = client.requests[reminder_id:]
        assert isinstance(answer, functions.messages.SetBotCallbackAnswerRequest) and answer.message is None
        assert isinstance(edit, functions.messages.EditMessageRequest) and edit.id == reminder_id
        assert question.message == texts.ask_cancel(WHEN_ON_THE_DAY)
        assert Meeting.get_by_id(meeting.id).status == "booked"  # asked, not yet cancelled
        question_id = len(client.requests)
        handled(aio, handlers, press(callback_event(client, f"mxy:{meeting.id}".encode(), msg_id=question_id)))
        assert client.sent[-1].message == texts.meeting_cancelled(WHEN_ON_THE_DAY)
        assert Meeting.get_by_id(meeting.id).status == "cancelled"
        before = len(client.requests)  # «Подтверждаю» on the old reminder: a toast, nothing changes
        handled(aio, handlers, press(callback_event(client, f"mc:{meeting.id}".encode(), msg_id=reminder_id)))
        (toast,) = client.requests[before:]
        assert toast.message == texts.STALE_TOAST and Meeting.get_by_id(meeting.id).confirmed_at is None


def test_a_lead_who_said_not_to_write_gets_no_meeting_reminder(db):
    """«не пишите мне больше» made the lead lost; a meeting still on the books is no reason to write."""
    with freeze_time(BOOKED_AT) as clock:
        lead, meeting = booked_lead()
        quiet, _ = booked_lead(starts=STARTS + timedelta(hours=1))
        Lead.update(status="lost").where(Lead.id == quiet.id).execute()
        queued = walk(clock, BOOKED_AT, STARTS + timedelta(hours=1))
    assert {meeting_id for _, _, meeting_id in queued} == {meeting.id}
