"""Issue 19: the engine holds up when the model answers as a real model does — copying a range into
proposed_time, moving with no time, setting offer_meeting, a move and a time together, asking a
question while a step waits, refusing. Each case ends with a confirm question or slots (or, for a
question inside a step, Claude's answer with the step still pending). The model is scripted
(tests/engine_fakes.FakeLLM) the way the product's real prompt made it answer; times go through the
real rules."""

import json
from datetime import UTC, datetime

import pytest
from freezegun import freeze_time

from salesbot import followups, texts
from salesbot.dialogue import STATE_CONFIRM_TIME, STATE_CUSTOM_TIME, Answer, Dialogue
from salesbot.store import Lead, Meeting, Message
from tests.engine_fakes import MSK, make_engine, tg
from tests.test_conversation import lead_of, press_slot

HOT_SWEEP = followups.Policy(tz=MSK)


@pytest.fixture
def engine(frozen, aio):
    dialogue, llm, transport = make_engine()
    dialogue.run = lambda *events: [aio.run(dialogue.handle(e)) for e in events]
    return dialogue, llm, transport


def said(transport, user_id=101):
    return transport.to(user_id)[-1]


def book_wednesday_10(dialogue, llm, transport):
    llm.enqueue(Answer("Выберите время", "warm", True))
    dialogue.run(tg(text="созвонимся?"))
    press_slot(dialogue, transport, "Завтра, 10:00")
    return Meeting.get(Meeting.status == "booked")


def test_a_day_and_a_bound_copied_into_proposed_time_narrow_the_slots(engine):
    """«в четверг после 3»: the rules read a range; the lead sees Thursday's slots from 15:00 on."""
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Отлично, подберём время в четверг после 15:00.", "hot", True,
                       proposed_time="в четверг после 3"))
    dialogue.run(tg(text="Давайте созвонимся в четверг после 3"))
    last = said(transport)
    assert last.text == ("Отлично, подберём время в четверг после 15:00.\n\n"
                         "Свободное время — в четверг, 25 декабря, с 15:00 до 19:00:")
    assert last.labels == ["Чт, 25 дек, 15:00", "Чт, 25 дек, 16:00", "Чт, 25 дек, 17:00", "Чт, 25 дек, 18:00",
                           texts.BUTTON_OWN_TIME]
    dialogue.run(tg(text="в 16"))  # the day is kept: «в 16» is Thursday at 16:00
    assert said(transport).text == "Правильно понял: в четверг, 25 декабря, в 16:00 по московскому времени?"


def test_lets_do_thursday_offers_thursdays_slots_instead_of_the_same_question_twice(engine):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Давайте в четверг! Во сколько вам удобно?", "hot", True, proposed_time="в четверг"))
    dialogue.run(tg(text="Давайте в четверг"))
    last = said(transport)
    assert last.text.count("Во сколько вам удобно") == 1
    assert last.text.endswith("Свободное время — в четверг, 25 декабря, с 10:00 до 19:00:")
    assert last.labels[:2] == ["Чт, 25 дек, 10:00", "Чт, 25 дек, 11:00"]
    assert lead_of().state == STATE_CUSTOM_TIME


def test_a_move_with_no_time_offers_slots_and_a_move_with_a_range_offers_slots_inside_it(engine):
    dialogue, llm, transport = engine
    meeting = book_wednesday_10(dialogue, llm, transport)
    llm.enqueue(Answer("Конечно, перенесём.", "hot", False, meeting_action="move"))
    dialogue.run(tg(text="не получится в среду"))
    assert said(transport).text == f"Конечно, перенесём.\n\n{texts.CHOOSE_NEW_TIME}"
    assert said(transport).labels[0] == "Сегодня, 17:00"
    llm.enqueue(Answer("Конечно, перенесём на следующую неделю.", "hot", False, meeting_action="move",
                       proposed_time="на следующей неделе"))
    dialogue.run(tg(text="не получится, давайте на следующей неделе"))
    last = said(transport)
    assert last.text == "Конечно, перенесём на следующую неделю.\n\nСвободное время с 29 декабря по 4 января:"
    assert last.labels == ["Пн, 29 дек, 10:00", "Пн, 29 дек, 14:00", "Вт, 30 дек, 10:00", "Вт, 30 дек, 14:00",
                           "Ср, 31 дек, 10:00", "Ср, 31 дек, 14:00", texts.BUTTON_OWN_TIME]
    press_slot(dialogue, transport, "Вт, 30 дек, 10:00")
    assert said(transport).text.startswith("Готово, перенёс встречу: во вторник, 30 декабря")
    assert Meeting.get_by_id(meeting.id).status == "cancelled"


def test_offer_meeting_a_move_and_a_proposed_time_together_end_in_the_confirm_question(engine):
    """The documented order: a time the parser places (2) comes before the move (3) and the offer (4)."""
    dialogue, llm, transport = engine
    book_wednesday_10(dialogue, llm, transport)
    llm.enqueue(Answer("Хорошо, давайте перенесём на пятницу.", "hot", True, meeting_action="move",
                       proposed_time="в пятницу в 11"))
    dialogue.run(tg(text="Перенесите на пятницу в 11"))
    last = said(transport)
    assert last.text == ("Хорошо, давайте перенесём на пятницу.\n\n"
                         "Правильно понял: в пятницу, 26 декабря, в 11:00 по московскому времени?")
    assert last.labels == [texts.BUTTON_CONFIRM, texts.BUTTON_OTHER]
    llm.enqueue(Answer("Хорошо, подберём другое время.", "hot", True, meeting_action="move",
                       proposed_time="когда-нибудь потом"))  # a time the parser cannot place: the move decides
    dialogue.run(tg(text="отмена"), tg(text="Или давайте когда-нибудь потом"))
    assert said(transport).text == f"Хорошо, подберём другое время.\n\n{texts.CHOOSE_NEW_TIME}"
    assert said(transport).labels[-1] == texts.BUTTON_OWN_TIME


def test_a_question_while_the_confirm_question_waits_goes_to_claude_and_the_buttons_still_work(engine):
    dialogue, llm, transport = engine
    dialogue.run(tg(button="own"), tg(text="в пятницу в 12:00"))
    confirm = said(transport)
    assert lead_of().state == STATE_CONFIRM_TIME and llm.calls == []
    llm.enqueue(Answer("На созвоне будет руководитель проектов Илья.", "hot", False))
    dialogue.run(tg(text="а кто будет на созвоне?"))
    assert said(transport).text == "На созвоне будет руководитель проектов Илья."
    (call,) = llm.calls
    assert call["history"][-1] == ("user", "а кто будет на созвоне?")
    assert "Бот ждёт, что клиент подтвердит время встречи: пятница, 26 декабря 2025, 12:00" in call["context"]
    assert lead_of().state == STATE_CONFIRM_TIME  # still pending
    dialogue.run(tg(button=confirm.data_of(texts.BUTTON_CONFIRM)))
    assert Meeting.get().starts_at == datetime(2025, 12, 26, 9, 0)
    assert said(transport).text.startswith("Отлично, записал вас на встречу: в пятницу, 26 декабря, в 12:00")


def test_the_model_is_shown_the_engines_words_as_the_bots_not_its_own(engine):
    dialogue, llm, transport = engine
    dialogue.run(tg(text="/start"))
    llm.enqueue(Answer("Давайте созвонимся!", "hot", True))
    dialogue.run(tg(text="Хочу сайт"))
    press_slot(dialogue, transport, "Завтра, 10:00")
    dialogue.run(tg(text="А что подготовить?"))
    history = llm.calls[-1]["history"]
    assert history[0] == ("service", texts.greeting("Анна"))
    assert ("assistant", "Давайте созвонимся!") in history
    booked = [text for who, text in history if text.startswith("Отлично, записал вас")]
    assert booked and ("service", booked[0]) in history and not any(
        who == "assistant" and text.startswith("Отлично, записал") for who, text in history)


def test_a_refusal_makes_the_lead_lost_ends_reminders_and_writing_again_undoes_it(engine, run):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Хорошо, больше не побеспокою. Если понадобится сайт — пишите!", "lost", False))
    dialogue.run(tg(text="Не пишите мне больше"))
    assert lead_of().status == "lost"
    with freeze_time(datetime(2025, 12, 24, 12, 0)):  # a day of silence: no reminder for a lost lead
        assert followups.sweep(datetime.now(UTC), HOT_SWEEP).actions == []
    listed = json.loads(run("leads", "list", "--status", "lost", "--json").stdout)
    assert [row["status"] for row in listed] == ["lost"]
    assert "lost" in run("leads", "list").stdout and "lost" in run("leads", "show", str(lead_of().id)).stdout
    llm.enqueue(Answer("Рад, что вы вернулись!", "warm", False))
    dialogue.run(tg(text="Хотя нет, расскажите про интернет-магазин"))
    assert lead_of().status == "warm" and "Текущий статус: warm" in llm.calls[-1]["context"]


def test_statuses_move_forward_only_and_a_cancel_never_makes_a_lead_hot(engine):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Отлично!", "hot", False), Answer("Конечно.", "warm", False))
    dialogue.run(tg(text="Хочу заказать сайт"), tg(text="А какие сроки?"))
    assert lead_of().status == "hot"  # not lowered by a later «warm»
    other = Lead.create(telegram_id=202, access_hash=1, first_name="Борис", status="warm")
    Meeting.create(lead=other, starts_at=datetime(2025, 12, 24, 11, 0), source="slot")  # staff booked it
    llm.enqueue(Answer("Понимаю.", "warm", False, meeting_action="cancel"))
    dialogue.run(tg(202, "Отмените встречу", first_name="Борис"))
    assert said(transport, 202).text.startswith("Понимаю.\n\nОтменить встречу")
    assert Lead.get_by_id(other.id).status == "warm"  # the cancel question forced hot before


def test_a_lead_who_cancelled_gets_no_hot_nudge(engine):
    dialogue, llm, transport = engine
    meeting = book_wednesday_10(dialogue, llm, transport)
    dialogue.run(tg(button=said(transport).data_of(texts.BUTTON_MEETING_CANCEL)))
    dialogue.run(tg(button=said(transport).data_of(texts.BUTTON_CANCEL_YES)))
    assert Meeting.get_by_id(meeting.id).status == "cancelled" and lead_of().status == "hot"
    with freeze_time(datetime(2025, 12, 24, 12, 0)):
        (action,) = followups.sweep(datetime.now(UTC), HOT_SWEEP, dry_run=True).actions
    assert (action.nudge, action.text) == ("follow_up", texts.follow_up(1, "Анна"))


def test_leads_show_and_the_booking_notice_carry_the_summary(engine, run):
    dialogue, llm, transport = engine
    summary = "Кафе в Казани, нужен сайт с меню и доставкой; бюджет до 150 000 ₽; запуск к марту; решает владелец."
    llm.enqueue(Answer("Давайте обсудим на созвоне!", "hot", True, summary=summary))
    dialogue.run(tg(text="/start"), tg(text="Кафе в Казани, сайт с доставкой, бюджет 150к, к марту, решаю я"))
    assert lead_of().summary == summary
    press_slot(dialogue, transport, "Завтра, 10:00")
    notice = said(transport, 777).text
    assert f"Что известно о клиенте: {summary}" in notice
    assert "/start" not in notice and "Последние сообщения" not in notice
    shown = run("leads", "show", str(lead_of().id)).stdout
    assert "бюджет до 150 000 ₽" in " ".join(shown.split())
    detail = json.loads(run("leads", "show", str(lead_of().id), "--json").stdout)
    assert detail["summary"] == summary
    llm.enqueue(Answer("Хорошо.", "hot", False, summary=""))  # an empty summary keeps what was learned
    dialogue.run(tg(text="Спасибо"))
    assert lead_of().summary == summary and f"summary): {summary}" in llm.calls[-1]["context"]


def test_the_models_request_carries_the_greeting_and_the_step(claude, fake_api, frozen, aio):
    """Through the real SDK against scripts/fake_claude.py: what the model reads."""
    from salesbot.claude.dialogue import ClaudeDialogue
    from salesbot.config import PACKAGED_PROMPT
    from scripts.fake_claude import Reply
    from tests.engine_fakes import RecordingTransport

    texts.configure({"company": "Пиксель"})
    transport = RecordingTransport()
    dialogue = Dialogue(ClaudeDialogue(claude, PACKAGED_PROMPT.read_text()), transport, make_engine()[0].config)
    fake_api.enqueue(Reply(json.dumps({"status": "warm", "offer_meeting": False, "meeting_action": "none",
                                       "proposed_time": "", "summary": "Нужен лендинг.", "handoff": False,
                                       "reply": "Лендинг — от 45 000 ₽."}, ensure_ascii=False)))
    claude.run(dialogue.handle(tg(text="/start")))
    claude.run(dialogue.handle(tg(text="Сколько стоит лендинг?")))
    greeting = transport.to(101)[0].text
    assert "ассистент компании «Пиксель»" in greeting
    first = fake_api.bodies[-1]["messages"][0]
    assert first["role"] == "user"
    assert [b["text"] for b in first["content"][:2]] == [f"<service_message>{greeting}</service_message>",
                                                        "<client_message>Сколько стоит лендинг?</client_message>"]
    assert fake_api.bodies[-1]["output_config"]["format"]["schema"]["properties"]["status"]["enum"][-1] == "lost"
    assert lead_of().summary == "Нужен лендинг."
    assert Message.select().where(Message.text == "Лендинг — от 45 000 ₽.").get().model_chars == len(
        "Лендинг — от 45 000 ₽.")


def test_an_empty_company_name_reads_whole():
    texts.configure({"company": ""})
    assert texts.greeting(None).startswith("Здравствуйте! 👋 Я виртуальный ассистент. Расскажите")
    texts.configure({"company": "Пиксель"})
    assert "«Пиксель»" in texts.greeting("Анна")


def test_the_day_of_a_range_is_kept_across_a_restart(engine, aio):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Хорошо!", "hot", True, proposed_time="в пятницу до обеда"))
    dialogue.run(tg(text="в пятницу до обеда"))
    assert said(transport).text.endswith("Свободное время — в пятницу, 26 декабря, с 10:00 до 12:00:")
    restarted, _, transport2 = make_engine()
    aio.run(restarted.handle(tg(text="в 11")))
    assert transport2.last.text == "Правильно понял: в пятницу, 26 декабря, в 11:00 по московскому времени?"


def test_the_packaged_playbook_matches_the_code():
    """Every field and status the schema has is explained; nothing the code no longer sends or the
    product does not do is promised («Служебно:», «уточню у коллег»)."""
    from salesbot.claude import prompts
    from salesbot.config import PACKAGED_PROMPT

    playbook = PACKAGED_PROMPT.read_text()
    schema = prompts.DIALOGUE_SCHEMA["properties"]
    assert all(field in playbook for field in schema)
    assert all(f"- {status} —" in playbook for status in schema["status"]["enum"])
    assert "Служебно:" not in playbook and "<service_context>" in playbook and "<service_message>" in playbook
    assert "уточнишь у коллег" not in playbook and "у коллег" not in playbook
    # the lead's language: the playbook, the rules and the schema say the same
    assert "на его языке" in " ".join(playbook.split()) and "языке клиента" in prompts.DIALOGUE_RULES
    assert "client's language" in schema["reply"]["description"]


def test_a_range_is_narrowed_within_that_days_own_hours_and_holidays_are_skipped(frozen, aio):
    """Friday closes at 16:00 (SALESBOT_WORK_HOURS per day), and the 29th is a day off: «в пятницу после
    обеда» is 14:00-16:00; «на следующей неделе» starts on the 30th."""
    from dataclasses import replace
    from datetime import date, time

    from salesbot.dialogue import DialogueConfig
    from tests.engine_fakes import CALENDAR, FakeLLM, RecordingTransport, make_outbox

    calendar = replace(CALENDAR, day_hours={4: (time(10), time(16))}, days_off=frozenset({date(2025, 12, 29)}))
    llm, transport = FakeLLM(), RecordingTransport()
    dialogue = Dialogue(llm, transport, DialogueConfig(calendar=calendar, manager_ids=(777,)),
                        outbox=make_outbox(transport))
    llm.enqueue(Answer("Хорошо!", "hot", True, proposed_time="в пятницу после обеда"),
                Answer("Хорошо!", "hot", True, proposed_time="на следующей неделе"))
    aio.run(dialogue.handle(tg(text="в пятницу после обеда")))
    assert said(transport).text == "Хорошо!\n\nСвободное время — в пятницу, 26 декабря, с 14:00 до 16:00:"
    assert said(transport).labels == ["Пт, 26 дек, 14:00", "Пт, 26 дек, 15:00", texts.BUTTON_OWN_TIME]
    aio.run(dialogue.handle(tg(text="отмена")))
    aio.run(dialogue.handle(tg(text="давайте на следующей неделе")))
    assert said(transport).labels[:2] == ["Вт, 30 дек, 10:00", "Вт, 30 дек, 14:00"]


def test_offer_meeting_while_a_time_waits_for_yes_asks_that_question_again(engine):
    """Slots then would make the confirm buttons stale (a press is checked against the newest keyboard)."""
    dialogue, llm, transport = engine
    dialogue.run(tg(button="own"), tg(text="в пятницу в 12:00"))
    llm.enqueue(Answer("Консультация бесплатная и ни к чему не обязывает. Давайте запишу вас!", "hot", True))
    dialogue.run(tg(text="а это платно?"))
    last = said(transport)
    assert last.text == ("Консультация бесплатная и ни к чему не обязывает. Давайте запишу вас!\n\n"
                         "Правильно понял: в пятницу, 26 декабря, в 12:00 по московскому времени?")
    assert dialogue.press(tg(button=last.data_of(texts.BUTTON_CONFIRM))) == "new"
    dialogue.run(tg(button=last.data_of(texts.BUTTON_CONFIRM)))
    assert Meeting.get().starts_at == datetime(2025, 12, 26, 9, 0)
