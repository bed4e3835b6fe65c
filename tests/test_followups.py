import fcntl
import json
import threading
from datetime import UTC, datetime, time, timedelta

import pytest
from freezegun import freeze_time

from salesbot import followups, leads, runtime, texts
from salesbot.followups import Policy
from salesbot.store import Lead, Meeting, Message, Outbox, to_utc_naive
from salesbot.transport import SendError
from tests.engine_fakes import MSK, RecordingTransport, make_outbox
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
    return followups.sweep(followups.utc_now(), POLICY, **kwargs)


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


@pytest.mark.parametrize("setup", [
    "opted_out", "hot", "cold", "meeting", "lead_spoke_last", "chat_lead", "no_access_hash", "too_recent",
    "reply_still_queued", "reply_undelivered",
])
def test_who_is_skipped(db, setup):
    with freeze_time(T0 + timedelta(hours=25)):
        fields = {
            "opted_out": {"opted_out": True},
            "hot": {"status": "hot"},
            "cold": {"status": "cold"},
            "chat_lead": {"telegram_id": None, "access_hash": None},
            "no_access_hash": {"access_hash": None},
        }.get(setup, {})
        wrote_at = T0 + timedelta(hours=2) if setup == "too_recent" else T0
        lead = quiet_lead(bot_last=setup != "lead_spoke_last", wrote_at=wrote_at, **fields)
        if setup == "meeting":
            Meeting.create(lead=lead, starts_at=to_utc_naive(T0 + timedelta(days=2)), source="slot")
        if setup.startswith("reply_"):  # our answer never reached the lead: we owe them, not they us
            (row,) = [Outbox.get_by_id(i) for i in make_outbox(None).to_lead(lead.id, "Ответ")]
            if setup == "reply_undelivered":
                Outbox.update(state="failed", error="ConnectionError").where(Outbox.id == row.id).execute()
        due = quiet_lead()  # a control that is due
        assert [a.lead_id for a in sweep().actions] == [due.id]


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
        assert followups.count_due(followups.utc_now(), POLICY) == 1
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
    assert "Outside the send window (10:00–20:00 Europe/Moscow)" in result.stdout and Outbox.select().count() == 0
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
        (due,) = followups.due_leads(followups.utc_now(), POLICY)
        leads.record_lead_message(lead.id, "Ой, забыла ответить!", to_utc_naive(T0 + timedelta(hours=25)), False)
        assert leads.claim_follow_up(due.lead_id, due.step, due.last_message_at, followups.utc_now()) is False
        assert Lead.get_by_id(lead.id).follow_up_count == 0


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
