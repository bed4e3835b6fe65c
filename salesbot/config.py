"""Settings from the environment and `.env` files.

Precedence: the process environment, then `./.env`, then `$SALESBOT_HOME/.env`. Every command loads
the settings the same way but asks only for what it needs (`Settings.require`), so `leads list`
works with no keys at all while `serve` names every missing credential in one message.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from salesbot import logs
from salesbot.errors import ConfigError, quoted
from salesbot.time.calendar import (
    WorkHours,
    parse_breaks,
    parse_clock,
    parse_days,
    parse_days_off,
    parse_holidays,
    parse_span,
    parse_work_hours,
)

DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_FAST_MODEL = "claude-haiku-5-5"
PACKAGED_PROMPT = Path(__file__).parent / "data" / "prompt.md"

log = logging.getLogger(__name__)

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


ENV_SYNTAX = "KEY=value lines; # starts a comment; a value may be quoted"
PROMPT_MAX_BYTES = 1_000_000  # a playbook is a few pages; /dev/zero or a wrong file must not fill memory


def parse_env_file(path: Path) -> dict[str, str]:
    """Read a `.env` file, the one syntax salesbot documents (systemd and cron never parse it):

    `KEY=value`, spaces around `=` allowed, `#` starts a comment (a whole line, or after a space),
    an optional `export ` before the key, a value in single or double quotes kept as is (with `#`
    and spaces inside), a comment after the closing quote, CRLF line ends and a UTF-8 BOM.

    A malformed line is an error naming the file and line, never silently skipped; no error ever
    repeats any part of the line, since it may be a secret pasted without its key.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path} is not UTF-8 text (line {line}); save it as UTF-8") from None
    values: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"{path}, line {lineno}: expected KEY=value, got a line without '=' ({ENV_SYNTAX})")
        if not _KEY_RE.match(key):
            raise ConfigError(f"{path}, line {lineno}: expected KEY=value, the text before '=' is not a name "
                              "(letters, digits and _, not starting with a digit)")
        values[key] = _env_value(value.strip(), path, lineno, key)
    return values


def _env_value(value: str, path: Path, lineno: int, key: str) -> str:
    if value[:1] in ("'", '"'):
        end = value.find(value[0], 1)
        if end < 0:
            raise ConfigError(f"{path}, line {lineno}: unclosed quote in the value of {key}")
        rest = value[end + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise ConfigError(f"{path}, line {lineno}: text after the closing quote in the value of {key} "
                              "(only a # comment may follow)")
        return value[1:end]
    if value.startswith("#"):
        return ""
    return re.split(r"\s#", value, maxsplit=1)[0].rstrip()


# --- parsers for the typed settings ------------------------------------------------------------


def parse_zone(name: str, value: str) -> ZoneInfo:
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        raise ConfigError(f"{name}: unknown time zone {quoted(value)} (use a name like Europe/Moscow)") from None


def _number(name: str, value: str, lo: float, hi: float, kind: type = int) -> Any:
    try:
        number = kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name}: expected {what}, got {quoted(value)}") from None
    if not lo <= number <= hi:
        raise ConfigError(f"{name}: must be between {lo} and {hi}, got {number}")
    return number


_EFFORTS = ("low", "medium", "high", "xhigh", "max")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    choice = value.strip().lower()
    if choice not in allowed:
        raise ConfigError(f"{name}: expected one of {', '.join(allowed)}, got {quoted(value)}")
    return choice


def _int(name: str, value: str, lo: int, hi: int) -> int:
    return _number(name, value, lo, hi, int)


def _float(name: str, value: str, lo: float, hi: float) -> float:
    return _number(name, value, lo, hi, float)


_clock, _hours_range, _days = parse_clock, parse_span, parse_days  # shared with the calendar's own settings


def _busy_sources(name: str, value: str) -> tuple[str, ...]:
    """iCalendar addresses (http, https, webcal) or files, separated by spaces, commas or new lines. An
    address is a secret: an error names only its position."""
    sources = tuple(part for part in re.split(r"[\s,]+", value.strip()) if part)
    for number, source in enumerate(sources, start=1):
        scheme = source.split(":", 1)[0].lower() if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", source) else None
        if scheme is not None and scheme not in ("http", "https", "webcal"):
            raise ConfigError(f"{name}: address {number} is not http, https or webcal (got {scheme}://…)")
        if scheme is None and not Path(source).expanduser().is_file():
            raise ConfigError(f"{name}: item {number} is neither an http(s)/webcal address nor an existing file "
                              f"({quoted(source)})")
    return tuple(source if "://" in source else str(Path(source).expanduser()) for source in sources)


def _url(name: str, value: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value.strip())
        good = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # "Invalid IPv6 URL" and the like
        good = False
    if not good:  # the address is a secret (a connector's address works as its key): not quoted
        raise ConfigError(f"{name}: expected an http:// or https:// address ({len(value.strip())} characters "
                          "given, not shown: the address is a secret)")
    return value.strip()


def _ids(name: str, value: str) -> tuple[int, ...]:
    ids = []
    for part in re.split(r"[,\s]+", value.strip()):
        if not part:
            continue
        if not re.fullmatch(r"-?\d+", part):
            raise ConfigError(f"{name}: expected numeric Telegram user ids separated by commas, got {quoted(part)}")
        ids.append(int(part))
    return tuple(ids)


def _staff_chat(name: str, value: str) -> int:
    """A supergroup's id as the Bot API writes it: -100 followed by the channel id."""
    text = value.strip()
    if not re.fullmatch(r"-100\d{5,}", text):
        raise ConfigError(f"{name}: expected the staff group's id, which starts with -100 (like -1001234567890), "
                          f"got {quoted(value)}; see the README on finding it")
    return int(text)


def _lead_times(name: str, value: str) -> tuple[timedelta, ...]:
    """`24h,2h` (also `30m`, `1d`) → how long before a meeting each reminder goes, longest first;
    `off` for none."""
    if value.strip().lower() in ("off", "none", "0"):
        return ()
    units = {"m": 1, "h": 60, "d": 24 * 60}
    found = set()
    for part in value.split(","):
        m = re.fullmatch(r"(\d{1,4})\s*([mhd])", part.strip().lower())
        if not m or not 0 < int(m[1]) * units[m[2]] <= 14 * 24 * 60:
            raise ConfigError(f"{name}: expected times before the meeting like 24h,2h (m, h or d; up to 14d) "
                              f"or off, got {part.strip()!r}")
        found.add(timedelta(minutes=int(m[1]) * units[m[2]]))
    return tuple(sorted(found, reverse=True))


@dataclass(frozen=True)
class Option:
    """One documented setting; the README's configuration table lists exactly these."""

    env: str
    default: str | None
    doc: str
    parse: Callable[[str, str], Any] | None = None
    secret: bool = False


OPTIONS: tuple[Option, ...] = (
    Option("ANTHROPIC_API_KEY", None, "Claude API key (read by `serve`, `chat`, `parse-time`).", secret=True),
    Option("ANTHROPIC_BASE_URL", None, "Another Messages API endpoint (a proxy, or a local stand-in)."),
    Option("TELEGRAM_API_ID", None, "Telegram application id from my.telegram.org.",
           lambda n, v: _int(n, v, 1, 2**31 - 1)),
    Option("TELEGRAM_API_HASH", None, "Telegram application hash from my.telegram.org.", secret=True),
    Option("TELEGRAM_BOT_TOKEN", None, "The bot's token from @BotFather.", secret=True),
    Option("SALESBOT_HOME", None, "Data folder: database, Telethon sessions, lock file. "
           "Default: the platform's app folder (`~/.config/salesbot` on Linux)."),
    Option("SALESBOT_DB", None, "The SQLite file. Default: `$SALESBOT_HOME/salesbot.db`."),
    Option("SALESBOT_TZ", "Europe/Moscow", "The business's time zone.", parse_zone),
    Option("SALESBOT_MODEL", DEFAULT_MODEL, "Conversation model."),
    Option("SALESBOT_FAST_MODEL", DEFAULT_FAST_MODEL, "Cheap model for the parse-time fallback."),
    Option("SALESBOT_PROMPT_FILE", None, "The business's system prompt (UTF-8 text). Default: the packaged example."),
    Option("SALESBOT_MANAGER_IDS", "", "Telegram user ids of staff, comma-separated: told about bookings and "
           "handoffs, mentioned in the staff group's alerts; never treated as leads.", _ids),
    Option("SALESBOT_STAFF_CHAT", None, "The staff group: a forum supergroup's id (`-100…`) where each lead gets a "
           "topic and staff take over. The bot must be its admin with the right to manage topics.", _staff_chat),
    Option("SALESBOT_TAKEOVER_HOURS", "12", "A takeover ends by itself this many hours after the last staff message.",
           lambda n, v: _float(n, v, 0.1, 24 * 30)),
    Option("SALESBOT_LLM_TIMEOUT", "30", "Seconds (wall clock) one Claude request may take before it is retried; "
           "a whole call, retries included, gets twice this, so a lead hears back within 2x this.",
           lambda n, v: _float(n, v, 1, 600)),
    Option("SALESBOT_EFFORT", "low", "Claude effort for the dialogue and parse-time: low, medium, high, xhigh or "
           "max (a model without that level gets the nearest it takes).", lambda n, v: _choice(n, v, _EFFORTS)),
    Option("SALESBOT_WORK_DAYS", "mon-fri", "Days meetings can be booked: `mon-fri`, `mon,wed,fri` or `1-5`.",
           _days),
    Option("SALESBOT_WORK_HOURS", "10:00-19:00", "Hours meetings can be booked; a meeting ends by the close. "
           "Per day: `mon-thu 10:00-19:00; fri 10:00-16:00` (the days named are then the working days).",
           parse_work_hours),
    Option("SALESBOT_BREAKS", "", "Breaks on every working day, no meeting overlaps one: `13:00-14:00` (several: "
           "`13:00-14:00, 16:00-16:15`).", parse_breaks),
    Option("SALESBOT_DAYS_OFF", "", "The business's own days off: dates and ranges, "
           "`2026-01-10..2026-01-18, 2026-03-09`.", parse_days_off),
    Option("SALESBOT_HOLIDAYS", "ru", "Public holidays never booked: `ru` (Russia's production calendar with its "
           "transfers of days off), another country code (`kz`, `by`, `de-by`) or `none`.", parse_holidays),
    Option("SALESBOT_BUSY_ICS", None, "The owner's calendars whose busy events block slots: iCalendar addresses "
           "(http, https, webcal) or .ics files, separated by spaces. A secret: never logged whole.",
           _busy_sources, secret=True),
    Option("SALESBOT_SLOT_MINUTES", "60", "Meeting length and slot step, in minutes.",
           lambda n, v: _int(n, v, 10, 480)),
    Option("SALESBOT_MIN_NOTICE_MINUTES", "120", "The earliest a meeting can start from now, in minutes.",
           lambda n, v: _int(n, v, 0, 7 * 24 * 60)),
    Option("SALESBOT_HISTORY_TURNS", "30", "How many recent messages of a conversation go to Claude.",
           lambda n, v: _int(n, v, 2, 200)),
    Option("SALESBOT_MAX_MESSAGE_CHARS", "2000", "A lead's message is cut to this length before Claude sees it.",
           lambda n, v: _int(n, v, 100, 20000)),
    Option("SALESBOT_FOLLOW_UP_1_HOURS", "24", "Hours after the lead's last message before reminder 1.",
           lambda n, v: _float(n, v, 0.01, 24 * 30)),
    Option("SALESBOT_FOLLOW_UP_2_HOURS", "24", "Hours after reminder 1 before reminder 2 (the lead then goes cold).",
           lambda n, v: _float(n, v, 0.01, 24 * 30)),
    Option("SALESBOT_SEND_WINDOW", "10:00-20:00", "Local hours in which reminders may be sent.", _hours_range),
    Option("SALESBOT_BOOKING_DAYS", "60", "How many days ahead a meeting may be booked.",
           lambda n, v: _int(n, v, 1, 366)),
    Option("SALESBOT_MEETING_REMINDERS", "24h,2h", "When the lead is reminded before a meeting: `24h,2h` "
           "(m, h or d), or `off`.", _lead_times),
    Option("SALESBOT_SEND_DAYS", "mon-fri", "Days reminders may be sent: `mon-fri`, `mon,wed,fri` or `1-5`.", _days),
    Option("SALESBOT_MONTHLY_BUDGET_USD", None, "Claude spend ceiling per calendar month (in SALESBOT_TZ), in USD "
           "at list prices: managers are told at 80%; at 100% the bot stops calling Claude until the month ends.",
           lambda n, v: _float(n, v, 0.01, 1_000_000)),
    Option("SALESBOT_WEBHOOK_URL", None, "Where serve POSTs signed JSON events for a CRM or a connector "
           "(http:// or https://; a connector's address is a capability, so it is treated as a secret).", _url,
           secret=True),
    Option("SALESBOT_WEBHOOK_SECRET", None, "The key of the events' HMAC-SHA256 signature "
           "(X-Salesbot-Signature).", secret=True),
    Option("SALESBOT_TEXTS_FILE", None, "A TOML file overriding the business's own words: company name, greeting, "
           "consultation, reminder texts."),
)
_BY_ENV = {o.env: o for o in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """Resolved settings: typed attributes, each parsed (and so validated) the first time it is read.

    A command touches only the settings it uses, so `leads list` works with a malformed
    `SALESBOT_WORK_HOURS`, while `serve` reads what it needs before it reaches Telegram. Secrets are
    kept out of repr so a logged Settings leaks nothing.
    """

    raw: Mapping[str, str] = field(repr=False)
    home: Path
    db_path: Path
    env_files: tuple[Path, ...] = ()  # where .env files are read from, in order (they may not exist)
    sources: Mapping[str, str] = field(default_factory=dict)  # name → "environment" or the .env file

    def typed(self, env: str) -> Any:
        """The typed value of a documented setting (its default when unset, None when neither)."""
        option = _BY_ENV[env]
        value = self.raw.get(env) or option.default
        if value is None:
            return None
        return option.parse(env, value) if option.parse else value

    def require(self, *envs: str) -> None:
        """Raise one ConfigError naming every missing variable, so the operator fixes them in one go."""
        missing = [e for e in envs if not self.raw.get(e)]
        if missing:
            places = " or ".join(str(p) for p in self.env_files) or str(self.home / ".env")
            raise ConfigError("missing settings: " + ", ".join(missing)
                              + f" (set them in the environment or in {places})")
        for env in envs:  # present but malformed is also reported now, not mid-conversation
            self.typed(env)

    def validate(self) -> list[str]:
        """Every malformed setting, one message each (doctor shows them; commands check only their own)."""
        problems = []
        for option in OPTIONS:
            if option.parse and (self.raw.get(option.env) or option.default) is not None:
                try:
                    self.typed(option.env)
                except ConfigError as exc:
                    problems.append(str(exc))
        for name, check in (("SALESBOT_PROMPT_FILE", lambda: load_prompt(self)),
                            ("SALESBOT_TEXTS_FILE", lambda: load_texts(self))):
            try:
                check()
            except ConfigError as exc:
                problems.append(str(exc) if name in str(exc) else f"{name}: {exc}")
        return problems

    def source(self, env: str) -> str:
        """Where a setting's value came from: `environment`, a .env file's path, or `default`."""
        return self.sources.get(env, "default")

    def secrets(self) -> list[str]:
        """The secret values in use, for redaction in error messages."""
        from salesbot.time.busy import secret_forms

        found = [self.raw[o.env] for o in OPTIONS if o.secret and self.raw.get(o.env)]
        if self.raw.get("SALESBOT_BUSY_ICS"):  # each address alone, too: messages may show one
            found += secret_forms(re.split(r"[\s,]+", self.raw["SALESBOT_BUSY_ICS"].strip()))
        return found

    # -- the typed settings, one attribute each (a typo is an AttributeError at import, not a KeyError) --

    @cached_property
    def anthropic_api_key(self) -> str | None:
        return self.typed("ANTHROPIC_API_KEY")

    @cached_property
    def anthropic_base_url(self) -> str | None:
        return self.typed("ANTHROPIC_BASE_URL") or None

    @cached_property
    def telegram_api_id(self) -> int | None:
        return self.typed("TELEGRAM_API_ID")

    @cached_property
    def telegram_api_hash(self) -> str | None:
        return self.typed("TELEGRAM_API_HASH")

    @cached_property
    def bot_token(self) -> str | None:
        return self.typed("TELEGRAM_BOT_TOKEN")

    @cached_property
    def tz(self) -> ZoneInfo:
        return self.typed("SALESBOT_TZ")

    @cached_property
    def model(self) -> str:
        return self.typed("SALESBOT_MODEL")

    @cached_property
    def fast_model(self) -> str:
        return self.typed("SALESBOT_FAST_MODEL")

    @cached_property
    def prompt_file(self) -> Path:
        value = self.raw.get("SALESBOT_PROMPT_FILE")
        return _under_home("SALESBOT_PROMPT_FILE", value, self.home) if value else PACKAGED_PROMPT

    @cached_property
    def texts_file(self) -> Path | None:
        value = self.raw.get("SALESBOT_TEXTS_FILE")
        return _under_home("SALESBOT_TEXTS_FILE", value, self.home) if value else None

    @cached_property
    def manager_ids(self) -> tuple[int, ...]:
        return self.typed("SALESBOT_MANAGER_IDS")

    @cached_property
    def staff_chat(self) -> int | None:
        return self.typed("SALESBOT_STAFF_CHAT")

    @cached_property
    def takeover_hours(self) -> float:
        return self.typed("SALESBOT_TAKEOVER_HOURS")

    @cached_property
    def llm_timeout(self) -> float:
        return self.typed("SALESBOT_LLM_TIMEOUT")

    @cached_property
    def effort(self) -> str:
        return self.typed("SALESBOT_EFFORT")

    @cached_property
    def work_days(self) -> frozenset[int]:
        return self.typed("SALESBOT_WORK_DAYS")

    @cached_property
    def work_hours(self) -> WorkHours:
        return self.typed("SALESBOT_WORK_HOURS")

    @cached_property
    def breaks(self) -> tuple[tuple[time, time], ...]:
        return self.typed("SALESBOT_BREAKS")

    @cached_property
    def days_off(self) -> tuple[tuple[date, date], ...]:
        return self.typed("SALESBOT_DAYS_OFF")

    @cached_property
    def holidays(self) -> str | None:
        return self.typed("SALESBOT_HOLIDAYS")

    @cached_property
    def busy_sources(self) -> tuple[str, ...]:
        return self.typed("SALESBOT_BUSY_ICS") or ()

    @cached_property
    def slot_minutes(self) -> int:
        return self.typed("SALESBOT_SLOT_MINUTES")

    @cached_property
    def min_notice_minutes(self) -> int:
        return self.typed("SALESBOT_MIN_NOTICE_MINUTES")

    @cached_property
    def history_turns(self) -> int:
        return self.typed("SALESBOT_HISTORY_TURNS")

    @cached_property
    def max_message_chars(self) -> int:
        return self.typed("SALESBOT_MAX_MESSAGE_CHARS")

    @cached_property
    def follow_up_1_hours(self) -> float:
        return self.typed("SALESBOT_FOLLOW_UP_1_HOURS")

    @cached_property
    def follow_up_2_hours(self) -> float:
        return self.typed("SALESBOT_FOLLOW_UP_2_HOURS")

    @cached_property
    def send_window(self) -> tuple[time, time]:
        return self.typed("SALESBOT_SEND_WINDOW")

    @cached_property
    def booking_days(self) -> int:
        return self.typed("SALESBOT_BOOKING_DAYS")

    @cached_property
    def meeting_reminders(self) -> tuple[timedelta, ...]:
        return self.typed("SALESBOT_MEETING_REMINDERS")

    @cached_property
    def send_days(self) -> frozenset[int]:
        return self.typed("SALESBOT_SEND_DAYS")

    @cached_property
    def monthly_budget_usd(self) -> float | None:
        return self.typed("SALESBOT_MONTHLY_BUDGET_USD")

    @cached_property
    def webhook_url(self) -> str | None:
        return self.typed("SALESBOT_WEBHOOK_URL")

    @cached_property
    def webhook_secret(self) -> str | None:
        return self.typed("SALESBOT_WEBHOOK_SECRET")


TELEGRAM_KEYS = ("TELEGRAM_API_ID", "TELEGRAM_API_HASH", "TELEGRAM_BOT_TOKEN")
CLAUDE_KEYS = ("ANTHROPIC_API_KEY",)


def read_small_text(name: str, path: Path, limit: int = PROMPT_MAX_BYTES) -> str:
    """A regular UTF-8 text file of at most `limit` bytes: a FIFO, a device or a folder is refused
    before it is opened (a FIFO would hang, /dev/zero would fill memory)."""
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{name}: {path} is not a regular file")
    if info.st_size > limit:
        raise ConfigError(f"{name}: {path} is {info.st_size:,} bytes, more than the {limit:,} allowed")
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise ConfigError(f"{name}: {path} is more than the {limit:,} bytes allowed")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: {path} is not UTF-8 text; save it as UTF-8") from None


def load_prompt(settings: Settings) -> str:
    """The business's system prompt (the packaged example unless SALESBOT_PROMPT_FILE names one)."""
    path = settings.prompt_file
    prompt = read_small_text("SALESBOT_PROMPT_FILE", path).strip()
    if not prompt:
        raise ConfigError(f"SALESBOT_PROMPT_FILE: {path} is empty")
    return prompt


TEXTS_MAX_BYTES = 100_000


def load_texts(settings: Settings) -> dict[str, str]:
    """The business's own words from SALESBOT_TEXTS_FILE (TOML), checked: {} when it is not set."""
    import tomllib

    from salesbot import texts

    path = settings.texts_file
    if path is None:
        return {}
    source = read_small_text("SALESBOT_TEXTS_FILE", path, TEXTS_MAX_BYTES)
    try:
        values = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"SALESBOT_TEXTS_FILE: {path} is not valid TOML ({exc})") from None
    problems = texts.override_problems(values)
    if problems:
        raise ConfigError(f"SALESBOT_TEXTS_FILE: {path}: " + "; ".join(problems))
    return values


def _under_home(name: str, value: str, home: Path) -> Path:
    """A path setting: absolute as given, relative to SALESBOT_HOME otherwise (the same for cron,
    systemd and a shell, whatever their working directory)."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else home / path


def default_home() -> Path:
    import typer  # click's get_app_dir: ~/.config/salesbot, ~/Library/Application Support/salesbot, …

    return Path(typer.get_app_dir("salesbot"))


ENV_PREFIXES = ("SALESBOT_", "TELEGRAM_", "ANTHROPIC_")
# Names other tools read from the same environment; not ours, so not a typo either.
_NOT_OURS = {"ANTHROPIC_LOG", "ANTHROPIC_AUTH_TOKEN"}


def _exists(env_file: Path) -> bool:
    """Whether a `.env` file is there; a folder this user may not look into is said as such."""
    try:
        return env_file.is_file()
    except PermissionError:
        raise ConfigError(f"cannot look for {env_file}: permission denied (is {env_file.parent} "
                          "readable by this user? SALESBOT_HOME must be its own)") from None


def load_settings(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    local_env = cwd / ".env"
    local = _set(parse_env_file(local_env)) if _exists(local_env) else {}
    home_value = environ.get("SALESBOT_HOME") or local.get("SALESBOT_HOME")
    home = Path(home_value).expanduser() if home_value else default_home()
    if not home.is_absolute():
        raise ConfigError("SALESBOT_HOME must be an absolute path (cron and systemd start in another folder); "
                          "got a relative one")
    home_env = home / ".env"
    same = _exists(home_env) and _exists(local_env) and home_env.resolve() == local_env.resolve()
    from_home = _set(parse_env_file(home_env)) if _exists(home_env) and not same else {}
    ours = _set({k: v for k, v in environ.items() if k in _BY_ENV})
    raw = {**from_home, **local, **ours}
    sources = {**dict.fromkeys(from_home, str(home_env)), **dict.fromkeys(local, str(local_env)),
               **dict.fromkeys(ours, "environment")}
    raw["SALESBOT_HOME"] = str(home)
    if not home_value:
        sources.pop("SALESBOT_HOME", None)
    with contextlib.suppress(ConfigError):  # log times in the business's zone from the first line on
        logs.use_zone(parse_zone("SALESBOT_TZ", raw.get("SALESBOT_TZ", "Europe/Moscow")))
    _warn_unknown([k for k in environ if k.startswith("SALESBOT_")], "the environment")
    for path, values in ((local_env, local), (home_env, from_home)):
        _warn_unknown([k for k in values if k.startswith(ENV_PREFIXES)], str(path))
    db_value = raw.get("SALESBOT_DB")
    db_path = _under_home("SALESBOT_DB", db_value, home) if db_value else home / "salesbot.db"
    env_files = (local_env,) if same else (local_env, home_env)
    return Settings(raw=raw, home=home, db_path=db_path, env_files=env_files, sources=sources)


def _set(values: Mapping[str, str]) -> dict[str, str]:
    """Only the settings given a value: an empty `KEY=` (what `cp .env.example .env` leaves) or an
    empty environment variable means "not set here", so it never hides a value set further down."""
    return {key: value for key, value in values.items() if value.strip()}


def _warn_unknown(names: list[str], where: str) -> None:
    for name in names:
        if name in _BY_ENV or name in _NOT_OURS:
            continue
        close = difflib.get_close_matches(name, list(_BY_ENV), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        log.warning("unknown setting %s in %s (ignored)%s", name, where, hint)


def ensure_home(settings: Settings) -> Path:
    """Create the data folder on first use; a folder we cannot write to is a clear error."""
    home = settings.home
    try:
        # 0700: the Telethon session files in it are the bot's login
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create SALESBOT_HOME {home}: {exc.strerror}") from None
    if not os.access(home, os.W_OK | os.X_OK):
        raise ConfigError(f"SALESBOT_HOME {home} is not writable by this user")
    return home
