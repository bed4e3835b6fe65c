import asyncio
import contextlib
import fcntl
import json
import threading
from datetime import UTC, datetime, time, timedelta

import pytest
from freezegun import freeze_time
from telethon import errors
from telethon.tl import functions, types

from salesbot import followups, leads, texts
from salesbot.followups import Policy
from salesbot.store import Lead, Meeting, Message, to_utc_naive
from salesbot.transport import SendError
from tests.engine_fakes import MSK, RecordingTransport
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


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def sweep(aio, transport=None, now=None, **kwargs):
    kwargs.setdefault("sleep", Sleeps())
    transport = transport if transport is not None else RecordingTransport()
    return aio.run(followups.sweep(now or followups.utc_now(), POLICY, transport, **kwargs))


def test_a_leads_life(db, aio):
    transport = RecordingTransport()
    with freeze_time(T0) as clock:
        lead = quiet_lead()
        clock.move_to(T0 + timedelta(hours=23))
        assert sweep(aio, transport).actions == []
        clock.move_to(T0 + timedelta(hours=24, minutes=1))
        result = sweep(aio, transport)
        assert [(a.lead_id, a.step, a.outcome, a.becomes_cold) for a in result.actions] == [(lead.id, 1, "sent", False)]
        assert transport.last.text == texts.follow_up(1, "Анна")
        assert transport.last.text.startswith("Привет, Анна! 👋\n\nЗаметил, что вы не ответили.")
        assert (transport.last.peer.user_id, transport.last.peer.access_hash) == (lead.telegram_id, 987654321)
        lead = Lead.get_by_id(lead.id)
        assert (lead.follow_up_count, lead.status) == (1, "warm")
        assert lead.last_follow_up_at == to_utc_naive(T0 + timedelta(hours=24, minutes=1))
        assert Message.select().where(Message.lead == lead, Message.role == "bot").order_by(Message.id.desc()) \
            .first().text == texts.follow_up(1, "Анна")
        clock.move_to(T0 + timedelta(hours=25, minutes=1))
        assert sweep(aio, transport).actions == []  # not an hour after the first (the plan's mistake)
        clock.move_to(T0 + timedelta(hours=47))
        assert sweep(aio, transport).actions == []
        clock.move_to(T0 + timedelta(hours=48, minutes=2))
        result = sweep(aio, transport)
        assert [(a.step, a.outcome, a.becomes_cold) for a in result.actions] == [(2, "sent", True)]
        assert transport.last.text == texts.follow_up(2, "Анна") != texts.follow_up(1, "Анна")
        lead = Lead.get_by_id(lead.id)
        assert (lead.follow_up_count, lead.status, lead.cold_reason) == (2, "cold", "no_reply")
        clock.move_to(T0 + timedelta(days=6))
        assert sweep(aio, transport).actions == []
        assert len(transport.sent) == 2


def test_a_reply_in_between_starts_over(db, aio):
    transport = RecordingTransport()
    with freeze_time(T0 + timedelta(hours=24, minutes=1)) as clock:
        lead = quiet_lead()
        sweep(aio, transport)
        wrote = T0 + timedelta(hours=30)
        leads.record_lead_message(lead.id, "Да, актуально", to_utc_naive(wrote), False)
        leads.record_bot_message(lead.id, "Отлично!", to_utc_naive(wrote + timedelta(minutes=1)))
        assert Lead.get_by_id(lead.id).follow_up_count == 0
        clock.move_to(T0 + timedelta(hours=48, minutes=2))
        assert sweep(aio, transport).actions == []  # not step 2: the lead wrote
        clock.move_to(wrote + timedelta(hours=24, minutes=2))
        assert [a.step for a in sweep(aio, transport).actions] == [1]


@pytest.mark.parametrize("setup", [
    "opted_out", "hot", "cold", "meeting", "lead_spoke_last", "chat_lead", "no_access_hash", "too_recent",
])
def test_who_is_skipped(db, aio, setup):
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
        due = quiet_lead()  # a control that is due
        result = sweep(aio)
        assert [a.lead_id for a in result.actions] == [due.id]


def test_a_past_meeting_does_not_block_reminders(db, aio):
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead()
        Meeting.create(lead=lead, starts_at=to_utc_naive(T0 - timedelta(days=1)), source="slot")
        assert [a.lead_id for a in sweep(aio).actions] == [lead.id]


@pytest.mark.parametrize("local_time, sent", [(time(9, 59), False), (time(10), True), (time(19, 59), True),
                                             (time(20), False), (time(23, 30), False)])
def test_only_inside_the_send_window(db, aio, local_time, sent):
    # The window is [10:00, 20:00): it opens at its start and ends at its end time.
    when = datetime.combine(datetime(2025, 12, 24).date(), local_time, tzinfo=MSK)
    with freeze_time(when):
        quiet_lead(wrote_at=when - timedelta(hours=25))
        result = sweep(aio)
        assert result.in_window is sent
        assert bool(result.actions) is sent


def test_dry_run_changes_nothing(db, aio):
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead()
        transport = RecordingTransport()
        result = sweep(aio, transport, dry_run=True)
        assert [(a.lead_id, a.step, a.outcome) for a in result.actions] == [(lead.id, 1, "would_send")]
        assert followups.count_due(followups.utc_now(), POLICY) == 1
        assert transport.sent == [] and Lead.get_by_id(lead.id).follow_up_count == 0
        assert Message.select().count() == 2


class ScriptedTransport(RecordingTransport):
    def __init__(self, *failures) -> None:
        super().__init__()
        self.failures = list(failures)

    async def send_text(self, peer, text):
        if self.failures:
            failure = self.failures.pop(0)
            if failure is not None:
                raise failure
        await super().send_text(peer, text)


def test_blocked_bot_marks_the_lead_unreachable_and_never_retries(db, aio):
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead()
        result = sweep(aio, ScriptedTransport(SendError("UserIsBlockedError", permanent=True)))
        assert [(a.outcome, a.error) for a in result.actions] == [("unreachable", "UserIsBlockedError")]
        lead = Lead.get_by_id(lead.id)
        assert (lead.opted_out, lead.opted_out_reason, lead.follow_up_count) == (True, "UserIsBlockedError", 0)
        assert Message.select().count() == 2  # the unsent reminder is not in the conversation
        assert sweep(aio).actions == []


def test_a_transient_failure_releases_the_claim(db, aio):
    with freeze_time(T0 + timedelta(hours=49)):
        lead = quiet_lead()
        Lead.update(follow_up_count=1, last_follow_up_at=to_utc_naive(T0 + timedelta(hours=24))).execute()
        leads.record_bot_message(lead.id, texts.follow_up(1, "Анна"), to_utc_naive(T0 + timedelta(hours=24)))
        result = sweep(aio, ScriptedTransport(SendError("ConnectionError: reset")))
        assert [(a.step, a.outcome) for a in result.actions] == [(2, "failed")]
        lead = Lead.get_by_id(lead.id)
        assert (lead.follow_up_count, lead.status, lead.cold_reason) == (1, "warm", None)
        assert lead.last_follow_up_at == to_utc_naive(T0 + timedelta(hours=24))
        assert Message.select().count() == 3
        assert [a.outcome for a in sweep(aio).actions] == ["sent"]  # the next sweep sends it


def test_a_short_flood_wait_is_waited_out(db, aio):
    with freeze_time(T0 + timedelta(hours=25)):
        quiet_lead()
        sleeps = Sleeps()
        result = sweep(aio, ScriptedTransport(SendError("flood wait 7 s", retry_after=7.0)), sleep=sleeps)
        assert [a.outcome for a in result.actions] == ["sent"] and sleeps.waits == [7.0]


def test_a_long_flood_wait_stops_the_sweep_and_leaves_the_rest(db, aio):
    with freeze_time(T0 + timedelta(hours=25)):
        leads = [quiet_lead() for _ in range(3)]
        transport = ScriptedTransport(None, SendError("flood wait 300 s", retry_after=300.0))
        result = sweep(aio, transport)
        assert [a.outcome for a in result.actions] == ["sent", "deferred"]
        assert result.stopped_early == "flood wait 300 s"
        assert [Lead.get_by_id(lead.id).follow_up_count for lead in leads] == [1, 0, 0]
        assert [a.lead_id for a in sweep(aio).actions] == [leads[1].id, leads[2].id]


def test_pacing_at_most_twenty_a_second(db, aio):
    with freeze_time(T0 + timedelta(hours=25)):
        for _ in range(4):
            quiet_lead()
        sleeps = Sleeps()
        sweep(aio, sleep=sleeps)
        assert sleeps.waits == [0.05, 0.05, 0.05]


def test_limit(db, aio):
    with freeze_time(T0 + timedelta(hours=25)):
        for _ in range(5):
            quiet_lead()
        assert len(sweep(aio, limit=2).actions) == 2
        assert len(sweep(aio).actions) == 3


def test_two_sweeps_at_once_send_each_reminder_once(db, salesbot_home):
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        leads = [quiet_lead() for _ in range(60)]

    class SlowTransport(RecordingTransport):
        async def send_text(self, peer, text):
            await asyncio.sleep(0.001)
            await super().send_text(peer, text)

    transport = SlowTransport()
    results = []
    now = T0 + timedelta(hours=25)

    def one_sweep():
        results.append(asyncio.run(followups.sweep(now, POLICY, transport, sleep=Sleeps())))

    threads = [threading.Thread(target=one_sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    sent_to = [s.peer.lead_id for s in transport.sent]
    assert sorted(sent_to) == sorted(lead.id for lead in leads)  # every lead once, none twice
    assert sum(r.count("sent") for r in results) == 60
    assert Message.select().where(Message.text == texts.follow_up(1, "Анна")).count() == 60


def test_the_telethon_request_addresses_the_lead_by_id_and_access_hash(db, aio):
    from salesbot.telegram import TelethonTransport

    client = CapturingClient()
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead(first_name="Ольга")
        sweep(aio, TelethonTransport(client))
    (request,) = client.requests
    assert isinstance(request, functions.messages.SendMessageRequest)
    assert request.peer == types.InputPeerUser(user_id=lead.telegram_id, access_hash=987654321)
    assert request.message == texts.follow_up(1, "Ольга")


@pytest.mark.parametrize("error, outcome", [
    (errors.UserIsBlockedError(request=None), "unreachable"),
    (errors.InputUserDeactivatedError(request=None), "unreachable"),
    (errors.PeerIdInvalidError(request=None), "unreachable"),
    (errors.RPCError(request=None, message="INTERNAL", code=500), "failed"),
    (errors.FloodWaitError(request=None, capture=3600), "deferred"),
])
def test_telegram_errors_of_each_kind(db, aio, error, outcome):
    from salesbot.telegram import TelethonTransport

    client = CapturingClient()
    client.fail.append(error)
    with freeze_time(T0 + timedelta(hours=25)):
        quiet_lead()
        assert [a.outcome for a in sweep(aio, TelethonTransport(client)).actions] == [outcome]


# --- the command line ---------------------------------------------------------------------------

TELEGRAM = {"TELEGRAM_API_ID": "12345", "TELEGRAM_API_HASH": "0123456789abcdef0123456789abcdef",
            "TELEGRAM_BOT_TOKEN": "123456:AAE-secret-bot-token-value"}


@pytest.fixture
def telegram_env(monkeypatch):
    for key, value in TELEGRAM.items():
        monkeypatch.setenv(key, value)
    transport = RecordingTransport()

    @contextlib.asynccontextmanager
    async def fake_sweep_transport(settings):
        yield transport

    monkeypatch.setattr("salesbot.telegram.sweep_transport", fake_sweep_transport)
    monkeypatch.setattr(followups, "SEND_INTERVAL", 0.0)  # pacing is tested above; no real waits here
    return transport


def test_cli_dry_run_json(db, run):
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead()
        data = json.loads(run("follow-ups", "run", "--dry-run", "--json").stdout)
    assert data["dry_run"] is True and data["in_window"] is True
    assert [(a["lead_id"], a["step"], a["becomes_cold"], a["outcome"]) for a in data["actions"]] == [
        (lead.id, 1, False, "would_send")]
    assert data["summary"]["would_send"] == 1


def test_cli_real_run_without_telegram_settings_fails_before_claiming(db, run):
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead()
        result = run("follow-ups", "run", code=1)
    assert "missing settings: TELEGRAM_API_ID, TELEGRAM_API_HASH, TELEGRAM_BOT_TOKEN" in result.stderr
    assert Lead.get_by_id(lead.id).follow_up_count == 0


def test_cli_real_run_sends_and_summarises(db, run, telegram_env):
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        quiet_lead()
        quiet_lead()
        result = run("follow-ups", "run")
    assert "sent 2, skipped 0, failed 0" in result.stdout
    assert len(telegram_env.sent) == 2


def test_cli_exits_1_when_a_send_failed(db, run, telegram_env):
    telegram_env.fail = SendError("ConnectionError: reset")
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        quiet_lead()
        data = json.loads(run("follow-ups", "run", "--json", code=1).stdout)
    assert data["summary"]["failed"] == 1
    assert "secret-bot-token" not in json.dumps(data)


def test_cli_outside_the_window(db, run, telegram_env):
    with freeze_time(datetime(2025, 12, 24, 22, 0, tzinfo=MSK), real_asyncio=True):
        quiet_lead()
        result = run("follow-ups", "run")
        dry = run("follow-ups", "run", "--dry-run").stdout
    assert "Outside the send window (10:00–20:00 Europe/Moscow)" in result.stdout and telegram_env.sent == []
    assert "1 lead(s) are due and will be reminded once the window opens." in dry


def test_cli_second_sweep_while_one_runs_exits_0(db, run, salesbot_home):
    salesbot_home.mkdir(exist_ok=True)
    with open(salesbot_home / "follow-ups.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run("follow-ups", "run", "--dry-run")
    assert "Another follow-up sweep is running" in result.stderr


def test_cli_json_streams_every_action_as_one_document(db, run, telegram_env):
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        leads = [quiet_lead() for _ in range(250)]  # more than the table shows
        data = json.loads(run("follow-ups", "run", "--json").stdout)
        assert [a["lead_id"] for a in data["actions"]] == [lead.id for lead in leads]
        assert data["summary"]["sent"] == 250 and data["dry_run"] is False
        table = run("follow-ups", "run", "--dry-run").stdout
        assert "0 would be reminded now" in table


def test_a_lead_we_failed_to_answer_is_not_reminded(db, aio, run):
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead(bot_last=False)
        leads.record_lead_message(lead.id, "Алло?", to_utc_naive(T0 + timedelta(minutes=5)), True)  # Claude was down
        leads.record_bot_message(lead.id, texts.FALLBACK, to_utc_naive(T0 + timedelta(minutes=6)))
        assert sweep(aio).actions == []
        data = json.loads(run("leads", "list", "--json").stdout)
        assert data[0]["unanswered"] == 1
        assert "(1 unanswered)" in run("leads", "list").stdout


def test_cli_json_stays_empty_when_the_sweep_cannot_start(db, run, monkeypatch):
    from salesbot.errors import SalesbotError

    for key, value in TELEGRAM.items():
        monkeypatch.setenv(key, value)

    @contextlib.asynccontextmanager
    async def refused(settings):
        raise SalesbotError("cannot log the bot in to Telegram: AccessTokenInvalidError")
        yield

    monkeypatch.setattr("salesbot.telegram.sweep_transport", refused)
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        quiet_lead()
        result = run("follow-ups", "run", "--json", code=1)
    assert result.stdout == "" and "AccessTokenInvalidError" in result.stderr


def test_the_claim_also_compares_the_leads_last_message(db, aio):
    """A lead who writes between the due query and the claim is not reminded (the count alone
    would still match: their message resets it to 0, which it already was)."""
    with freeze_time(T0 + timedelta(hours=25)):
        lead = quiet_lead()
        (due,) = followups.due_leads(followups.utc_now(), POLICY)
        leads.record_lead_message(lead.id, "Ой, забыла ответить!", to_utc_naive(T0 + timedelta(hours=25)), False)
        assert leads.claim_follow_up(due.lead_id, due.step, due.last_message_at, followups.utc_now(), "…") is None
        assert Lead.get_by_id(lead.id).follow_up_count == 0


def test_the_sweep_logs_in_on_its_own_session_and_hands_every_flood_wait_back(db, aio, monkeypatch, tmp_path):
    from salesbot import telegram

    made = []

    class Client(CapturingClient):
        async def start(self, bot_token=None):
            return self

        async def disconnect(self):
            pass

    def make_client(settings, session, **kwargs):
        made.append((session, kwargs))
        return Client()

    class Settings:
        home = tmp_path
        bot_token = "123:token"

    monkeypatch.setattr(telegram, "make_client", make_client)

    async def open_and_close():
        async with telegram.sweep_transport(Settings):
            pass

    aio.run(open_and_close())
    ((session, kwargs),) = made
    assert session == telegram.SWEEP_SESSION != telegram.SERVE_SESSION
    assert kwargs == {"receive_updates": False, "flood_sleep_threshold": 0}
