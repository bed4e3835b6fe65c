"""Issue 15: the bot's Russian as a lead reads it, and the business's own words from a TOML file."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from salesbot import texts
from salesbot.config import load_settings, load_texts
from salesbot.errors import ConfigError

MOSCOW = ZoneInfo("Europe/Moscow")
TODAY = date(2025, 11, 24)  # a Monday


@pytest.mark.parametrize("moment, zone, says", [
    (datetime(2025, 11, 26, 11, 0), MOSCOW, "в среду, 26 ноября, в 11:00 по московскому времени"),
    (datetime(2025, 11, 24, 15, 30), MOSCOW, "сегодня, в 15:30 по московскому времени"),
    (datetime(2025, 11, 25, 10, 0), MOSCOW, "завтра, 25 ноября, в 10:00 по московскому времени"),
    (datetime(2025, 12, 2, 10, 0), MOSCOW, "во вторник, 2 декабря, в 10:00 по московскому времени"),
    (datetime(2026, 1, 5, 10, 0), MOSCOW, "в понедельник, 5 января 2026 года, в 10:00 по московскому времени"),
    (datetime(2025, 11, 27, 9, 0), ZoneInfo("Asia/Yekaterinburg"), "в четверг, 27 ноября, в 09:00 (UTC+5)"),
    (datetime(2025, 11, 27, 9, 0), ZoneInfo("America/St_Johns"), "в четверг, 27 ноября, в 09:00 (UTC−3:30)"),
])
def test_a_meeting_time_as_a_lead_reads_it(moment, zone, says):
    text = texts.meeting_time(moment.replace(tzinfo=zone), TODAY)
    assert text == says
    assert "/" not in text  # no IANA zone names


def test_slot_labels_say_today_and_tomorrow():
    at = lambda *a: datetime(*a, tzinfo=MOSCOW)  # noqa: E731
    assert texts.slot_label(at(2025, 11, 24, 17, 0), TODAY) == "Сегодня, 17:00"
    assert texts.slot_label(at(2025, 11, 25, 10, 0), TODAY) == "Завтра, 10:00"
    assert texts.slot_label(at(2025, 11, 27, 10, 0), TODAY) == "Чт, 27 ноя, 10:00"
    assert texts.slot_label(at(2026, 1, 5, 10, 0), date(2025, 12, 30)) == "Пн, 5 янв 2026, 10:00"


def test_a_days_slots_name_the_day_with_its_preposition():
    assert texts.period_slots(texts.day_phrase(date(2025, 11, 27), TODAY), "10:00", "19:00") == \
        "Свободное время — в четверг, 27 ноября, с 10:00 до 19:00:"
    assert texts.days_slots(date(2025, 12, 29), date(2026, 1, 4), "10:00", "19:00", whole_day=True) == \
        "Свободное время с 29 декабря по 4 января:"


def test_greeting_without_a_made_up_name_and_with_the_consultation_length():
    assert texts.greeting(texts.CHAT_GUEST).startswith("Здравствуйте! 👋 Я виртуальный ассистент. Расскажите")
    assert texts.greeting("Анна").startswith("Здравствуйте, Анна!")
    assert "бесплатную консультацию на час" in texts.greeting(None)
    texts.configure(slot_minutes=45)
    assert "бесплатную консультацию на 45 минут" in texts.greeting(None)


def test_the_packaged_prompt_and_the_default_slot_length_agree():
    from salesbot.config import OPTIONS, PACKAGED_PROMPT

    minutes = int(next(o.default for o in OPTIONS if o.env == "SALESBOT_SLOT_MINUTES"))
    prompt = PACKAGED_PROMPT.read_text(encoding="utf-8")
    assert f"консультацию {texts.duration(minutes)}" in prompt
    assert "30–40 минут" not in prompt


def write_texts(tmp_path, body):
    path = tmp_path / "texts.toml"
    path.write_text(body, encoding="utf-8")
    return load_settings({"SALESBOT_HOME": str(tmp_path), "SALESBOT_TEXTS_FILE": "texts.toml"}, tmp_path)


def test_the_business_words_from_a_toml_file(tmp_path):
    settings = write_texts(tmp_path, 'company = "Пиксель"\nconsultation = "разбор проекта {duration}"\n'
                                     'follow_up_1 = "{hello} Остались вопросы?"\n')
    texts.configure(load_texts(settings), 30)
    assert texts.greeting(None) == ("Здравствуйте! 👋 Я ассистент компании «Пиксель». Расскажите, что вас "
                                    "интересует, — отвечу на вопросы и помогу записаться на разбор проекта на "
                                    "30 минут.")
    assert texts.follow_up(1, "Анна") == "Здравствуйте, Анна! Остались вопросы?"
    texts.configure()
    assert "Пиксель" not in texts.greeting(None)


@pytest.mark.parametrize("body, says", [
    ('compnay = "Пиксель"\n', "unknown key 'compnay' (did you mean company?)"),
    ('greeting = "Привет, {lead}!"\n', "greeting: unknown placeholder {lead} (allowed: {assistant}, {company}, "
                                       "{consultation}, {name})"),
    ('greeting = 5\n', "greeting: expected a text in quotes"),
    ('greeting = "Привет\n', "is not valid TOML"),
])
def test_a_bad_texts_file_is_one_clear_error(tmp_path, body, says):
    settings = write_texts(tmp_path, body)
    with pytest.raises(ConfigError, match="SALESBOT_TEXTS_FILE") as caught:
        load_texts(settings)
    assert says in str(caught.value)


def test_serve_refuses_a_bad_texts_file_before_telegram(run, monkeypatch, tmp_path, salesbot_home):
    from tests.test_cli_serve import TELEGRAM

    for key, value in TELEGRAM.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-serve-test-123456")
    salesbot_home.mkdir()
    (salesbot_home / "texts.toml").write_text('greting = "x"\n', encoding="utf-8")
    monkeypatch.setenv("SALESBOT_TEXTS_FILE", "texts.toml")
    assert "unknown key 'greting'" in run("serve", code=78).stderr


def test_cancel_with_nothing_to_cancel_says_so(aio, db):
    from tests.engine_fakes import make_engine, tg

    dialogue, llm, transport = make_engine()
    aio.run(dialogue.handle(tg(text="/cancel")))
    assert transport.last.text == texts.NOTHING_TO_CANCEL
    assert not llm.calls


def test_the_readme_example_texts_file_is_accepted(tmp_path):
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    settings = write_texts(tmp_path, example)
    texts.configure(load_texts(settings), 60)
    assert "«Пиксель»" in texts.greeting("Анна") and "разбор проекта на час" in texts.greeting("Анна")


@pytest.mark.parametrize("typed", ["все верно", "Всё верно!", "ВСЕ ВЕРНО", "да, все верно", "  всё   верно . "])
def test_confirm_words_match_with_e_or_yo_case_spaces_and_end_punctuation(typed):
    from salesbot.dialogue.turn import said

    assert said(typed, texts.CONFIRM_WORDS)
    assert not said(typed.lower().replace("верно", "неверно"), texts.CONFIRM_WORDS)


def test_word_lists_hold_each_word_once_whatever_its_e_or_yo():
    """A word listed with ё and again with е would hide a broken ё/е match (round 3's review)."""
    for words in (texts.CANCEL_WORDS, texts.CONFIRM_WORDS, texts.CANCEL_YES_WORDS, texts.CANCEL_NO_WORDS,
                  texts.DECLINE_WORDS):
        assert len({w.replace("ё", "е") for w in words}) == len(words), sorted(words)


def test_every_text_a_lead_reads_can_be_overridden(run, db, tmp_path, monkeypatch):
    """Before: only 7 texts (company, greeting, consultation, the follow-ups) could be replaced; a
    clinic could not say «приём» or give its address in the booking confirmation."""
    from salesbot import texts

    texts_file = tmp_path / "texts.toml"
    texts_file.write_text('consultation = "бесплатный приём {duration}"\n'
                          'booked = "Записали вас на приём: {when}. Адрес: ул. Лесная, 5."\n'
                          'meeting_reminder = "{hello} Напоминаю о приёме: {when}."\n'
                          'button_meeting_confirm = "Приду"\n', encoding="utf-8")
    monkeypatch.setenv("SALESBOT_TEXTS_FILE", str(texts_file))
    monkeypatch.setenv("SALESBOT_PROMPT_FILE", str(tmp_path / "clinic.md"))
    (tmp_path / "clinic.md").write_text("Ты — администратор клиники.", encoding="utf-8")
    from freezegun import freeze_time

    with freeze_time("2025-12-23 11:05:00", real_asyncio=True):  # Tuesday 14:05 in Moscow
        out = run("chat", "--demo", input="Здравствуйте\nБолит зуб\nХочу записаться\n1\n").stdout
    assert "Записали вас на приём: сегодня, в 17:00 по московскому времени. Адрес: ул. Лесная, 5." in out
    assert "1) Приду" in out
    assert texts.meeting_reminder("Анна", "завтра") == "Здравствуйте, Анна! Напоминаю о приёме: завтра."
    lead_facing = {"booked", "rebooked", "meeting_reminder", "no_show_offer", "staff_moved", "staff_cancelled",
                   "confirm_own_time", "ask_cancel", "meeting_kept", "too_far", "hello", "fallback", "choose_slot"}
    assert lead_facing <= set(texts.OVERRIDABLE)
    texts_file.write_text('booked = "Записали: {whenn}"\n', encoding="utf-8")
    assert "unknown placeholder {whenn} (allowed: {when})" in run("chat", "--demo", input="", code=1).stderr
