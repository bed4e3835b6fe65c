"""Meetings after booking, through the engine: confirm, move (by button and by words), cancel, rebook;
a time written in the conversation; a part of the day; «нет» to the confirm question."""

from datetime import datetime

import pytest
from freezegun import freeze_time

from salesbot import texts
from salesbot.dialogue import STATE_CONFIRM_CANCEL, STATE_CONFIRM_TIME, STATE_CUSTOM_TIME, Answer
from salesbot.store import Lead, Meeting
from tests.engine_fakes import NOW, make_engine, tg

MEETING_BUTTONS = [texts.BUTTON_MEETING_CONFIRM, texts.BUTTON_MEETING_MOVE, texts.BUTTON_MEETING_CANCEL]


@pytest.fixture
def engine(db, aio):
    with freeze_time(NOW, real_asyncio=True):
        dialogue, llm, transport = make_engine()
        dialogue.run = lambda *events: [aio.run(dialogue.handle(e)) for e in events]
        yield dialogue, llm, transport


def press(dialogue, transport, label, user_id=101):
    dialogue.run(tg(user_id, button=transport.to(user_id)[-1].data_of(label)))


def meetings() -> list[tuple[str, datetime, int | None]]:
    return [(m.status, m.starts_at, m.moved_to) for m in Meeting.select().order_by(Meeting.id)]


def lead_of(user_id=101) -> Lead:
    return Lead.get(Lead.telegram_id == user_id)


def test_book_move_by_button_move_by_words_cancel_and_book_again(engine):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Выберите удобное время:", "warm", True))
    dialogue.run(tg(text="Давайте созвонимся"))
    press(dialogue, transport, "Завтра, 10:00")
    booked = transport.to(101)[-1]
    assert booked.text == texts.booked("завтра, 24 декабря, в 10:00 по московскому времени")
    assert booked.labels == MEETING_BUTTONS

    # «Перенести»: the slots again (not the lead's own), and the new time replaces the meeting
    press(dialogue, transport, texts.BUTTON_MEETING_MOVE)
    offer = transport.to(101)[-1]
    assert offer.text == texts.CHOOSE_NEW_TIME
    assert offer.labels == ["Сегодня, 17:00", "Сегодня, 18:00", "Завтра, 11:00", "Завтра, 15:00",
                            "Чт, 25 дек, 10:00", "Чт, 25 дек, 14:00", texts.BUTTON_OWN_TIME]
    press(dialogue, transport, "Чт, 25 дек, 10:00")
    assert transport.to(101)[-1].text == texts.rebooked("в четверг, 25 декабря, в 10:00 по московскому времени")
    assert transport.to(101)[-1].labels == MEETING_BUTTONS
    second = Meeting.get(Meeting.status == "booked").id
    assert meetings() == [("cancelled", datetime(2025, 12, 24, 7, 0), second), ("booked", datetime(2025, 12, 25, 7, 0),
                                                                                  None)]
    assert transport.to(777)[-1].text.startswith("🔁 Клиент перенёс встречу: Анна (@anna)")

    # by words: Claude names the wish and the phrase, the engine asks, «да» books; Claude never booked
    llm.enqueue(Answer("Конечно, сейчас проверю.", "hot", False, meeting_action="move",
                       proposed_time="в пятницу в 11"))
    dialogue.run(tg(text="А можно перенести на пятницу в 11?"))
    assert transport.to(101)[-1].text == ("Конечно, сейчас проверю.\n\n"
                                          "Правильно понял: в пятницу, 26 декабря, в 11:00 по московскому времени?")
    assert [m[0] for m in meetings()] == ["cancelled", "booked"]  # nothing booked before the lead confirms
    dialogue.run(tg(text="да"))
    assert transport.to(101)[-1].text == texts.rebooked("в пятницу, 26 декабря, в 11:00 по московскому времени")
    assert [(m[0], m[1]) for m in meetings()][1:] == [("cancelled", datetime(2025, 12, 25, 7, 0)),
                                                      ("booked", datetime(2025, 12, 26, 8, 0))]

    # «Отменить» asks once, then frees the slot
    press(dialogue, transport, texts.BUTTON_MEETING_CANCEL)
    question = transport.to(101)[-1]
    assert question.text == texts.ask_cancel("в пятницу, 26 декабря, в 11:00 по московскому времени")
    assert question.labels == [texts.BUTTON_CANCEL_YES, texts.BUTTON_CANCEL_NO]
    assert Meeting.select().where(Meeting.status == "booked").count() == 1
    press(dialogue, transport, texts.BUTTON_CANCEL_YES)
    assert transport.to(101)[-1].text == texts.meeting_cancelled(
        "в пятницу, 26 декабря, в 11:00 по московскому времени")
    assert [m[0] for m in meetings()] == ["cancelled"] * 3
    assert Meeting.get_by_id(3).cancelled_by == "lead"
    assert transport.to(777)[-1].text.startswith("❌ Клиент отменил встречу: Анна (@anna)")

    # and booking again is a new booking, on the freed slots
    llm.enqueue(Answer("Давайте выберем новое время:", "hot", True))
    dialogue.run(tg(text="Всё-таки давайте встретимся"))
    assert "Завтра, 10:00" in transport.to(101)[-1].labels  # the first meeting's slot is free again
    press(dialogue, transport, "Завтра, 14:00")
    assert transport.to(101)[-1].text == texts.booked("завтра, 24 декабря, в 14:00 по московскому времени")
    assert [m[0] for m in meetings()] == ["cancelled"] * 3 + ["booked"]
    assert transport.to(777)[-1].text.startswith("📅 Новая встреча")
    assert lead_of().status == "hot"


def book_wednesday_10(dialogue, llm, transport):
    llm.enqueue(Answer("Выберите время", "warm", True))
    dialogue.run(tg(text="созвонимся?"))
    press(dialogue, transport, "Завтра, 10:00")
    return Meeting.get(Meeting.status == "booked")


def test_confirm_is_stored_and_managers_hear_of_it_once(engine):
    dialogue, llm, transport = engine
    meeting = book_wednesday_10(dialogue, llm, transport)
    notices = len(transport.to(777))
    data = transport.to(101)[-1].data_of(texts.BUTTON_MEETING_CONFIRM)
    dialogue.run(tg(button=data))
    assert Meeting.get_by_id(meeting.id).confirmed_at == datetime(2025, 12, 23, 11, 5)
    assert transport.to(101)[-1].text == texts.meeting_confirmed("завтра, 24 декабря, в 10:00 по московскому времени")
    assert transport.to(777)[-1].text.startswith("✅ Клиент подтвердил встречу: Анна (@anna)")
    dialogue.run(tg(button=data))  # the same button again (a reminder's, say): thanked, managers not told twice
    assert len(transport.to(777)) == notices + 1


def test_cancel_by_words_asks_once_and_no_keeps_it(engine):
    dialogue, llm, transport = engine
    meeting = book_wednesday_10(dialogue, llm, transport)
    llm.enqueue(Answer("Понимаю.", "hot", False, meeting_action="cancel"))
    dialogue.run(tg(text="Отмените, пожалуйста, встречу"))
    assert transport.to(101)[-1].text == ("Понимаю.\n\n"
                                          + texts.ask_cancel("завтра, 24 декабря, в 10:00 по московскому времени"))
    assert lead_of().state == STATE_CONFIRM_CANCEL and Meeting.get_by_id(meeting.id).status == "booked"
    dialogue.run(tg(text="нет"))
    assert transport.to(101)[-1].text == texts.meeting_kept("завтра, 24 декабря, в 10:00 по московскому времени")
    assert transport.to(101)[-1].labels == MEETING_BUTTONS
    assert lead_of().state is None and Meeting.get_by_id(meeting.id).status == "booked"
    llm.enqueue(Answer("Хорошо.", "hot", False, meeting_action="cancel"))
    dialogue.run(tg(text="Нет, всё же отмените"), tg(text="Да"))
    assert Meeting.get_by_id(meeting.id).status == "cancelled" and lead_of().state is None
    assert len(llm.calls) == 3  # the answers to the question never went to Claude


def test_move_by_words_without_a_time_offers_the_slots(engine):
    dialogue, llm, transport = engine
    book_wednesday_10(dialogue, llm, transport)
    llm.enqueue(Answer("Конечно!", "hot", False, meeting_action="move"))
    dialogue.run(tg(text="Можно перенести встречу?"))
    assert transport.to(101)[-1].text == f"Конечно!\n\n{texts.CHOOSE_NEW_TIME}"
    assert transport.to(101)[-1].labels[-1] == texts.BUTTON_OWN_TIME


def test_a_button_of_a_meeting_that_is_gone_changes_nothing(engine):
    dialogue, llm, transport = engine
    first = book_wednesday_10(dialogue, llm, transport)
    stale_cancel = transport.to(101)[-1].data_of(texts.BUTTON_MEETING_CANCEL)
    press(dialogue, transport, texts.BUTTON_MEETING_MOVE)
    press(dialogue, transport, "Чт, 25 дек, 10:00")
    dialogue.run(tg(button=stale_cancel))  # «Отменить» on the moved meeting's old confirmation
    assert transport.to(101)[-1].text.startswith(texts.MEETING_GONE)
    assert "в четверг, 25 декабря, в 10:00" in transport.to(101)[-1].text
    assert Meeting.get_by_id(first.id).status == "cancelled"
    assert Meeting.select().where(Meeting.status == "booked").count() == 1
    other = Lead.create(telegram_id=5, first_name="Чужой")
    foreign = Meeting.create(lead=other, starts_at=datetime(2025, 12, 29, 7, 0), source="slot")
    dialogue.run(tg(button=f"mxy:{foreign.id}"))  # someone else's meeting: forged or mixed up
    assert Meeting.get_by_id(foreign.id).status == "booked"


def test_a_time_written_in_the_conversation_goes_to_the_confirm_step(engine):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Отлично, давайте!", "hot", False, proposed_time="давайте в пятницу в 11"))
    dialogue.run(tg(text="давайте в пятницу в 11"))
    assert transport.to(101)[-1].text.endswith(
        "Правильно понял: в пятницу, 26 декабря, в 11:00 по московскому времени?")
    assert transport.to(101)[-1].labels == [texts.BUTTON_CONFIRM, texts.BUTTON_OTHER]
    assert lead_of().state == STATE_CONFIRM_TIME and Meeting.select().count() == 0
    # a time that is not about the meeting, or not readable, is just conversation
    llm.enqueue(Answer("Мы работаем по будням.", "warm", False, proposed_time="когда-нибудь"))
    dialogue.run(tg(text="отмена"), tg(text="Вы когда-нибудь работаете?"))
    assert transport.to(101)[-1].text == "Мы работаем по будням." and transport.to(101)[-1].buttons is None


def test_a_taken_time_in_the_conversation_says_so_with_slots_around_it(engine):
    dialogue, llm, transport = engine
    other = Lead.create(telegram_id=5, first_name="Другой")
    Meeting.create(lead=other, starts_at=datetime(2025, 12, 24, 7, 0), source="slot")  # Wed 10:00
    llm.enqueue(Answer("Сейчас посмотрю.", "hot", False, proposed_time="завтра в 10"))
    dialogue.run(tg(text="Можно завтра в 10?"))
    answer = transport.to(101)[-1]
    assert answer.text == f"Сейчас посмотрю.\n\n{texts.TAKEN} {texts.NEAREST_SLOTS}"
    assert answer.labels[:4] == ["Сегодня, 17:00", "Сегодня, 18:00", "Завтра, 11:00", "Завтра, 12:00"]
    assert lead_of().state == STATE_CUSTOM_TIME


def test_no_to_the_confirm_question_asks_for_another_time(engine):
    dialogue, llm, transport = engine
    dialogue.run(tg(button="own"), tg(text="в пятницу в 12"), tg(text="Нет"))
    assert transport.to(101)[-1].text == texts.ANOTHER_TIME
    assert transport.to(101)[-1].text.startswith("Хорошо, напишите другое время")
    assert transport.to(101)[-1].labels[0] == "Сегодня, 17:00"
    assert lead_of().state == STATE_CUSTOM_TIME and Meeting.select().count() == 0
    dialogue.run(tg(text="в пятницу в 15"))
    assert transport.to(101)[-1].text == "Правильно понял: в пятницу, 26 декабря, в 15:00 по московскому времени?"
    assert llm.calls == []


@pytest.mark.parametrize("phrase, says, offered", [
    ("в пятницу после обеда", "Свободное время — в пятницу, 26 декабря, с 14:00 до 18:00:",
     ["Пт, 26 дек, 14:00", "Пт, 26 дек, 15:00", "Пт, 26 дек, 16:00", "Пт, 26 дек, 17:00"]),
    ("завтра утром", "Свободное время — завтра, 24 декабря, с 10:00 до 12:00:", ["Завтра, 11:00"]),
    ("вечером", "Свободное время — сегодня, с 18:00 до 19:00:", ["Сегодня, 18:00"]),
    ("в субботу утром", "В субботу, 27 декабря, с 10:00 до 12:00, свободного времени нет. Вот ближайшее:",
     ["Пт, 26 дек, 17:00", "Пт, 26 дек, 18:00", "Пн, 29 дек, 10:00", "Пн, 29 дек, 11:00"]),
])
def test_a_part_of_the_day_offers_the_free_slots_in_it(engine, phrase, says, offered):
    dialogue, llm, transport = engine
    other = Lead.create(telegram_id=5, first_name="Другой")
    Meeting.create(lead=other, starts_at=datetime(2025, 12, 24, 7, 0), source="slot")  # Wed 10:00
    dialogue.run(tg(button="own"), tg(text=phrase))
    assert transport.to(101)[-1].text == says
    assert transport.to(101)[-1].labels == [*offered, texts.BUTTON_OWN_TIME]
    assert lead_of().state == STATE_CUSTOM_TIME


def test_a_part_of_the_day_remembers_the_day_for_the_hour(engine):
    dialogue, llm, transport = engine
    llm.enqueue(Answer("Хорошо!", "hot", False, proposed_time="в пятницу после обеда"))
    dialogue.run(tg(text="Мне удобно в пятницу после обеда"))
    assert transport.to(101)[-1].text.startswith("Хорошо!\n\nСвободное время — в пятницу, 26 декабря")
    dialogue.run(tg(text="в 16"))
    assert transport.to(101)[-1].text == "Правильно понял: в пятницу, 26 декабря, в 16:00 по московскому времени?"


def test_claude_cannot_offer_slots_to_a_lead_with_a_meeting_but_the_lead_can_still_move_it(engine):
    dialogue, llm, transport = engine
    book_wednesday_10(dialogue, llm, transport)
    llm.enqueue(Answer("Выберите время", "hot", True))
    dialogue.run(tg(text="А что взять с собой?"))
    assert transport.to(101)[-1].buttons is None
    assert "У клиента уже назначена встреча: среда, 24 декабря 2025, 10:00" in llm.calls[-1]["context"]
