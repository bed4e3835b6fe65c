import json

import pytest
from freezegun import freeze_time

from salesbot import texts
from salesbot.store import Lead, Meeting, Message
from scripts.fake_claude import Reply


def reply(text, status="warm", offer=False):
    return Reply(json.dumps({"reply": text, "status": status, "offer_meeting": offer, "meeting_action": "none",
                             "summary": "", "proposed_time": "", "handoff": False}, ensure_ascii=False))


@pytest.fixture
def api_env(fake_api, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-chat-test-000111222")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_api.url)
    return fake_api


def chat(run, lines, *args, code=0):
    with freeze_time("2025-12-23 11:05:00", real_asyncio=True):  # Tuesday 14:05 in Moscow
        return run("chat", *args, input="".join(f"{line}\n" for line in lines), code=code)


def test_chat_end_to_end_books_a_slot(run, api_env, db):
    api_env.enqueue(reply("Здравствуйте! Чем помочь?", "new"), reply("Давайте созвонимся:", "hot", True))
    result = chat(run, ["Здравствуйте", "Хочу обсудить сайт", "2"], "--lead", "Анна")
    out = result.stdout
    assert out.startswith(texts.greeting("Анна"))  # the bot speaks first, as after /start
    assert "Здравствуйте! Чем помочь?" in out
    assert ("  1) Сегодня, 17:00\n  2) Сегодня, 18:00\n  3) Завтра, 10:00\n  4) Завтра, 14:00\n"
            "  5) Чт, 25 дек, 10:00\n  6) Чт, 25 дек, 14:00\n  7) Предложить своё время") in out
    assert "Отлично, записал вас на встречу: сегодня, в 18:00 по московскому времени" in out
    lead = Lead.get(Lead.first_name == "Анна")
    assert lead.telegram_id is None and lead.status == "hot"
    assert Meeting.get().lead_id == lead.id
    assert len(api_env.bodies) == 2  # one Claude call per message line; the choice needed none
    system = api_env.bodies[0]["system"]
    assert system[-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"} and "Пиксель" in system[0]["text"]
    assert len([seen for seen in api_env.requests if seen.path.endswith("count_tokens")]) == 1  # at the start


def test_choices_by_text_and_the_own_time_path(run, api_env, db):
    api_env.enqueue(reply("Выберите время:", "hot", True))
    result = chat(run, ["Когда можно созвониться?", "предложить своё время", "в пятницу в 12:00", "Да, записать"])
    out = result.stdout
    assert texts.ASK_OWN_TIME in out
    assert "Правильно понял: в пятницу, 26 декабря, в 12:00 по московскому времени?" in out
    assert "  1) Да, записать\n  2) Выбрать другое время" in out
    assert Meeting.get().source == "custom"


def test_lead_option_continues_the_conversation(run, api_env, db):
    api_env.enqueue(reply("Первый ответ"), reply("Второй ответ"))
    chat(run, ["Привет"], "--lead", "Пётр")
    chat(run, ["Я снова тут"], "--lead", "Пётр")
    leads = list(Lead.select().where(Lead.first_name == "Пётр"))
    assert len(leads) == 1 and leads[0].messages.count() == 6  # /start and the greeting, then two turns
    user_turns = [b for b in api_env.bodies[1]["messages"] if b["role"] == "user"]
    # the conversation opens with the greeting the lead saw, as the bot's own message, then the lead's
    assert [b["text"] for b in user_turns[0]["content"]] == [
        f"<service_message>{texts.greeting('Пётр')}</service_message>", "<client_message>Привет</client_message>"]


def test_without_lead_each_session_is_a_new_guest(run, api_env, db):
    chat(run, ["Привет"])
    chat(run, ["Привет"])
    assert Lead.select().where(Lead.first_name == "Гость").count() == 2


def test_chat_needs_the_api_key(run):
    result = run("chat", input="Привет\n", code=1)
    assert "missing settings: ANTHROPIC_API_KEY" in result.stderr


def test_chat_when_claude_is_down_answers_politely(run, api_env, db):
    from scripts.fake_claude import Error

    api_env.enqueue(Error(400, "invalid_request_error"))
    result = chat(run, ["Здравствуйте"])
    assert texts.FALLBACK in result.stdout
    assert Message.get(Message.role == "lead", Message.text == "Здравствуйте").unanswered is True
    assert "sk-ant-chat-test-000111222" not in result.stdout + result.stderr


# --- "Done when" of issue 11, end to end through `salesbot chat` against the thinking stand-in -----


def test_a_four_turn_chat_with_default_settings_is_answered_by_claude_every_turn(run, api_env, db):
    lines = ["Здравствуйте, нужен сайт", "Для кофейни", "А сколько стоит?", "А сроки?"]
    api_env.enqueue(*[reply(f"Ответ {i}: расскажите подробнее, пожалуйста.") for i in range(len(lines))])
    out = chat(run, lines).stdout
    assert all(f"Ответ {i}" in out for i in range(len(lines))) and texts.FALLBACK not in out
    bodies = api_env.bodies
    assert len(bodies) / len(lines) <= 1.25
    assert all(b["output_config"]["effort"] == "low" and "thinking" not in b for b in bodies)
    from salesbot.store import LlmCall

    assert all(row.thinking_tokens > 0 and row.stop_reason == "end_turn" for row in LlmCall.select())


def test_a_trickling_server_gets_the_lead_the_fallback_within_the_stated_bound(run, api_env, db, monkeypatch):
    import time

    from scripts.fake_claude import Trickle

    monkeypatch.setenv("SALESBOT_LLM_TIMEOUT", "1")  # the README's bound: 2 x this
    api_env.enqueue(*[Trickle(0.05)] * 3)
    began = time.monotonic()
    out = chat(run, ["Здравствуйте"]).stdout
    assert texts.FALLBACK in out
    assert time.monotonic() - began < 2 + 1.5  # the bound, plus starting the CLI and counting tokens


def test_a_blank_reply_is_never_stored_as_the_bots_message(run, api_env, db):
    api_env.enqueue(reply("   \n "), reply(""), reply("Теперь по делу: чем помочь?"))
    out = chat(run, ["Привет", "Алло?"]).stdout
    bot_texts = [m.text for m in Message.select().where(Message.role == "bot")]
    assert all(t.strip() for t in bot_texts)
    assert bot_texts[0] == texts.greeting(None) and bot_texts[1] == texts.FALLBACK and "Теперь по делу" in out
    # the blank answers were retried once, then the lead got the fallback; the next turn is fine
    assert len(api_env.bodies) == 3


# --- issue 15: a safe rehearsal -------------------------------------------------------------------


def test_chat_rehearses_in_a_sandbox_and_never_blocks_a_real_slot(run, api_env, db, salesbot_home):
    from salesbot.store import open_database

    api_env.enqueue(reply("Давайте созвонимся:", "hot", True))
    chat(run, ["Хочу встречу", "1"], "--lead", "Репетиция")
    sandbox = salesbot_home / "chat-sandbox.db"
    assert sandbox.exists()
    real = open_database(salesbot_home / "salesbot.db")
    assert Lead.select().count() == 0 and Meeting.select().count() == 0  # the real database: untouched
    real.close()
    open_database(sandbox)
    assert Meeting.select().count() == 1 and Lead.get().first_name == "Репетиция"


def test_live_uses_the_real_database_and_reset_empties_the_sandbox(run, api_env, db, salesbot_home):
    from salesbot.store import open_database

    chat(run, ["Привет"], "--lead", "Живой", "--live")
    chat(run, ["Привет"], "--lead", "Песочница")
    open_database(salesbot_home / "salesbot.db")
    assert [lead.first_name for lead in Lead.select()] == ["Живой"]
    result = chat(run, [], "--reset", "--lead", "Новый")
    assert "Emptied the sandbox" in result.stderr
    open_database(salesbot_home / "chat-sandbox.db")
    assert [lead.first_name for lead in Lead.select()] == ["Новый"]
    assert "cannot be combined" in run("chat", "--reset", "--live", code=1).stderr


def test_the_guest_is_greeted_without_a_made_up_name(run, api_env, db):
    out = chat(run, []).stdout
    assert out.startswith("Здравствуйте! 👋") and "Гость" not in out


def test_demo_needs_no_key_and_no_server(run, db):
    from salesbot.demo import DEMO_REPLIES

    out = chat(run, ["Здравствуйте", "Нужен сайт для кафе", "Хочу обсудить", "3"], "--demo").stdout
    for text, _, _ in DEMO_REPLIES:
        assert text in out
    assert "Отлично, записал вас на встречу: завтра, 24 декабря, в 10:00 по московскому времени." in out


def test_the_demo_goes_on_after_the_booking_instead_of_asking_to_choose_again(run, db):
    from salesbot.demo import AFTER_BOOKING, DEMO_REPLIES

    out = chat(run, ["Здравствуйте", "Нужен сайт для кафе", "Хочу обсудить", "3", "А что дальше?"], "--demo").stdout
    after = out[out.index("Отлично, записал вас на встречу"):]
    assert AFTER_BOOKING[0] in after and DEMO_REPLIES[-1][0] not in after


def test_stdin_that_is_not_utf8_is_read_with_replacement_and_kept(run, db):
    with freeze_time("2025-12-23 11:05:00", real_asyncio=True):  # the runner takes bytes as stdin too
        result = run("chat", "--demo", input="Сайт для ".encode() + b"\xff\xfe" + "кафе\n".encode())
    assert "Traceback" not in result.stderr
    stored = [m.text for m in Message.select().where(Message.role == "lead")]
    assert stored == ["/start", "Сайт для \ufffd\ufffdкафе"]


def test_chat_logs_warnings_only_unless_verbose(run, db):
    quiet = chat(run, ["Хочу обсудить", "Да", "Давайте", "1"], "--demo")
    assert "INFO" not in quiet.stderr and "booked a meeting" not in quiet.stderr
    loud = chat(run, ["Хочу обсудить", "Да", "Давайте", "1"], "--demo", "-v")
    assert "booked a meeting" in loud.stderr


def test_ctrl_c_at_the_prompt_quits_at_once():
    import asyncio
    import os
    import signal
    import time

    from salesbot.terminal import prompt_lines

    class Console:
        def input(self, prompt):
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the read blocks
            time.sleep(0.3)  # the blocking read: Ctrl-C must cut it short
            return "after Ctrl-C"

        def print(self, *args, **kwargs):
            pass

    async def read_all():  # as in `chat`: asyncio's own SIGINT handler is installed
        return list(prompt_lines(Console()))

    began = time.monotonic()
    assert asyncio.run(read_all()) == []
    assert time.monotonic() - began < 0.25


def test_what_a_rehearsal_costs_is_in_the_real_ledger(run, api_env, db):
    api_env.enqueue(reply("Здравствуйте! Чем помочь?", "new"))
    chat(run, ["Здравствуйте"])
    report = json.loads(run("usage", "--json").stdout)
    assert [(row["purpose"], row["calls"]) for row in report["rows"]] == [("rehearsal dialogue", 1)]
    assert Lead.select().count() == 0  # the real database has the cost, not the rehearsal's lead


def test_a_resumed_conversation_shows_its_last_buttons_and_their_numbers_press_them(run, db):
    chat(run, ["Здравствуйте", "Хочу обсудить сайт", "К весне"], "--demo", "--lead", "Ирина")  # ends on slots
    result = chat(run, ["2"], "--demo", "--lead", "Ирина")
    out = result.stdout
    assert out.startswith("Отлично, это как раз наш профиль.")  # where the conversation stopped, buttons again
    assert "  2) Сегодня, 18:00" in out
    assert "Отлично, записал вас на встречу: сегодня, в 18:00 по московскому времени" in out
    assert Meeting.get().source == "slot"
    again = chat(run, ["Спасибо"], "--demo", "--lead", "Ирина")
    assert not again.stdout.startswith("Отлично, это как раз")  # a pressed keyboard is not shown again


def test_the_readmes_piped_example_books(run, db):
    import re
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = re.search(r"`printf '([^']*)' \| salesbot chat ([^`]*)`", readme)
    lines = example[1].replace("\\n", "\n").splitlines()
    result = chat(run, lines, *shlex.split(example[2]))
    assert "записал вас на встречу" in result.stdout


def test_the_demo_does_not_rehearse_the_web_studio_for_another_business(run, db, salesbot_home, monkeypatch):
    playbook = salesbot_home / "clinic.md"
    playbook.write_text("Ты администратор стоматологической клиники «Улыбка». Записываешь на приём.\n")
    monkeypatch.setenv("SALESBOT_PROMPT_FILE", str(playbook))
    out = chat(run, ["Здравствуйте", "Болит зуб", "Завтра можно?"], "--demo").stdout
    assert "120 000" not in out and "сайт" not in out
    assert "Выберите удобное время:" in out
