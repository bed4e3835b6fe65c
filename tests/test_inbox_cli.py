"""`salesbot leads reply | takeover | release`, `leads list`'s mark, and the inbox's clock (the end of a
takeover, the repeated handoff alert) — the CLI against a real database, serve through the harness."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

from freezegun import freeze_time

from salesbot import texts
from salesbot.dialogue import Answer
from salesbot.store import Lead, Message
from salesbot.store import Outbox as Row
from tests.engine_fakes import NOW, FakeLLM, make_engine, tg
from tests.factories import make_lead
from tests.fake_telegram import serving, until
from tests.test_inbox_serve import group_of, lines, topic_of, with_inbox


def test_reply_queues_a_managers_message_and_takes_the_lead_over(db, run):
    lead = make_lead(first_name="Анна", messages=[("lead", "Здравствуйте")])
    result = run("leads", "reply", str(lead.id), "Анна, здравствуйте! Это Ольга.")
    assert "the bot pauses for this lead" in result.stdout
    message = Message.get(Message.role == "manager")
    assert (message.text, message.staff_id) == ("Анна, здравствуйте! Это Ольга.", None)
    row = Row.get(Row.message == message)
    assert (row.kind, row.state, row.lead_id) == ("reply", "queued", lead.id)
    taken = Lead.get_by_id(lead.id)
    assert taken.takeover_at is not None and taken.takeover_until > datetime.now(UTC).replace(tzinfo=None)
    assert json.loads(run("leads", "list", "--json").stdout)[0]["taken_over"] is True
    assert "(taken over)" in run("leads", "list").stdout

    run("leads", "release", str(lead.id))
    assert json.loads(run("leads", "list", "--json").stdout)[0]["taken_over"] is False
    assert Lead.get_by_id(lead.id).takeover_by == 0  # serve's next check gives the lead back (not "expired")
    assert "not taken over" in run("leads", "release", str(lead.id)).stdout


def test_takeover_and_bad_ids_from_the_terminal(db, run):
    lead = make_lead(first_name="Анна")
    run("leads", "takeover", str(lead.id))
    assert Lead.get_by_id(lead.id).takeover_until is not None
    assert Row.select().count() == 0  # no staff group set: nothing to post
    missing = run("leads", "reply", "999", "Текст", code=None)
    assert missing.exit_code != 0 and "no lead 999" in missing.stderr and "Traceback" not in missing.stderr
    terminal = make_lead(telegram=False, first_name="Гость")
    refused = run("leads", "reply", str(terminal.id), "Текст", code=None)
    assert refused.exit_code != 0 and "no Telegram chat" in refused.stderr
    blank = run("leads", "reply", str(lead.id), "   ", code=None)
    assert blank.exit_code != 0 and "empty" in blank.stderr


def test_leads_reply_reaches_the_lead_through_serve_and_shows_in_the_topic(telegram_server, bot_settings, run):
    llm = FakeLLM()

    async def first_contact(group, anna):
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            telegram_server.write(anna, "Здравствуйте")
            await until(lambda: telegram_server.texts_to(anna))

    async def after_reply(group, anna):
        async with serving(telegram_server, bot_settings, with_inbox(llm, group)):
            await until(lambda: len(telegram_server.texts_to(anna)) == 2)
            topic = topic_of(telegram_server, group, "Анна")
            await until(lambda: any("из терминала" in line for line in lines(telegram_server, group, topic)))
            telegram_server.write(anna, "Спасибо!")
            await until(lambda: "👤 Спасибо!" in "\n".join(lines(telegram_server, group, topic)))

    with freeze_time(NOW, real_asyncio=True):
        group = telegram_server.add_group()
        anna = telegram_server.add_user(101, "Анна", "anna")
        asyncio.run(first_contact(group, anna))
        lead = Lead.get(Lead.telegram_id == 101)
        run("leads", "reply", str(lead.id), "Анна, это Ольга: пришлю смету сегодня.")
        asyncio.run(after_reply(group, anna))
    assert telegram_server.texts_to(101) == ["Понял вас!", "Анна, это Ольга: пришлю смету сегодня."]
    assert len(llm.calls) == 1  # «Спасибо!» after the reply is the person's to answer
    posted = "\n".join(lines(telegram_server, group_of(telegram_server), topic_of(telegram_server, group, "Анна")))
    assert "💬 Менеджер (из терминала): Анна, это Ольга: пришлю смету сегодня." in posted


def test_a_takeover_ends_by_itself_and_the_waiting_message_is_answered(db):
    async def main():
        engine, llm, transport = make_engine()
        await engine.handle(tg(101, "Здравствуйте"))
        lead_id = Lead.get(Lead.telegram_id == 101).id
        engine.inbox.take_over(lead_id, 555, "Ольга")
        await engine.handle(tg(101, "А сколько стоит?"))
        quiet = len(llm.calls)
        with freeze_time(datetime.now(UTC) + timedelta(hours=11)):
            await engine.inbox.tick()
            still = len(llm.calls)
        with freeze_time(datetime.now(UTC) + timedelta(hours=12, minutes=1)):
            await engine.inbox.tick()
        return quiet, still, llm, transport

    with freeze_time(NOW, real_asyncio=True):
        quiet, still, llm, transport = asyncio.run(main())
    assert (quiet, still) == (1, 1)
    assert len(llm.calls) == 2 and llm.calls[-1]["history"][-1] == ("user", "А сколько стоит?")
    assert Lead.get(Lead.telegram_id == 101).takeover_until is None


def test_a_handoff_nobody_answers_is_alerted_once_more_after_30_working_minutes(db):
    async def main():
        llm = FakeLLM().enqueue(Answer("Позову менеджера.", "warm", False, handoff=True))
        engine, llm, transport = make_engine(llm=llm, managers=(777,))
        await engine.handle(tg(101, "Позовите человека"))
        await engine.outbox.drain()
        alerts = lambda: [m for m in transport.sent if m.peer.user_id == 777 and "🔔" in m.text]  # noqa: E731
        first = len(alerts())
        for minutes in (29, 31, 120):
            with freeze_time(datetime.now(UTC) + timedelta(minutes=minutes)):
                await engine.inbox.tick()
                await engine.outbox.drain()
        return first, alerts(), transport

    with freeze_time(NOW, real_asyncio=True):
        first, alerts, transport = asyncio.run(main())
    assert first == 1
    assert len(alerts) == 2 and alerts[1].text.startswith("🔔 Напоминаю: клиент всё ещё ждёт человека")
    to_lead = [m.text for m in transport.sent if m.peer.user_id == 101]
    assert to_lead == [f"Позову менеджера.\n\n{texts.HANDOFF_SOON}"]


def test_after_hours_the_lead_is_told_when_a_person_answers(db):
    async def main():
        llm = FakeLLM().enqueue(Answer("Передам менеджеру.", "warm", False, handoff=True))
        engine, _, transport = make_engine(llm=llm)
        await engine.handle(tg(101, "Хочу поговорить с менеджером"))
        return transport

    with freeze_time("2025-12-26 18:30:00", real_asyncio=True):  # Friday 21:30 in Moscow
        transport = asyncio.run(main())
    expected = texts.handoff_later("в понедельник, 29 декабря после 10:00")
    assert transport.sent[0].text == "Передам менеджеру.\n\n" + expected


def test_leads_show_names_staff_lines_and_notes(db, run):
    lead = make_lead(first_name="Анна", messages=[("lead", "Здравствуйте"), ("manager", "Это Ольга"),
                                                  ("note", "перезвонить в 15")])
    shown = run("leads", "show", str(lead.id)).stdout
    assert "lead Здравствуйте" in shown and "team Это Ольга" in shown and "note перезвонить в 15" in shown


def test_a_handoff_is_a_lead_handoff_webhook_event_when_webhooks_are_on(db):
    import json

    from salesbot.store import events

    async def main():
        llm = FakeLLM().enqueue(Answer("Позову менеджера.", "warm", False, handoff=True))
        engine, _, _ = make_engine(llm=llm)
        await engine.handle(tg(101, "Позовите человека"))

    events.configure(True)
    try:
        with freeze_time(NOW, real_asyncio=True):
            asyncio.run(main())
    finally:
        events.configure(False)
    (body,) = [json.loads(b) for (b,) in db.execute_sql("SELECT body FROM webhook_event WHERE type = 'lead.handoff'")]
    assert body["reason"] == "Позовите человека" and body["lead"]["id"] == Lead.get(Lead.telegram_id == 101).id


def test_the_topic_says_who_gave_the_lead_back_or_that_the_time_ran_out(db, run):
    from salesbot.inbox import Inbox, InboxConfig
    from salesbot.store import leads
    from tests.engine_fakes import CALENDAR, RecordingTransport, make_outbox

    def topic_lines():
        return [r.text for r in Row.select().where(Row.kind == "staff").order_by(Row.id)]

    inbox = Inbox(make_outbox(RecordingTransport()), InboxConfig(calendar=CALENDAR, staff_chat=-1001987654321))
    given_back, expired = make_lead(first_name="Анна"), make_lead(first_name="Борис")
    now = datetime.now(UTC)
    for lead in (given_back, expired):
        leads.take_over(lead.id, 555, now - timedelta(hours=13), now - timedelta(minutes=1) if lead is expired
                        else now + timedelta(hours=1))
    run("leads", "release", str(given_back.id))
    asyncio.run(inbox.tick())
    assert sorted(topic_lines()) == ["🤖 Время ручного режима истекло: диалог снова ведёт бот.",
                                     "🤖 Менеджер (из терминала) вернул(а) диалог боту."]
