"""Deep links that tag new leads with where they came from, and the bot's username they need.

Telegram's bot links `https://t.me/<bot>?start=<parameter>` open the bot and, when the user presses
Start, send `/start <parameter>`; the parameter is up to 64 characters of `A-Z a-z 0-9 _ -`
(core.telegram.org/api/links#bot-links). Such a parameter on a lead's first `/start` becomes the
lead's `source`; anything else after `/start` is ignored.

`serve` writes the bot's username (from Telegram's getMe) to `bot.json` in SALESBOT_HOME at every
login, so `salesbot links` can build links without reaching Telegram.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from salesbot.errors import SalesbotError, quoted

log = logging.getLogger(__name__)

SOURCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
BOT_FILE = "bot.json"


def valid_source(value: str | None) -> bool:
    return value is not None and SOURCE_PATTERN.fullmatch(value) is not None


def start_payload(text: str) -> str | None:
    """The source a `/start PAYLOAD` message carries (`/start@bot PAYLOAD` too), or None when it has
    none or one Telegram could not have sent."""
    parts = text.split(maxsplit=2)
    if len(parts) != 2 or parts[0].split("@")[0].lower() != "/start":
        return None
    return parts[1] if valid_source(parts[1]) else None


def check_source(value: str) -> str:
    if not valid_source(value):
        raise SalesbotError(f"a source is 1 to 64 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule for "
                            f"a start parameter); got {quoted(value)}")
    return value


def remember_bot(home: Path, username: str | None) -> None:
    """Keep the bot's username for `salesbot links` (written whole or not at all)."""
    if not username:
        return
    path = home / BOT_FILE
    try:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps({"username": username}), encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        log.warning("could not remember the bot's username in %s: %s", path, exc.strerror)


def bot_username(home: Path) -> str | None:
    try:
        data = json.loads((home / BOT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    username = data.get("username") if isinstance(data, dict) else None
    return username if isinstance(username, str) and username else None


def deep_link(username: str, source: str) -> str:
    return f"https://t.me/{username}?start={check_source(source)}"
