"""The seam between the transport-agnostic core and the outside world (Telegram, a terminal).

The dialogue engine and the reminder sweep only ever talk to a `Transport`; telegram.py and
terminal.py implement it, and tests use a recording fake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Peer:
    """Whom to write to: a Telegram user (id and access hash), or a terminal lead (lead_id only)."""

    user_id: int | None = None
    access_hash: int | None = None
    lead_id: int | None = None


@dataclass(frozen=True)
class Button:
    label: str
    data: str  # compact callback data, at most 64 bytes (Telegram's limit)

    def __post_init__(self) -> None:
        if len(self.data.encode()) > 64:
            raise ValueError(f"callback data too long: {self.data!r}")


Keyboard = list[list[Button]]


class Transport(Protocol):
    async def send_text(self, peer: Peer, text: str) -> None: ...

    async def send_buttons(self, peer: Peer, text: str, buttons: Keyboard) -> None: ...


class SendError(Exception):
    """Sending failed. `permanent` means the peer can never be reached (blocked the bot, deleted)."""

    def __init__(self, reason: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after  # a flood wait: how long Telegram asks us to pause
