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
    """Sends one message and says what Telegram (or the terminal) made of it."""

    async def send(self, peer: Peer, text: str, buttons: Keyboard | None, random_id: int) -> int | None:
        """Send; return the message's id on the other side (None where there is none, as in a terminal).
        `random_id` is the same on every attempt of one message, so a resend is not a duplicate."""
        ...

    async def remove_buttons(self, peer: Peer, message_id: int) -> None:
        """Take the keyboard off a message that has served its purpose (best effort)."""
        ...


class SendError(Exception):
    """Sending failed, and how:
    - `unreachable`: the peer can never be reached (blocked the bot, deleted the account);
    - `rejected`: Telegram refuses this message itself (retrying it cannot help);
    - `retry_after`: a flood wait, in seconds: this chat waits that long;
    - otherwise transient (connection, server trouble): retried with backoff."""

    def __init__(self, reason: str, *, unreachable: bool = False, rejected: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable
        self.rejected = rejected
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        return self.unreachable or self.rejected


class BotUnauthorized(Exception):
    """Telegram no longer accepts the bot itself (token revoked, session ended, bot deleted): nothing
    can be sent until an operator acts, and no lead is to blame."""


# --- the staff group (salesbot/inbox) -----------------------------------------------------------------


class GroupUnavailable(Exception):
    """The staff group takes no posts now, for a reason staff must fix (`cause` is Telegram's error:
    CHAT_ADMIN_REQUIRED — the bot may not manage topics, CHANNEL_PRIVATE — it is not in the group,
    CHAT_WRITE_FORBIDDEN, CHANNEL_FORUM_MISSING — topics are off)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class TopicGone(Exception):
    """The topic was deleted (TOPIC_DELETED): a new one is opened."""


class TopicClosed(Exception):
    """Staff closed the topic (TOPIC_CLOSED): the bot reopens it to post."""


class StaffTransport(Protocol):
    """Posts into the forum topics of the staff group (`chat_id` is its -100… id)."""

    async def create_topic(self, chat_id: int, title: str, random_id: int) -> int:
        """Open a topic; its id."""
        ...

    async def post(self, chat_id: int, topic_id: int, text: str, buttons: Keyboard | None,
                   random_id: int) -> int | None:
        ...

    async def forward(self, chat_id: int, topic_id: int, peer: Peer, message_id: int, random_id: int) -> int | None:
        """Forward a lead's message (its id in the lead's chat) into the topic as it is."""
        ...

    async def reopen_topic(self, chat_id: int, topic_id: int) -> None:
        ...
