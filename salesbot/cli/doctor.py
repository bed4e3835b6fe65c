"""`salesbot doctor`: is this installation fit to run, and if not, what exactly is wrong.

It reads and never writes: every setting with where it came from (secrets masked), the database
(opened read-only, never created or migrated), whether `serve` runs (its lock and heartbeat), the
last sweep, the Telegram session files, the busy calendars (each copy's age and last error); with
`online`, whether Claude and Telegram accept the key and the token. Each finding is `ok`, `note`
(worth knowing, nothing broken) or `problem`; any problem makes the command exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from salesbot import runtime
from salesbot.config import CLAUDE_KEYS, OPTIONS, TELEGRAM_KEYS, Settings, load_prompt, load_texts
from salesbot.errors import SalesbotError

BOT_API = "https://api.telegram.org"  # getMe: the cheapest check that a bot token is accepted
ONLINE_TIMEOUT = 15.0


@dataclass
class Finding:
    area: str  # settings | database | serve | sweep | sessions | calendar | claude | telegram
    status: str  # ok | note | problem
    message: str


@dataclass
class SettingRow:
    name: str
    value: str | None  # secrets masked
    source: str  # environment | a .env path | default
    problem: str | None = None


@dataclass
class DatabaseInfo:
    path: str
    exists: bool
    size_bytes: int | None = None
    schema_version: str | None = None  # the newest migration applied
    pending_migrations: list[str] = field(default_factory=list)
    leads: int | None = None
    messages: int | None = None
    meetings: int | None = None
    webhook_events: dict[str, int] | None = None  # per state: queued, sent, failed


@dataclass
class Report:
    version: str
    home: str
    env_files: list[str]
    settings: list[SettingRow]
    database: DatabaseInfo
    serve: dict[str, Any]
    last_sweep: dict[str, Any] | None
    sessions: list[dict[str, Any]]
    findings: list[Finding]
    feeds: list[dict[str, Any]] = field(default_factory=list)  # SALESBOT_BUSY_ICS, one each

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "problem"]


def mask(value: str) -> str:
    return f"*** ({len(value)} characters)"


def _settings(settings: Settings, findings: list[Finding]) -> list[SettingRow]:
    rows = []
    for option in OPTIONS:
        raw = settings.raw.get(option.env)
        problem = None
        if option.parse and (raw or option.default) is not None:
            try:
                settings.typed(option.env)
            except SalesbotError as exc:
                problem = str(exc)
        shown = mask(raw) if option.secret and raw else (raw or option.default)
        if option.env == "SALESBOT_DB":
            shown = str(settings.db_path)
        rows.append(SettingRow(option.env, shown, settings.source(option.env) if raw else "default", problem))
        if problem:
            findings.append(Finding("settings", "problem", problem))
    missing = [name for name in (*TELEGRAM_KEYS, *CLAUDE_KEYS) if not settings.raw.get(name)]
    if missing:
        findings.append(Finding("settings", "problem", f"serve needs {', '.join(missing)} (not set)"))
    for check in (load_prompt, load_texts):
        try:
            check(settings)
        except SalesbotError as exc:
            findings.append(Finding("settings", "problem", str(exc)))
    if not any(f.area == "settings" for f in findings):
        findings.append(Finding("settings", "ok", "every setting is valid; serve has its credentials"))
    return rows


def _database(settings: Settings, findings: list[Finding]) -> DatabaseInfo:
    from salesbot.store import MIGRATIONS

    path = settings.db_path
    info = DatabaseInfo(path=str(path), exists=path.is_file())
    if not info.exists:
        findings.append(Finding("database", "note", f"no database yet at {path}: the first command that writes "
                                                    "creates it"))
        return info
    info.size_bytes = path.stat().st_size
    try:
        # read-only and without migrating: the doctor changes nothing
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                findings.append(Finding("database", "problem", f"the database {path} is damaged ({check[:200]}); "
                                        f"run `sqlite3 {path} 'PRAGMA integrity_check'` and restore a backup"))
                return info
            applied = [row[0] for row in conn.execute("SELECT name FROM migrations ORDER BY id")]
            known = [name for name, _ in MIGRATIONS]
            info.schema_version = applied[-1] if applied else None
            info.pending_migrations = [name for name in known if name not in applied]
            newer = [name for name in applied if name not in known]
            info.leads, info.messages, info.meetings = (
                conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in ("lead", "message", "meeting"))
            if "012_owner" in applied:
                info.webhook_events = dict(conn.execute("SELECT state, count(*) FROM webhook_event GROUP BY state"))
    except sqlite3.Error as exc:
        reason = str(exc)
        if "readonly" in reason or "read-only" in reason or not os.access(path.parent, os.W_OK):
            # a WAL database needs its folder writable even to be read (its -shm and -wal files)
            reason += (f"; the folder {path.parent} is not writable by this user, and SQLite needs it for the "
                       "database's -wal and -shm files, even to read")
        findings.append(Finding("database", "problem", f"cannot read the database {path}: {reason}"))
        return info
    if newer:
        findings.append(Finding("database", "problem", f"the database has migration {newer[-1]}, newer than this "
                                                       "salesbot knows: upgrade salesbot"))
    elif info.pending_migrations:
        findings.append(Finding("database", "note", f"{len(info.pending_migrations)} migration(s) pending; the next "
                                                    "salesbot command applies them"))
    else:
        findings.append(Finding("database", "ok", f"{path}: schema {info.schema_version}, {info.leads} leads"))
    failed = (info.webhook_events or {}).get("failed", 0)
    if failed:
        findings.append(Finding("webhooks", "problem", f"{failed} webhook event(s) failed: the receiver refused them "
                                                       "(4xx) or was unreachable for a day; see `sqlite3 "
                                                       f"{path} \"SELECT type, error FROM webhook_event WHERE "
                                                       "state = 'failed'\"`"))
    return info


def _serve(settings: Settings, findings: list[Finding]) -> dict[str, Any]:
    import fcntl

    lock = settings.home / "serve.lock"
    holder = None
    if lock.exists():
        with open(lock) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = handle.read().strip() or "?"
    age = runtime.serve_alive(settings.home)
    running = holder is not None
    alive = age is not None and age <= runtime.ALIVE_SECONDS
    state = {"running": running, "pid": holder, "heartbeat_age_seconds": None if age is None else round(age, 1)}
    if running and alive:
        findings.append(Finding("serve", "ok", f"serve is running (pid {holder}, heartbeat {int(age)} s ago)"))
    elif running:
        findings.append(Finding("serve", "problem", f"serve holds its lock (pid {holder}) but its heartbeat is "
                                                    f"{'missing' if age is None else f'{int(age)} s old'}: stuck?"))
    elif not lock.exists() and age is None:
        # a new setup: checking it before the first start is the Deployment's order, not a fault
        findings.append(Finding("serve", "note", "serve has not been started here yet: until it is, nobody "
                                                 "answers leads (start it as Deployment step 4 says)"))
    else:
        findings.append(Finding("serve", "problem", "serve is not running (no process holds serve.lock): nobody "
                                                    "answers leads or delivers reminders"))
    return state


def _last_sweep(settings: Settings, findings: list[Finding]) -> dict[str, Any] | None:
    last = runtime.last_sweep(settings.home)
    if last is None:
        findings.append(Finding("sweep", "note", "no reminder sweep has run here yet (see crontab.example)"))
        return None
    with contextlib.suppress(ValueError, KeyError, TypeError):
        last["at"] = datetime.fromisoformat(last["at"].rstrip("Z")).replace(tzinfo=UTC).astimezone(settings.tz)
    if last.get("outcome") == "failed":
        findings.append(Finding("sweep", "problem", f"the last sweep failed: {last.get('error')}"))
    else:
        findings.append(Finding("sweep", "ok", f"the last sweep: {last.get('outcome')}"))
    return last


def _sessions(settings: Settings, findings: list[Finding]) -> list[dict[str, Any]]:
    sessions = []
    for path in sorted(settings.home.glob("*.session")) if settings.home.is_dir() else []:
        entry: dict[str, Any] = {"path": str(path), "size_bytes": path.stat().st_size, "logged_in": None,
                                 "problem": None}
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
                row = conn.execute("SELECT auth_key FROM sessions LIMIT 1").fetchone()
                entry["logged_in"] = bool(row and row[0])
        except sqlite3.Error as exc:
            entry["problem"] = (f"the Telegram session file {path} is damaged ({exc}); delete it: serve logs in "
                                "anew with its token")
            findings.append(Finding("sessions", "problem", entry["problem"]))
        sessions.append(entry)
    if not sessions:
        findings.append(Finding("sessions", "note", "no Telegram session yet: serve makes one when it logs in"))
    return sessions


def _feeds(settings: Settings, findings: list[Finding]) -> list[dict[str, Any]]:
    """Each busy feed as serve's last refresh left it: the age of its copy and its last error."""
    from salesbot.time import busy

    try:
        sources = settings.busy_sources
    except SalesbotError:
        return []  # the settings finding names it
    now = datetime.now(UTC)
    rows = []
    for feed in busy.feeds_of(sources):
        state = busy.read_state(settings.home, feed)
        age = None if state.fetched_at is None else max(0.0, now.timestamp() - state.fetched_at)
        rows.append({"feed": feed.label, "has_copy": state.has_copy, "copy_age_seconds": None if age is None
                     else round(age), "busy_events": state.events, "error": state.error})
        copy = f"copy from {busy.ago(now, state.fetched_at)}, {state.events} busy times ahead"
        if not state.has_copy:
            findings.append(Finding("calendar", "problem", f"{feed.label}: never read"
                                    + (f" ({state.error})" if state.error else " (serve or `salesbot slots` reads it)")
                                    + "; its busy times are not blocked"))
        elif state.error and age is not None and age > busy.STALE_AFTER.total_seconds():
            findings.append(Finding("calendar", "problem", f"{feed.label}: {state.error}; using the {copy}"))
        elif state.error:
            findings.append(Finding("calendar", "note", f"{feed.label}: the last refresh failed ({state.error}); "
                                                        f"using the {copy}"))
        elif age is not None and age > busy.STALE_AFTER.total_seconds():
            findings.append(Finding("calendar", "note", f"{feed.label}: {copy}: is serve running?"))
        else:
            findings.append(Finding("calendar", "ok", f"{feed.label}: {copy}"))
    return rows


def _check_claude(settings: Settings) -> Finding:
    if not settings.anthropic_api_key:
        return Finding("claude", "problem", "ANTHROPIC_API_KEY is not set")

    async def count() -> int | None:
        client = runtime.claude_client(settings)
        try:
            return await client.check_prompt(load_prompt(settings))
        finally:
            await client.close()

    try:
        tokens = asyncio.run(count())
    except SalesbotError as exc:
        return Finding("claude", "problem", str(exc))
    if tokens is None:
        return Finding("claude", "problem", "could not reach the Claude API (see the warning above)")
    return Finding("claude", "ok", f"the key is accepted ({settings.model}; the prompt is {tokens:,} tokens)")


def _check_telegram(settings: Settings) -> Finding:
    token = settings.bot_token
    if not token:
        return Finding("telegram", "problem", "TELEGRAM_BOT_TOKEN is not set")
    request = urllib.request.Request(f"{BOT_API}/bot{token}/getMe")
    try:
        with urllib.request.urlopen(request, timeout=ONLINE_TIMEOUT) as response:
            me = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:  # its text names the status only, never the URL with the token
        if exc.code in (401, 404):
            return Finding("telegram", "problem", f"Telegram rejects the bot token (HTTP {exc.code}): check "
                                                  "TELEGRAM_BOT_TOKEN with @BotFather")
        return Finding("telegram", "problem", f"Telegram answered HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        return Finding("telegram", "problem", f"cannot reach Telegram ({reason})")
    username = (me.get("result") or {}).get("username", "?")
    return Finding("telegram", "ok", f"the bot token is accepted (@{username})")


def _webhook_settings(settings: Settings, findings: list[Finding]) -> None:
    try:
        url, secret = settings.webhook_url, settings.webhook_secret
    except SalesbotError:
        return  # a malformed URL is already among the settings' problems
    if url and not secret:
        findings.append(Finding("webhooks", "note", "SALESBOT_WEBHOOK_URL is set without SALESBOT_WEBHOOK_SECRET: "
                                                    "the events are not signed, so a receiver cannot tell them "
                                                    "from forged ones"))


def _bot_api(settings: Settings, method: str, **params: Any) -> tuple[int, dict]:
    """One Bot API call: (HTTP status, the JSON answer). Errors name the status, never the URL (token)."""
    query = urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(f"{BOT_API}/bot{settings.bot_token}/{method}?{query}",
                                    timeout=ONLINE_TIMEOUT) as response:
            return response.status, json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read().decode("utf-8"))
        except ValueError:
            return exc.code, {}


def _check_staff_chat(settings: Settings) -> Finding | None:
    """SALESBOT_STAFF_CHAT: the bot is in the group, topics are on, and it may manage them
    (core.telegram.org/bots/api#getchat `is_forum`, #chatmemberadministrator `can_manage_topics`)."""
    chat = settings.staff_chat
    if chat is None or not settings.bot_token:
        return None
    try:
        status, found = _bot_api(settings, "getChat", chat_id=chat)
        if not found.get("ok"):
            why = found.get("description") or f"HTTP {status}"
            return Finding("telegram", "problem", f"the staff group {chat} is out of the bot's reach ({why}): add "
                                                  "the bot to the group (README: Setting up the staff group)")
        title = found["result"].get("title", "?")
        if not found["result"].get("is_forum"):
            return Finding("telegram", "problem", f"the staff group «{title}» has topics off: turn on Topics in "
                                                  "the group's settings")
        me = _bot_api(settings, "getMe")[1].get("result") or {}
        member = (_bot_api(settings, "getChatMember", chat_id=chat, user_id=me.get("id", 0))[1].get("result") or {})
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        return Finding("telegram", "problem", f"cannot check the staff group ({reason})")
    if member.get("status") != "administrator" or not member.get("can_manage_topics"):
        return Finding("telegram", "problem", f"the bot may not manage topics in «{title}»: make it an admin with "
                                              "the right to manage topics (the posts wait in the outbox until then)")
    return Finding("telegram", "ok", f"the staff group «{title}» works: the bot is an admin that manages topics")


def diagnose(settings: Settings, online: bool = False) -> Report:
    from salesbot import __version__

    findings: list[Finding] = []
    rows = _settings(settings, findings)
    database = _database(settings, findings)
    serve = _serve(settings, findings)
    last = _last_sweep(settings, findings)
    sessions = _sessions(settings, findings)
    _webhook_settings(settings, findings)
    feeds = _feeds(settings, findings)
    if online:
        findings += [_check_claude(settings), _check_telegram(settings)]
        staff = _check_staff_chat(settings) if findings[-1].status == "ok" else None
        if staff is not None:
            findings.append(staff)
    return Report(version=__version__, home=str(settings.home), env_files=[str(p) for p in settings.env_files],
                  settings=rows, database=database, serve=serve, last_sweep=last, sessions=sessions,
                  findings=findings, feeds=feeds)
