"""Issue 23: a queued message that depends on state is checked again just before it goes out, and
staff changes withdraw what they make stale. A meeting reminder queued by the sweep is never sent
for a meeting that was moved, cancelled or has started, nor to a lead who said /stop; a no-show
offer is not sent once the lead booked again.

Each of these was run against the code before the check (rows of kind `reply`, never looked at
again) and failed there: the reminder went out."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from salesbot import delivery, meeting_changes, texts
from salesbot.store import Meeting, Message, Outbox, leads
from tests.engine_fakes import CALENDAR, FakeLLM, RecordingTransport, make_engine, make_outbox
from tests.fake_telegram import serving, until
from tests.test_meeting_reminders import BOOKED_AT, STARTS, booked_lead, sweep

DAY_BEFORE = STARTS - timedelta(hours=24)  # Wednesday 15:00 Moscow: the 24-hour reminder is queued


@pytest.fixture
def serve_alive(salesbot_home):
    from salesbot import runtime

    salesbot_home.mkdir(exist_ok=True)
    runtime.beat(salesbot_home)


def deliver(aio) -> list[str]:
    transport = RecordingTransport()
    aio.run(make_outbox(transport, managers=()).drain())
    return [s.text for s in transport.sent]


def queued_reminder():
    lead, meeting = booked_lead(booked_at=BOOKED_AT)
    assert [a.outcome for a in sweep()] == ["queued"]
    return lead, meeting


def lead_moves(lead, meeting, now):
    assert leads.book(lead.id, STARTS + timedelta(days=1), "slot", now, CALENDAR)[0] is None


def lead_cancels(lead, meeting, now):
    assert leads.cancel_meeting(meeting.id, "lead", now)


def lead_stops(lead, meeting, now):
    leads.opt_out(lead.id, "stop")


CHANGES = {"moved": lead_moves, "cancelled": lead_cancels, "opted out": lead_stops}


@pytest.mark.parametrize("change", CHANGES)
def test_a_reminder_queued_before_the_change_is_not_sent(db, aio, change):
    with freeze_time(DAY_BEFORE, real_asyncio=True):
        lead, meeting = queued_reminder()
        CHANGES[change](lead, meeting, datetime.now(UTC))
        assert deliver(aio) == []
        # gone with the message it would have said: `leads show` does not list it as said
        assert Outbox.select().where(Outbox.about == "meeting_reminder").count() == 0
        assert not Message.select().where(Message.text.contains("Напоминаю о нашей встрече")).exists()


def test_a_reminder_is_not_sent_after_the_meeting_started(db, aio):
    with freeze_time(STARTS - timedelta(hours=2), real_asyncio=True) as clock:
        queued_reminder()
        clock.move_to(STARTS + timedelta(minutes=5))  # serve was down until after the start
        assert deliver(aio) == []


def test_a_reminder_still_true_goes_out(db, aio):
    with freeze_time(DAY_BEFORE, real_asyncio=True):
        queued_reminder()
        assert deliver(aio) == [texts.meeting_reminder("Анна", "завтра, 25 декабря, в 15:00 по московскому времени")]


def test_a_no_show_offer_is_not_sent_once_the_lead_booked_again(db, aio):
    with freeze_time("2025-12-23 11:05:00", real_asyncio=True):
        lead, meeting = booked_lead(starts=datetime(2025, 12, 23, 7, 0, tzinfo=UTC))
        assert leads.set_outcome(meeting.id, "no_show", datetime.now(UTC))
        assert [a.kind for a in sweep()] == ["no_show"]
        lead_moves(lead, meeting, datetime.now(UTC))  # the lead booked again before serve sent the offer
        assert deliver(aio) == []


def test_staff_changes_withdraw_the_queued_reminder_and_earlier_news(db, aio):
    with freeze_time(DAY_BEFORE, real_asyncio=True):
        lead, meeting = queued_reminder()
        now = datetime.now(UTC)
        first = meeting_changes.move(meeting.id, STARTS + timedelta(days=1), now, CALENDAR)
        assert Outbox.select().where(Outbox.about == "meeting_reminder").count() == 0  # withdrawn at once
        second = meeting_changes.move(first.new_meeting_id, STARTS + timedelta(days=5), now, CALENDAR)
        sent = deliver(aio)
        # only the news of the last move, from the time the lead knows (the first news never went out)
        assert sent == [texts.staff_moved("завтра, 25 декабря, в 15:00 по московскому времени",
                                          "во вторник, 30 декабря, в 15:00 по московскому времени")]
        third = meeting_changes.move(second.new_meeting_id, STARTS + timedelta(days=6), now, CALENDAR)
        meeting_changes.cancel(third.new_meeting_id, None, now, CALENDAR)
        # told of the 30th (sent above), never of the 31st: the cancel names the 30th
        assert deliver(aio) == [texts.staff_cancelled("во вторник, 30 декабря, в 15:00 по московскому времени", None)]
        assert Meeting.get_by_id(second.new_meeting_id).source == "staff"


# --- through serve and the offline Telegram ----------------------------------------------------------------


@pytest.mark.parametrize("change", ["moved", "cancelled", "opted out", "past"])
def test_through_serve_a_stale_reminder_never_reaches_telegram(telegram_server, bot_settings, change):
    """The sweep queued the reminder while serve was down; then the meeting changed (or its start
    passed); serve starts and delivers what is queued: everything but the stale reminder."""
    def build(transport):
        return make_engine(llm=FakeLLM(), transport=transport, managers=())[0]

    async def main(clock):
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, build):
            telegram_server.write(anna, "Здравствуйте")
            await until(lambda: telegram_server.messages_to(anna))
        lead = leads.by_telegram_id(101)
        meeting = Meeting.create(lead=lead.id, starts_at=STARTS.replace(tzinfo=None), source="slot",
                                 created_at=BOOKED_AT.replace(tzinfo=None))
        assert [a.outcome for a in sweep()] == ["queued"]
        if change == "past":
            clock.move_to(STARTS + timedelta(minutes=1))
        else:
            CHANGES[change](lead, meeting, datetime.now(UTC))
        delivery.queue_to_lead(lead.id, "Ещё одно сообщение", datetime.now(UTC))  # a reply still goes out
        async with serving(telegram_server, bot_settings, build):
            await until(lambda: len(telegram_server.messages_to(anna)) == 2)
            await asyncio.sleep(0.05)

    with freeze_time(DAY_BEFORE, real_asyncio=True) as clock:
        asyncio.run(main(clock))
    assert telegram_server.texts_to(101) == ["Понял вас!", "Ещё одно сообщение"]


# --- summaries say what happened -------------------------------------------------------------------------


def test_the_sweep_and_leads_show_count_a_queued_reminder_as_queued_not_sent(db, run, serve_alive):
    from tests.test_followups import T0, quiet_lead

    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        lead = quiet_lead()
        leads.claim_follow_up(lead.id, 1, str(lead.last_message_at), lead.status)  # reminder 1 went out earlier
        leads.follow_up_sent(lead.id, datetime.now(UTC) - timedelta(hours=24))
        result = run("follow-ups", "run")
        assert "now cold" not in result.stdout and "cold once it is sent" in result.stdout
        assert leads.by_id(lead.id).status == "warm"  # not cold until serve sends it
        shown = run("leads", "show", str(lead.id)).stdout
        assert "reminders sent: 1 " in shown and "1 queued for serve to send" in shown
