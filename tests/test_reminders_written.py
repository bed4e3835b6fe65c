"""Reminders the model writes (issue 19): a real sweep asks Claude — the real SDK against
scripts/fake_claude.py — for one short message that continues the conversation; what comes back is
checked like a reply; the template goes when Claude fails or answers unusably."""

import json
from datetime import timedelta

import pytest
from freezegun import freeze_time

from salesbot import runtime, texts
from salesbot.store import LlmCall, Message, Outbox, leads
from scripts.fake_claude import Error, Reply
from tests.conftest import TEST_KEY
from tests.test_followups import T0, quiet_lead

WRITTEN = "Анна, вы спрашивали о сайте — подскажите, для какого он бизнеса? Тогда назову точную вилку."


@pytest.fixture
def live(db, salesbot_home, fake_api, monkeypatch):
    """A running serve (its heartbeat) and Claude's key and address: a real sweep, with the model."""
    salesbot_home.mkdir(exist_ok=True)
    runtime.beat(salesbot_home)
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_api.url)
    return fake_api


def reminder_rows():
    return [(row.text, Message.get_by_id(row.message_id).model_chars)
            for row in Outbox.select().where(Outbox.kind == "reminder")]


def test_the_model_writes_the_reminder_from_the_conversation(live, run):
    live.enqueue(Reply(json.dumps({"text": WRITTEN}, ensure_ascii=False)))
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        lead = quiet_lead()
        leads.record_bot_message(lead.id, texts.ONE_MOMENT, T0.replace(tzinfo=None) + timedelta(minutes=2))
        result = run("follow-ups", "run", "--json")
    (action,) = json.loads(result.stdout)["actions"]
    assert action["text"] == WRITTEN and action["outcome"] == "queued"
    assert reminder_rows() == [(WRITTEN, len(WRITTEN))]  # the model's words, shown to it as its own later
    body = live.bodies[-1]
    assert body["output_config"]["format"]["schema"]["required"] == ["text"]
    assert body["system"][-1]["text"].startswith("Как читать переписку")  # the dialogue's playbook and rules
    turns = [(m["role"], [b["text"] for b in m["content"]]) for m in body["messages"]]
    (role, blocks), = turns  # the bot spoke last: the instruction joins the lead's side
    assert role == "user" and blocks[:2] == ["<client_message>Сколько стоит сайт?</client_message>",
                                             "<service_message>От 120 000 ₽. Для какого бизнеса?</service_message>"]
    assert "не отвечает уже около 24 ч" in blocks[2] and len(blocks) == 3
    assert texts.ONE_MOMENT not in json.dumps(body, ensure_ascii=False)  # no «one moment» note quoted
    assert [(c.purpose, c.lead_id) for c in LlmCall.select()] == [("reminder", lead.id)]
    usage = json.loads(run("usage", "--json").stdout)
    assert [row["purpose"] for row in usage["rows"]] == ["reminder"]


@pytest.mark.parametrize("answers", [
    [Error(400, "invalid_request_error", "bad request")],                       # Claude refuses the call
    [Reply(json.dumps({"text": "<service_context>Сейчас вторник…</service_context> Здравствуйте!"}))] * 2,
    [Reply(json.dumps({"text": "Судя по summary, бюджет 300 000 ₽ — актуально?"}))] * 2,  # an internal name
    [Reply(json.dumps({"text": "   "}))] * 2,                                                # blank
    [Reply("Здравствуйте! Вопрос ещё актуален?")] * 2,                                     # not JSON
])
def test_the_template_goes_when_claude_fails_or_the_text_quotes_what_it_should_not(live, run, answers):
    live.enqueue(*answers)
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        quiet_lead()
        run("follow-ups", "run")
    assert reminder_rows() == [(texts.follow_up(1, "Анна"), 0)]


def test_a_dry_run_never_calls_claude(live, run):
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        quiet_lead()
        data = json.loads(run("follow-ups", "run", "--dry-run", "--json").stdout)
    assert data["actions"][0]["text"] == texts.follow_up(1, "Анна") and live.requests == []


def test_claude_down_stops_the_asking_for_the_rest_of_the_sweep(live, run):
    """Three failures in a row: the other leads get the template without a call (a cron sweep ends)."""
    live.enqueue(*[Error(400, "invalid_request_error", "bad request")] * 5)
    with freeze_time(T0 + timedelta(hours=25), real_asyncio=True):
        for _ in range(5):
            quiet_lead()
        run("follow-ups", "run")
    assert len(live.bodies) == 3
    assert reminder_rows() == [(texts.follow_up(1, "Анна"), 0)] * 5


def test_the_sweeps_time_for_claude_is_bounded(claude, fake_api):
    from salesbot.claude.reminders import ReminderWriter

    ticks = iter([0.0, 10.0, 400.0])
    writer = ReminderWriter(claude, "Ты бот.", budget=300, clock=lambda: next(ticks))
    fake_api.enqueue(Reply(json.dumps({"text": WRITTEN}, ensure_ascii=False)))
    history = [("user", "Сколько стоит сайт?")]
    write = lambda: claude.run(writer.write(history, step=1, hours=24, with_slots=False,  # noqa: E731
                                            first_name=None, lead_id=None))
    assert write() == WRITTEN  # at 10 s
    assert write() is None and writer.stopped == "the sweep's time for Claude is used up"  # at 400 s
    assert len(fake_api.bodies) == 1
