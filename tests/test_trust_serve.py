"""Issue 23 end to end: `serve` through the real TelegramClient and the offline Telegram
(tests/fake_telegram.py), attacked with crashes, a locked database, Claude outages and bursts.

Each was run against the code before its fix and failed there; the note on each says how."""

import asyncio
import sqlite3

from salesbot import texts
from salesbot.claude.dialogue import Answer
from salesbot.errors import LLMUnavailable
from salesbot.store import Message
from tests.engine_fakes import FakeLLM, engine_with
from tests.engine_fakes import run_frozen as run
from tests.fake_telegram import serving, settle, until


def unanswered() -> int:
    return Message.select().where(Message.unanswered == True).count()  # noqa: E712


def test_kill_9_in_the_first_minute_of_a_fresh_session_loses_nothing(telegram_server, bot_settings):
    # Before: Telethon saved its update position only in its 60-second keepalive (and on a clean
    # disconnect); killed sooner, the next start had none, began from Telegram's current position,
    # and «Вы тут?», written while serve was down, was never fetched.
    async def main():
        anna = telegram_server.add_user(101)
        assert not (bot_settings.home / "serve.session").exists()  # a fresh session
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM()), kill9=True):
            telegram_server.write(anna, "Здравствуйте")
            await until(lambda: telegram_server.messages_to(anna))
        telegram_server.write(anna, "Вы тут?")  # written while serve is dead
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            await until(lambda: len(telegram_server.messages_to(anna)) == 2)

    run(main())
    assert [m.text for m in Message.select().where(Message.role == "lead")] == ["Здравствуйте", "Вы тут?"]
    assert telegram_server.texts_to(101) == ["Понял вас!", "Понял вас!"]


def test_kill_9_right_after_login_loses_nothing(telegram_server, bot_settings):
    # The position Telegram gives at login is saved at once, before any message comes in.
    async def main():
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM()), kill9=True):
            pass
        telegram_server.write(anna, "Здравствуйте")
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            await until(lambda: telegram_server.messages_to(anna))

    run(main())
    assert telegram_server.texts_to(101) == ["Понял вас!"]


def test_a_database_write_locked_for_15_s_loses_nothing_and_everyone_is_answered(
        telegram_server, bot_settings, salesbot_home):
    # Before: each message was tried for about 1.5 s (blocking the loop 0.5 s a try), then lost, and
    # the lead was told «Ваше сообщение сохранено».
    async def main():
        users = [telegram_server.add_user(100 + i, f"Лид {i}", f"lead{i}") for i in range(4)]
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            locker = sqlite3.connect(salesbot_home / "salesbot.db", isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")  # another process holds a write for 15 s
            for round_ in range(3):
                for user in users:
                    telegram_server.write(user, f"Вопрос {round_}")
                await telegram_server.clock.advance(5)
            during = [telegram_server.texts_to(u) for u in users]
            stored_during = Message.select().count()
            locker.execute("ROLLBACK")
            locker.close()
            await telegram_server.clock.advance(6)  # the writer's next try (backoff at most 5 s)
            await until(lambda: all(telegram_server.texts_to(u) for u in users) and unanswered() == 0)
            return during, stored_during

    during, stored_during = run(main())
    assert during == [[], [], [], []] and stored_during == 0  # nothing said about what was not stored
    lead_texts = [m.text for m in Message.select().where(Message.role == "lead").order_by(Message.id)]
    assert sorted(lead_texts) == sorted([f"Вопрос {r}" for r in range(3)] * 4)  # every one, once
    sent = [text for user in range(100, 104) for text in telegram_server.texts_to(user)]
    assert texts.FALLBACK not in sent and all(text == "Понял вас!" for text in sent)


def test_after_a_claude_outage_the_fallback_is_followed_by_a_real_answer_once(telegram_server, bot_settings):
    # Before: the lead who got the fallback heard nothing more until they wrote again or serve restarted.
    outage = LLMUnavailable("Claude is unavailable (529 overloaded_error) after 3 attempt(s)")
    llm = FakeLLM().enqueue(outage, Answer("Интернет-магазин — от 250 000 ₽.", "warm", False))

    async def main():
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(llm)):
            telegram_server.write(anna, "Сколько стоит магазин?")
            await until(lambda: telegram_server.messages_to(anna))
            await telegram_server.clock.advance(30)
            await until(lambda: len(telegram_server.messages_to(anna)) == 2)
            await telegram_server.clock.advance(3600)  # nothing more comes of it
            await settle()

    run(main())
    assert telegram_server.texts_to(101) == [texts.FALLBACK, "Интернет-магазин — от 250 000 ₽."]
    assert unanswered() == 0 and len(llm.calls) == 2


def test_two_quick_messages_are_each_answered_once(telegram_server, bot_settings):
    # Before: the history sent with the second call ended at the second message, and the answer to
    # the first (stored after it) was left out: Claude answered the first message again.
    llm = FakeLLM().enqueue(Answer("Сайт — от 120 000 ₽.", "warm", False), Answer("Сроки — 5–7 недель.", "warm", False))

    async def main():
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(llm)):
            llm.gate = asyncio.Event()
            telegram_server.write(anna, "Сколько стоит сайт?")
            await until(lambda: llm.calls)
            telegram_server.write(anna, "А сроки?")  # while Claude answers the first
            await settle()
            llm.gate.set()
            await until(lambda: len(llm.calls) == 2 and unanswered() == 0)
            await until(lambda: "Сроки — 5–7 недель." in telegram_server.texts_to(anna))

    run(main())
    assert llm.calls[1]["history"] == [("user", "Сколько стоит сайт?"), ("assistant", "Сайт — от 120 000 ₽."),
                                       ("user", "А сроки?")]
    assert telegram_server.texts_to(101) == [texts.ONE_MOMENT, "Сайт — от 120 000 ₽.", "Сроки — 5–7 недель."]


def test_no_one_moment_note_after_a_restart(telegram_server, bot_settings):
    # Before: at start, catch-up stored the message written while serve was down and took the lead's
    # lock, and resuming the message left unanswered by the stop found it held: «Минутку…».
    slow = FakeLLM()
    slow.gate = asyncio.Event()

    async def main():
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(slow)):
            telegram_server.write(anna, "Здравствуйте")
            await until(lambda: slow.calls)  # SIGTERM while Claude answers: it stays unanswered
        telegram_server.write(anna, "Вы тут?")  # and one more while serve is down
        llm = FakeLLM()
        llm.gate = asyncio.Event()
        async with serving(telegram_server, bot_settings, engine_with(llm)):
            await until(lambda: llm.calls)
            await settle()
            llm.gate.set()
            await until(lambda: unanswered() == 0 and telegram_server.messages_to(anna))
            await settle()

    run(main())
    assert texts.ONE_MOMENT not in telegram_server.texts_to(101)
    assert telegram_server.texts_to(101) == ["Понял вас!"]  # both messages answered, once, together


def test_a_full_disk_does_not_stop_the_session_from_being_saved_again(telegram_server, bot_settings):
    # Before: SQLITE_FULL in the session's entity save killed Telethon's update loop ("Fatal error
    # handling updates", serve disconnected), and in its session save the keepalive task.
    async def main():
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())) as task:
            client = telegram_server.clients[-1]
            conn = client.session._conn
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")  # the session file can grow no more
            users = [telegram_server.add_user(1000 + i, "Гость", f"guest{i}") for i in range(150)]
            for user in users:  # each new user's entity is written to the session: it needs new pages
                telegram_server.write(user, "Здравствуйте")
            await until(lambda: all(telegram_server.messages_to(u) for u in users))
            failures = client.session.failures
            await client._save_states_and_entities()  # what the keepalive does every minute
            client.session.save()
            conn.execute(f"PRAGMA max_page_count = {pages + 10_000}")  # space again
            await client._save_states_and_entities()
            client.session.save()
            return failures > 0, client.session.failing, task.done()

    assert run(main()) == (True, False, False)
    assert unanswered() == 0


def test_the_update_position_is_not_saved_past_a_message_the_database_refused(
        telegram_server, bot_settings, salesbot_home):
    """A message kept in memory (the database locked) and then a kill -9: Telegram sends it again."""
    async def main():
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM()), kill9=True):
            telegram_server.write(anna, "Здравствуйте")
            await until(lambda: telegram_server.messages_to(anna))
            locker = sqlite3.connect(salesbot_home / "salesbot.db", isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")
            telegram_server.write(anna, "Вы тут?")
            await telegram_server.clock.advance(3)
        locker.execute("ROLLBACK")
        locker.close()
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            await until(lambda: len(telegram_server.messages_to(anna)) == 2)

    run(main())
    assert [m.text for m in Message.select().where(Message.role == "lead")] == ["Здравствуйте", "Вы тут?"]
