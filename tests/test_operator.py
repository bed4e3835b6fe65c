"""Issue 15: what an operator meets — bad input, damaged files, the key check, versions, help."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from salesbot.config import load_settings
from salesbot.errors import SalesbotError
from tests.test_cli_serve import TELEGRAM


def no_traceback(result) -> None:
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


# --- serve checks the Claude key at start ---------------------------------------------------------


@pytest.fixture
def serve_env(monkeypatch):
    for key, value in TELEGRAM.items():
        monkeypatch.setenv(key, value)


def test_serve_exits_78_with_key_rejected_before_reaching_telegram(run, monkeypatch, serve_env, clock):
    """A rejected key is a setting a restart cannot fix: EX_CONFIG, which the unit does not restart."""
    from salesbot import telegram
    from scripts.fake_claude import FakeClaude

    reached = []
    monkeypatch.setattr(telegram, "serve", lambda *a, **k: reached.append(1))
    with FakeClaude(clock=clock, api_keys={"sk-ant-the-right-key-000"}) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-a-wrong-key-1234567")
        result = run("serve", code=78)
        assert "key rejected" in result.stderr and "401" in result.stderr
        assert "sk-ant-a-wrong-key-1234567" not in result.stderr
        assert not reached
        assert [seen.path for seen in api.requests] == ["/v1/messages/count_tokens"]  # one cheap call
        no_traceback(result)

        async def fake_serve(*args, **kwargs):
            reached.append(1)

        monkeypatch.setattr(telegram, "serve", fake_serve)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-the-right-key-000")
        run("serve")
        assert reached == [1]


def test_a_damaged_telethon_session_is_named_with_what_deleting_it_does(tmp_path):
    from salesbot import telegram

    settings = load_settings({"SALESBOT_HOME": str(tmp_path), **TELEGRAM}, tmp_path)
    (tmp_path / "serve.session").write_bytes(b"not a database " * 500)
    with pytest.raises(SalesbotError) as caught:
        telegram.make_client(settings, "serve")
    message = str(caught.value)
    assert str(tmp_path / "serve.session") in message and "delete it" in message and "logs in anew" in message


# --- the database: damaged, read-only, full --------------------------------------------------------


def fill(path, leads=300):
    from salesbot.store import open_database

    database = open_database(path)

    for i in range(leads):
        database.execute_sql("INSERT INTO lead (first_name) VALUES (?)", (f"lead {i} " + "x" * 500,))
    database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database.close()


def test_a_database_with_damaged_pages_gets_integrity_check_advice(run, salesbot_home):
    path = salesbot_home / "salesbot.db"
    fill(path)
    size = path.stat().st_size
    with open(path, "r+b") as handle:  # the second half of the file: the lead table and its indexes among it
        handle.seek(size // 2 // 4096 * 4096)
        handle.write(b"\xff" * (size - size // 2))
    result = run("leads", "list", "--limit", "0", code=1)
    assert "is damaged" in result.stderr and "PRAGMA integrity_check" in result.stderr
    no_traceback(result)


def test_a_read_only_database_still_reads_and_a_write_says_read_only(run, salesbot_home, monkeypatch):
    from salesbot import store

    path = salesbot_home / "salesbot.db"
    fill(path, leads=3)
    # Tests run as root, whom file modes do not stop: the check is what decides how to open.
    monkeypatch.setattr(store.connection, "writable", lambda p: False)
    assert "lead 2" in run("leads", "list").stdout
    database = store.open_database(path)
    with pytest.raises(SalesbotError, match="read-only"):
        database.execute_sql("INSERT INTO lead (first_name) VALUES ('x')")
    database.close()


def test_a_full_disk_says_disk_full_not_cannot_rollback(db):
    from salesbot.store import Lead, leads

    pages = db.execute_sql("PRAGMA page_count").fetchone()[0]
    db.execute_sql(f"PRAGMA max_page_count = {pages + 1}")  # SQLITE_FULL, as on a full disk
    lead = leads.create_chat_lead("Анна")
    with pytest.raises(SalesbotError) as caught:
        for _ in range(200):
            leads.record_lead_message(lead.id, "x" * 4000, datetime.now(UTC), unanswered=False)
    assert "disk full" in str(caught.value) and "rollback" not in str(caught.value)
    assert Lead.select().count() == 1


def test_a_new_database_says_where_once(run, salesbot_home):
    first = run("leads", "list")
    assert first.stderr.count(f"created a new database at {salesbot_home / 'salesbot.db'}") == 1
    assert "applied migration" not in first.stderr
    assert "created a new database" not in run("leads", "list").stderr


def test_version(run):
    from salesbot import __version__

    assert run("--version").stdout.strip() == f"salesbot {__version__}"


def test_verbose_after_the_command(run):
    result = run("leads", "list", "-v")
    assert "DEBUG salesbot.store.migrations: applied migration" in result.stderr
    assert "No leads yet." in result.stdout
    assert "DEBUG" not in run("leads", "list", "--limit", "3").stderr


def test_help_has_no_type_placeholders(run):
    from typer.main import get_command

    from salesbot.cli import app

    def walk(command, path):
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    for path in walk(get_command(app), []):
        text = run(*path, "--help").stdout
        for placeholder in ("<bool>", "<str>", "<int", "<text>"):
            assert placeholder not in text, (path, placeholder)


# --- what the operator reads: control characters, long messages, buttons -------------------------


def test_control_characters_in_names_and_messages_are_made_visible(run, db):
    from tests.factories import make_lead

    lead = make_lead(first_name="Ann\x1b[2J\x1b[H\u202eevil", messages=[("lead", "hi\x07 there\x1b]0;title\x07")])
    table = run("leads", "list").stdout
    shown = run("leads", "show", str(lead.id)).stdout
    for text in (table, shown):
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "Ann\\x1b[2J" in shown and "\\u202eevil" in shown and "hi\\x07 there\\x1b]0;title\\x07" in shown
    assert run("leads", "show", str(lead.id), "--json").stdout.count("\\u001b") == 3  # JSON keeps the data


def test_leads_show_wraps_with_an_indent_cuts_long_messages_and_shows_buttons(run, db, monkeypatch):
    import json as jsonlib

    from salesbot.cli import render
    from salesbot.store import Message
    from tests.factories import make_lead

    monkeypatch.setattr(render.out, "width", 80)
    words = " ".join(f"слово{i}" for i in range(40))
    huge = "я" * 10_000
    lead = make_lead(messages=[("lead", words), ("lead", huge)])
    message = Message.create(lead=lead, role="bot", text="Выберите время:")
    with db.atomic():  # the row as delivery stores a reply with its keyboard
        db.execute_sql("INSERT INTO outbox (lead_id, message_id, kind, text, buttons, random_id, state,"
                       " not_before, created_at) VALUES (?, ?, 'reply', ?, ?, 1, 'sent', '2025-01-01', '2025-01-01')",
                       (lead.id, message.id, message.text,
                        jsonlib.dumps([[["Сегодня, 17:00", "s:1"]], [["Предложить своё время", "own"]]],
                                      ensure_ascii=False)))
    shown = run("leads", "show", str(lead.id)).stdout
    lines = shown.splitlines()
    first = next(i for i, line in enumerate(lines) if "слово0" in line)
    assert len(lines[first]) <= 80 and lines[first + 1].startswith(" " * 17 + "слово")
    assert "… cut: 7,000 more characters (--full prints all)" in shown and "я" * 10_000 not in shown
    assert "[Сегодня, 17:00] [Предложить своё время]" in shown
    assert "я" * 10_000 in run("leads", "show", str(lead.id), "--full").stdout.replace("\n" + " " * 17, "")
    data = jsonlib.loads(run("leads", "show", str(lead.id), "--json").stdout)
    assert data["messages"][-1]["buttons"] == ["Сегодня, 17:00", "Предложить своё время"]


# --- every command: --help, and each class of bad input is one red line and exit 1 -----------------

COMMANDS = [["serve"], ["chat"], ["parse-time", "завтра"], ["usage"], ["doctor"], ["leads", "list"],
            ["leads", "show", "1"], ["meetings", "list"], ["follow-ups", "run", "--dry-run"]]
LONG = "x" * 5000

BAD_INPUT = [
    ["leads", "show", "99999999999999999999"],
    ["leads", "show", "abc"],
    ["leads", "list", "--limit", "1e23"],
    ["leads", "list", "--limit", "99999999999999999999"],
    ["leads", "list", "--status", LONG],
    ["meetings", "list", "--limit", "1e23"],
    ["follow-ups", "run", "--dry-run", "--limit", "1e23"],
    ["usage", "--since", "100000000d"],
    ["usage", "--since", LONG],
    ["parse-time", "завтра в 10", "--now", "9999-12-31T23:59"],
    ["parse-time", "завтра в 10", "--now", LONG],
    ["parse-time", "завтра в 10", "--tz", LONG],
    ["parse-time", LONG, "--no-llm"],
    ["leads", "list", "--no-such-option"],
    ["no-such-command"],
]


def one_red_line(result) -> str:
    no_traceback(result)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("Error:"), result.stderr
    assert len(lines[-1]) < 400, lines[-1]  # the user's input quoted short, never whole
    return lines[-1]


def test_every_command_has_help(run):
    for command in COMMANDS:
        result = run(*[part for part in command if part not in ("завтра", "1", "--dry-run")], "--help")
        assert "Usage: salesbot" in result.stdout and "<bool>" not in result.stdout
    serve = run("serve", "--help").stdout
    assert "TELEGRAM_BOT_TOKEN" in serve and "$SALESBOT_HOME/.env" in serve
    chat = run("chat", "--help").stdout
    assert "--demo" in chat and "Piped mode" in chat


@pytest.mark.parametrize("args", BAD_INPUT, ids=lambda args: " ".join(a[:20] for a in args))
def test_bad_input_is_one_red_line_and_exit_1(run, db, args):
    one_red_line(run(*args, code=1))


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_env_file_that_is_not_utf8_stops_every_command_cleanly(run, command, tmp_path):
    (tmp_path / "work" / ".env").write_bytes("SALESBOT_TZ=Москва\n".encode("cp1251"))
    line = one_red_line(run(*command, code=78 if command[0] == "serve" else 1))  # serve: not restarted
    assert "is not UTF-8" in line and ".env" in line


@pytest.mark.parametrize("command", [c for c in COMMANDS if c[0] not in ("doctor",)], ids=" ".join)
def test_a_bad_setting_a_command_uses_stops_it_cleanly(run, command, monkeypatch):
    monkeypatch.setenv("SALESBOT_TZ", "Mars/" + LONG)
    monkeypatch.setenv("SALESBOT_WORK_HOURS", "19:00-10:00")
    for key, value in TELEGRAM.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
    extra = {"parse-time": ["--no-llm"], "usage": ["--since", "7d"]}.get(command[0], [])
    line = one_red_line(run(*command, *extra, code=78 if command[0] == "serve" else 1))
    assert "SALESBOT_TZ" in line or "SALESBOT_WORK_HOURS" in line


@pytest.mark.parametrize("command", [c for c in COMMANDS if c[0] not in ("serve", "chat", "doctor", "parse-time")],
                         ids=" ".join)
def test_a_damaged_database_stops_every_reading_command_cleanly(run, command, salesbot_home, monkeypatch):
    salesbot_home.mkdir()
    (salesbot_home / "salesbot.db").write_bytes(b"this is not a database at all " * 400)
    one_red_line(run(*command, code=1))


def test_a_database_in_a_folder_this_user_cannot_write_is_read_and_errors_name_the_file(run, salesbot_home):
    """Reading commands work on a database whose folder this user may not write (WAL wants its -shm
    file there); no message shows the internal read-only URI. `chattr +i` stops root too."""
    import subprocess

    path = salesbot_home / "salesbot.db"
    fill(path, leads=3)
    assert not (salesbot_home / "salesbot.db-shm").exists()  # a clean close leaves no -shm behind
    if subprocess.run(["chattr", "+i", str(salesbot_home)], capture_output=True).returncode != 0:
        pytest.skip("this file system cannot make a folder immutable")
    try:
        assert "lead 2" in run("leads", "list").stdout
        for args in (("meetings", "list"), ("usage",), ("leads", "show", "1")):
            result = run(*args)
            assert "file:" not in result.stdout + result.stderr
        written = run("meetings", "cancel", "1", code=1)  # a command that writes says why it cannot
        assert "file:" not in written.stderr and "?mode=ro" not in written.stderr
    finally:
        subprocess.run(["chattr", "-i", str(salesbot_home)], check=True)


@pytest.mark.parametrize("form", [[], ["--json"]])
def test_a_reader_that_stops_early_ends_the_listing_quietly(salesbot_home, form):
    """`salesbot leads list | head`: no «Error: Broken pipe», no failure for the pipeline."""
    import os
    import subprocess
    import sys

    fill(salesbot_home / "salesbot.db", leads=2000)  # far more than a pipe holds
    child = subprocess.Popen([sys.executable, "-m", "salesbot", "leads", "list", "--limit", "0", *form],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "SALESBOT_HOME": str(salesbot_home), "COLUMNS": "120"})
    assert child.stdout.read(100)
    child.stdout.close()  # what head does after its lines
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=60) == 0, stderr
    assert "Broken pipe" not in stderr and "Traceback" not in stderr


def test_malformed_private_addresses_are_one_clear_line_and_never_shown(run, db, monkeypatch):
    """A webhook or calendar address is a secret: a malformed one (an IPv6 bracket left open, a
    password in it that urllib cannot take) is a clear error, no traceback, and the address not shown."""
    monkeypatch.setenv("SALESBOT_WEBHOOK_URL", "https://[::1/hook-SECRETTOKEN")
    assert run("leads", "list").exit_code == 0  # a reading command does not use it
    doctor = run("doctor", "--json", code=1).stdout
    assert "SECRETTOKEN" not in doctor and "expected an http:// or https:// address" in doctor
    monkeypatch.delenv("SALESBOT_WEBHOOK_URL")
    monkeypatch.setenv("SALESBOT_BUSY_ICS", "https://owner:SEKRITPW@127.0.0.1:9/cal.ics")
    result = run("slots", "--days", "1", code=1)
    assert "Traceback" not in result.stderr and "SEKRITPW" not in result.stdout + result.stderr
    assert "cannot reach it" in result.stderr
