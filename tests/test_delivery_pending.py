"""Issue 10 "Done when": delivery scenarios through the fake Telegram that FAIL on today's code.

Skipped until the outbox is built; un-skip one by one while building it. Each was run once without
the skip and failed on the code of this branch (see the note on each).
"""

import asyncio
from datetime import timedelta

import pytest
from freezegun import freeze_time

from salesbot import cli
from salesbot.conversation import Answer
from salesbot.followups import Policy
from salesbot.store import Lead, Message
from tests.engine_fakes import FakeLLM, make_engine
from tests.fake_telegram import serving, settle, until

pytestmark = pytest.mark.skip(reason="issue 10: outbox not built yet")

NOW = "2025-12-23 11:05:00"  # Tuesday 14:05 in Moscow


def run(coro):
    with freeze_time(NOW, real_asyncio=True):
        return asyncio.run(coro)


def engine_with(llm):
    return lambda transport: make_engine(llm=llm, transport=transport, managers=())[0]


def test_a_message_sent_during_downtime_is_answered_exactly_once_after_restart(telegram_server, bot_settings):
    # Fails today: catch_up is off, Telethon skips the gap on connect (Telethon #4535).
    async def main():
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            telegram_server.write(anna, "Здравствуйте")
            await until(lambda: telegram_server.messages_to(anna))
        telegram_server.write(anna, "Вы тут?")  # serve is down (deploy, restart)
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            await asyncio.sleep(0.3)  # real time for catching up
            await settle()

    run(main())
    assert telegram_server.texts_to(101) == ["Понял вас!", "Понял вас!"]


def test_a_dead_connection_makes_serve_fail(telegram_server, bot_settings):
    # Fails today: when Telethon gives up reconnecting, serve returns normally (exit 0).
    async def main():
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())) as task:
            telegram_server.go_down()
            await telegram_server.clock.run_until(task.done)
            return task

    task = run(main())
    with pytest.raises(Exception):  # noqa: B017 - any error, so that the CLI exits non-zero
        task.result()


def test_a_button_is_answered_within_a_second_while_claude_is_slow(telegram_server, bot_settings):
    # Fails today: the callback is answered only after the engine, which waits for the lead's Claude call.
    llm = FakeLLM().enqueue(Answer("Давайте созвонимся", "warm", True))

    async def main():
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(llm)):
            telegram_server.write(anna, "Хочу встречу")
            await until(lambda: telegram_server.messages_to(anna))
            llm.gate = asyncio.Event()  # Claude is slow from now on
            telegram_server.write(anna, "А сколько стоит?")
            await settle()
            telegram_server.press(anna, telegram_server.messages_to(anna)[0], "Предложить своё время")
            await settle()
            await telegram_server.clock.advance(1)
            answered = list(telegram_server.callback_answers)
            llm.gate.set()
            return answered

    answered = run(main())
    assert len(answered) == 1 and answered[0]["at"] <= 1


def test_one_chats_flood_wait_does_not_delay_another_chat(telegram_server, bot_settings):
    # Fails today: Telethon records FLOOD_WAIT per request type, so Boris's reply sleeps too.
    async def main():
        anna, boris = telegram_server.add_user(101), telegram_server.add_user(202, "Борис", "boris")
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            telegram_server.flood(anna, 8)
            telegram_server.write(anna, "Здравствуйте")
            await settle()
            telegram_server.write(boris, "Добрый день")
            await settle()
            boris_at_once = telegram_server.texts_to(boris)
            await telegram_server.clock.advance(8)
            await settle()
            return boris_at_once

    assert run(main()) == ["Понял вас!"]
    assert telegram_server.texts_to(101) == ["Понял вас!"]  # Anna's reply went out after her wait


def test_a_refused_reply_is_retried_or_shown_undelivered_never_answered(telegram_server, bot_settings):
    # Fails today: _say stores the reply before sending and only logs the SendError; the lead's
    # message shows as answered and the reply is never sent.
    async def main():
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            telegram_server.flood(anna, 120)  # over Telethon's 60 s threshold: handed back to salesbot
            telegram_server.write(anna, "Здравствуйте")
            await settle()
            await telegram_server.clock.advance(130)
            await settle()

    run(main())
    delivered = telegram_server.texts_to(101) == ["Понял вас!"]
    unanswered = Message.select().where(Message.role == "lead", Message.unanswered).count() == 1
    assert delivered or unanswered


def test_a_reminder_reaches_a_lead_through_the_real_client_with_no_foreign_hash(telegram_server, bot_settings):
    # Fails today: the sweep's own session uses the access hash serve's session was given:
    # PEER_ID_INVALID, and the lead is opted out for good.
    async def main(frozen):
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            telegram_server.write(anna, "Здравствуйте")
            await until(lambda: telegram_server.messages_to(anna))
        frozen.tick(timedelta(hours=25))
        await cli._sweep(bot_settings, Policy.from_settings(bot_settings), False, None, None)

    with freeze_time(NOW, real_asyncio=True) as frozen:
        asyncio.run(main(frozen))
    assert telegram_server.refused("PEER_ID_INVALID") == []
    assert len(telegram_server.texts_to(101)) == 2 and not Lead.get(Lead.telegram_id == 101).opted_out


def test_sigterm_during_a_claude_call_leaves_nothing_unanswered_after_restart(telegram_server, bot_settings):
    # Fails today: disconnect() cancels the handler mid-call; on restart nobody answers the message.
    slow = FakeLLM()
    slow.gate = asyncio.Event()

    async def main():
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(slow)):
            telegram_server.write(anna, "Здравствуйте")
            await until(lambda: slow.calls)
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            await asyncio.sleep(0.3)
            await settle()

    run(main())
    assert telegram_server.texts_to(101) == ["Понял вас!"]
