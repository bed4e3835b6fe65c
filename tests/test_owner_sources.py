"""Issue 22: deep-link sources through the offline Telegram harness, `links`, and the funnel."""

import asyncio
import json

import pytest
from freezegun import freeze_time

from salesbot import links, texts
from salesbot.claude import pricing
from salesbot.dialogue import Answer
from salesbot.store import Lead, LeadStatusChange, append_llm_call, db
from tests.engine_fakes import NOW, FakeLLM, engine_with
from tests.fake_telegram import serving, until


def run_serving(coro):
    with freeze_time(NOW, real_asyncio=True):
        return asyncio.run(coro)


def test_a_deep_link_lead_keeps_its_source_which_is_never_shown_or_overwritten(telegram_server, bot_settings):
    async def main():
        anna, boris = telegram_server.add_user(101), telegram_server.add_user(202, "Борис", "boris")
        carl = telegram_server.add_user(303, "Карл", "carl")
        async with serving(telegram_server, bot_settings, engine_with(FakeLLM())):
            telegram_server.write(anna, "/start vk_ads")
            telegram_server.write(boris, "/start " + "x" * 65)  # longer than Telegram allows: ignored
            telegram_server.write(carl, "/start site ещё слова")  # not a start parameter: ignored
            await until(lambda: all(telegram_server.texts_to(u) for u in (anna, boris, carl)))
            telegram_server.write(anna, "/start site")  # a second link later: the first contact stands
            await until(lambda: len(telegram_server.texts_to(anna)) == 2)

    run_serving(main())
    sources = {lead.telegram_id: lead.source for lead in Lead.select()}
    assert sources == {101: "vk_ads", 202: None, 303: None}
    assert all("vk_ads" not in text for text in telegram_server.texts_to(101))
    assert telegram_server.texts_to(101)[0] == texts.greeting("Анна")
    assert links.bot_username(bot_settings.home) == telegram_server.bot_username  # serve remembered it


def test_links_prints_deep_links_once_serve_has_run_and_checks_the_source(run, salesbot_home):
    result = run("links", "vk_ads", code=1)
    assert "serve" in result.output and "never run" in result.output
    salesbot_home.mkdir(parents=True, exist_ok=True)
    links.remember_bot(salesbot_home, "pixel_bot")
    assert run("links", "vk_ads", "site-2").output.split() == ["https://t.me/pixel_bot?start=vk_ads",
                                                                "https://t.me/pixel_bot?start=site-2"]
    assert "64 characters" in run("links", "vk ads", code=1).output
    assert "64 characters" in run("links", "a" * 65, code=1).output


@pytest.mark.parametrize(("text", "source"), [
    ("/start vk_ads", "vk_ads"), ("/start@pixel_bot avito-2", "avito-2"), ("/start", None), ("/start a b", None),
    ("/start при_вет", None), ("/start " + "z" * 64, "z" * 64), ("/stop vk", None), ("привет", None),
])
def test_start_payload_follows_telegrams_rule(text, source):
    assert links.start_payload(text) == source


def test_the_funnel_counts_by_source_with_claudes_cost(telegram_server, bot_settings, run):
    slot_offer = Answer("Давайте встретимся!", "hot", True)
    llm = FakeLLM().enqueue(slot_offer, Answer("Подумаю и вернусь", "warm", False),
                            Answer("Понял, не буду беспокоить", "lost", False))

    async def main():
        anna, boris = telegram_server.add_user(101), telegram_server.add_user(202, "Борис", "boris")
        carl = telegram_server.add_user(303, "Карл", "carl")
        async with serving(telegram_server, bot_settings, engine_with(llm)):
            telegram_server.write(anna, "/start vk_ads")
            await until(lambda: telegram_server.texts_to(anna))
            telegram_server.write(anna, "Хочу на консультацию")
            await until(lambda: len(telegram_server.messages_to(anna)) == 2)
            offer = telegram_server.messages_to(anna)[1]
            telegram_server.press(anna, offer, offer.labels[0])
            await until(lambda: Lead.get(Lead.telegram_id == 101).meetings.count() == 1)
            telegram_server.write(boris, "/start vk_ads")
            await until(lambda: telegram_server.texts_to(boris))
            telegram_server.write(boris, "Сколько стоит?")
            await until(lambda: len(telegram_server.texts_to(boris)) == 2)
            telegram_server.write(boris, "Дорого, не интересно")
            await until(lambda: len(telegram_server.texts_to(boris)) == 3)
            telegram_server.write(carl, "Добрый день")
            await until(lambda: telegram_server.texts_to(carl))

    run_serving(main())
    ids = {lead.telegram_id: lead.id for lead in Lead.select()}
    usage = {"input_tokens": 1200, "output_tokens": 300, "cache_read_input_tokens": 4000}
    for lead_id, calls in ((ids[101], 3), (ids[202], 1), (ids[303], 2)):
        for _ in range(calls):
            append_llm_call(db.obj, {"lead_id": lead_id, "purpose": "dialogue", "model": "claude-sonnet-5-5",
                                     **usage})
    one_call = pricing.cost_usd("claude-sonnet-5-5", pricing.Tokens(input=1200, output=300, reads=4000))

    report = json.loads(run("funnel", "--json").output)
    rows = {row["source"]: row for row in report["rows"]}
    assert set(rows) == {"vk_ads", "(none)"}
    vk, none = rows["vk_ads"], rows["(none)"]
    assert (vk["leads"], vk["answered"], vk["warm"], vk["hot"], vk["booked"], vk["came"]) == (2, 2, 2, 1, 1, 0)
    assert (none["leads"], none["answered"], none["warm"], none["hot"], none["booked"]) == (1, 1, 1, 0, 0)
    assert vk["conversion"]["hot"] == 0.5 and vk["conversion"]["booked"] == 1.0
    assert vk["cost_usd"] == pytest.approx(4 * one_call) and none["cost_usd"] == pytest.approx(2 * one_call)
    assert vk["cost_per_lead_usd"] == pytest.approx(2 * one_call)
    assert vk["cost_per_booked_usd"] == pytest.approx(4 * one_call)
    assert vk["median_first_answer_seconds"] == 0  # the greeting goes at once (frozen clock)
    assert report["total"]["leads"] == 3 and report["total"]["cost_usd"] == pytest.approx(6 * one_call)
    # "ever": Boris went warm, then refused (lost); he still counts as warm, and as lost
    boris = [(c.from_status, c.to_status) for c in LeadStatusChange.select().where(LeadStatusChange.lead == ids[202])
             .order_by(LeadStatusChange.id)]
    assert boris == [(None, "new"), ("new", "warm"), ("warm", "lost")]
    assert vk["lost"] == 1
    assert "vk_ads" in run("funnel").output and "█" in run("funnel").output
    week = json.loads(run("funnel", "--by", "week", "--json").output)
    assert [row["week"] for row in week["rows"]] == ["2025-12-22"] and week["rows"][0]["leads"] == 3
    assert json.loads(run("leads", "list", "--source", "vk_ads", "--json").output)[0]["source"] == "vk_ads"
    assert len(json.loads(run("leads", "list", "--source", "vk_ads", "--json").output)) == 2


def test_existing_leads_get_a_status_history_and_first_answer_from_what_is_known(tmp_path):
    import sqlite3

    from salesbot.store import MIGRATIONS, open_database
    from tests.factories import database_at

    path = tmp_path / "old.db"
    database_at(path, [name for name, _ in MIGRATIONS].index("012_owner"))
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            INSERT INTO lead (id, telegram_id, status, created_at, last_message_at) VALUES
              (1, 11, 'new', '2025-12-01 09:00:00', '2025-12-01 09:00:00'),
              (2, 22, 'warm', '2025-12-02 09:00:00', '2025-12-02 10:00:00'),
              (3, 33, 'cold', '2025-12-03 09:00:00', '2025-12-03 09:30:00'),
              (4, 44, 'hot', '2025-12-04 09:00:00', '2025-12-04 09:40:00');
            INSERT INTO message (lead_id, role, text, created_at) VALUES
              (2, 'lead', 'Здравствуйте', '2025-12-02 09:00:00'), (2, 'bot', 'Добрый день!', '2025-12-02 09:00:07');
            INSERT INTO meeting (lead_id, starts_at, status, source, created_at) VALUES
              (4, '2025-12-10 08:00:00', 'done', 'slot', '2025-12-04 09:40:00');
        """)
    database = open_database(path)
    history = database.execute_sql("SELECT lead_id, at, from_status, to_status FROM lead_status_change"
                                   " ORDER BY lead_id, id").fetchall()
    assert history == [
        (1, "2025-12-01 09:00:00", None, "new"),
        (2, "2025-12-02 09:00:00", None, "new"), (2, "2025-12-02 10:00:00", "new", "warm"),
        (3, "2025-12-03 09:00:00", None, "new"), (3, "2025-12-03 09:30:00", "new", "cold"),
        (4, "2025-12-04 09:00:00", None, "new"), (4, "2025-12-04 09:40:00", "new", "hot"),
    ]
    first_answers = database.execute_sql("SELECT id, first_answer_at FROM lead ORDER BY id").fetchall()
    assert first_answers == [(1, None), (2, "2025-12-02 09:00:07"), (3, None), (4, None)]
    database.close()


def test_every_status_write_of_the_lead_writer_logs_the_change():
    """The funnel's "ever warm/hot" is only as good as the history: a function of store/leads.py that
    sets `lead.status` must log it (`_log_status`), whatever status it writes."""
    import ast
    import inspect
    import re

    from salesbot.store import leads

    sets_status = re.compile(r"UPDATE\s+lead\s+SET\b(?:(?!\bWHERE\b).)*?[\s,]status\s*=", re.IGNORECASE | re.S)
    tree = ast.parse(inspect.getsource(leads))
    writers = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            source = ast.get_source_segment(inspect.getsource(leads), node) or ""
            flat = re.sub(r'"\s*\n\s*"', "", source).replace("_FORWARD", leads._FORWARD)  # literals joined
            if sets_status.search(flat) and node.name != "forget":
                writers.append(node.name)
                assert "_log_status(" in source, f"leads.{node.name} sets a status without logging it"
    assert {"record_lead_message", "mark_answered", "book", "follow_up_sent"} <= set(writers)


def test_funnel_refuses_what_it_cannot_read(run):
    assert "--by: use source or week" in run("funnel", "--by", "month", code=1).output
    assert "--since" in run("funnel", "--since", "вчера", code=1).output
    assert "No leads." in run("funnel").output
    assert "--source" in run("leads", "list", "--source", "vk ads", code=1).output
