"""Issue 22: the data's way out — `leads export --csv` and `leads delete` (152-ФЗ)."""

import asyncio
import csv
import io
import json
import sqlite3

import pytest
from freezegun import freeze_time

from salesbot import delivery, texts, webhooks
from salesbot.dialogue import Answer
from salesbot.store import Lead, Message, WebhookEvent, events
from tests.engine_fakes import NOW, FakeLLM, make_engine
from tests.fake_telegram import serving, until

WORDS = ["Зинаида", "zinaida_q", "Ёжикология", "89991234567", "Зинаида (@zinaida_q)"]


@pytest.fixture
def zinaida(telegram_server, bot_settings):
    """A deep-link lead who talked, booked, and was named to a manager and in webhook events."""
    events.configure(True)
    llm = FakeLLM().enqueue(Answer("Зинаида, давайте встретимся!", "hot", True))

    async def main():
        zina = telegram_server.add_user(4242, "Зинаида", "zinaida_q")
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings,
                           lambda transport: make_engine(llm=llm, transport=transport, managers=())[0]):
            telegram_server.write(zina, "/start vk_ads")
            await until(lambda: telegram_server.texts_to(zina))
            telegram_server.write(zina, "Интересует Ёжикология, мой телефон 89991234567")
            await until(lambda: len(telegram_server.messages_to(zina)) == 2)
            offer = telegram_server.messages_to(zina)[1]
            telegram_server.press(zina, offer, offer.labels[0])
            await until(lambda: len(telegram_server.messages_to(zina)) == 3)
            telegram_server.write(anna, "Здравствуйте")
            await until(lambda: telegram_server.texts_to(anna))

    with freeze_time(NOW, real_asyncio=True):
        asyncio.run(main())
        lead = Lead.get(Lead.telegram_id == 4242)
        delivery.queue_to_chat(777, texts.manager_unanswered(lead.first_name, lead.id, lead.username,
                                                             "Интересует Ёжикология, мой телефон 89991234567"),
                               delivery.datetime.now(delivery.UTC))
    yield lead
    events.configure(False)


def database_bytes(home) -> bytes:
    """Every database file: salesbot's (with its -wal and -shm) and Telethon's session files."""
    files = sorted(home.glob("salesbot.db*")) + sorted(home.glob("*.session*"))
    assert any(path.name.endswith(".session") for path in files)
    return b"".join(path.read_bytes() for path in files)


def test_after_leads_delete_no_database_file_holds_the_leads_words_or_names(zinaida, bot_settings, run):
    home = bot_settings.home
    before = database_bytes(home)
    assert [word for word in WORDS[:4] if word.encode() not in before] == []  # the search can find them
    watcher = sqlite3.connect(home / "salesbot.db")  # another process (serve) with the file open
    watcher.execute("SELECT count(*) FROM lead").fetchone()
    try:
        assert "cannot be undone" in run("leads", "delete", str(zinaida.id), code=1).output
        with freeze_time(NOW):
            result = run("leads", "delete", str(zinaida.id), "--yes")
    finally:
        watcher.close()
    assert f"Lead {zinaida.id} deleted" in result.output
    data = database_bytes(home)
    for word in WORDS:
        assert word.encode() not in data, word
    assert (home / "salesbot.db-wal").stat().st_size == 0
    gone = Lead.get_by_id(zinaida.id)
    assert (gone.telegram_id, gone.first_name, gone.username, gone.source) == (None, None, None, "vk_ads")
    assert Message.select().where(Message.lead == zinaida.id).count() == 0
    assert WebhookEvent.select().where(WebhookEvent.lead == zinaida.id).count() == 0
    assert gone.meetings.get().status == "cancelled"  # its upcoming meeting is cancelled: the slot is free
    funnel = json.loads(run("funnel", "--json").output)
    vk = next(row for row in funnel["rows"] if row["source"] == "vk_ads")
    assert (vk["leads"], vk["answered"], vk["hot"], vk["booked"]) == (1, 1, 1, 1)  # counted, anonymously
    assert "was deleted" in run("leads", "show", str(zinaida.id), code=1).output
    assert [row["id"] for row in json.loads(run("leads", "list", "--json").output)] != [zinaida.id]
    assert "no lead" in run("leads", "delete", str(zinaida.id), "--yes", code=1).output


def test_a_reply_decided_while_the_lead_is_deleted_is_not_kept(zinaida, bot_settings, run):
    run("leads", "delete", str(zinaida.id), "--yes")
    assert delivery.queue_to_lead(zinaida.id, "Зинаида, вот ваш ответ", delivery.datetime.now(delivery.UTC)) == []
    assert "Зинаида".encode() not in database_bytes(bot_settings.home)


def test_leads_export_writes_every_lead_with_a_bom_and_defused_formulas(zinaida, bot_settings, run):
    anna = Lead.get(Lead.telegram_id == 101)
    Lead.update(first_name="=HYPERLINK(\"http://evil\")").where(Lead.id == anna.id).execute()
    target = bot_settings.home / "leads.csv"
    with freeze_time(NOW):
        result = run("leads", "export", "--csv", str(target))
    assert "Wrote 2 lead(s)" in result.output
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [row["name"] for row in rows] == ["Зинаида", "'=HYPERLINK(\"http://evil\")"]
    first = rows[0]
    assert (first["username"], first["telegram_id"], first["source"], first["status"]) == ("zinaida_q", "4242",
                                                                                         "vk_ads", "hot")
    assert first["created"] == "2025-12-23 14:05" and first["next_meeting"].startswith("2025-12-2")
    assert list(rows[0]) == ["id", "name", "username", "telegram_id", "source", "status", "summary", "created",
                             "last_message", "next_meeting"]
    assert webhooks  # the module is importable without a receiver
