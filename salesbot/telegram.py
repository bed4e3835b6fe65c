"""The Telethon adapter: the only module that imports telethon, and the one session that talks to Telegram.

Thin on purpose: handlers turn Telethon events into the engine's `Incoming`; `TelethonTransport`
turns the outbox's rows into requests and Telegram's answers into what delivery.py needs to know.
`serve` runs the bot: one process per SALESBOT_HOME, updates missed while it was down fetched on
start (`catch_up`), a clean stop on SIGTERM, and a non-zero exit when Telegram is gone for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import re
import signal
import sqlite3
from collections.abc import Callable
from typing import Any

from telethon import TelegramClient, errors, events
from telethon._updates.messagebox import MessageBox
from telethon.sessions import SQLiteSession
from telethon.tl import functions, types
from telethon.tl.custom import Button as TgButton

from salesbot import links, texts
from salesbot.delivery import Outbox
from salesbot.dialogue import Dialogue, Incoming, Sender
from salesbot.errors import BotUnauthorizedError, SalesbotError
from salesbot.transport import (
    BotUnauthorized,
    GroupUnavailable,
    Keyboard,
    Peer,
    SendError,
    TopicClosed,
    TopicGone,
)

log = logging.getLogger(__name__)

SERVE_SESSION = "serve"
DRAIN_SECONDS = 20.0  # SIGTERM: running handlers may finish this long (the unit's TimeoutStopSec is 45)
LOGIN_FLOOD_WAIT_MAX = 300  # a login FloodWait up to this is waited out; a longer one is reported

# The peer will never read us: the lead blocked the bot or deleted the account.
UNREACHABLE = (errors.UserIsBlockedError, errors.InputUserDeactivatedError, errors.ChatWriteForbiddenError)
# Telegram refuses this message (or this address) itself; another attempt cannot help. PEER_ID_INVALID
# is here, not above: it says the address is wrong, not that the lead is gone, so nobody is opted out.
REJECTED = (errors.MessageTooLongError, errors.MessageEmptyError, errors.ButtonDataInvalidError,
            errors.ReplyMarkupInvalidError, errors.PeerIdInvalidError, errors.UserIdInvalidError,
            errors.EntitiesTooLongError)
# 401s: the bot itself is not accepted (core.telegram.org/api/errors#401-unauthorized).
UNAUTHORIZED = (errors.AuthKeyUnregisteredError, errors.AuthKeyInvalidError, errors.SessionRevokedError,
                errors.SessionExpiredError, errors.UserDeactivatedError, errors.UserDeactivatedBanError,
                errors.UnauthorizedError)


def input_peer(peer: Peer) -> types.InputPeerUser:
    return types.InputPeerUser(user_id=peer.user_id, access_hash=peer.access_hash or 0)


def inline_markup(buttons: Keyboard) -> types.TypeReplyMarkup:
    # Telethon's own builder follows the layer's button types (they changed between layers).
    return TelegramClient.build_reply_markup([[TgButton.inline(b.label, b.data.encode()) for b in row]
                                              for row in buttons])


def sent_message_id(result: Any, random_id: int) -> int | None:
    """Telegram's id of the message a sendMessage created: UpdateShortSentMessage carries it, Updates
    map our random_id to it (core.telegram.org/method/messages.sendMessage, updateMessageID)."""
    if isinstance(result, types.UpdateShortSentMessage):
        return result.id
    for update in getattr(result, "updates", []):
        if isinstance(update, types.UpdateMessageID) and update.random_id == random_id:
            return update.id
    for update in getattr(result, "updates", []):
        if isinstance(update, types.UpdateNewMessage):
            return update.message.id
    return None


class TelethonTransport:
    """delivery.Transport over a Telethon client: one SendMessageRequest per row, errors as SendError."""

    def __init__(self, client: TelegramClient) -> None:
        self.client = client

    async def send(self, peer: Peer, text: str, buttons: Keyboard | None, random_id: int) -> int | None:
        if peer.user_id is None:
            raise SendError("not a Telegram lead", rejected=True)
        request = functions.messages.SendMessageRequest(
            peer=await self._input_peer(peer), message=text, random_id=random_id, no_webpage=True,
            reply_markup=inline_markup(buttons) if buttons else None)
        try:
            result = await self.client(request)
        except errors.FloodWaitError as exc:
            # Telethon remembers a flood wait per request *type* and would refuse every other chat's
            # sendMessage until it ends (telethon/client/users.py, `_flood_waited_requests`); the wait
            # belongs to this chat, so forget it there and let the outbox hold this chat back.
            self.client._flood_waited_requests.pop(request.CONSTRUCTOR_ID, None)
            raise SendError(f"flood wait {exc.seconds} s", retry_after=float(exc.seconds)) from None
        except errors.RandomIdDuplicateError:
            return None  # an earlier attempt of this very message got through (same random_id)
        except UNAUTHORIZED as exc:
            raise BotUnauthorized(type(exc).__name__) from None
        except UNREACHABLE as exc:
            raise SendError(type(exc).__name__, unreachable=True) from None
        except REJECTED as exc:
            raise SendError(type(exc).__name__, rejected=True) from None
        except (TimeoutError, errors.RPCError, ConnectionError, OSError, ValueError) as exc:
            # ValueError: Telethon's "Request was unsuccessful N time(s)" after server errors
            raise SendError(f"{type(exc).__name__}: {exc}") from None
        return sent_message_id(result, random_id)

    async def remove_buttons(self, peer: Peer, message_id: int) -> None:
        # messages.editMessage without reply_markup takes the inline keyboard off the message
        with contextlib.suppress(errors.RPCError, ConnectionError, OSError, ValueError):
            await self.client(functions.messages.EditMessageRequest(peer=await self._input_peer(peer), id=message_id),
                              flood_sleep_threshold=0)

    async def _input_peer(self, peer: Peer) -> types.TypeInputPeer:
        if peer.access_hash is None:  # a manager: whoever has written to the bot is in the session cache
            with contextlib.suppress(ValueError, TypeError, errors.RPCError):
                # cache first; a bot may then look the user up by id (users.getUsers, access hash 0)
                return await self.client.get_input_entity(types.PeerUser(peer.user_id))
        return input_peer(peer)

    async def answer_callback(self, query_id: int, toast: str | None = None) -> None:
        try:
            await self.client(functions.messages.SetBotCallbackAnswerRequest(query_id=query_id, cache_time=0,
                                                                           message=toast),
                              flood_sleep_threshold=0)
        except (errors.RPCError, ConnectionError, OSError, ValueError) as exc:
            log.info("could not answer a button press: %s", exc)


# The staff group takes no posts until staff fix it (salesbot/inbox/poster.py names each cause).
GROUP_CAUSES = {errors.ChatAdminRequiredError: "CHAT_ADMIN_REQUIRED", errors.ChannelPrivateError: "CHANNEL_PRIVATE",
                errors.ChannelInvalidError: "CHANNEL_INVALID", errors.ChatWriteForbiddenError: "CHAT_WRITE_FORBIDDEN",
                errors.ChannelForumMissingError: "CHANNEL_FORUM_MISSING"}
MENTION = re.compile(r"\[\[@(\d+)\]\]")  # salesbot/inbox/inbox.py MENTION


class StaffGroupTransport:
    """inbox's StaffTransport over the same client: forum topics of the staff supergroup
    (core.telegram.org/api/forum). Errors become what the poster acts on."""

    def __init__(self, client: TelegramClient) -> None:
        self.client = client

    async def _channel(self, chat_id: int) -> types.TypeInputPeer:
        try:
            return await self.client.get_input_entity(types.PeerChannel(utils_channel_id(chat_id)))
        except errors.RPCError as exc:
            raise self._error(exc) from None
        except ValueError:  # unknown to the session and to Telegram
            raise GroupUnavailable("CHANNEL_INVALID") from None

    async def _call(self, request) -> Any:
        try:
            return await self.client(request)
        except errors.FloodWaitError as exc:
            self.client._flood_waited_requests.pop(request.CONSTRUCTOR_ID, None)  # this group's wait alone
            raise SendError(f"flood wait {exc.seconds} s", retry_after=float(exc.seconds)) from None
        except UNAUTHORIZED as exc:
            raise BotUnauthorized(type(exc).__name__) from None
        except errors.RPCError as exc:
            raise self._error(exc) from None
        except (TimeoutError, ConnectionError, OSError, ValueError) as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from None

    @staticmethod
    def _error(exc: errors.RPCError) -> Exception:
        for kind, cause in GROUP_CAUSES.items():
            if isinstance(exc, kind):
                return GroupUnavailable(cause)
        message = getattr(exc, "message", "") or type(exc).__name__
        if isinstance(exc, errors.TopicDeletedError) or message in ("TOPIC_DELETED", "TOPIC_ID_INVALID"):
            return TopicGone(message)
        if message == "TOPIC_CLOSED":
            return TopicClosed(message)
        if isinstance(exc, REJECTED):
            return SendError(type(exc).__name__, rejected=True)
        return SendError(message)

    async def create_topic(self, chat_id: int, title: str, random_id: int) -> int:
        result = await self._call(functions.messages.CreateForumTopicRequest(
            peer=await self._channel(chat_id), title=title, random_id=random_id))
        topic = sent_message_id(result, random_id)
        if topic is None:
            raise SendError("createForumTopic returned no topic")
        return topic

    async def post(self, chat_id: int, topic_id: int, text: str, buttons: Keyboard | None,
                   random_id: int) -> int | None:
        text, entities = await self._mentions(text)
        result = await self._call(functions.messages.SendMessageRequest(
            peer=await self._channel(chat_id), message=text, random_id=random_id, no_webpage=True,
            reply_to=types.InputReplyToMessage(reply_to_msg_id=topic_id, top_msg_id=topic_id),
            reply_markup=inline_markup(buttons) if buttons else None, entities=entities or None))
        return sent_message_id(result, random_id)

    async def forward(self, chat_id: int, topic_id: int, peer: Peer, message_id: int, random_id: int) -> int | None:
        result = await self._call(functions.messages.ForwardMessagesRequest(
            from_peer=input_peer(peer), id=[message_id], random_id=[random_id], to_peer=await self._channel(chat_id),
            top_msg_id=topic_id))
        return sent_message_id(result, random_id)

    async def reopen_topic(self, chat_id: int, topic_id: int) -> None:
        await self._call(functions.messages.EditForumTopicRequest(peer=await self._channel(chat_id), topic_id=topic_id,
                                                                  closed=False))

    async def _mentions(self, text: str) -> tuple[str, list]:
        """[[@id]] → a mention of that manager (a notification on their phone): the label
        texts.MENTION with a mention-name entity (core.telegram.org/api/mentions)."""
        out, entities, last = [], [], 0
        for match in MENTION.finditer(text):
            out.append(text[last:match.start()])
            last = match.end()
            label = texts.MENTION
            try:
                user = await self.client.get_input_entity(types.PeerUser(int(match[1])))
            except (ValueError, TypeError, errors.RPCError):
                out.append(label)
                continue
            offset = sum(len(piece.encode("utf-16-le")) // 2 for piece in out)
            out.append(label)
            entities.append(types.InputMessageEntityMentionName(
                offset=offset, length=len(label.encode("utf-16-le")) // 2,
                user_id=types.InputUser(user.user_id, user.access_hash)))
        out.append(text[last:])
        return "".join(out), entities


def utils_channel_id(chat_id: int) -> int:
    """-1001234567890 (the Bot API's way, SALESBOT_STAFF_CHAT) → 1234567890 (MTProto's channel id)."""
    return -chat_id - 1_000_000_000_000 if chat_id < -1_000_000_000_000 else abs(chat_id)


def topic_of(message: Any) -> int | None:
    """The forum topic a group message is in (core.telegram.org/api/forum#forum-topics): the reply
    header's top id when the message answers another one in the topic, else the id it replies to."""
    header = getattr(message, "reply_to", None)
    if header is None or not getattr(header, "forum_topic", False):
        return None
    return header.reply_to_top_id or header.reply_to_msg_id


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
    """Telethon event handlers: convert, delegate to the engine, nothing else. Telethon runs them one
    at a time (`sequential_updates`), so each returns at once: a message is stored (or kept by the
    engine) before the next update is looked at, and is answered in a task of its own. The tasks are
    tracked so that a SIGTERM can let them finish (`idle` waits for them)."""

    def __init__(self, engine: Dialogue, transport: TelethonTransport) -> None:
        self.engine = engine
        self.transport = transport
        self.running: set[asyncio.Future] = set()

    def _track(self, work: Any) -> None:
        future = asyncio.ensure_future(work)
        self.running.add(future)
        future.add_done_callback(self.running.discard)

    async def idle(self) -> None:
        """Wait until every message and press handed over so far is answered."""
        while self.running:
            await asyncio.gather(*self.running, return_exceptions=True)

    def _staff_chat(self, event: Any) -> bool:
        chat = self.engine.inbox.config.staff_chat
        return chat is not None and not event.is_private and event.chat_id == chat

    async def on_message(self, event: Any) -> None:
        if getattr(event.sender, "bot", False):
            return
        message = event.message
        if self._staff_chat(event):  # a staff member in the group: for a lead, a note, or staff talk
            sender = sender_of(event)
            who = sender.first_name or (f"@{sender.username}" if sender.username else str(sender.telegram_id))
            await self.engine.desk.topic_message(topic_of(message), event.sender_id, who, message.message or "",
                                                 media_kind(message) is not None)
            return
        if event.is_private and self.engine.inbox.is_staff(event.sender_id):  # a manager: never a lead or Claude
            await self.engine.desk.private(event.sender_id, message.message or "")
            return
        self._track(self.engine.accept(Incoming(
            sender=sender_of(event),
            text=message.message or "",
            media=media_kind(message),
            private=event.is_private,
            telegram_message_id=message.id,
        )))

    async def on_callback(self, event: Any) -> None:
        """Answered at once (Telegram waits ~15 s, then QUERY_ID_INVALID and a spinning button); then
        the keyboard comes off the message and the engine acts, however long Claude takes."""
        incoming = Incoming(sender=sender_of(event), button=event.data.decode("utf-8", errors="replace"),
                            private=event.is_private, button_message_id=event.message_id)
        if self._staff_chat(event) or (incoming.private and self.engine.inbox.is_staff(event.sender_id)):
            await self._staff_press(event, incoming)
            return
        try:
            verdict = self.engine.press(incoming) if incoming.private else "stale"
        except SalesbotError as exc:  # the database: act on the press, the engine has its own safety net
            log.warning("could not check a button press: %s", exc)
            verdict = "new"
        self._track(self._pressed(event, incoming, verdict))

    async def _pressed(self, event: Any, incoming: Incoming, verdict: str) -> None:
        await self.transport.answer_callback(event.query.query_id, texts.STALE_TOAST if verdict == "stale" else None)
        if verdict != "new":
            return
        await self.transport.remove_buttons(Peer(user_id=event.sender_id,
                                                 access_hash=incoming.sender.access_hash), event.message_id)
        await self.engine.handle(incoming)


    async def _staff_press(self, event: Any, incoming: Incoming) -> None:
        """A card's button in the group, or a manager's in private: the toast says what happened."""
        sender, desk = incoming.sender, self.engine.desk
        who = sender.first_name or (f"@{sender.username}" if sender.username else str(sender.telegram_id))
        try:
            if incoming.private:
                toast = await desk.private_button(event.sender_id, incoming.button or "")
            else:
                toast = await desk.group_button(incoming.button or "", event.sender_id, who)
        except SalesbotError as exc:
            log.warning("could not act on a staff button: %s", exc)
            toast = texts.STALE_TOAST
        await self.transport.answer_callback(event.query.query_id, toast)

    async def on_group_changed(self, event: Any) -> None:
        """updateChannel: the bot's rights or membership in the staff group may have changed; posts
        that wait are tried now (core.telegram.org/constructor/updateChannel)."""
        poster = self.engine.inbox.poster
        if poster is not None and getattr(event, "channel_id", None) == utils_channel_id(poster.chat_id):
            poster.kick()


class SafeSession(SQLiteSession):
    """Telethon's session file, whose writes may fail without killing the bot. On a full disk the
    keepalive task died at its session save (telethon/client/updates.py `_keepalive_loop` has no
    try around `session.save()`) and the update loop at `process_entities`, and the position was never
    saved again. Here a failed write is logged and the next save writes the state whole again."""

    failing = False
    failures = 0  # writes refused so far (the log says it once per outage)

    def _guard(self, write: Callable[[], Any], what: str) -> Any:
        try:
            result = write()
        except sqlite3.Error as exc:
            self.failures += 1
            if not self.failing:
                log.error("could not save the Telegram session (%s): %s; retrying with the next save", what, exc)
            self.failing = True
            with contextlib.suppress(sqlite3.Error):
                self._conn.rollback()
            return None
        if self.failing and what == "save":
            log.info("the Telegram session is saved again")
            self.failing = False
        return result

    def save(self) -> None:
        self._guard(super().save, "save")

    def set_update_state(self, entity_id, state) -> None:
        self._guard(lambda: super(SafeSession, self).set_update_state(entity_id, state), "update state")

    def process_entities(self, tlo) -> None:
        self._guard(lambda: super(SafeSession, self).process_entities(tlo), "entities")


class UpdatePosition:
    """Where serve is in Telegram's update sequence (pts), saved as soon as everything before it is
    stored — never later, never sooner.

    Telethon saves the position only in its keepalive, once a minute, and on a clean disconnect: a
    fresh session killed in its first minute started from nothing the next time, and every message
    written meanwhile was lost. A position saved before its messages are stored loses them the same
    way. So: right after login the position Telegram gave is saved; and each time the update loop asks
    for more (telethon/client/updates.py `_update_loop` awaits `_updates_queue.get()` only once
    everything received has been dispatched, and with `sequential_updates` each handler has returned,
    i.e. each message is stored or kept by the engine) the position is saved — unless the engine still
    keeps messages it could not store, which Telegram then sends again after a crash. Every save
    Telethon makes on its own (keepalive, disconnect) writes this safe position, not the live one."""

    def __init__(self, client: TelegramClient, holding: Callable[[], int]) -> None:
        self.client, self.holding = client, holding
        # Before connect, while nothing uses them: the message box (its class has __slots__, so a
        # subclass whose state reads go through us) and the update queue's `get`.
        self.box = client._message_box = _SafeBox(client._message_box._log, self)
        self._get = client._updates_queue.get
        client._updates_queue.get = self._next_batch
        self.safe: tuple | None = None
        self.saved: tuple | None = None
        self._saving: asyncio.Task | None = None

    def loaded(self) -> None:
        # The position read from the session at connect, or the one Telegram gave at login
        # (telethon/client/auth.py `_on_login`): nothing after it has been received yet.
        self.safe = self.box.live_state()
        self._saving = asyncio.get_running_loop().create_task(self.save())

    async def _next_batch(self):
        if not self.holding():
            self.safe = self.box.live_state()
            await self.save()
        return await self._get()

    async def save(self) -> None:
        if self.safe is None or self.safe == self.saved or self.client._message_box.is_empty():
            return
        position = self.safe
        await self.client._save_states_and_entities()  # writes self._safe() through the session
        self.client.session.save()
        if not getattr(self.client.session, "failing", False):
            self.saved = position


class _SafeBox(MessageBox):
    """Telethon's MessageBox whose `session_state` (what every save writes) is the safe position."""

    __slots__ = ("position",)

    def __init__(self, log: Any, position: UpdatePosition) -> None:
        super().__init__(log)
        self.position = position

    def live_state(self):
        return super().session_state()

    def session_state(self):
        safe = self.position.safe
        return safe if safe is not None else self.live_state()

    def load(self, session_state, channel_states) -> None:
        super().load(session_state, channel_states)
        self.position.loaded()


def make_client(settings, session: str) -> TelegramClient:
    """The bot's client on its session file in SALESBOT_HOME. `catch_up`: updates that arrived while
    serve was down are fetched on start (getDifference) instead of being dropped (Telethon issue
    #4535); `raise_last_call_error`: after Telegram's own server errors, the typed error rather than
    a bare ValueError; `flood_sleep_threshold=0`: Telethon sleeps out a FloodWait inside the call
    when it is under the client's threshold (client/users.py, `_call`), which would hold a lead's
    handler and, through its per-request-type bookkeeping, every other chat: each one comes back to
    us instead (the outbox holds back that chat alone; the update loop takes it as "try later");
    `sequential_updates`: one update at a time, each stored before the next (UpdatePosition).
    A damaged session file is named, with what deleting it costs."""
    path = settings.home / f"{session}.session"
    try:
        return TelegramClient(SafeSession(str(settings.home / session)), settings.telegram_api_id,
                              settings.telegram_api_hash, catch_up=True, raise_last_call_error=True,
                              flood_sleep_threshold=0, sequential_updates=True)
    except sqlite3.Error as exc:
        raise SalesbotError(f"the Telegram session file {path} is damaged ({exc}); delete it and start again: "
                            "the bot logs in anew with its token (updates missed while it was down are "
                            "then not fetched)") from None


async def login(client: TelegramClient, token: str, sleep: Callable = asyncio.sleep) -> None:
    """Log the bot in; what can go wrong becomes one clear error (the token never in it)."""
    for attempt in range(2):
        try:
            await client.start(bot_token=token)
            return
        except errors.FloodWaitError as exc:
            if exc.seconds > LOGIN_FLOOD_WAIT_MAX or attempt:
                raise SalesbotError(f"Telegram asks the bot to wait {exc.seconds} s before logging in again") from None
            log.warning("Telegram asks the bot to wait %d s before logging in; waiting", exc.seconds)
            await sleep(exc.seconds)
        except (errors.AccessTokenInvalidError, errors.AccessTokenExpiredError, *UNAUTHORIZED) as exc:
            raise BotUnauthorizedError(f"Telegram refused to log the bot in: {type(exc).__name__} "
                                       "(check TELEGRAM_BOT_TOKEN, or delete serve.session to log in anew)") from None
        except errors.RPCError as exc:
            raise SalesbotError(f"Telegram refused to log the bot in: {type(exc).__name__}") from None
        except (ConnectionError, OSError, asyncio.IncompleteReadError, EOFError) as exc:
            raise SalesbotError(f"cannot reach Telegram: {exc or type(exc).__name__} "
                                "(a proxy or firewall in the way?)") from None


def catch_up_staff_group(client: TelegramClient, staff_chat: int | None) -> None:
    """Staff messages written while serve was down: `catch_up` fetches the account's own updates; a
    channel's (the staff group's) are fetched when Telegram flags them with updateChannelTooLong, or
    else only after 15 minutes without updates (telethon/_updates/messagebox.py, NO_UPDATES_TIMEOUT).
    Flag the group ourselves, the way `catch_up` flags the account (client/updates.py puts
    UpdatesTooLong on the same queue): Telethon then asks getChannelDifference from the pts its
    session saved. Nothing happens for a group the session has not seen yet."""
    if staff_chat is None:
        return
    flag = types.UpdateChannelTooLong(channel_id=utils_channel_id(staff_chat))
    client._updates_queue.put_nowait(types.UpdateShort(update=flag, date=datetime.datetime.now(datetime.UTC)))


def staff_group(engine: Dialogue, outbox: Outbox, client: TelegramClient) -> None:
    """With SALESBOT_STAFF_CHAT: the group's poster, on this client, paced after every lead's message."""
    from salesbot.delivery import PRIORITY
    from salesbot.inbox import GroupPoster

    inbox = engine.inbox
    if inbox.config.staff_chat is None:
        return
    inbox.poster = GroupPoster(StaffGroupTransport(client), inbox.config.staff_chat, card=engine.desk.card,
                               title=engine.desk.title, peer=engine.desk.peer, now=outbox.now,
                               sleep=lambda seconds: outbox.sleep(seconds),
                               turn=lambda: outbox.pacer.turn(PRIORITY["staff"]))


async def serve(settings, build: Callable[[TelethonTransport], tuple[Dialogue, Outbox]],
                pending: Callable[[], list[int]], heartbeat: Callable[[], None] | None = None) -> None:
    """Run the bot until SIGINT/SIGTERM. `build(transport)` makes the engine and its outbox; `pending()`
    lists the leads whose messages were never answered (answered once, after login).

    Returns after a clean stop; raises SalesbotError when Telegram is gone for good (systemd restarts
    the unit) and BotUnauthorizedError when Telegram no longer accepts the bot (it does not)."""
    client = make_client(settings, SERVE_SESSION)
    transport = TelethonTransport(client)
    engine, outbox = build(transport)
    UpdatePosition(client, lambda: engine.holding)
    unauthorized = asyncio.Event()
    outbox.on_unauthorized = lambda exc: unauthorized.set()
    staff_group(engine, outbox, client)
    handlers = BotHandlers(engine, transport)
    client.add_event_handler(handlers.on_message, events.NewMessage(incoming=True))
    client.add_event_handler(handlers.on_callback, events.CallbackQuery())
    client.add_event_handler(handlers.on_group_changed, events.Raw(types.UpdateChannel))
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    resumes: list[asyncio.Task] = []
    try:
        try:
            await login(client, settings.bot_token)
        except BaseException:
            await client.disconnect()
            raise
        me = await client.get_me()
        log.info("serving as @%s; Ctrl-C or SIGTERM to stop", getattr(me, "username", "?"))
        links.remember_bot(settings.home, getattr(me, "username", None))  # for `salesbot links`
        catch_up_staff_group(client, engine.inbox.config.staff_chat)
        poller = loop.create_task(outbox.run(heartbeat))
        ticker = loop.create_task(engine.inbox.run(lambda seconds: outbox.sleep(seconds)))  # takeovers, handoffs
        for lead_id in pending():  # messages stored but never answered (a restart in the middle)
            resumes.append(loop.create_task(engine.resume(lead_id)))
        connection = loop.create_task(client.run_until_disconnected())
        stop, refused = loop.create_task(stopping.wait()), loop.create_task(unauthorized.wait())
        await asyncio.wait({connection, stop, refused}, return_when=asyncio.FIRST_COMPLETED)
        lost = connection.done() and not stop.done()
        failure = connection.exception() if connection.done() and not connection.cancelled() else None
        for task in (stop, refused):
            task.cancel()
        ticker.cancel()
        await _stop(engine, handlers, outbox, poller, resumes, client)
        connection.cancel()
        await asyncio.gather(connection, return_exceptions=True)
        if (refused.done() and not refused.cancelled()) or isinstance(failure, UNAUTHORIZED):
            raise BotUnauthorizedError(f"Telegram no longer accepts the bot ({outbox.stopped or failure}); "
                                       "check TELEGRAM_BOT_TOKEN or delete serve.session to log in anew")
        if lost:
            raise SalesbotError(f"lost the connection to Telegram for good ({failure or 'disconnected'}); "
                                "stored messages are answered after the restart")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _stop(engine: Dialogue, handlers: BotHandlers, outbox: Outbox, poller: asyncio.Task,
                resumes: list[asyncio.Task], client: TelegramClient) -> None:
    """Stop taking messages (new ones are stored and answered after the restart), let the running
    handlers finish for up to DRAIN_SECONDS, then disconnect."""
    log.info("shutting down")
    engine.accepting = False
    poller.cancel()
    running = [task for task in handlers.running | engine.answering | set(resumes) if not task.done()]
    if running:
        _, late = await asyncio.wait(running, timeout=DRAIN_SECONDS)
        late |= {task for task in engine.answering if not task.done()}
        for task in late:
            task.cancel()
        if late:
            log.warning("%d conversation(s) cut short by the shutdown; they are answered after the restart",
                        len(late))
            await asyncio.gather(*late, return_exceptions=True)
    await engine.close()
    await asyncio.gather(poller, return_exceptions=True)
    await engine.inbox.close()
    await outbox.close()
    await client.disconnect()
