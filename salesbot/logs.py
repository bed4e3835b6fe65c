"""Logging to stderr, configured once by the CLI, with secrets masked in every record."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, tzinfo

_secrets: set[str] = set()
QUIET_LIBRARIES = ("telethon", "httpx", "httpx2", "anthropic", "peewee")


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):  # longest first: a form that contains another
        text = text.replace(secret, "***")
    return text


class RedactingFormatter(logging.Formatter):
    """Masks known secret values wherever they appear: message, arguments or traceback. Times carry the
    date and the business time zone's offset (`2025-12-23 14:05:00+0300`): a cron log read days later,
    on a server in UTC, must still say when in the business's day a line was written."""

    zone: tzinfo | None = None  # SALESBOT_TZ once the settings are read; the machine's until then

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, self.zone) if self.zone else \
            datetime.fromtimestamp(record.created).astimezone()
        return moment.strftime(TIME_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


TIME_FORMAT = "%Y-%m-%d %H:%M:%S%z"


def use_zone(zone: tzinfo) -> None:
    """Log times in the business's zone from now on."""
    RedactingFormatter.zone = zone


def _forms(value: str) -> set[str]:
    """The value as it may appear in a log: as is, stripped (what is actually sent), and escaped the
    way reprs, bytes reprs and JSON print a trailing newline or other control characters."""
    forms = {value, value.strip()}
    for v in (value, value.strip()):
        forms.add(v.encode("unicode_escape").decode("ascii", "replace"))
        forms.add(json.dumps(v)[1:-1])
        forms.add(repr(v)[1:-1])
        forms.add(repr(v.encode())[2:-1])
    return forms


def add_secrets(values: list[str]) -> None:
    # Very short values would mask ordinary words; real keys and tokens are long.
    for value in values:
        _secrets.update(form for form in _forms(value) if len(form) >= 8)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it per invocation)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


_verbose = False


def quiet_unless_verbose() -> None:
    """WARNING and above only (for `chat`, whose dialogue log lines would break up), unless -v."""
    if not _verbose:
        logging.getLogger("salesbot").setLevel(logging.WARNING)


def configure(verbose: bool = False) -> None:
    global _verbose
    _verbose = verbose
    handler = StderrHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("salesbot").setLevel(logging.DEBUG if verbose else logging.INFO)
    # Library chatter stays out unless asked for.
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


# Terminal control characters (C0 but newline and tab, DEL, C1, and the bidi overrides that reorder
# what follows) in a lead's name or message are shown as escapes, never sent to the staff's terminal:
# an ESC sequence in a Telegram name could clear the screen or rewrite what is shown.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape_char(match: re.Match) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str | None, lines: bool = False) -> str:
    """`text` safe for a terminal: control characters as `\\x1b`-style escapes; newlines kept only
    when `lines` (a message), else escaped too (a name is one line)."""
    return (_CONTROL if lines else _CONTROL_OR_LINE).sub(_escape_char, text or "")
