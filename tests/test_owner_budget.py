"""Issue 22: the monthly Claude budget, through the offline Telegram harness and the real Claude client
against scripts/fake_claude.py."""

import asyncio
import json

import pytest
from freezegun import freeze_time

from salesbot import runtime, texts
from salesbot.claude.budget import month_bounds
from salesbot.claude.dialogue import ClaudeDialogue
from salesbot.config import PACKAGED_PROMPT, load_settings
from salesbot.store import append_llm_call
from scripts.fake_claude import Reply
from tests.conftest import make_claude
from tests.engine_fakes import MSK, NOW, make_engine
from tests.fake_telegram import serving, settle, until

MANAGER = 777


def answer(reply, status="warm"):
    return Reply(json.dumps({"reply": reply, "status": status, "offer_meeting": False, "meeting_action": "none",
                             "proposed_time": "", "summary": "Спрашивает о цене консультации.", "handoff": False}),
                 usage={"input_tokens": 10_000, "output_tokens": 1_000})  # $0.03 on Sonnet 5.5


def test_a_spent_budget_stops_claude_and_every_lead_still_gets_a_polite_answer(
        telegram_server, bot_settings, fake_api, clock, monkeypatch, run):
    monkeypatch.setenv("SALESBOT_MONTHLY_BUDGET_USD", "0.05")
    monkeypatch.setenv("SALESBOT_MANAGER_IDS", str(MANAGER))
    settings = load_settings()
    fake_api.enqueue(answer("Консультация бесплатная."), answer("Скидка 10% до конца месяца."))

    async def main():
        anna, boris = telegram_server.add_user(101), telegram_server.add_user(202, "Борис", "boris")
        manager = telegram_server.add_user(MANAGER, "Менеджер", "boss")
        claude = make_claude(fake_api, clock, budget=runtime.budget(settings))

        def engine(transport):
            return make_engine(llm=ClaudeDialogue(claude, PACKAGED_PROMPT.read_text()), transport=transport,
                               managers=(MANAGER,))[0]

        try:
            async with serving(telegram_server, settings, engine):
                telegram_server.write(manager, "/start")  # a bot writes only to those who started it
                await until(lambda: telegram_server.texts_to(manager))
                telegram_server.write(anna, "Сколько стоит консультация?")
                await until(lambda: telegram_server.texts_to(anna))
                telegram_server.write(anna, "А скидки есть?")  # $0.06 > $0.05 after this one
                await until(lambda: len(telegram_server.texts_to(anna)) == 2)
                await telegram_server.clock.advance(6)  # the notice is a row: serve's next poll sends it
                await until(lambda: len(telegram_server.texts_to(manager)) == 2)
                telegram_server.write(anna, "Алло?")
                await until(lambda: len(telegram_server.texts_to(anna)) == 3)
                telegram_server.write(boris, "Здравствуйте, хочу записаться")
                await until(lambda: telegram_server.texts_to(boris))
                await telegram_server.clock.advance(6)
                await settle()
        finally:
            await claude.close()

    with freeze_time(NOW, real_asyncio=True):
        asyncio.run(main())
        assert len(fake_api.messages_requests) == 2  # no request once the ceiling was reached
        assert telegram_server.texts_to(101) == ["Консультация бесплатная.", "Скидка 10% до конца месяца.",
                                                 texts.BUDGET_PAUSED]
        assert telegram_server.texts_to(202) == [texts.BUDGET_PAUSED]
        to_manager = [text for text in telegram_server.texts_to(MANAGER) if "бюджет" in text]
        assert len(to_manager) == 1 and "исчерпан" in to_manager[0]  # told once, not per message
        report = json.loads(run("usage", "--json").output)
    assert report["budget"] == {"month": "2025-12", "limit_usd": 0.05, "spent_usd": pytest.approx(0.06),
                                "left_usd": 0.0}


def test_managers_are_told_once_at_80_percent_and_the_month_is_the_businesss(db, monkeypatch):
    monkeypatch.setenv("SALESBOT_MONTHLY_BUDGET_USD", "1")
    monkeypatch.setenv("SALESBOT_MANAGER_IDS", str(MANAGER))
    ceiling = runtime.budget(load_settings())
    cost_of_one = {"model": "claude-sonnet-5-5", "purpose": "dialogue", "input_tokens": 100_000}  # $0.20
    with freeze_time("2025-11-30 20:59:00"):  # 23:59 in Moscow: November's last minute
        for _ in range(4):
            append_llm_call(db, {**cost_of_one, "created_at": "2025-11-30 20:59:00"})
    with freeze_time("2025-11-30 21:00:00"):  # December in Moscow: a new month, nothing spent
        assert month_bounds(ceiling.now(), MSK)[0] == "2025-12"
        assert ceiling.state().spent_usd == 0
        for _ in range(4):
            append_llm_call(db, {**cost_of_one, "created_at": "2025-11-30 21:00:01"})
            ceiling.after_call()
        ceiling.after_call()
        ceiling.check()  # $0.80 of $1: still allowed
    notices = [text for (text,) in db.execute_sql("SELECT text FROM outbox WHERE chat_id = ?", (MANAGER,))]
    assert len(notices) == 1 and "80%" in notices[0]
