"""`salesbot doctor`: settings with their sources (secrets masked), database, serve, sweep, sessions."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from salesbot import runtime
from salesbot.cli import doctor
from salesbot.store import MIGRATIONS
from tests.test_cli_serve import TELEGRAM

KEY = "sk-ant-doctor-secret-key-0001"


@pytest.fixture
def healthy(monkeypatch, salesbot_home, db):
    """Every credential set, serve holding its lock with a fresh heartbeat, a sweep that went fine."""
    for key, value in TELEGRAM.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with runtime.serve_lock(salesbot_home):
        runtime.beat(salesbot_home)
        runtime.record_sweep(salesbot_home, "ok", summary={"queued": 2})
        yield salesbot_home


def test_a_healthy_installation_exits_0_with_secrets_masked_and_sources_named(run, healthy, tmp_path):
    (tmp_path / "work" / ".env").write_text("SALESBOT_TZ=Asia/Tokyo\n", encoding="utf-8")
    result = run("doctor", "--json")
    report = json.loads(result.stdout)
    assert report["ok"] is True
    rows = {row["name"]: row for row in report["settings"]}
    assert rows["ANTHROPIC_API_KEY"]["value"] == f"*** ({len(KEY)} characters)"
    assert rows["ANTHROPIC_API_KEY"]["source"] == "environment"
    assert rows["SALESBOT_TZ"]["source"] == str(tmp_path / "work" / ".env")
    assert rows["SALESBOT_WORK_HOURS"]["source"] == "default"
    assert report["serve"]["running"] is True and report["serve"]["heartbeat_age_seconds"] < 60
    assert report["database"]["schema_version"] == MIGRATIONS[-1][0] and report["database"]["leads"] == 0
    assert report["last_sweep"]["outcome"] == "ok" and report["last_sweep"]["at"].endswith("+09:00")
    text = run("doctor").stdout
    assert "Nothing wrong found." in text
    for secret in (KEY, TELEGRAM["TELEGRAM_BOT_TOKEN"], TELEGRAM["TELEGRAM_API_HASH"]):
        assert secret not in result.stdout + text


def test_what_is_wrong_is_named_and_exits_1(run, monkeypatch, salesbot_home):
    monkeypatch.setenv("SALESBOT_WORK_HOURS", "19:00-10:00")
    salesbot_home.mkdir()
    runtime.record_sweep(salesbot_home, "failed", error="salesbot serve is not running (has never run here)")
    (salesbot_home / "serve.session").write_bytes(b"garbage" * 200)
    (salesbot_home / "serve.lock").write_text("4242")  # serve ran here once, and is not running now
    result = run("doctor", code=1)
    out = result.stdout
    assert "SALESBOT_WORK_HOURS: the range must end after it starts" in out
    assert "serve needs TELEGRAM_API_ID, TELEGRAM_API_HASH, TELEGRAM_BOT_TOKEN, ANTHROPIC_API_KEY" in out
    assert "serve is not running" in out and "the last sweep failed" in out
    assert "serve.session is damaged" in out
    assert not (salesbot_home / "salesbot.db").exists()  # the doctor never creates a database
    report = json.loads(run("doctor", "--json", code=1).stdout)
    assert report["ok"] is False and report["database"]["exists"] is False


def test_a_new_setup_checked_before_serve_first_starts_is_not_a_failure(run, monkeypatch, salesbot_home, db):
    """Deployment step 3 (check) comes before step 4 (start serve): a serve that never ran is a note."""
    for key, value in TELEGRAM.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    result = run("doctor")
    assert "serve has not been started here yet" in result.stdout
    (salesbot_home / "serve.lock").write_text("")  # it has run before: now not running is a problem
    assert "serve is not running" in run("doctor", code=1).stdout


def test_a_damaged_database_is_a_problem(run, healthy):
    path = healthy / "salesbot.db"
    from tests.test_operator import fill

    fill(path)
    with open(path, "r+b") as handle:
        handle.seek(4096 * 10)
        handle.write(b"\xff" * 4096 * 4)
    assert "is damaged" in run("doctor", code=1).stdout


class _BotApi(BaseHTTPRequestHandler):
    token = TELEGRAM["TELEGRAM_BOT_TOKEN"]
    group: ClassVar[dict] = {"member": True, "forum": True, "admin": True, "manage_topics": True}  # staff group

    def do_GET(self):  # Bot API getMe: 401 {"ok": false, "description": "Unauthorized"} for a bad token
        path, _, query = self.path.partition("?")
        good = path.startswith(f"/bot{self.token}/")
        method = path.rsplit("/", 1)[-1]
        code, body = 200, {"ok": True, "result": {"id": 1, "is_bot": True, "username": "demo_bot"}}
        g = self.group
        if not good:
            code, body = 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        elif method == "getChat" and not g["member"]:  # bots/api: a chat the bot is not in is "not found"
            code, body = 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
        elif method == "getChat":  # bots/api#chatfullinfo: is_forum
            body = {"ok": True, "result": {"id": -1001987654321, "type": "supergroup", "title": "Продажи",
                                           "is_forum": g["forum"]}}
        elif method == "getChatMember":  # bots/api#chatmemberadministrator: can_manage_topics
            body = {"ok": True, "result": {"status": "administrator" if g["admin"] else "member",
                                           "can_manage_topics": g["manage_topics"]}}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def bot_api(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BotApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(doctor, "BOT_API", f"http://127.0.0.1:{server.server_address[1]}")
    yield
    server.shutdown()
    server.server_close()


def test_online_asks_claude_and_telegram(run, healthy, monkeypatch, bot_api, clock):
    from scripts.fake_claude import FakeClaude

    with FakeClaude(clock=clock, api_keys={KEY}) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        result = run("doctor", "--online")
        assert "the key is accepted" in result.stdout and "the bot token is accepted (@demo_bot)" in result.stdout
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-revoked-key-99999")
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "999:revoked-token-value")
        result = run("doctor", "--online", code=1)
    assert "key rejected" in result.stdout and "Telegram rejects the bot token (HTTP 401)" in result.stdout
    assert "revoked-token-value" not in result.stdout + result.stderr


def test_doctor_json_reports_a_malformed_env_file_as_a_finding(run, salesbot_home):
    import json

    salesbot_home.mkdir(exist_ok=True)
    (salesbot_home / ".env").write_text("SALESBOT_TZ=\"Europe/Moscow\n", encoding="utf-8")  # an unclosed quote
    result = run("doctor", "--json", code=1)
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["findings"][0]["area"] == "settings"
    assert ".env" in report["findings"][0]["message"]


@pytest.mark.parametrize("group, says", [
    ({}, "the staff group «Продажи» works"),
    ({"manage_topics": False}, "the bot may not manage topics in «Продажи»"),
    ({"admin": False, "manage_topics": False}, "the bot may not manage topics in «Продажи»"),
    ({"forum": False}, "has topics off"),
    ({"member": False}, "is out of the bot's reach (Bad Request: chat not found): add the bot to the group"),
])
def test_online_names_what_is_wrong_with_the_staff_group(run, healthy, monkeypatch, bot_api, clock, group, says):
    from scripts.fake_claude import FakeClaude

    monkeypatch.setattr(_BotApi, "group", {"member": True, "forum": True, "admin": True, "manage_topics": True,
                                           **group})
    monkeypatch.setenv("SALESBOT_STAFF_CHAT", "-1001987654321")
    with FakeClaude(clock=clock, api_keys={KEY}) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        result = run("doctor", "--online", code=None if group else 0)
    assert says in " ".join(result.stdout.split())
    assert result.exit_code == (1 if group else 0)
