"""What one turn of the dialogue works with: the message that came in, the lead, and what the turn's
first reply answers — passed explicitly from handler to handler."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from salesbot.claude.dialogue import Answer
from salesbot.store.leads import LeadState
from salesbot.time import parse as timeparse
from salesbot.time.slots import Calendar

# The kinds of input a turn can carry (the dispatch table's columns).
TEXT, BUTTON, COMMAND, MEDIA = "text", "button", "command", "media"
COMMANDS = ("/start", "/stop", "/cancel")


class DialogueLLM(Protocol):
    """What the engine needs from a language model (claude/dialogue.py; tests use a recording fake)."""

    async def answer(self, history: list[tuple[str, str]], context: str, lead_id: int) -> Answer: ...

    async def parse_time(self, text: str, now: datetime, calendar: Calendar, lead_id: int) -> timeparse.ParseResult:
        ...


@dataclass
class Sender:
    telegram_id: int | None = None
    access_hash: int | None = None
    username: str | None = None
    first_name: str | None = None
    lead_id: int | None = None  # a terminal lead, made by `salesbot chat`


@dataclass
class Incoming:
    sender: Sender
    text: str = ""
    button: str | None = None  # callback data of a pressed button
    media: str | None = None  # sticker, voice, photo, video, document, or another kind
    private: bool = True
    telegram_message_id: int | None = None  # a message: Telegram's id of it (replays are ignored)
    button_message_id: int | None = None  # a button: Telegram's id of the message that carried it

    @property
    def kind(self) -> str:
        if self.button is not None:
            return BUTTON
        text = (self.text or "").strip()
        if self.media is not None and not text:
            return MEDIA
        return COMMAND if command_of(text) else TEXT


@dataclass
class DialogueConfig:
    calendar: Calendar
    manager_ids: tuple[int, ...] = ()
    max_chars: int = 2000
    history_turns: int = 30


@dataclass(frozen=True)
class Stored:
    """A lead's message as stored: its row id and the text kept for it."""

    id: int
    text: str


@dataclass
class Turn:
    """One lead message being handled. `answering` is the stored message the turn's first reply
    answers: saying something marks it (and the lead's messages before it) answered in the same
    transaction that queues the reply, so a crash can neither lose the answer nor send it twice.
    None once answered, or while a Claude call decides what covers it."""

    lead: LeadState
    message: Stored
    kind: str
    incoming: Incoming
    text: str
    answering: int | None = None
    reply: str | None = None  # the model's reply this turn: the message that starts with it is its words

    def model_chars(self, text: str) -> int:
        """How much of `text` (said now) is the model's reply: all of the reply once, then nothing."""
        if self.reply and text.startswith(self.reply):
            size, self.reply = len(self.reply), None
            return size
        return 0
    quiet: bool = False  # a restart's or a retry's turn: no «Минутку», no second fallback

    @property
    def command(self) -> str | None:
        return command_of(self.text)


@dataclass
class LeadLock:
    """Per-lead concurrency: one handler at a time, and how far the lead's texts are answered."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    answered_upto: int = 0
    told_to_wait: bool = False
    thinking: bool = False  # the holder waits for Claude (only then does a new message get «Минутку»)


def command_of(text: str) -> str | None:
    """`/start`, `/stop` or `/cancel` (also as `/start@salesbot` or with a payload), else None."""
    word = text.split(maxsplit=1)[0].split("@")[0].lower() if text.startswith("/") else ""
    return word if word in COMMANDS else None


def said(text: str, words: set[str]) -> bool:
    """The text is one of `words`, give or take case, ё, spaces and end punctuation."""
    return " ".join(text.lower().replace("ё", "е").strip(" .!?)").split()) in {w.replace("ё", "е") for w in words}
