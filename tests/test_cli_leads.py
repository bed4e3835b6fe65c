import json
import subprocess
import sys
from datetime import timedelta

import pytest

from salesbot import cli
from salesbot.store import utcnow
from tests.factories import database_at, hours, make_lead, make_meeting


def test_empty_database_says_so(run):
    assert "No leads yet." in run("leads", "list").stdout
    assert json.loads(run("leads", "list", "--json").stdout) == []
    assert "No upcoming meetings." in run("meetings", "list").stdout


def test_list_newest_activity_first_with_status_and_next_meeting(db, run):
    old = make_lead(first_name="Старый", username="old", status="cold", last_message_ago=hours(100))
    hot = make_lead(first_name="Горячий", username="hot", status="hot", last_message_ago=hours(1))
    warm = make_lead(first_name="Тёплый", status="warm", last_message_ago=hours(30), follow_up_count=1)
    fresh = make_lead(first_name="Новый", status="new")  # no message yet: its creation counts
    make_meeting(hot, utcnow() + timedelta(days=2))
    make_meeting(hot, utcnow() - timedelta(days=2))  # past: not "next"
    make_meeting(warm, utcnow() + timedelta(days=1), status="cancelled")

    rows = json.loads(run("leads", "list", "--json").stdout)
    assert [r["id"] for r in rows] == [fresh.id, hot.id, warm.id, old.id]
    by_id = {r["id"]: r for r in rows}
    assert by_id[hot.id]["next_meeting"] is not None
    assert by_id[warm.id]["next_meeting"] is None
    assert by_id[warm.id]["follow_up_count"] == 1
    assert by_id[hot.id]["last_message_at"].endswith("+03:00")  # business time zone, aware

    table = run("leads", "list").stdout
    assert "Горячий @hot" in table and "1h ago" in table and "4d ago" in table
    assert table.index("Горячий") < table.index("Тёплый") < table.index("Старый")


def test_status_filter_and_limit(db, run):
    for i in range(5):
        make_lead(first_name=f"w{i}", status="warm", last_message_ago=hours(i))
    make_lead(first_name="h", status="hot")
    rows = json.loads(run("leads", "list", "--status", "WARM", "--limit", "3", "--json").stdout)
    assert [r["first_name"] for r in rows] == ["w0", "w1", "w2"]
    assert len(json.loads(run("leads", "list", "--limit", "0", "--json").stdout)) == 6
    assert "No leads with status cold." in run("leads", "list", "--status", "cold").stdout


def test_unknown_status_lists_the_allowed_ones(run):
    result = run("leads", "list", "--status", "vip", code=1)
    assert "unknown status 'vip'; use one of: new, warm, hot, cold" in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_show_conversation_and_meetings(db, run):
    lead = make_lead(first_name="Ольга", username="olga", status="hot",
                     messages=[("lead", "Здравствуйте, сколько стоит?"), ("bot", "Добрый день! От 30 000 ₽.")])
    make_meeting(lead, utcnow() + timedelta(days=3), source="custom")
    text = run("leads", "show", str(lead.id)).stdout
    assert "Ольга @olga" in text and "hot" in text
    assert text.index("сколько стоит?") < text.index("От 30 000 ₽.")
    assert "booked (custom)" in text
    data = json.loads(run("leads", "show", str(lead.id), "--json").stdout)
    assert [m["role"] for m in data["messages"]] == ["lead", "bot"]
    assert data["meetings"][0]["source"] == "custom"
    assert data["lead"]["next_meeting"] == data["meetings"][0]["starts_at"]


def test_unknown_lead_id(run):
    result = run("leads", "show", "999", code=1)
    assert "no lead with id 999" in result.stderr


def test_meetings_list_only_upcoming_booked(db, run):
    lead = make_lead(first_name="Пётр")
    soon = make_meeting(lead, utcnow() + timedelta(hours=5))
    later = make_meeting(lead, utcnow() + timedelta(days=5))
    make_meeting(lead, utcnow() - timedelta(hours=5))
    make_meeting(lead, utcnow() + timedelta(days=1), status="cancelled")
    rows = json.loads(run("meetings", "list", "--json").stdout)
    assert [r["id"] for r in rows] == [soon.id, later.id]
    assert "Пётр" in run("meetings", "list").stdout


def test_a_file_that_is_not_a_database(run, tmp_path, monkeypatch):
    bad = tmp_path / "bad.db"
    bad.write_text("hello\n" * 1000)
    monkeypatch.setenv("SALESBOT_DB", str(bad))
    result = run("leads", "list", code=1)
    assert "is not a salesbot database" in result.stderr
    assert "Traceback" not in result.stderr


def test_unwritable_home(run, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SALESBOT_HOME", str(blocker / "home"))
    assert "cannot create SALESBOT_HOME" in run("leads", "list", code=1).stderr


def test_malformed_env_file_in_working_directory(run):
    with open(".env", "w") as f:
        f.write("SALESBOT_TZ=Europe/Moscow\nthis line is wrong\n")
    assert "line 2: expected KEY=value" in run("leads", "list", code=1).stderr


def test_bad_time_zone_setting(run, monkeypatch):
    monkeypatch.setenv("SALESBOT_TZ", "Moscow")
    assert "SALESBOT_TZ: unknown time zone 'Moscow'" in run("leads", "list", code=1).stderr


def walk(command, path=()):
    import typer.main

    click_cmd = typer.main.get_command(command) if isinstance(command, typer.Typer) else command
    yield path, click_cmd
    for name, sub in getattr(click_cmd, "commands", {}).items():
        yield from walk(sub, (*path, name))


def test_every_command_has_help_and_is_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    commands = [path for path, _ in walk(cli.app) if path]
    assert {("serve",), ("chat",), ("parse-time",), ("usage",), ("leads", "list"), ("leads", "show"),
            ("meetings", "list"), ("follow-ups", "run")} <= set(commands)
    for path, command in walk(cli.app):
        if path:
            assert (command.help or "").strip(), f"{' '.join(path)} has no help"
            assert f"salesbot {' '.join(path)}" in readme, f"`salesbot {' '.join(path)}` not in the README"
            for param in command.params:
                if param.name != "help" and getattr(param, "help", None) is not None:
                    assert param.help.strip()


def test_every_setting_is_in_the_readme(option_names):
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name in option_names:
        assert f"`{name}`" in readme, f"{name} is not documented in the README"


@pytest.mark.parametrize("args", [["--help"], ["leads", "list"], ["meetings", "list", "--json"]])
def test_fast_commands_do_not_import_telethon_or_anthropic(args):
    code = (
        "import sys\nfrom salesbot.cli import main\n"
        f"sys.argv = ['salesbot', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('telethon', 'anthropic'))\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY=" in result.stderr
    assert result.stderr.rsplit("HEAVY=", 1)[1] == ""


def test_python_dash_m_works():
    result = subprocess.run([sys.executable, "-m", "salesbot", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "leads" in result.stdout


def test_a_locked_database_is_a_clear_error_not_a_traceback(run, salesbot_home, monkeypatch):
    # A database one migration behind, and another process holding a long write: applying the
    # migration waits out the busy timeout, then the operator reads one line, not an OperationalError.
    import sqlite3

    from salesbot import store

    path = salesbot_home / "salesbot.db"
    database_at(path, len(store.MIGRATIONS) - 1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=wal")
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(store.connection, "BUSY_TIMEOUT_MS", 100)
    try:
        result = run("leads", "list", code=1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "database is locked (another salesbot process holds a long write; try again)" in result.stderr
    assert "Traceback" not in result.stderr and "OperationalError" not in result.stderr
    run("leads", "list")  # the lock gone, the same command works


def test_the_store_raises_typed_errors_for_what_sqlite_refuses(db, tmp_path, monkeypatch):
    import sqlite3

    from salesbot.errors import StoreError
    from salesbot.store import leads

    lead = make_lead()
    holder = sqlite3.connect(db.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    db.execute_sql("PRAGMA busy_timeout = 50")
    try:
        with pytest.raises(StoreError, match="database is locked"):
            leads.opt_out(lead.id, "stop")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    leads.opt_out(lead.id, "stop")


def test_json_output_keeps_cyrillic_as_it_is(run, db, monkeypatch):
    """`--json` is read by people too (and by jq, which needs no escapes): «Анна», not \\u0410\\u043d\\u043d\\u0430."""
    lead = make_lead(first_name="Анна", messages=[("lead", "Здравствуйте, нужен сайт")])
    make_meeting(lead, utcnow() + timedelta(days=2))
    monkeypatch.setenv("SALESBOT_WORK_DAYS", "пн-пт")
    for args in (("leads", "list"), ("leads", "show", str(lead.id)), ("meetings", "list"), ("doctor",),
                 ("usage",), ("funnel",)):
        out = run(*args, "--json", code=None).stdout
        assert out.strip(), args
        assert "\\u04" not in out, args
    assert "Анна" in run("leads", "list", "--json").stdout
    assert "пн-пт" in run("doctor", "--json", code=None).stdout
