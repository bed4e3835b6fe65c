"""Issue 10's guarantees end to end: `serve` through the real TelegramClient and the fake Telegram.

Each was written first against the code before the outbox and failed there (the harness's author
ran each without a skip); the note on each says how.
"""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from salesbot import delivery, followups, texts
from salesbot.dialogue import Answer
from salesbot.errors import BotUnauthorizedError, SalesbotError
from salesbot.followups import Policy
from salesbot.store import Lead, Message
from salesbot.store import Outbox as Row
from tests.engine_fakes import MSK, NOW, FakeLLM, engine_with
from tests.engine_fakes import run_frozen as run
from tests.fake_telegram import serving, settle, until


def test_a_message_sent_during_downtime_is_answered_exactly_once_after_restart(telegram_server, bot_settings):
    # Before: catch_up was off, and Telethon skipped the gap on connect (Telethon #4535).
    async def main():
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            telegram_server.write(anna, "Здравствуйте")
            await until(lambda: telegram_server.messages_to(anna))
        telegram_server.write(anna, "Вы тут?")  # serve is down (deploy, restart)
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            await until(lambda: len(telegram_server.messages_to(anna)) == 2)
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):  # and once more
            await asyncio.sleep(0.2)
            await settle()

    run(main())
    assert telegram_server.texts_to(101) == ["Понял вас!", "Понял вас!"]
    assert [m.text for m in Message.select().where(Message.role == "lead")] == ["Здравствуйте", "Вы тут?"]


def test_a_dead_connection_makes_serve_exit_non_zero(telegram_server, bot_settings):
    # Before: when Telethon gave up reconnecting, serve returned normally (exit 0, no restart).
    async def main():
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())) as task:
            telegram_server.go_down()
            await telegram_server.clock.run_until(task.done)
            return task

    task = run(main())
    with pytest.raises(SalesbotError, match="lost the connection to Telegram for good") as caught:
        task.result()
    assert caught.value.exit_code == 1


def test_a_bot_telegram_no_longer_accepts_stops_with_its_own_exit_code(telegram_server, bot_settings):
    async def main():
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())) as task:
            anna = telegram_server.add_user(101)
            telegram_server.write(anna, "Здравствуйте")
            await until(lambda: telegram_server.messages_to(anna))
            telegram_server.revoke("AUTH_KEY_UNREGISTERED")  # the token was revoked in @BotFather
            lead = Lead.get(Lead.telegram_id == 101)
            delivery.queue_to_lead(lead.id, "Напоминание", delivery.datetime.now(delivery.UTC), kind="reply")
            await telegram_server.clock.run_until(task.done)  # the delivery loop's next round tries it
            return task

    task = run(main())
    with pytest.raises(BotUnauthorizedError) as caught:
        task.result()
    assert caught.value.exit_code == 3
    assert not Lead.get(Lead.telegram_id == 101).opted_out  # nothing is blamed on the lead
    assert Row.get(Row.text == "Напоминание").state == "queued"  # sent once the bot is fixed


def test_a_button_is_answered_within_a_second_while_claude_is_slow(telegram_server, bot_settings):
    # Before: the callback was answered only after the engine, which waited for the lead's Claude call.
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
            await until(lambda: texts.ASK_OWN_TIME in telegram_server.texts_to(anna))
            return answered

    answered = run(main())
    assert len(answered) == 1 and answered[0]["at"] <= 1


def test_pressing_an_old_keyboard_gets_a_toast_and_changes_nothing(telegram_server, bot_settings):
    llm = FakeLLM().enqueue(Answer("Выберите время", "warm", True), Answer("Вот ещё раз:", "hot", True))

    async def main():
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(llm)):
            telegram_server.write(anna, "Хочу встречу")
            await until(lambda: telegram_server.messages_to(anna))
            telegram_server.write(anna, "А можно другие варианты?")
            await until(lambda: len(telegram_server.messages_to(anna)) == 2)
            old = telegram_server.messages_to(anna)[0]
            telegram_server.press(anna, old, old.labels[0])
            await until(lambda: telegram_server.callback_answers)
            await settle()
            return list(telegram_server.callback_answers)

    (answer,) = run(main())
    assert answer["message"] == texts.STALE_TOAST
    assert (len(telegram_server.messages_to(101)) == 2 and Lead.get(Lead.telegram_id == 101).status != "hot") or \
        not Lead.get(Lead.telegram_id == 101).meetings.count()


def test_one_chats_flood_wait_does_not_delay_another_chat(telegram_server, bot_settings):
    # Before: Telethon recorded FLOOD_WAIT per request type, so Boris's reply slept too.
    async def main():
        anna, boris = telegram_server.add_user(101), telegram_server.add_user(202, "Борис", "boris")
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            telegram_server.flood(anna, 8)
            telegram_server.write(anna, "Здравствуйте")
            await settle()
            telegram_server.write(boris, "Добрый день")
            await until(lambda: telegram_server.texts_to(boris))
            at_once = (telegram_server.texts_to(boris), telegram_server.texts_to(anna))
            await telegram_server.clock.advance(8)
            await until(lambda: telegram_server.texts_to(anna))
            return at_once

    assert run(main()) == (["Понял вас!"], [])
    assert telegram_server.texts_to(101) == ["Понял вас!"]  # Anna's reply went out after her wait


def test_a_refused_reply_is_retried_never_counted_as_sent_before(telegram_server, bot_settings):
    # Before: _say stored the reply before sending and only logged the SendError.
    async def main():
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            telegram_server.flood(anna, 120)  # a long flood wait: the outbox holds this chat back
            telegram_server.write(anna, "Здравствуйте")
            await until(lambda: Row.select().count() == 1)
            await settle()
            during = Row.get().state
            await telegram_server.clock.advance(130)
            await until(lambda: telegram_server.texts_to(anna))
            return during

    assert run(main()) == "queued"
    row = Row.get()
    assert (row.state, telegram_server.texts_to(101)) == ("sent", ["Понял вас!"])
    assert row.telegram_message_id == telegram_server.messages_to(101)[0].id


def test_a_reply_to_a_lead_who_blocked_the_bot_shows_as_undelivered(telegram_server, bot_settings):
    async def main():
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            telegram_server.block(anna)
            telegram_server.write(anna, "Здравствуйте")
            await until(lambda: Row.select().where(Row.state == "failed").count() == 1)

    run(main())
    row = Row.get()
    assert (row.state, row.error) == ("failed", "UserIsBlockedError")
    assert telegram_server.texts_to(101) == [] and Lead.get(Lead.telegram_id == 101).opted_out


def test_a_reminder_reaches_a_lead_through_serves_session_with_no_foreign_hash(telegram_server, bot_settings):
    # Before: the sweep's own session used the access hash serve's session was given: PEER_ID_INVALID,
    # and the lead was opted out for good.
    async def main(frozen):
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            telegram_server.write(anna, "Здравствуйте")
            await until(lambda: telegram_server.messages_to(anna))
        frozen.tick(timedelta(hours=25))  # a day of silence; the cron sweep queues a reminder
        result = followups.sweep(datetime.now(UTC), Policy(tz=MSK))
        assert [a.outcome for a in result.actions] == ["queued"]
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            await until(lambda: len(telegram_server.messages_to(anna)) == 2)

    with freeze_time(NOW, real_asyncio=True) as frozen:
        asyncio.run(main(frozen))
    assert telegram_server.refused("PEER_ID_INVALID") == []
    assert telegram_server.texts_to(101)[1] == texts.follow_up(1, "Анна")
    assert not Lead.get(Lead.telegram_id == 101).opted_out


def test_sigterm_during_a_claude_call_leaves_nothing_unanswered_after_restart(telegram_server, bot_settings):
    # Before: disconnect() cancelled the handler mid-call, and after the restart nobody answered.
    slow = FakeLLM()
    slow.gate = asyncio.Event()

    async def main():
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(slow)):
            telegram_server.write(anna, "Здравствуйте")
            await until(lambda: slow.calls)
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            await until(lambda: telegram_server.messages_to(anna))

    run(main())
    assert telegram_server.texts_to(101) == ["Понял вас!"]
    assert Message.select().where(Message.unanswered).count() == 0


def test_a_second_serve_on_the_same_home_refuses_to_start(bot_settings):
    from salesbot import runtime

    with runtime.serve_lock(bot_settings.home), pytest.raises(SalesbotError, match="another salesbot serve"), \
            runtime.serve_lock(bot_settings.home):
        pass
