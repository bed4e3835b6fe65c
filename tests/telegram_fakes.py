"""A Telethon client for the request-shape tests: real request objects, no network."""

from __future__ import annotations

from datetime import UTC, datetime

from telethon import TelegramClient
from telethon.sessions import StringSession
from telethon.tl import functions, types


class CapturingClient(TelegramClient):
    """A real TelegramClient whose call boundary records requests instead of sending them."""

    def __init__(self) -> None:
        super().__init__(StringSession(), 12345, "0123456789abcdef0123456789abcdef", receive_updates=False)
        self.requests: list = []
        self.fail: list[BaseException] = []

    async def __call__(self, request, ordered=False, flood_sleep_threshold=None):
        self.requests.append(request)
        if self.fail:
            raise self.fail.pop(0)
        if isinstance(request, functions.users.GetUsersRequest):  # a bot looking a user up by id
            return [types.User(id=u.user_id, access_hash=4242, first_name="Менеджер") for u in request.id]
        return types.UpdateShortSentMessage(id=len(self.requests), pts=1, pts_count=1, date=datetime.now(UTC),
                                            out=True)

    @property
    def sent(self):
        return [r for r in self.requests if isinstance(r, functions.messages.SendMessageRequest)]
