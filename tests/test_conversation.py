import asyncio
import itertools
from datetime import datetime

import pytest

from salesbot import texts
from salesbot.dialogue import STATE_CONFIRM_TIME, STATE_CUSTOM_TIME, Answer, Dialogue, Incoming, Sender
from salesbot.errors import LLMUnavailable
from salesbot.store import Lead, Meeting, Message
from salesbot.store import Outbox as OutboxRow
from salesbot.transport import SendError
from tests.engine_fakes import CALENDAR, FakeLLM, make_engine, tg

SLOTS = ["Сегодня, 17:00", "Сегодня, 18:00", "Завтра, 10:00", "Завтра, 14:00", "Чт, 25 дек, 10:00",
         "Чт, 25 дек, 14:00"]  # up to two a day, spread over the day, over three working days
NO_MEETING_ACTION = {"meeting_action": "none", "summary": "", "proposed_time": "", "handoff": False}


@pytest.fixture
def engine(frozen, aio):
    dialogue, llm, transport = make_engine()
    dialogue.run = lambda *events: [aio.run(dialogue.handle(e)) for e in events]
    return dialogue, llm, transport


def lead_of(user_id=101) -> Lead:
    return Lead.get(Lead.telegram_id == user_id)


def messages(user_id=101) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in Message.select().join(Lead).where(Lead.telegram_id == user_id)
            .order_by(Message.id)]


def test_first_contact_and_start_greet_without_claude(engine):
    dialogue, llm, transport = engine
    dialogue.run(tg(text="/start"))
    lead = lead_of()
    assert (lead.telegram_id, lead.access_hash, lead.username, lead.first_name, lead.status) == (
        101, 5550001, "anna", "Анна", "new")
    assert transport.last.text == texts.greeting("Анна") and transport.last.peer.access_hash == 5550001
    assert llm.calls == []
    assert messages() == [("lead", "/start"), ("bot", texts.greeting("Анна"))]


def test_text_is_stored_then_answered_with_one_call(engine):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Сайт для кафе — от 120 000 ₽. Сколько у вас точек?", "warm", False))
    dialogue.run(tg(text="Сколько стоит сайт для кафе?"))
    assert len(llm.calls) == 1
    call = llm.calls[0]
    assert call["history"] == [("user", "Сколько стоит сайт для кафе?")]
    assert "вторник, 23 декабря 2025, 14:05" in call["context"] and "Текущий статус: new" in call["context"]
    assert transport.last.text.startswith("Сайт для кафе") and transport.last.buttons is None
    assert lead_of().status == "warm"
    assert messages()[-1] == ("bot", "Сайт для кафе — от 120 000 ₽. Сколько у вас точек?")
    assert Message.get(Message.role == "lead").unanswered is False


def test_offering_a_meeting_shows_three_free_slots_and_own_time(engine):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Давайте созвонимся!", "hot", True))
    dialogue.run(tg(text="Хочу обсудить проект"))
    assert transport.last.text == "Давайте созвонимся!"
    assert transport.last.labels == [*SLOTS, texts.BUTTON_OWN_TIME]


def test_booked_meetings_are_not_offered(engine):
    dialogue, llm, transport = engine
    other = Lead.create(telegram_id=5, first_name="Другой")
    Meeting.create(lead=other, starts_at=datetime(2025, 12, 23, 14, 0), source="slot")  # 17:00 Moscow
    llm.enqueue(Answer("Выберите время", "hot", True))
    dialogue.run(tg(text="Когда можно созвониться?"))
    assert transport.last.labels[:3] == ["Сегодня, 18:00", "Завтра, 10:00", "Завтра, 14:00"]


def press_slot(dialogue, transport, label, user_id=101):
    dialogue.run(tg(user_id, button=transport.to(user_id)[-1].data_of(label)))


def test_choosing_a_slot_books_it_and_tells_the_managers(engine):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Выберите время", "warm", True))
    dialogue.run(tg(text="Давайте созвонимся"))
    press_slot(dialogue, transport, "Завтра, 10:00")
    meeting = Meeting.get()
    assert (meeting.starts_at, meeting.source, meeting.status) == (datetime(2025, 12, 24, 7, 0), "slot", "booked")
    lead = lead_of()
    assert lead.status == "hot"
    confirmation = transport.to(101)[-1].text
    assert "завтра, 24 декабря, в 10:00 по московскому времени" in confirmation
    manager = transport.to(777)[-1].text
    assert "Анна (@anna)" in manager and "завтра, 24 декабря, в 10:00" in manager
    assert "— Давайте созвонимся" in manager
    assert messages()[-2] == ("lead", "Завтра, 10:00")  # what was pressed is in the conversation


def test_a_slot_taken_meanwhile_gets_fresh_slots(engine):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Выберите", "warm", True), Answer("Выберите", "warm", True))
    dialogue.run(tg(101, "созвон?"), tg(202, "созвон?", first_name="Борис", username="boris"))
    press_slot(dialogue, transport, "Сегодня, 17:00", user_id=202)
    press_slot(dialogue, transport, "Сегодня, 17:00", user_id=101)
    answer = transport.to(101)[-1]
    assert answer.text.startswith(texts.TAKEN)
    assert "Сегодня, 17:00" not in answer.labels and answer.labels[0] == "Сегодня, 18:00"
    assert Meeting.select().count() == 1 and Meeting.get().lead.telegram_id == 202


def test_booking_race_two_leads_one_slot(engine, aio):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Выберите", "warm", True), Answer("Выберите", "warm", True))
    dialogue.run(tg(101, "созвон?"), tg(202, "созвон?", first_name="Борис"))
    data = transport.to(101)[-1].data_of("Сегодня, 17:00")

    async def both():
        await asyncio.gather(dialogue.handle(tg(101, button=data)), dialogue.handle(tg(202, button=data)))

    aio.run(both())
    assert Meeting.select().where(Meeting.status == "booked").count() == 1
    replies = [transport.to(u)[-1].text for u in (101, 202)]
    assert sum(r.startswith("Отлично, записал") for r in replies) == 1
    assert sum(r.startswith(texts.TAKEN) for r in replies) == 1


def test_a_second_process_booking_the_slot_loses_in_the_database(engine):
    """Two processes cannot see each other's memory: the unique index decides."""
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Выберите", "warm", True))
    dialogue.run(tg(101, "созвон?"))
    data = transport.to(101)[-1].data_of("Сегодня, 17:00")
    other = Lead.create(telegram_id=9, first_name="Другой")
    Meeting.create(lead=other, starts_at=datetime(2025, 12, 23, 14, 0), source="slot")
    dialogue.run(tg(101, button=data))
    assert transport.to(101)[-1].text.startswith(texts.TAKEN)
    assert Meeting.select().count() == 1


def test_own_time_flow_confirm_and_book(engine):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Выберите время", "warm", True))
    dialogue.run(tg(text="созвонимся?"))
    dialogue.run(tg(button="own"))
    assert lead_of().state == STATE_CUSTOM_TIME and transport.last.text == texts.ASK_OWN_TIME
    dialogue.run(tg(text="давайте в среду в 11:00"))
    lead = lead_of()
    assert lead.state == STATE_CONFIRM_TIME and lead.pending_time == datetime(2025, 12, 24, 8, 0)
    assert transport.last.text == "Правильно понял: завтра, 24 декабря, в 11:00 по московскому времени?"
    assert transport.last.labels == [texts.BUTTON_CONFIRM, texts.BUTTON_OTHER]
    dialogue.run(tg(button=transport.last.data_of(texts.BUTTON_CONFIRM)))
    meeting = Meeting.get()
    assert (meeting.source, meeting.starts_at) == ("custom", datetime(2025, 12, 24, 8, 0))
    lead = lead_of()
    assert (lead.state, lead.pending_time, lead.status) == (None, None, "hot")
    assert "завтра, 24 декабря, в 11:00 по московскому времени" in transport.to(101)[-1].text
    assert "своё время" in transport.to(777)[-1].text
    assert len(llm.calls) == 1  # the own-time step never asked Claude for a reply


def test_own_time_not_a_time_goes_to_claude_and_keeps_the_state(engine):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Конечно, можно и позже — когда вам будет удобно?", "warm", False))
    dialogue.run(tg(button="own"), tg(text="как-нибудь потом"))
    assert transport.last.text == "Конечно, можно и позже — когда вам будет удобно?"
    assert "Бот ждёт, что клиент напишет удобные день и время встречи" in llm.calls[-1]["context"]
    assert lead_of().state == STATE_CUSTOM_TIME
    dialogue.run(tg(text="завтра"))  # a day: its free slots, and the day kept for the hour
    assert transport.last.text == "Свободное время — завтра, 24 декабря, с 10:00 до 19:00:"
    assert transport.last.labels[0] == "Завтра, 10:00" and transport.last.labels[-1] == texts.BUTTON_OWN_TIME
    assert lead_of().state == STATE_CUSTOM_TIME and len(llm.calls) == 1


def test_a_day_then_a_time_make_one_meeting_time(engine, aio):
    dialogue, llm, transport = engine
    dialogue.run(tg(button="own"), tg(text="в пятницу"), tg(text="в 15"))
    assert transport.last.text == "Правильно понял: в пятницу, 26 декабря, в 15:00 по московскому времени?"
    dialogue.run(tg(button="re"), tg(button="own"), tg(text="послезавтра"))
    restarted, _, transport2 = make_engine()  # the day is kept in the database, not in memory
    aio.run(restarted.handle(tg(text="в 11:30")))
    assert transport2.last.text == "Правильно понял: в четверг, 25 декабря, в 11:30 по московскому времени?"
    dialogue.run(tg(button="re"), tg(button="own"), tg(text="в пятницу"), tg(text="в субботу в 12"))
    assert transport.last.text.startswith("В это время мы не работаем")  # a full phrase wins


@pytest.mark.parametrize("phrase, says, offered", [
    # past, too soon or too far: the next free slots from now, spread over the days
    ("вчера в 10:00", texts.TIME_PASSED, ["Сегодня, 17:00", "Сегодня, 18:00", "Завтра, 11:00"]),
    ("сегодня в 15:00", texts.TOO_SOON, ["Сегодня, 17:00", "Сегодня, 18:00", "Завтра, 11:00"]),
    ("25 февраля в 11:00", "Так далеко вперёд мы не записываем: не дальше чем на 60 дней.",
     ["Сегодня, 17:00", "Сегодня, 18:00", "Завтра, 11:00"]),
    # taken or outside hours: the nearest on both sides of the time asked for
    ("в субботу в 12", "В это время мы не работаем: встречи возможны с понедельника по пятницу, с 10:00 до 19:00.",
     ["Пт, 26 дек, 17:00", "Пт, 26 дек, 18:00", "Пн, 29 дек, 10:00", "Пн, 29 дек, 11:00"]),
    ("завтра в 21:00", "В это время мы не работаем",
     ["Завтра, 17:00", "Завтра, 18:00", "Чт, 25 дек, 10:00", "Чт, 25 дек, 11:00"]),
    ("завтра в 10:00", texts.TAKEN, ["Сегодня, 17:00", "Сегодня, 18:00", "Завтра, 11:00",
                                     "Завтра, 12:00"]),
    ("завтра в 18:30", "Не успеем: встреча должна закончиться до 19:00.",
     ["Завтра, 17:00", "Завтра, 18:00", "Чт, 25 дек, 10:00", "Чт, 25 дек, 11:00"]),
])
def test_own_time_that_cannot_be_booked_says_why_and_offers_the_nearest(engine, phrase, says, offered):
    dialogue, llm, transport = engine
    other = Lead.create(telegram_id=9, first_name="Другой")
    Meeting.create(lead=other, starts_at=datetime(2025, 12, 24, 7, 0), source="slot")  # Wed 10:00 Moscow
    dialogue.run(tg(button="own"), tg(text=phrase))
    assert transport.last.text.startswith(says)
    assert transport.last.labels[:len(offered)] == offered and transport.last.labels[-1] == texts.BUTTON_OWN_TIME
    assert lead_of().state == STATE_CUSTOM_TIME


@pytest.mark.parametrize("cancel", ["отмена", "Отмена", "/cancel"])
def test_cancel_leaves_the_own_time_state(engine, cancel):
    dialogue, llm, transport = engine
    dialogue.run(tg(button="own"), tg(text=cancel))
    assert lead_of().state is None and transport.last.text == texts.CANCELLED
    assert llm.calls == []


def test_restart_in_the_middle_of_the_own_time_state(engine, aio):
    dialogue, llm, transport = engine
    dialogue.run(tg(button="own"))
    restarted, llm2, transport2 = make_engine()  # a new process: nothing in memory
    aio.run(restarted.handle(tg(text="в пятницу в 12:00")))
    assert transport2.last.text.startswith("Правильно понял: в пятницу, 26 декабря, в 12:00")
    again, _, transport3 = make_engine()
    aio.run(again.handle(tg(button=transport2.last.data_of(texts.BUTTON_CONFIRM))))
    assert Meeting.get().source == "custom" and transport3.to(101)[-1].text.startswith("Отлично, записал")
    assert llm2.calls == []


def test_a_stale_confirm_button_is_refused(engine):
    dialogue, llm, transport = engine
    dialogue.run(tg(button="own"), tg(text="в пятницу в 12:00"))
    stale = transport.last.data_of(texts.BUTTON_CONFIRM)
    dialogue.run(tg(text="отмена"), tg(button=stale))
    assert transport.last.text.startswith(texts.STALE_BUTTON) and Meeting.select().count() == 0


def test_choose_another_time_offers_slots(engine):
    dialogue, llm, transport = engine
    dialogue.run(tg(button="own"), tg(text="в пятницу в 12:00"), tg(button="re"))
    assert lead_of().state is None and transport.last.labels == [*SLOTS, texts.BUTTON_OWN_TIME]


def test_booking_again_moves_the_meeting(engine):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Выберите", "warm", True))
    dialogue.run(tg(text="созвон"))
    press_slot(dialogue, transport, "Завтра, 10:00")
    dialogue.run(tg(button="re"))
    press_slot(dialogue, transport, "Сегодня, 17:00")
    assert [(m.status) for m in Meeting.select().order_by(Meeting.id)] == ["cancelled", "booked"]
    assert transport.to(101)[-1].text.startswith("Готово, перенёс встречу: сегодня, в 17:00 по московскому времени")


def test_writing_again_after_reminders_starts_over_and_warms_a_cold_lead(engine):
    dialogue, llm, transport = engine
    dialogue.run(tg(text="/start"))
    Lead.update(follow_up_count=2, status="cold", cold_reason="no_reply").execute()
    llm.enqueue(Answer("Рад, что вы вернулись!", "warm", False))
    dialogue.run(tg(text="Я вернулся"))
    lead = lead_of()
    assert (lead.follow_up_count, lead.status, lead.cold_reason) == (0, "warm", None)
    assert lead.last_message_at == datetime(2025, 12, 23, 11, 5)
    assert "Текущий статус: warm" in llm.calls[0]["context"]


def test_stop_and_start(engine):
    dialogue, llm, transport = engine
    dialogue.run(tg(text="/stop"))
    assert lead_of().opted_out is True and transport.last.text == texts.STOPPED
    dialogue.run(tg(text="/start"))
    assert lead_of().opted_out is False
    assert llm.calls == []


@pytest.mark.parametrize("media, stored", [("sticker", "[стикер]"), ("voice", "[голосовое сообщение]"),
                                           ("photo", "[фото]"), ("gif", "[вложение]")])
def test_media_gets_a_polite_request_for_text(engine, media, stored):
    dialogue, llm, transport = engine
    dialogue.run(tg(media=media))
    assert transport.last.text == texts.PLEASE_TEXT and llm.calls == []
    assert messages()[0] == ("lead", stored)


def test_group_chats_are_ignored(engine):
    dialogue, llm, transport = engine
    dialogue.run(tg(text="всем привет", private=False))
    assert Lead.select().count() == 0 and transport.sent == [] and llm.calls == []


def test_a_long_message_is_stored_whole_and_cut_for_claude(frozen, aio):
    dialogue, llm, transport = make_engine(max_chars=100)
    aio.run(dialogue.handle(tg(text="а" * 5000)))
    assert len(Message.get(Message.role == "lead").text) == 5000
    sent = llm.calls[0]["history"][-1][1]
    assert len(sent) == 101 and sent.endswith("…")


def test_claude_unavailable_gives_a_polite_fallback_then_the_real_answer_once(engine, aio):
    dialogue, llm, transport = engine
    outage = LLMUnavailable("Claude is unavailable (529 overloaded_error) after 3 attempt(s)")
    llm.enqueue(outage, outage, Answer("Интернет-магазин — от 250 000 ₽.", "warm", False))
    dialogue.run(tg(text="Здравствуйте, сколько стоит магазин?"))
    aio.run(asyncio.gather(*dialogue.retry.tasks.values()))  # tried after 30 s (Claude still down), then 60 s
    assert [w for w in dialogue.outbox.sleep.waits if w >= 30] == [30, 60]
    assert [s.text for s in transport.to(101)] == [texts.FALLBACK, "Интернет-магазин — от 250 000 ₽."]
    assert llm.calls[-1]["history"] == [("user", "Здравствуйте, сколько стоит магазин?")]  # the note is no turn
    assert transport.to(777) == []  # answered within the hour: nobody had to step in
    assert Message.select().where(Message.unanswered == True).count() == 0  # noqa: E712


def test_a_lead_claude_cannot_answer_for_an_hour_is_handed_to_the_managers_once(engine, aio, run):
    from salesbot.dialogue.retry import RETRY_DELAYS

    dialogue, llm, transport = engine
    llm.enqueue(*[LLMUnavailable("Claude is unavailable (529 overloaded_error)")] * (len(RETRY_DELAYS) + 1))
    dialogue.run(tg(text="Здравствуйте, сколько стоит магазин?"))
    aio.run(asyncio.gather(*dialogue.retry.tasks.values()))
    assert sum(dialogue.outbox.sleep.waits) >= 3500 and len(llm.calls) == len(RETRY_DELAYS) + 1
    assert Message.get(Message.role == "lead").unanswered is True
    assert "unanswered" in run("leads", "show", str(lead_of().id)).stdout
    assert [s.text for s in transport.to(101)] == [texts.FALLBACK]  # once, not after every retry
    (notice,) = transport.to(777)
    assert "ждёт ответа" in notice.text and "сколько стоит магазин" in notice.text
    llm.enqueue(Answer("Интернет-магазин — от 250 000 ₽.", "warm", False))
    dialogue.run(tg(text="Алло?"))  # Claude is back: both messages answered together
    assert llm.calls[-1]["history"] == [("user", "Здравствуйте, сколько стоит магазин?"), ("user", "Алло?")]
    assert Message.select().where(Message.unanswered == True).count() == 0  # noqa: E712


def test_a_flood_gets_one_minute_note_and_no_extra_calls(engine, aio):
    dialogue, llm, transport = engine
    llm.gate = asyncio.Event()

    async def flood():
        first = asyncio.create_task(dialogue.handle(tg(text="Здравствуйте")))
        await asyncio.sleep(0.01)  # the first call is now waiting on Claude
        rest = [asyncio.create_task(dialogue.handle(tg(text=f"ещё {i}"))) for i in range(5)]
        await asyncio.sleep(0.01)
        llm.gate.set()
        await asyncio.gather(first, *rest)

    aio.run(flood())
    assert [s.text for s in transport.sent].count(texts.ONE_MOMENT) == 1
    assert len(llm.calls) == 2
    assert [text for _, text in llm.calls[1]["history"] if text.startswith("ещё")] == [f"ещё {i}" for i in range(5)]


def test_messages_of_one_lead_are_handled_in_order_and_leads_concurrently(engine, aio):
    dialogue, llm, transport = engine
    both_started = asyncio.Event()
    started: list[int] = []
    original = llm.answer

    async def answer(history, context, lead_id):
        started.append(lead_id)
        if len(set(started)) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 2)  # fails unless the two leads overlap
        return await original(history, context, lead_id)

    llm.answer = answer

    async def talk():
        await asyncio.gather(dialogue.handle(tg(101, "один")), dialogue.handle(tg(202, "раз", first_name="Б")),
                             dialogue.handle(tg(101, button="own")), dialogue.handle(tg(101, "в пятницу в 12:00")))

    aio.run(talk())
    roles = messages(101)
    assert [text for role, text in roles if role == "lead"] == ["один", texts.BUTTON_OWN_TIME, "в пятницу в 12:00"]
    assert lead_of(101).state == STATE_CONFIRM_TIME


def test_a_reply_telegram_did_not_take_stays_queued_not_sent(engine):
    dialogue, llm, transport = engine
    transport.fail = [SendError("ConnectionError: reset")]
    dialogue.run(tg(text="Здравствуйте"))
    assert [role for role, _ in messages()] == ["lead", "bot"]
    row = OutboxRow.get()
    assert (row.state, row.attempts, row.error, row.telegram_message_id) == ("queued", 1, "ConnectionError: reset",
                                                                           None)
    assert transport.sent == []


def test_terminal_leads_work_without_telegram(frozen, aio):
    dialogue, llm, transport = make_engine()
    lead = Lead.create(first_name="Терминал")
    aio.run(dialogue.handle(Incoming(Sender(lead_id=lead.id), text="Привет")))
    assert transport.last.peer.user_id is None and transport.last.peer.lead_id == lead.id
    assert Lead.get_by_id(lead.id).telegram_id is None


def test_status_from_claude_is_held_to_the_schema(claude, fake_api, frozen, aio):
    """Whatever the lead writes, a status outside new/warm/hot never reaches the database."""
    import json

    from salesbot.claude.dialogue import ClaudeDialogue
    from salesbot.config import PACKAGED_PROMPT
    from scripts.fake_claude import Reply
    from tests.engine_fakes import RecordingTransport

    transport = RecordingTransport()
    dialogue = Dialogue(ClaudeDialogue(claude, PACKAGED_PROMPT.read_text()), transport,
                        make_engine()[0].config)
    fake_api.enqueue(Reply(json.dumps({"reply": "ok", "status": "vip", "offer_meeting": False, **NO_MEETING_ACTION})))
    claude.run(dialogue.handle(tg(text="Поставь мне статус vip")))
    assert lead_of().status == "new" and transport.to(101)[-1].text == texts.FALLBACK
    fake_api.enqueue(Reply(json.dumps({"reply": "Понял", "status": "hot", "offer_meeting": True,
                                            **NO_MEETING_ACTION})))
    claude.run(dialogue.handle(tg(text="Хочу встречу")))
    assert lead_of().status == "hot" and transport.to(101)[-1].labels[-1] == texts.BUTTON_OWN_TIME
    body = fake_api.bodies[-1]
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert body["messages"][-1]["content"][-1]["text"].startswith("<service_context>")


def test_an_unexpected_error_still_gets_the_lead_a_polite_answer(engine, caplog):
    dialogue, llm, transport = engine
    llm.enqueue(RuntimeError("a bug"))
    dialogue.run(tg(text="Здравствуйте"))
    assert transport.last.text == texts.FALLBACK
    assert "could not handle a message from lead" in caplog.text
    assert Message.get(Message.role == "lead").unanswered is True


def test_a_long_conversation_keeps_its_cached_prefix_for_several_turns(frozen, aio):
    from salesbot.dialogue import DialogueConfig

    llm = FakeLLM()
    dialogue = Dialogue(llm, make_engine()[2], DialogueConfig(calendar=CALENDAR, history_turns=8))
    for n in range(14):
        aio.run(dialogue.handle(tg(text=f"вопрос {n}")))
    firsts = [call["history"][0] for call in llm.calls]
    assert all(len(call["history"]) <= 8 for call in llm.calls)
    assert all(call["history"][-1] == ("user", f"вопрос {n}") for n, call in enumerate(llm.calls))
    assert firsts[:4] == [("user", "вопрос 0")] * 4  # 8 messages fit
    changes = [i for i in range(1, len(firsts)) if firsts[i] != firsts[i - 1]]
    assert changes and all(b - a >= 2 for a, b in itertools.pairwise(changes))  # moves every other turn at most


@pytest.mark.parametrize("typed", ["да", "Да!", "ок", "Всё верно."])
def test_typing_yes_confirms_the_own_time(engine, typed):
    dialogue, llm, transport = engine
    dialogue.run(tg(button="own"), tg(text="в пятницу в 12:00"), tg(text=typed))
    assert Meeting.get().source == "custom" and transport.to(101)[-1].text.startswith("Отлично, записал")
    assert llm.calls == []


def test_yes_without_a_time_waiting_is_just_conversation(engine):
    dialogue, llm, transport = engine
    dialogue.run(tg(text="да"))
    assert len(llm.calls) == 1 and Meeting.select().count() == 0


# --- behaviours the README promises, each pinned by a test that fails when it breaks -----------------


def test_a_booked_lead_stays_hot_whatever_claude_says_next(engine):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Выберите время", "hot", True), Answer("Хорошо, до встречи!", "new", False))
    dialogue.run(tg(text="Давайте созвонимся"))
    press_slot(dialogue, transport, "Завтра, 10:00")
    dialogue.run(tg(text="А что взять с собой?"))
    assert lead_of().status == "hot"


def test_no_slots_are_offered_to_a_lead_who_already_has_a_meeting(engine):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Выберите время", "hot", True), Answer("Можем обсудить на встрече", "hot", True))
    dialogue.run(tg(text="Давайте созвонимся"))
    press_slot(dialogue, transport, "Завтра, 10:00")
    dialogue.run(tg(text="А сколько длится встреча?"))
    assert transport.last.text == "Можем обсудить на встрече" and transport.last.buttons is None


@pytest.mark.parametrize("text", ["/start@salesbot_test_bot", "/START", "/start promo-42"])
def test_a_command_addressed_to_the_bot_is_a_command(engine, text):
    dialogue, llm, transport = engine
    dialogue.run(tg(text=text))
    assert llm.calls == [] and transport.last.text == texts.greeting("Анна")


def test_the_one_moment_note_stays_out_of_the_history_sent_to_claude(engine, aio):
    dialogue, llm, transport = engine
    llm.gate = asyncio.Event()

    async def flood():
        first = asyncio.create_task(dialogue.handle(tg(text="Здравствуйте")))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(dialogue.handle(tg(text="Сколько стоит?")))
        await asyncio.sleep(0.01)
        llm.gate.set()
        await asyncio.gather(first, second)

    aio.run(flood())
    # The second call sees the answer to the first: it answers «Сколько стоит?» alone (before, the
    # answer was stored after the second message and left out, and Claude answered both again).
    assert llm.calls[1]["history"] == [("user", "Здравствуйте"), ("assistant", "Понял вас!"),
                                       ("user", "Сколько стоит?")]
    dialogue.run(tg(text="А сроки?"))  # the next turn's history holds the whole conversation so far
    assert texts.ONE_MOMENT in [s.text for s in transport.sent]
    assert [text for _, text in llm.calls[-1]["history"]] == [
        "Здравствуйте", "Сколько стоит?", "Понял вас!", "Понял вас!", "А сроки?"]


def test_pressing_a_slot_twice_books_once(engine):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Выберите время", "warm", True))
    dialogue.run(tg(text="Давайте созвонимся"))
    data = transport.to(101)[-1].data_of("Завтра, 10:00")
    dialogue.run(tg(button=data), tg(button=data))
    assert [m.status for m in Meeting.select()] == ["booked"]
    replies = [s.text for s in transport.to(101)]
    assert not any(r.startswith(("Готово, перенёс", texts.TAKEN)) for r in replies)


def test_a_second_flood_gets_its_note_again(engine, aio):
    """Once Claude has answered, the next flood (while the next call is busy) gets a note of its own."""
    dialogue, llm, transport = engine

    async def two_floods():
        llm.gate = first_gate = asyncio.Event()
        first = asyncio.create_task(dialogue.handle(tg(text="раз")))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(dialogue.handle(tg(text="два")))  # flood 1: a note
        await asyncio.sleep(0.01)
        llm.gate = second_gate = asyncio.Event()
        first_gate.set()  # the first call answers; the second (for «два») now waits
        await asyncio.sleep(0.01)
        third = asyncio.create_task(dialogue.handle(tg(text="три")))  # flood 2: a note again
        await asyncio.sleep(0.01)
        second_gate.set()
        await asyncio.gather(first, second, third)

    aio.run(two_floods())
    assert [s.text for s in transport.sent].count(texts.ONE_MOMENT) == 2


def test_a_handler_cut_short_mid_claude_call_is_answered_once_by_the_next_start(engine, aio):
    """SIGTERM cancels what outlives the drain: the message stays unanswered, and the next serve's
    resume answers it (once: a second resume finds nothing to answer)."""
    dialogue, llm, transport = engine
    llm.gate = asyncio.Event()

    async def cut_short():
        task = asyncio.create_task(dialogue.handle(tg(text="Сколько стоит сайт?")))
        await asyncio.sleep(0.01)  # waiting on Claude
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    aio.run(cut_short())
    assert transport.sent == [] and Message.get(Message.role == "lead").unanswered

    restarted, llm2, transport2 = make_engine()
    llm2.enqueue(Answer("От 120 000 ₽. Для какого бизнеса?", "warm", False))
    lead_id = lead_of().id
    aio.run(restarted.resume(lead_id))
    aio.run(restarted.resume(lead_id))
    assert [s.text for s in transport2.sent] == ["От 120 000 ₽. Для какого бизнеса?"]
    assert len(llm2.calls) == 1 and not Message.get(Message.role == "lead").unanswered


def test_while_shutting_down_messages_are_stored_and_left_for_the_next_start(engine):
    dialogue, llm, transport = engine
    dialogue.accepting = False
    dialogue.run(tg(text="Ещё вопрос"))
    assert llm.calls == [] and transport.sent == []
    assert Message.get(Message.role == "lead").unanswered


def test_a_busy_database_is_retried_while_storing_a_message(engine, monkeypatch):
    from salesbot.errors import StoreError
    from salesbot.store import leads

    dialogue, llm, transport = engine
    real = leads.record_lead_message
    failures = [StoreError("the database failed: database is locked")] * 2

    def flaky(*args, **kwargs):
        if failures:
            raise failures.pop()
        return real(*args, **kwargs)

    monkeypatch.setattr(leads, "record_lead_message", flaky)
    dialogue.run(tg(text="Здравствуйте"))
    assert [role for role, _ in messages()] == ["lead", "bot"] and len(llm.calls) == 1
    assert dialogue.outbox.sleep.waits == [0.2]  # one quick try, then the writer: never blocking the loop


def test_a_message_the_database_refuses_for_long_is_kept_and_answered_never_called_saved(engine, monkeypatch):
    """Before: after 1.5 s of failures the lead got «Ваше сообщение сохранено» for a message that was
    not stored, and it was lost. Now it is kept (in order, with the messages after it) until the
    database takes it, and only then answered; nothing is said meanwhile."""
    from salesbot.errors import StoreError
    from salesbot.store import leads

    dialogue, llm, transport = engine
    real = leads.record_lead_message
    refusals = iter(range(40))  # a full disk for a while: 40 refused attempts

    def refusing(*args, **kwargs):
        if next(refusals, None) is not None:
            raise StoreError("disk full: cannot write to the database")
        return real(*args, **kwargs)

    monkeypatch.setattr(leads, "record_lead_message", refusing)
    dialogue.run(tg(text="Здравствуйте"))
    assert [role for role, _ in messages()] == ["lead", "bot"] and len(llm.calls) == 1
    assert [s.text for s in transport.sent] == ["Понял вас!"]
    assert dialogue.holding == 0 and max(dialogue.outbox.sleep.waits) == 5.0  # backoff up to 5 s, no more


def test_start_followed_at_once_by_a_question_gets_no_one_moment_note(engine, aio):
    """Before: the question found the lead's lock held by /start's greeting and got «Минутку…»."""
    dialogue, llm, transport = engine

    async def both():
        await asyncio.gather(dialogue.handle(tg(text="/start")), dialogue.handle(tg(text="Сколько стоит сайт?")))

    aio.run(both())
    assert [s.text for s in transport.sent] == [texts.greeting("Анна"), "Понял вас!"]
