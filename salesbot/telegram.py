"""The Telethon adapter: the only module that imports telethon.

Thin on purpose: handlers turn Telethon events into the engine's `Incoming` and the engine's
messages into Telegram requests. `serve` and the reminder sweep each use their own session file in
SALESBOT_HOME (two processes on one session file lock each other out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from telethon import TelegramClient, errors, events
from telethon.helpers import generate_random_long
from telethon.tl import functions, types
from telethon.tl.custom import Button as TgButton

from salesbot.conversation import Dialogue, Incoming, Sender
from salesbot.errors import SalesbotError
from salesbot.transport import Keyboard, Peer, SendError

log = logging.getLogger(__name__)

SERVE_SESSION = "serve"
SWEEP_SESSION = "follow-ups"

# The peer can never be reached again: the lead blocked the bot or is gone.
PERMANENT = (errors.UserIsBlockedError, errors.InputUserDeactivatedError, errors.UserDeactivatedError,
             errors.PeerIdInvalidError, errors.UserIdInvalidError, errors.UserBlockedError,
             errors.ChatWriteForbiddenError)


def input_peer(peer: Peer) -> types.InputPeerUser:
    # Bots may address a user they have seen with access_hash 0; the sweep's own session has seen
    # nobody, so leads carry the access hash from the database.
    return types.InputPeerUser(user_id=peer.user_id, access_hash=peer.access_hash or 0)


def inline_markup(buttons: Keyboard) -> types.TypeReplyMarkup:
    # Telethon's own builder follows the layer's button types (they changed between layers).
    return TelegramClient.build_reply_markup([[TgButton.inline(b.label, b.data.encode()) for b in row]
                                              for row in buttons])


class TelethonTransport:
    """Transport over a Telethon client: one SendMessageRequest per message, errors as SendError."""

    def __init__(self, client: TelegramClient) -> None:
        self.client = client

    async def send_text(self, peer: Peer, text: str) -> None:
        await self._send(peer, text, None)

    async def send_buttons(self, peer: Peer, text: str, buttons: Keyboard) -> None:
        await self._send(peer, text, buttons)

    async def _send(self, peer: Peer, text: str, buttons: Keyboard | None) -> None:
        if peer.user_id is None:
            raise SendError("not a Telegram lead", permanent=True)
        request = functions.messages.SendMessageRequest(
            peer=await self._input_peer(peer),
            message=text,
            random_id=generate_random_long(),
            no_webpage=True,
            reply_markup=inline_markup(buttons) if buttons else None,
        )
        try:
            await self.client(request)
        except errors.FloodWaitError as exc:
            raise SendError(f"flood wait {exc.seconds} s", retry_after=float(exc.seconds)) from None
        except PERMANENT as exc:
            raise SendError(type(exc).__name__, permanent=True) from None
        except (TimeoutError, errors.RPCError, ConnectionError, OSError) as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from None

    async def _input_peer(self, peer: Peer) -> types.TypeInputPeer:
        if peer.access_hash is None:  # a manager: whoever has written to the bot is in the session cache
            with contextlib.suppress(ValueError, TypeError, errors.RPCError):
                # cache first; a bot may then look the user up by id (users.getUsers, access hash 0)
                return await self.client.get_input_entity(types.PeerUser(peer.user_id))
        return input_peer(peer)

    async def answer_callback(self, query_id: int) -> None:
        try:
            await self.client(functions.messages.SetBotCallbackAnswerRequest(query_id=query_id, cache_time=0))
        except (errors.RPCError, ConnectionError, OSError) as exc:
            log.debug("could not answer callback query: %s", exc)


def media_kind(message: Any) -> str | None:
    if message.media is None:
        return None
    for kind in ("sticker", "voice", "photo", "video", "document"):
        if getattr(message, kind, None):
            return kind
    return "other"


def sender_of(event: Any) -> Sender:
    user = event.sender  # cached from the update's entities: no network, no await
    access_hash = getattr(user, "access_hash", None)
    if access_hash is None:  # a short update without the user: the session's cache may have it
        access_hash = getattr(event.input_sender, "access_hash", None)
    return Sender(
        telegram_id=event.sender_id,
        access_hash=access_hash,
        username=getattr(user, "username", None),
        first_name=getattr(user, "first_name", None),
    )


class BotHandlers:
    """Telethon event handlers: convert, delegate to the engine, nothing else."""

    def __init__(self, engine: Dialogue, transport: TelethonTransport) -> None:
        self.engine = engine
        self.transport = transport

    async def on_message(self, event: Any) -> None:
        if getattr(event.sender, "bot", False):
            return
        message = event.message
        await self.engine.handle(Incoming(
            sender=sender_of(event),
            text=message.message or "",
            media=media_kind(message),
            private=event.is_private,
        ))

    async def on_callback(self, event: Any) -> None:
        try:
            await self.engine.handle(Incoming(
                sender=sender_of(event),
                button=event.data.decode("utf-8", errors="replace"),
                private=event.is_private,
            ))
        finally:
            await self.transport.answer_callback(event.query.query_id)


def make_client(settings, session: str, *, receive_updates: bool, flood_sleep_threshold: int = 60) -> TelegramClient:
    """A bot client on its own session file. Flood waits up to `flood_sleep_threshold` seconds are
    slept inside Telethon; longer ones come back as SendError(retry_after=…)."""
    return TelegramClient(
        str(settings.home / session),
        settings.telegram_api_id,
        settings.telegram_api_hash,
        receive_updates=receive_updates,
        flood_sleep_threshold=flood_sleep_threshold,
    )


async def serve(settings, engine_factory) -> None:
    """Run the bot until SIGINT/SIGTERM. `engine_factory(transport)` builds the engine."""
    client = make_client(settings, SERVE_SESSION, receive_updates=True)
    transport = TelethonTransport(client)
    engine = engine_factory(transport)
    handlers = BotHandlers(engine, transport)
    client.add_event_handler(handlers.on_message, events.NewMessage(incoming=True))
    client.add_event_handler(handlers.on_callback, events.CallbackQuery())
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await client.start(bot_token=settings.bot_token)
    except errors.RPCError as exc:
        raise SalesbotError(f"Telegram refused to log the bot in: {type(exc).__name__}") from None
    except (ConnectionError, OSError) as exc:
        raise SalesbotError(f"cannot reach Telegram: {exc}") from None
    me = await client.get_me()
    log.info("serving as @%s; Ctrl-C or SIGTERM to stop", getattr(me, "username", "?"))
    stopper = asyncio.create_task(stopping.wait())
    running = asyncio.ensure_future(client.run_until_disconnected())
    await asyncio.wait({stopper, running}, return_when=asyncio.FIRST_COMPLETED)
    log.info("shutting down")
    stopper.cancel()
    await client.disconnect()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)


@contextlib.asynccontextmanager
async def sweep_transport(settings):
    """A transport for the reminder sweep: its own session file, no updates received, and every
    FloodWait handed back to the sweep (which waits out short ones and stops on long ones)."""
    client = make_client(settings, SWEEP_SESSION, receive_updates=False, flood_sleep_threshold=0)
    try:
        await client.start(bot_token=settings.bot_token)
    except (errors.RPCError, ConnectionError, OSError) as exc:
        await client.disconnect()
        raise SalesbotError(f"cannot log the bot in to Telegram: {type(exc).__name__}") from None
    try:
        yield TelethonTransport(client)
    finally:
        await client.disconnect()
