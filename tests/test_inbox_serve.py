"""The staff inbox end to end: `serve` through the real TelegramClient, the fake Telegram with its
forum supergroup (tests/fake_forum.py), and the real outbox, inbox and engine (Claude scripted)."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from salesbot import texts
from salesbot.dialogue import Answer, Dialogue, DialogueConfig
from salesbot.inbox import Inbox, InboxConfig
from salesbot.store import Lead, Meeting, Message, to_utc_naive
from tests.engine_fakes import CALENDAR, NOW, FakeLLM, make_outbox
from tests.factories import make_lead
from tests.fake_telegram import serving, settle, until

MANAGER = 555


def run(coro, when=NOW):
    with freeze_time(when, real_asyncio=True):
        return asyncio.run(coro)


def with_inbox(llm, group, managers=(MANAGER,)):
    def factory(transport):
        outbox = make_outbox(transport, managers)
        inbox = Inbox(outbox, InboxConfig(calendar=CALENDAR, staff_chat=group.marked_id, manager_ids=tuple(managers),
                                          takeover=timedelta(hours=12)))
        return Dialogue(llm, transport, DialogueConfig(calendar=CALENDAR, manager_ids=tuple(managers)),
                        outbox=outbox, inbox=inbox)
    return factory


def topic_of(server, group, lead_name):
    return next((t for t in group.topics.values() if t.title.startswith(lead_name) and not t.deleted), None)


async def opened(server, group, name, lines_at_least=1):
    """The lead's topic, once it is open and has this many of the bot's posts."""
    await until(lambda: topic_of(server, group, name) is not None
                and len(lines(server, group, topic_of(server, group, name))) >= lines_at_least)
    return topic_of(server, group, name)


def group_of(server):
    return next(iter(server.channels.values()))


def lines(server, group, topic):
    return [p.text for p in group.in_topic(topic.id) if p.from_id == server.bot_id]


def test_a_leads_topic_and_card_appear_and_every_line_is_mirrored_in_order(telegram_server, bot_settings):
    llm = FakeLLM().enqueue(Answer("Здравствуйте! Чем помочь?", "new", False))

    async def main():
        group = telegram_server.add_group()
        anna = telegram_server.add_user(101, "Анна", "anna")
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            telegram_server.write(anna, "Добрый день, сколько стоит сайт?")
            await until(lambda: topic_of(telegram_server, group, "Анна") is not None
                        and len(lines(telegram_server, group, topic_of(telegram_server, group, "Анна"))) >= 3)
        return group

    group = run(main())
    topic = topic_of(telegram_server, group, "Анна")
    assert topic.title == "Анна (@anna) · #1"
    posted = lines(telegram_server, group, topic)
    assert posted[0].startswith("🪪 Анна (@anna) · #1") and "Статус: новый" in posted[0]
    card = group.in_topic(topic.id)[0]
    assert [label for row in card.buttons for label, _ in row] == [texts.STAFF_BUTTON_TAKE, texts.STAFF_BUTTON_RELEASE,
                                                                    texts.STAFF_BUTTON_COLD]
    assert "\n".join(posted[1:]) == "👤 Добрый день, сколько стоит сайт?\n🤖 Здравствуйте! Чем помочь?"
    assert telegram_server.texts_to(101) == ["Здравствуйте! Чем помочь?"]


def test_a_staff_message_reaches_the_lead_and_the_bot_then_only_mirrors(telegram_server, bot_settings):
    llm = FakeLLM().enqueue(Answer("Здравствуйте! Чем помочь?", "new", False))

    async def main():
        group = telegram_server.add_group()
        anna = telegram_server.add_user(101, "Анна", "anna")
        olga = telegram_server.add_user(MANAGER, "Ольга", "olga")
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            telegram_server.write(anna, "Здравствуйте")
            topic = await opened(telegram_server, group, "Анна", lines_at_least=3)
            telegram_server.staff_write(group, olga, "Анна, это Ольга, менеджер. Подготовлю смету сегодня.", topic.id)
            await until(lambda: len(telegram_server.texts_to(anna)) == 2)
            telegram_server.write(anna, "Спасибо, жду!")
            await until(lambda: any("Спасибо, жду!" in line for line in lines(telegram_server, group, topic)))
            await settle()
            telegram_server.staff_write(group, olga, "/note обещала смету до вечера", topic.id)
            await until(lambda: texts.NOTE_SAVED in lines(telegram_server, group, topic))
            return topic

    topic = run(main())
    assert telegram_server.texts_to(101) == ["Здравствуйте! Чем помочь?",
                                             "Анна, это Ольга, менеджер. Подготовлю смету сегодня."]
    assert len(llm.calls) == 1  # the lead's second message went to the person, not to Claude
    staff_line = Message.get(Message.role == "manager")
    assert (staff_line.staff_id, staff_line.text) == (MANAGER, "Анна, это Ольга, менеджер. Подготовлю смету сегодня.")
    note = Message.get(Message.role == "note")
    assert (note.staff_id, note.text) == (MANAGER, "обещала смету до вечера")
    lead = Lead.get(Lead.telegram_id == 101)
    assert lead.takeover_by == MANAGER and lead.takeover_until is not None
    posted = lines(telegram_server, group_of(telegram_server), topic)
    assert not any("Подготовлю смету" in line for line in posted)  # the person's words are there already
    assert "👤 Спасибо, жду!" in posted


def test_bot_in_the_topic_gives_the_lead_back_and_their_waiting_message_is_answered(telegram_server, bot_settings):
    llm = FakeLLM().enqueue(Answer("Здравствуйте!", "new", False), Answer("Сайт от 50 000 ₽.", "warm", False))

    async def main():
        group = telegram_server.add_group()
        anna = telegram_server.add_user(101, "Анна", "anna")
        olga = telegram_server.add_user(MANAGER, "Ольга", "olga")
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            telegram_server.write(anna, "Здравствуйте")
            topic = await opened(telegram_server, group, "Анна", lines_at_least=3)
            telegram_server.staff_write(group, olga, "Я подключилась, Анна.", topic.id)
            await until(lambda: len(telegram_server.texts_to(anna)) == 2)
            telegram_server.write(anna, "А сколько стоит сайт?")
            await until(lambda: "👤 А сколько стоит сайт?" in lines(telegram_server, group, topic))
            calls_while_taken = len(llm.calls)
            telegram_server.staff_write(group, olga, "/bot", topic.id)
            await until(lambda: len(telegram_server.texts_to(anna)) == 3)
            return calls_while_taken

    calls_while_taken = run(main())
    assert calls_while_taken == 1
    assert telegram_server.texts_to(101)[-1] == "Сайт от 50 000 ₽."
    assert llm.calls[-1]["history"][-1] == ("user", "А сколько стоит сайт?")
    assert Lead.get(Lead.telegram_id == 101).takeover_until is None


def test_a_handoff_answer_pauses_the_bot_tells_the_lead_when_and_alerts_staff(telegram_server, bot_settings):
    llm = FakeLLM().enqueue(Answer("Конечно, позову менеджера.", "warm", False, handoff=True))

    async def main():
        group = telegram_server.add_group()
        anna = telegram_server.add_user(101, "Анна", "anna")
        olga = telegram_server.add_user(MANAGER, "Ольга", "olga")
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            telegram_server.write(olga, "/start")  # managers write to the bot once, so it may write to them
            await until(lambda: telegram_server.texts_to(olga))
            telegram_server.write(anna, "Можно поговорить с живым человеком?")
            topic = await opened(telegram_server, group, "Анна", lines_at_least=3)
            await until(lambda: any(t.startswith("🔔") for t in telegram_server.texts_to(olga)))
            telegram_server.write(anna, "Жду")
            await until(lambda: "👤 Жду" in lines(telegram_server, group, topic))
            return topic

    topic = run(main())
    assert telegram_server.texts_to(101) == [f"Конечно, позову менеджера.\n\n{texts.HANDOFF_SOON}"]
    assert len(llm.calls) == 1  # «Жду» waits for the person
    alert = next(p for p in group_of(telegram_server).in_topic(topic.id) if "🔔" in p.text)
    assert "Можно поговорить с живым человеком?" in alert.text and texts.MENTION in alert.text
    assert alert.mentions == [MANAGER]  # a real mention: the manager's phone rings
    assert any(t.startswith("🔔 Клиент просит человека: Анна (@anna)") for t in telegram_server.texts_to(MANAGER))
    assert telegram_server.texts_to(MANAGER)[0] == texts.STAFF_HELP  # /start from a manager: the staff help
    assert not Lead.select().where(Lead.telegram_id == MANAGER).exists()


def test_a_managers_private_message_makes_no_lead_and_no_claude_call(telegram_server, bot_settings):
    llm = FakeLLM()

    async def main():
        group = telegram_server.add_group()
        olga = telegram_server.add_user(MANAGER, "Ольга", "olga")
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            telegram_server.write(olga, "Привет, бот")
            await until(lambda: telegram_server.texts_to(olga))
            telegram_server.write(olga, "/today")
            await until(lambda: len(telegram_server.texts_to(olga)) == 2)
            telegram_server.write(olga, "/hot")
            await until(lambda: len(telegram_server.texts_to(olga)) == 3)

    run(main())
    assert telegram_server.texts_to(MANAGER) == [texts.STAFF_HELP, texts.STAFF_NO_MEETINGS, texts.STAFF_NO_HOT]
    assert llm.calls == [] and Lead.select().count() == 0 and Message.select().count() == 0


def posts_in_any_minute(times):
    return max((sum(1 for t in times if start <= t < start + 60) for start in times), default=0)


def test_twelve_leads_at_once_are_answered_at_once_and_every_line_reaches_its_topic_under_the_pace(
        telegram_server, bot_settings):
    llm = FakeLLM()  # «Понял вас!» to everyone

    async def main():
        group = telegram_server.add_group()
        users = [telegram_server.add_user(200 + n, f"Лид{n:02d}", None) for n in range(12)]
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            started = telegram_server.clock.now()
            for user in users:
                telegram_server.write(user, f"Здравствуйте, я {user.first_name}")
                telegram_server.write(user, "Сколько стоит?")
            await until(lambda: all(telegram_server.texts_to(u) for u in users))
            answered_after = telegram_server.clock.now() - started

            def mirrored():
                return all((t := topic_of(telegram_server, group, u.first_name)) is not None
                           and sum(line.count("👤") for line in lines(telegram_server, group, t)) == 2
                           and any("🤖" in line for line in lines(telegram_server, group, t)) for u in users)

            await telegram_server.clock.run_until(mirrored, limit=600)
            return group, answered_after, telegram_server.clock.now() - started

    group, answered_after, mirrored_after = run(main())
    assert answered_after < 5  # nobody's reply waited for the group
    assert mirrored_after < 5 * 60
    assert telegram_server.refused("FLOOD_WAIT_1") == [] and not [e for e, _ in telegram_server.refusals
                                                                  if e.startswith("FLOOD_WAIT")]
    assert posts_in_any_minute(group.bot_posts_at_all) <= 20
    for n in range(12):
        text = "\n".join(lines(telegram_server, group, topic_of(telegram_server, group, f"Лид{n:02d}")))
        assert text.index(f"👤 Здравствуйте, я Лид{n:02d}") < text.index("👤 Сколько стоит?")


def test_without_the_right_to_manage_topics_leads_are_answered_and_the_posts_go_out_once_it_is_given(
        telegram_server, bot_settings, caplog):
    llm = FakeLLM()

    async def main():
        group = telegram_server.add_group(manage_topics=False)
        anna = telegram_server.add_user(101, "Анна", "anna")
        boris = telegram_server.add_user(102, "Борис", None)
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            telegram_server.write(anna, "Здравствуйте")
            telegram_server.write(boris, "Добрый день")
            await until(lambda: telegram_server.texts_to(anna) and telegram_server.texts_to(boris))
            await telegram_server.clock.advance(180)  # three periodic retries: refused each time
            refused = len(telegram_server.refused("CHAT_ADMIN_REQUIRED"))
            telegram_server.set_rights(group, manage_topics=True)  # staff fix it: updateChannel
            await until(lambda: all(topic_of(telegram_server, group, n) is not None
                                    and len(lines(telegram_server, group, topic_of(telegram_server, group, n))) >= 2
                                    for n in ("Анна", "Борис")))
            return refused

    refused = run(main())
    assert 3 <= refused <= 5  # tried again every minute (and when told the group changed), not at every poll
    assert telegram_server.texts_to(101) == ["Понял вас!"] and telegram_server.texts_to(102) == ["Понял вас!"]
    causes = [r.getMessage() for r in caplog.records if "cannot post to the staff group" in r.getMessage()]
    assert len(causes) == 1 and "right to manage topics" in causes[0]  # logged once, by its cause
    group = group_of(telegram_server)
    assert "👤 Здравствуйте\n🤖 Понял вас!" in lines(telegram_server, group, topic_of(telegram_server, group, "Анна"))


@pytest.mark.parametrize("flagged", [True, False], ids=["telegram-flags-the-group", "serve-flags-it-itself"])
def test_a_staff_message_written_while_serve_was_down_reaches_the_lead_after_the_restart(
        telegram_server, bot_settings, flagged):
    llm = FakeLLM()
    telegram_server.flags_channels = flagged

    async def main():
        group = telegram_server.add_group()
        anna = telegram_server.add_user(101, "Анна", "anna")
        olga = telegram_server.add_user(MANAGER, "Ольга", "olga")
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            telegram_server.write(anna, "Здравствуйте")
            topic = await opened(telegram_server, group, "Анна", lines_at_least=2)
            await until(lambda: any("🤖" in line for line in lines(telegram_server, group, topic)))
        telegram_server.staff_write(group, olga, "Анна, перезвоню в 15:00.", topic.id)  # serve is down
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            await until(lambda: len(telegram_server.texts_to(anna)) == 2)
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):  # and not twice
            await asyncio.sleep(0.2)
            await settle()

    run(main())
    assert telegram_server.texts_to(101) == ["Понял вас!", "Анна, перезвоню в 15:00."]
    assert any(isinstance(r, __import__("telethon").tl.functions.updates.GetChannelDifferenceRequest)
               for _, r in telegram_server.requests)


def test_a_staff_message_to_a_lead_who_blocked_the_bot_gets_a_reply_in_the_topic(telegram_server, bot_settings):
    llm = FakeLLM()

    async def main():
        group = telegram_server.add_group()
        anna = telegram_server.add_user(101, "Анна", "anna")
        olga = telegram_server.add_user(MANAGER, "Ольга", "olga")
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            telegram_server.write(anna, "Здравствуйте")
            topic = await opened(telegram_server, group, "Анна", lines_at_least=2)
            telegram_server.block(anna)
            telegram_server.staff_write(group, olga, "Анна, вы здесь?", topic.id)
            await until(lambda: any("Не доставлено" in line for line in lines(telegram_server, group, topic)))
            return topic

    topic = run(main())
    line = next(t for t in lines(telegram_server, group_of(telegram_server), topic) if "Не доставлено" in t)
    assert "UserIsBlockedError" in line and "заблокировал" in line


def test_a_deleted_topic_is_opened_again_on_the_next_post(telegram_server, bot_settings):
    llm = FakeLLM()

    async def main():
        group = telegram_server.add_group()
        anna = telegram_server.add_user(101, "Анна", "anna")
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            telegram_server.write(anna, "Здравствуйте")
            first = await opened(telegram_server, group, "Анна", lines_at_least=2)
            await until(lambda: any("🤖" in line for line in lines(telegram_server, group, first)))
            telegram_server.delete_topic(group, first.id)
            telegram_server.write(anna, "Вы тут?")
            await until(lambda: (t := topic_of(telegram_server, group, "Анна")) is not None and t.id != first.id
                        and any("Вы тут?" in line for line in lines(telegram_server, group, t)))

    run(main())
    topic = topic_of(telegram_server, group_of(telegram_server), "Анна")
    posted = lines(telegram_server, group_of(telegram_server), topic)
    assert posted[0].startswith("🪪 Анна") and "👤 Вы тут?" in "\n".join(posted)
    assert Lead.get(Lead.telegram_id == 101).topic_id == topic.id


def test_a_voice_message_is_forwarded_to_the_topic_with_an_alert(telegram_server, bot_settings):
    llm = FakeLLM()

    async def main():
        group = telegram_server.add_group()
        anna = telegram_server.add_user(101, "Анна", "anna")
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            voice = telegram_server.send_media(anna, "voice")
            topic = await opened(telegram_server, group, "Анна", lines_at_least=2)
            await until(lambda: any(p.forwarded for p in group.in_topic(topic.id))
                        and any("📎" in line for line in lines(telegram_server, group, topic)))
            return topic, voice

    topic, voice = run(main())
    posts = group_of(telegram_server).in_topic(topic.id)
    assert [p.forwarded for p in posts if p.forwarded] == [(101, voice.id)]  # the lead's own message, as it is
    alert = next(line for line in lines(telegram_server, group_of(telegram_server), topic) if "📎" in line)
    assert "[голосовое сообщение]" in alert
    assert telegram_server.texts_to(101) == [texts.PLEASE_TEXT] and llm.calls == []


def test_the_cards_buttons_take_over_give_back_and_mark_cold(telegram_server, bot_settings):
    llm = FakeLLM().enqueue(Answer("Здравствуйте!", "new", False), Answer("Да, делаем.", "warm", False))

    async def main():
        group = telegram_server.add_group()
        anna = telegram_server.add_user(101, "Анна", "anna")
        olga = telegram_server.add_user(MANAGER, "Ольга", "olga")
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            telegram_server.write(anna, "Здравствуйте")
            topic = await opened(telegram_server, group, "Анна", lines_at_least=3)
            card = group.in_topic(topic.id)[0]
            telegram_server.press_in_group(group, olga, card, texts.STAFF_BUTTON_TAKE)
            await until(lambda: any(line.startswith("✋") for line in lines(telegram_server, group, topic)))
            telegram_server.write(anna, "А лендинги делаете?")
            await until(lambda: "👤 А лендинги делаете?" in "\n".join(lines(telegram_server, group, topic)))
            calls = len(llm.calls)
            telegram_server.press_in_group(group, olga, card, texts.STAFF_BUTTON_RELEASE)
            await until(lambda: len(telegram_server.texts_to(anna)) == 2)
            telegram_server.press_in_group(group, olga, card, texts.STAFF_BUTTON_COLD)
            await until(lambda: any(line.startswith("❄️") for line in lines(telegram_server, group, topic)))
            return calls

    calls = run(main())
    assert calls == 1 and telegram_server.texts_to(101) == ["Здравствуйте!", "Да, делаем."]
    assert len(telegram_server.callback_answers) == 3  # every press answered (no spinning button)
    lead = Lead.get(Lead.telegram_id == 101)
    assert (lead.status, lead.cold_reason, lead.takeover_until) == ("cold", "staff", None)


def test_a_closed_topic_is_reopened_to_post(telegram_server, bot_settings):
    llm = FakeLLM()

    async def main():
        group = telegram_server.add_group()
        anna = telegram_server.add_user(101, "Анна", "anna")
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            telegram_server.write(anna, "Здравствуйте")
            topic = await opened(telegram_server, group, "Анна", lines_at_least=2)
            await until(lambda: any("🤖" in line for line in lines(telegram_server, group, topic)))
            telegram_server.close_topic(group, topic.id)
            telegram_server.write(anna, "Ау")
            await until(lambda: "👤 Ау" in "\n".join(lines(telegram_server, group, topic)))
            return topic

    topic = run(main())
    assert not topic.closed and telegram_server.refused("TOPIC_CLOSED")


def test_today_lists_todays_meetings_with_outcome_buttons_for_a_manager(telegram_server, bot_settings):
    async def main():
        group = telegram_server.add_group()
        olga = telegram_server.add_user(MANAGER, "Ольга", "olga")
        lead = make_lead(first_name="Анна", username="anna", status="hot")
        started = Meeting.create(lead=lead, starts_at=to_utc_naive(datetime_utc(2025, 12, 23, 8)), source="slot")
        Meeting.create(lead=make_lead(first_name="Борис"), starts_at=to_utc_naive(datetime_utc(2025, 12, 23, 13)),
                       source="slot")
        async with serving(telegram_server, bot_settings, with_inbox(FakeLLM(), group)):
            telegram_server.write(olga, "/today")
            await until(lambda: len(telegram_server.messages_to(olga)) == 2)
            first, later = telegram_server.messages_to(olga)
            telegram_server.press(olga, later, texts.STAFF_BUTTON_DONE)  # not started yet: refused
            telegram_server.press(olga, first, texts.STAFF_BUTTON_DONE)
            await until(lambda: len(telegram_server.callback_answers) == 2)
            return first, later, started.id

    first, later, started = run(main())
    assert first.text == "11:00 — Анна (@anna)" and later.text == "16:00 — Борис"
    assert first.labels == [texts.STAFF_BUTTON_DONE, texts.STAFF_BUTTON_NO_SHOW]
    toasts = [a["message"] for a in telegram_server.callback_answers]
    assert toasts == [texts.STALE_TOAST, f"{texts.STAFF_BUTTON_DONE}: Анна"]
    assert Meeting.get_by_id(started).status == "done"


def datetime_utc(*parts):
    return datetime(*parts, tzinfo=UTC)


def test_a_bot_removed_from_the_group_keeps_answering_leads_and_posts_once_added_back(telegram_server, bot_settings):
    llm = FakeLLM()

    async def main():
        group = telegram_server.add_group()
        anna = telegram_server.add_user(101, "Анна", "anna")
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            telegram_server.write(anna, "Здравствуйте")
            topic = await opened(telegram_server, group, "Анна", lines_at_least=2)
            await until(lambda: any("🤖" in line for line in lines(telegram_server, group, topic)))
            telegram_server.set_rights(group, member=False)  # staff removed the bot
            telegram_server.write(anna, "Вы здесь?")
            await until(lambda: len(telegram_server.texts_to(anna)) == 2)
            await until(lambda: telegram_server.refused("CHANNEL_PRIVATE"))
            telegram_server.set_rights(group, member=True)  # and added it back as an admin
            await until(lambda: "👤 Вы здесь?" in "\n".join(lines(telegram_server, group, topic)))
            return topic

    topic = run(main())
    text = "\n".join(lines(telegram_server, group_of(telegram_server), topic))
    assert text.index("👤 Вы здесь?") < text.index("🤖 Понял вас!", text.index("👤 Вы здесь?"))
