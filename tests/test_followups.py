import asyncio
import fcntl
import json
import threading
from datetime import UTC, datetime, time, timedelta

import pytest
from freezegun import freeze_time

from salesbot import followups, runtime, texts
from salesbot.config import load_settings
from salesbot.delivery import Outbox as Deliverer
from salesbot.followups import Policy
from salesbot.store import Lead, Meeting, Message, Outbox, leads, to_utc_naive
from salesbot.transport import SendError
from tests.engine_fakes import CALENDAR, MSK, ManualSleep, RecordingTransport, make_engine, make_outbox, tg
from tests.telegram_fakes import CapturingClient

T0 = datetime(2025, 12, 23, 8, 0, tzinfo=UTC)  # Tuesday 11:00 in Moscow
POLICY = Policy(tz=MSK)
_ids = iter(range(10_000, 10**9))


def quiet_lead(*, wrote_at=T0, bot_last=True, **fields) -> Lead:
    """A Telegram lead who asked at `wrote_at` and (with bot_last) got an answer a minute later."""
    fields.setdefault("telegram_id", next(_ids))
    fields.setdefault("access_hash", 987654321)
    fields.setdefault("first_name", "Анна")
    lead = Lead.create(created_at=to_utc_naive(wrote_at), **fields)
    leads.record_lead_message(lead.id, "Сколько стоит сайт?", to_utc_naive(wrote_at), False)
    if bot_last:
        answered = to_utc_naive(wrote_at + timedelta(minutes=1))
        leads.record_bot_message(lead.id, "От 120 000 ₽. Для какого бизнеса?", answered)
    Lead.update(status=fields.get("status", "warm")).where(Lead.id == lead.id).execute()
    return Lead.get_by_id(lead.id)


def sweep(**kwargs):
    return followups.sweep(datetime.now(UTC), POLICY, **kwargs)


def deliver(aio, transport):
    """What a running `serve` does with the queued reminders."""
    aio.run(make_outbox(transport, managers=()).drain())
    return transport


def reminders(lead) -> list[tuple[str, str]]:
    return [(row.state, row.text) for row in Outbox.select().where(Outbox.lead == lead.id, Outbox.kind == "reminder")]


def test_a_leads_life(db, aio):
    transport = RecordingTransport()
    with freeze_time(T0) as clock:
        lead = quiet_lead()
        clock.move_to(T0 + timedelta(hours=23))
        assert sweep().actions == []
        clock.move_to(T0 + timedelta(hours=24, minutes=1))
        result = sweep()
        assert [(a.lead_id, a.step, a.outcome, a.becomes_cold) for a in result.actions] == [
            (lead.id, 1, "queued", False)]
        assert reminders(lead) == [("queued", texts.follow_up(1, "Анна"))]
        assert transport.sent == []  # queued, not sent: serve delivers
        clock.move_to(T0 + timedelta(hours=24, minutes=3))  # serve's delivery loop comes round
        deliver(aio, transport)
        assert transport.last.text == texts.follow_up(1, "Анна")
        assert (transport.last.peer.user_id, transport.last.peer.access_hash) == (lead.telegram_id, 987654321)
        lead = Lead.get_by_id(lead.id)
        assert (lead.follow_up_count, lead.status) == (1, "warm")
        assert lead.last_follow_up_at == to_utc_naive(T0 + timedelta(hours=24, minutes=3))  # when it really went
        assert reminders(lead) == [("sent", texts.follow_up(1, "Анна"))]
        clock.move_to(T0 + timedelta(hours=48, minutes=2))
        assert sweep().actions == []  # 24 h after the reminder went, not after it was queued
        clock.move_to(T0 + timedelta(hours=48, minutes=4))
        result = sweep()
        assert [(a.step, a.outcome, a.becomes_cold) for a in result.actions] == [(2, "queued", True)]
        deliver(aio, transport)
        assert transport.last.text == texts.follow_up(2, "Анна") != texts.follow_up(1, "Анна")
        lead = Lead.get_by_id(lead.id)
        assert (lead.follow_up_count, lead.status, lead.cold_reason) == (2, "cold", "no_reply")
        clock.move_to(T0 + timedelta(days=6))
        assert sweep().actions == []
        assert len(transport.sent) == 2


def test_a_reply_in_between_starts_over(db, aio):
    with freeze_time(T0 + timedelta(hours=24, minutes=1)) as clock:
        lead = quiet_lead()
        sweep()
        deliver(aio, RecordingTransport())
        wrote = T0 + timedelta(hours=30)
        leads.record_lead_message(lead.id, "Да, актуально", to_utc_naive(wrote), False)
        leads.record_bot_message(lead.id, "Отлично!", to_utc_naive(wrote + timedelta(minutes=1)))
        assert Lead.get_by_id(lead.id).follow_up_count == 0
        clock.move_to(T0 + timedelta(hours=48, minutes=2))
        assert sweep().actions == []  # not step 2: the lead wrote
        clock.move_to(wrote + timedelta(hours=24, minutes=2))
        assert [a.step for a in sweep().actions] == [1]


def test_a_lead_who_writes_after_the_reminder_was_queued_is_not_reminded(db, aio):
    """Checked again just before sending: the reminder and its message are dropped."""
    with freeze_time(T0 + timedelta(hours=25)) as clock:
        lead = quiet_lead()
        sweep()
        clock.tick(timedelta(minutes=1))
        leads.record_lead_message(lead.id, "Извините, была занята!", to_utc_naive(T0 + timedelta(hours=25, minutes=1)),
                                  False)
        transport = deliver(aio, RecordingTransport())
        assert transport.sent == [] and reminders(lead) == []
        assert texts.follow_up(1, "Анна") not in [m.text for m in Message.select()]


@pytest.mark.parametrize("setup, reason", [
    ("opted_out", "opted_out"), ("hot_after_a_meeting", "has_meeting"), ("cold", None), ("meeting", "has_meeting"),
    ("lead_spoke_last", "lead_spoke_last"), ("chat_lead", None), ("no_access_hash", None),
    ("too_recent", "not_silent_long_enough"), ("reply_still_queued", "owed_answer"),
    ("reply_undelivered", "owed_answer"), ("unanswered", "owed_answer"), ("taken_over", "taken_over"),
    ("staff_note_last", None),
])
def test_who_is_skipped_and_why(db, setup, reason):
    with freeze_time(T0 + timedelta(hours=25)):
        fields = {
            "opted_out": {"opted_out": True},
            "hot_after_a_meeting": {"status": "hot"},
            "cold": {"status": "cold"},
            "chat_lead": {"telegram_id": None, "access_hash": None},
            "no_access_hash": {"access_hash": None},
        }.get(setup, {})
        wrote_at = T0 + timedelta(hours=2) if setup == "too_recent" else T0
        lead = quiet_lead(bot_last=setup != "lead_spoke_last", wrote_at=wrote_at, **fields)
        if setup == "meeting":
            Meeting.create(lead=lead, starts_at=to_utc_naive(T0 + timedelta(days=2)), source="slot")
        if setup == "hot_after_a_meeting":  # staff take over after a meeting: no "shall we meet?" nudge
            Meeting.create(lead=lead, starts_at=to_utc_naive(T0 - timedelta(days=1)), source="slot")
        if setup == "taken_over":  # a person has the conversation (salesbot/inbox): reminders wait
            leads.take_over(lead.id, 555, T0, T0 + timedelta(days=2))
        if setup == "staff_note_last":  # an internal note is not the lead's turn: still due
            leads.record_staff_message(lead.id, "note", "перезвонить", 555, to_utc_naive(T0 + timedelta(hours=1)))
        if setup == "unanswered":
            Message.update(unanswered=True).where(Message.lead == lead, Message.role == "lead").execute()
        if setup.startswith("reply_"):  # our answer never reached the lead: we owe them, not they us
            (row,) = [Outbox.get_by_id(i) for i in make_outbox(None).to_lead(lead.id, "Ответ")]
            if setup == "reply_undelivered":
                Outbox.update(state="failed", error="ConnectionError").where(Outbox.id == row.id).execute()
        due = quiet_lead()  # a control that is due
        expected = [lead.id, due.id] if setup == "staff_note_last" else [due.id]
        assert [a.lead_id for a in sweep(dry_run=True).actions] == expected
        diagnosis = sweep(dry_run=True).diagnosis
        assert (diagnosis.due, diagnosis.not_due) == (len(expected), {reason: 1} if reason else {})
        assert [a.lead_id for a in sweep().actions] == expected


def test_a_past_meeting_does_not_block_reminders(db):
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead()
        Meeting.create(lead=lead, starts_at=to_utc_naive(T0 - timedelta(days=1)), source="slot")
        assert [a.lead_id for a in sweep().actions] == [lead.id]


@pytest.mark.parametrize("local_time, sent", [(time(9, 59), False), (time(10), True), (time(19, 59), True),
                                             (time(20), False), (time(23, 30), False)])
def test_only_inside_the_send_window(db, local_time, sent):
    # The window is [10:00, 20:00): it opens at its start and ends at its end time.
    when = datetime.combine(datetime(2025, 12, 24).date(), local_time, tzinfo=MSK)
    with freeze_time(when):
        quiet_lead(wrote_at=when - timedelta(hours=25))
        result = sweep()
        assert result.in_window is sent
        assert bool(result.actions) is sent


def test_dry_run_changes_nothing(db):
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead()
        result = sweep(dry_run=True)
        assert [(a.lead_id, a.step, a.outcome) for a in result.actions] == [(lead.id, 1, "would_send")]
        assert followups.count_due(datetime.now(UTC), POLICY) == 1
        assert Outbox.select().count() == 0 and Lead.get_by_id(lead.id).follow_up_count == 0
        assert Message.select().count() == 2


def test_a_lead_who_blocked_the_bot_is_opted_out_and_never_reminded_again(db, aio):
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead()
        sweep()
        transport = RecordingTransport()
        transport.fail = [SendError("UserIsBlockedError", unreachable=True)]
        deliver(aio, transport)
        lead = Lead.get_by_id(lead.id)
        assert (lead.opted_out, lead.opted_out_reason) == (True, "UserIsBlockedError")
        assert reminders(lead) == [("failed", texts.follow_up(1, "Анна"))]
    with freeze_time(T0 + timedelta(days=3)):
        assert sweep().actions == []


def test_limit(db):
    with freeze_time(T0 + timedelta(hours=25)):
        for _ in range(5):
            quiet_lead()
        assert len(sweep(limit=2).actions) == 2
        assert len(sweep().actions) == 3


def test_two_sweeps_at_once_queue_each_reminder_once(db, salesbot_home):
    with freeze_time(T0 + timedelta(hours=25)):
        due = [quiet_lead() for _ in range(60)]
    results = []
    now = T0 + timedelta(hours=25)

    def one_sweep():
        results.append(followups.sweep(now, POLICY))

    threads = [threading.Thread(target=one_sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    queued = [row.lead_id for row in Outbox.select().where(Outbox.kind == "reminder")]
    assert sorted(queued) == sorted(lead.id for lead in due)  # every lead once, none twice
    assert sum(r.count("queued") for r in results) == 60
    assert Message.select().where(Message.text == texts.follow_up(1, "Анна")).count() == 60


def test_the_reminder_goes_out_through_the_telethon_request_with_the_leads_own_hash(db, aio):
    from salesbot.telegram import TelethonTransport

    client = CapturingClient()
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead(first_name="Ольга")
        sweep()
        deliver(aio, TelethonTransport(client))
    (request,) = client.requests
    assert request.peer.user_id == lead.telegram_id and request.peer.access_hash == 987654321
    assert request.message == texts.follow_up(1, "Ольга")


# --- the command line ---------------------------------------------------------------------------


@pytest.fixture
def serve_alive(salesbot_home):
    salesbot_home.mkdir(exist_ok=True)
    runtime.beat(salesbot_home)


def test_cli_dry_run_json(db, run):
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead()
        data = json.loads(run("follow-ups", "run", "--dry-run", "--json").stdout)
    assert data["dry_run"] is True and data["in_window"] is True
    assert [(a["lead_id"], a["step"], a["becomes_cold"], a["outcome"]) for a in data["actions"]] == [
        (lead.id, 1, False, "would_send")]
    assert data["summary"]["would_send"] == 1
    (action,) = data["actions"]
    assert (action["nudge"], action["text"], action["username"]) == ("follow_up", texts.follow_up(1, "Анна"), None)
    assert data["not_due"] == {} and data["next_due_at"] is None


def test_cli_real_run_while_serve_is_down_exits_1_and_claims_nobody(db, run, salesbot_home):
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead()
        result = run("follow-ups", "run", code=1)
    assert "salesbot serve is not running (has never run here)" in result.stderr
    assert Lead.get_by_id(lead.id).follow_up_count == 0 and Outbox.select().count() == 0


def test_cli_a_stale_heartbeat_means_serve_is_down(db, run, serve_alive, salesbot_home):
    import os

    old = (T0 - timedelta(minutes=10)).timestamp()
    os.utime(salesbot_home / runtime.HEARTBEAT, (old, old))
    with freeze_time(T0 + timedelta(hours=25)):
        quiet_lead()
    result = run("follow-ups", "run", code=1)
    assert "salesbot serve is not running (last seen" in result.stderr


def test_cli_real_run_queues_and_summarises(db, run, serve_alive):
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        quiet_lead()
        quiet_lead()
        result = run("follow-ups", "run")
    assert "queued 2 for serve to send" in result.stdout
    assert Outbox.select().where(Outbox.kind == "reminder", Outbox.state == "queued").count() == 2


def test_cli_outside_the_window(db, run, serve_alive):
    with freeze_time(datetime(2025, 12, 24, 22, 0, tzinfo=MSK), real_asyncio=True):
        quiet_lead()
        result = run("follow-ups", "run")
        dry = run("follow-ups", "run", "--dry-run").stdout
    assert "Outside the send window (10:00–20:00 Europe/Moscow, Mon–Fri)" in result.stdout
    assert Outbox.select().count() == 0
    assert "1 lead(s) are due and will be reminded once the window opens." in dry


def test_cli_second_sweep_while_one_runs_exits_0(db, run, salesbot_home):
    salesbot_home.mkdir(exist_ok=True)
    with open(salesbot_home / "follow-ups.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run("follow-ups", "run", "--dry-run")
    assert "Another follow-up sweep is running" in result.stderr


def test_cli_json_streams_every_action_as_one_document(db, run, serve_alive):
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        due = [quiet_lead() for _ in range(250)]  # more than the table shows
        data = json.loads(run("follow-ups", "run", "--json").stdout)
        assert [a["lead_id"] for a in data["actions"]] == [lead.id for lead in due]
        assert data["summary"]["queued"] == 250 and data["dry_run"] is False
        table = run("follow-ups", "run", "--dry-run").stdout
        assert "0 would be reminded now" in table


def test_a_lead_we_failed_to_answer_is_not_reminded(db, run):
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead(bot_last=False)
        leads.record_lead_message(lead.id, "Алло?", to_utc_naive(T0 + timedelta(minutes=5)), True)  # Claude was down
        leads.record_bot_message(lead.id, texts.FALLBACK, to_utc_naive(T0 + timedelta(minutes=6)))
        assert sweep().actions == []
        data = json.loads(run("leads", "list", "--json").stdout)
        assert data[0]["unanswered"] == 1
        assert "(1 unanswered)" in run("leads", "list").stdout


def test_cli_json_stays_empty_when_the_sweep_cannot_start(db, run):
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        quiet_lead()
        result = run("follow-ups", "run", "--json", code=1)
    assert result.stdout == "" and "serve is not running" in result.stderr


def test_the_claim_also_compares_the_leads_last_message(db, aio):
    """A lead who writes between the due query and the claim is not reminded (the count alone
    would still match: their message resets it to 0, which it already was)."""
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead()
        (due,) = followups.due_leads(datetime.now(UTC), POLICY)
        leads.record_lead_message(lead.id, "Ой, забыла ответить!", to_utc_naive(T0 + timedelta(hours=25)), False)
        assert leads.claim_follow_up(due.lead_id, due.step, due.last_message_at, due.status) is False
        assert Lead.get_by_id(lead.id).follow_up_count == 0


# --- hot leads: two nudges with the free slots, then cold ----------------------------------------------

HOT = Policy(tz=MSK, calendar=CALENDAR)


def test_a_hot_lead_without_a_meeting_gets_two_nudges_with_slots_then_goes_cold(db, aio):
    transport = RecordingTransport()
    with freeze_time(T0, real_asyncio=True) as clock:
        lead = quiet_lead(status="hot")  # wanted to buy, then went quiet
        clock.move_to(T0 + timedelta(hours=24, minutes=1))  # Wednesday 11:01 in Moscow
        (action,) = followups.sweep(datetime.now(UTC), HOT).actions
        assert (action.step, action.nudge, action.becomes_cold, action.outcome) == (1, "hot", False, "queued")
        deliver(aio, transport)
        assert transport.last.text == texts.hot_follow_up(1, "Анна")
        # the free slots after the minimum notice (13:01), spread over three working days as the dialogue
        # offers them, and the lead's own time
        assert transport.last.labels == ["Ср, 24 дек, 14:00", "Ср, 24 дек, 16:00", "Чт, 25 дек, 10:00",
                                         "Чт, 25 дек, 14:00", "Пт, 26 дек, 10:00", "Пт, 26 дек, 14:00",
                                         texts.BUTTON_OWN_TIME]
        assert (Lead.get_by_id(lead.id).follow_up_count, Lead.get_by_id(lead.id).status) == (1, "hot")
        clock.move_to(T0 + timedelta(hours=48))
        assert followups.sweep(datetime.now(UTC), HOT).actions == []  # 24 h after the nudge went out
        clock.move_to(T0 + timedelta(hours=48, minutes=2))  # Thursday 11:02
        (action,) = followups.sweep(datetime.now(UTC), HOT).actions
        assert (action.step, action.nudge, action.becomes_cold) == (2, "hot", True)
        assert Lead.get_by_id(lead.id).status == "hot"  # cold only once it is really sent
        deliver(aio, transport)
        assert transport.last.text == texts.hot_follow_up(2, "Анна") != texts.hot_follow_up(1, "Анна")
        assert transport.last.labels[:3] == ["Чт, 25 дек, 14:00", "Чт, 25 дек, 16:00", "Пт, 26 дек, 10:00"]
        assert transport.last.labels[-1] == texts.BUTTON_OWN_TIME
        lead = Lead.get_by_id(lead.id)
        assert (lead.follow_up_count, lead.status, lead.cold_reason) == (2, "cold", "no_reply")
        clock.move_to(T0 + timedelta(days=6))
        assert followups.sweep(datetime.now(UTC), HOT).actions == []
        assert len(transport.sent) == 2


def test_a_slot_pressed_on_the_hot_nudge_books_the_meeting(db, aio):
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        lead = quiet_lead(status="hot", telegram_id=4242)
        followups.sweep(datetime.now(UTC), HOT)
        dialogue, _, transport = make_engine()  # serve: its outbox delivers, its engine takes the press
        aio.run(dialogue.outbox.drain())
        nudge = transport.last
        press = tg(4242, button=nudge.data_of("Ср, 24 дек, 16:00"))
        assert dialogue.press(press) == "new"
        aio.run(dialogue.handle(press))
    meeting = Meeting.get()
    assert (meeting.lead_id, meeting.status, meeting.source) == (lead.id, "booked", "slot")
    assert to_utc_naive(datetime(2025, 12, 24, 16, 0, tzinfo=MSK)) == meeting.starts_at
    assert transport.to(4242)[-1].text.startswith("Отлично, записал вас на встречу: сегодня, в 16:00")
    assert Lead.get_by_id(lead.id).follow_up_count == 0  # the press is the lead speaking: the cycle is over


def test_a_hot_lead_whose_meeting_was_cancelled_is_nudged_again(db):
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead(status="hot")
        Meeting.create(lead=lead, starts_at=to_utc_naive(T0 + timedelta(days=2)), source="slot", status="cancelled")
        assert [(a.lead_id, a.nudge) for a in followups.sweep(datetime.now(UTC), HOT).actions] == [(lead.id, "hot")]


def test_without_a_calendar_the_hot_nudge_offers_the_leads_own_time(db):
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead(status="hot")
        followups.sweep(datetime.now(UTC), POLICY)
    row = Outbox.get(Outbox.lead == lead.id)
    assert (row.follow_up_step, json.loads(row.buttons)) == ("hot_1", [[[texts.BUTTON_OWN_TIME, "own"]]])


# --- send days -----------------------------------------------------------------------------------------

SATURDAY = datetime(2025, 12, 27, 12, 0, tzinfo=MSK)
MONDAY_OPENS = datetime(2025, 12, 29, 10, 0, tzinfo=MSK)


def test_reminders_wait_for_a_send_day(db):
    with freeze_time(SATURDAY):
        lead = quiet_lead(wrote_at=SATURDAY - timedelta(hours=30))
        every_day = Policy(tz=MSK, days=frozenset(range(7)))
        assert [a.lead_id for a in followups.sweep(datetime.now(UTC), every_day, dry_run=True).actions] == [lead.id]
        result = sweep()
        assert (result.in_window, result.actions, Outbox.select().count()) == (False, [], 0)
        dry = sweep(dry_run=True)
        assert dry.diagnosis.not_due == {"outside_window": 1} and dry.due_later == 1
        assert dry.diagnosis.next_due_at == MONDAY_OPENS  # when the window opens on the next send day
    with freeze_time(MONDAY_OPENS - timedelta(seconds=1)):
        assert sweep().actions == []  # Monday, but before the window
    with freeze_time(MONDAY_OPENS):
        assert [(a.lead_id, a.outcome) for a in sweep().actions] == [(lead.id, "queued")]


def test_send_days_default_to_the_working_days_and_reach_the_policy(tmp_path):
    default = runtime.policy(load_settings({"SALESBOT_HOME": str(tmp_path)}, tmp_path))
    assert default.days == frozenset(range(5)) and default.calendar is not None
    every_day = runtime.policy(load_settings({"SALESBOT_HOME": str(tmp_path), "SALESBOT_SEND_DAYS": "mon-sun",
                                              "SALESBOT_SEND_WINDOW": "09:00-21:00"}, tmp_path))
    assert every_day.days == frozenset(range(7))
    assert every_day.in_window(SATURDAY) and not default.in_window(SATURDAY)


@pytest.mark.parametrize("wrote, due", [
    (datetime(2025, 12, 23, 11, 0, tzinfo=MSK), datetime(2025, 12, 24, 11, 0, tzinfo=MSK)),  # 24 h later
    (datetime(2025, 12, 23, 22, 0, tzinfo=MSK), datetime(2025, 12, 25, 10, 0, tzinfo=MSK)),  # at 22:00: next opening
    (datetime(2025, 12, 26, 15, 0, tzinfo=MSK), datetime(2025, 12, 29, 10, 0, tzinfo=MSK)),  # Saturday: Monday
])
def test_the_dry_run_says_when_the_next_lead_becomes_due(db, wrote, due):
    with freeze_time(wrote + timedelta(hours=1)):
        quiet_lead(wrote_at=wrote)
        diagnosis = sweep(dry_run=True).diagnosis
    assert (diagnosis.due, diagnosis.not_due, diagnosis.next_due_at) == (0, {"not_silent_long_enough": 1}, due)


def test_the_dry_run_counts_a_reminder_still_waiting_for_serve(db):
    with freeze_time(T0 + timedelta(hours=25)):
        quiet_lead()
        sweep()
        assert sweep(dry_run=True).diagnosis.not_due == {"reminder_queued": 1}


# --- each send checks the window and the lead, just before it goes -------------------------------------

FRIDAY_LATE = datetime(2025, 12, 26, 19, 59, tzinfo=MSK)


def serve_outbox(transport, sleep=None, rate=1000.0) -> Deliverer:
    return Deliverer(transport, managers=(), rate=rate, sleep=sleep or ManualSleep(), may_remind=POLICY.in_window)


@pytest.mark.parametrize("step", [1, 2])
def test_a_reminder_that_would_go_out_after_the_window_is_dropped_and_decided_again(db, aio, step):
    transport = RecordingTransport()
    with freeze_time(FRIDAY_LATE, real_asyncio=True) as clock:
        if step == 1:
            lead = quiet_lead(wrote_at=FRIDAY_LATE - timedelta(hours=30))
        else:
            lead = quiet_lead(wrote_at=FRIDAY_LATE - timedelta(hours=60))
            Lead.update(follow_up_count=1, last_follow_up_at=to_utc_naive(FRIDAY_LATE - timedelta(hours=30))).where(
                Lead.id == lead.id).execute()
        before = Lead.get_by_id(lead.id)
        assert [a.step for a in sweep().actions] == [step]
        clock.move_to(FRIDAY_LATE + timedelta(minutes=1, seconds=30))  # serve comes round at 20:00:30
        aio.run(serve_outbox(transport).drain())
        assert transport.sent == [] and reminders(lead) == []
        assert texts.follow_up(step, "Анна") not in [m.text for m in Message.select()]
        after = Lead.get_by_id(lead.id)  # the claim is given back: as the sweep found the lead
        assert (after.follow_up_count, after.status, after.last_follow_up_at) == (
            before.follow_up_count, before.status, before.last_follow_up_at)
    with freeze_time(MONDAY_OPENS, real_asyncio=True):
        assert [a.step for a in sweep().actions] == [step]  # the next sweep in the window decides afresh
        aio.run(serve_outbox(transport).drain())
        assert transport.last.text == texts.follow_up(step, "Анна")


def test_the_window_is_checked_after_the_reminders_turn_in_the_pace(db, aio):
    """Reminders wait their turn behind each other (here one a second): one whose turn comes after
    20:00 is not sent, though it was due when serve picked it up."""
    transport = RecordingTransport()
    with freeze_time(FRIDAY_LATE + timedelta(seconds=59.5), real_asyncio=True) as clock:
        first = quiet_lead(wrote_at=FRIDAY_LATE - timedelta(hours=30))
        second = quiet_lead(wrote_at=FRIDAY_LATE - timedelta(hours=30))
        sweep()

        async def sleep(seconds):  # the pacer's wait passes on the frozen clock too
            clock.tick(seconds)
            await asyncio.sleep(0)

        aio.run(serve_outbox(transport, sleep=sleep, rate=1.0).drain())
    assert [s.peer.user_id for s in transport.sent] == [first.telegram_id]
    assert reminders(second) == [] and Lead.get_by_id(second.id).follow_up_count == 0


class Gate:
    """A sleep that waits until the test opens it (the retry after a flood wait)."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await self.opened.wait()


def test_a_lead_who_writes_during_a_flood_wait_is_not_reminded(db, aio):
    transport = RecordingTransport()
    transport.fail = [SendError("flood wait 30 s", retry_after=30.0)]
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True) as clock:
        lead = quiet_lead()
        sweep()
        gate = Gate()
        outbox = serve_outbox(transport, sleep=gate)
        aio.run(outbox.drain())  # Telegram says: wait 30 s
        assert gate.waits == [30.0] and reminders(lead) == [("queued", texts.follow_up(1, "Анна"))]
        clock.tick(10)
        leads.record_lead_message(lead.id, "Да, ещё актуально!", to_utc_naive(datetime.now(UTC)), False)
        clock.tick(20)
        gate.opened.set()
        aio.run(asyncio.gather(*outbox._tasks.values()))
    assert transport.sent == [] and reminders(lead) == []
    assert Lead.get_by_id(lead.id).follow_up_count == 0


def test_reminders_fill_the_pace_without_sleeps_of_their_own(db, aio):
    """250 reminders at 25 a second: the only waits are the pacer's 40 ms between sends."""
    from salesbot.delivery import Pacer

    clock, waits = [0.0], []

    async def sleep(seconds):
        waits.append(seconds)
        clock[0] += seconds
        await asyncio.sleep(0)

    transport = RecordingTransport()
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        for _ in range(250):
            quiet_lead()
        sweep()
        outbox = serve_outbox(transport, sleep=sleep)
        outbox.pacer = Pacer(25.0, clock=lambda: clock[0], sleep=sleep)

        async def serve_loop_once():  # serve's loop: every due chat at once, the pacer orders them
            outbox.kick()
            await asyncio.gather(*outbox._tasks.values())

        aio.run(serve_loop_once())
    assert len(transport.sent) == 250
    assert sum(waits) == pytest.approx(249 / 25) and max(waits) == pytest.approx(0.04)


# --- texts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text_of", [texts.follow_up, texts.hot_follow_up])
@pytest.mark.parametrize("step", [1, 2])
def test_reminders_speak_in_the_bots_register(text_of, step):
    text = text_of(step, "Анна")
    assert text.startswith("Здравствуйте, Анна! ") and text_of(step, None).startswith("Здравствуйте! ")
    assert text.count("?") == 1  # one clear question
    assert len(text) <= 160  # short: a glance on a phone
    for wrong in ("Привет", "привет", "ты ", "тебе", "не ответили", "Заметил"):
        assert wrong not in text  # «вы» throughout, and no reproach


# --- the plan and the output ----------------------------------------------------------------------------


def plans(db) -> list[str]:
    params = followups._params(T0, POLICY, after=0, page=10)
    return [" / ".join(row[3] for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())
            for sql in (followups._DUE_SQL, followups._COUNT_DUE_SQL, followups._DIAGNOSIS_SQL)]


def test_the_sweeps_plan_does_not_depend_on_statistics(db):
    for plan in plans(db):  # a database never analysed, as production's are
        assert "USING INDEX lead_reminder" in plan and "lead_status_activity" not in plan, plan
    db.execute_sql("ANALYZE")  # statistics that make another index look far better change nothing
    db.execute_sql("INSERT INTO sqlite_stat1 VALUES ('lead', 'lead_status_activity', '1000000 2 2 1'),"
                   " ('lead', 'lead_reminder', '1000000 1 1 1 1 1 1'), ('lead', NULL, '1000000')")
    db.execute_sql("ANALYZE sqlite_master")  # reload them
    for plan in plans(db):
        assert "USING INDEX lead_reminder" in plan, plan


def test_the_actions_json_is_the_dataclass_as_it_was(db):
    from salesbot.cli import render

    with freeze_time(T0 + timedelta(hours=25)):
        quiet_lead(first_name=None, username="anna_k")
        (action,) = sweep(dry_run=True).actions
    assert action.as_json() == render.plain(action)


def test_the_dry_run_table_previews_each_reminder_and_says_why_the_rest_wait(db, run):
    with freeze_time(T0 + timedelta(hours=25)):
        quiet_lead(first_name=None, username="anna_k")
        quiet_lead(first_name="Ольга", status="hot")
        quiet_lead(wrote_at=T0 + timedelta(hours=20))
        quiet_lead(opted_out=True)
        table = run("follow-ups", "run", "--dry-run").stdout
    assert "@anna_k" in table and "Здравствуйте! Возвращаюсь к вашему вопросу" in table
    assert "Ольга" in table and "hot 1" in table and "Здравствуйте, Ольга! Вы хотели записаться" in table
    assert "2 would be reminded now" in table
    assert "Not due now:" in table and "not silent long enough" in table and "opted out" in table
    # local time, in the window: 20:00 + 24 h → Thu 10:00
    assert "Next due after these: Thu 25.12.2025 07:00" not in table
    assert "Next due after these: Thu 25.12.2025 10:00" in table


def test_cli_json_has_the_same_shape_when_another_sweep_holds_the_lock(db, run, serve_alive, salesbot_home):
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        quiet_lead()
        normal = json.loads(run("follow-ups", "run", "--dry-run", "--json").stdout)
        with followups.sweep_lock(salesbot_home) as mine:
            assert mine
            locked = json.loads(run("follow-ups", "run", "--json").stdout)
    assert set(locked) == set(normal) and normal["skipped"] is None
    assert locked["skipped"] == "another sweep is running" and locked["actions"] == []
    assert set(locked["summary"]) == set(normal["summary"]) and not any(locked["summary"].values())
    assert normal["now"] == "2025-12-24T12:00:00+03:00" and locked["now"].endswith("+03:00")  # SALESBOT_TZ


def test_limit_0_means_all(db, run):
    with freeze_time(T0 + timedelta(hours=25)):
        for _ in range(3):
            quiet_lead()
        assert len(json.loads(run("follow-ups", "run", "--dry-run", "--json", "--limit", "0").stdout)["actions"]) == 3
        assert len(json.loads(run("follow-ups", "run", "--dry-run", "--json", "--limit", "2").stdout)["actions"]) == 2
