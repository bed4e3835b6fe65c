"""Logging to stderr, configured once by the CLI, with secrets masked in every record."""

from __future__ import annotations

import logging
import sys

_secrets: set[str] = set()
QUIET_LIBRARIES = ("telethon", "httpx", "httpx2", "anthropic", "peewee")


def redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


class RedactingFormatter(logging.Formatter):
    """Masks known secret values wherever they appear: message, arguments or traceback."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def add_secrets(values: list[str]) -> None:
    # Very short values would mask ordinary words; real keys and tokens are long.
    _secrets.update(v for v in values if len(v) >= 8)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it per invocation)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure(verbose: bool = False) -> None:
    handler = StderrHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("salesbot").setLevel(logging.DEBUG if verbose else logging.INFO)
    # Library chatter stays out unless asked for.
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
