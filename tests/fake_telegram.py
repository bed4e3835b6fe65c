"""An in-process Telegram for tests: the real `TelegramClient` talks to it with only its socket replaced.

What runs for real (Telethon 1.x): the client, `MTProtoSender` (send/receive loops, containers, acks,
pending-request resend, reconnects, `disconnected`), `MTProtoState` (MTProto 2.0 AES-IGE encryption
both ways, msg_id and session checks), the TCP "full" packet codec with its CRC, `UpdateMethods`
(update loop, `MessageBox`, gaps, `getDifference`, `catch_up`), flood bookkeeping in `_call`, and the
SQLiteSession file. What is replaced:
- the socket: `FakeConnection._connect` hands the real codec an in-memory stream instead of a TCP one;
- the Diffie-Hellman key exchange (`authenticator.do_authentication`): the fake issues a random
  256-byte auth key instead of running DH against Telegram's RSA keys;
- `asyncio.sleep` and `time` as seen by `telethon.client.users` (flood sleeps, flood bookkeeping)
  and `asyncio.sleep` as seen by `telethon.network.mtprotosender` (reconnect delays): they run on a
  `TelegramClock` that tests move (`await clock.advance(8)`), so a FLOOD_WAIT_8 takes no real time.
  With freezegun active the clock ticks the frozen time too.

Server side, every request is decoded from the bytes the client sent (`BinaryReader.tgread_object`),
every result goes back as bytes inside `rpc_result` and is read by `request.read_result`, errors are
`rpc_error` objects that Telethon turns into exceptions with `rpc_message_to_error`.

Each rule names its source. Pages are core.telegram.org unless a full address is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import itertools
import math
import os
import signal
import struct
import time as _time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar
from zlib import crc32

import telethon.client.users
import telethon.network.authenticator
import telethon.network.mtprotosender
from telethon import TelegramClient
from telethon.crypto import AES
from telethon.extensions import BinaryReader
from telethon.network.connection import ConnectionTcpFull
from telethon.network.mtprotostate import MTProtoState
from telethon.tl import TLRequest, functions, types
from telethon.tl.core import GzipPacked, MessageContainer, RpcResult

from tests.fake_forum import ForumServer

API_ID = 12345
API_HASH = "0123456789abcdef0123456789abcdef"
BOT_ID = 123456
BOT_TOKEN = f"{BOT_ID}:AAE-fake-bot-token-for-tests"

# Limits, each from its page.
MESSAGE_LENGTH_MAX = 4096  # UTF-16 code units: bots/api#sendmessage "1-4096 characters"; api/config message_length_max
CALLBACK_DATA_MAX = 64  # bytes: bots/api#inlinekeyboardbutton "callback_data 1-64 bytes" (BUTTON_DATA_INVALID)
BUTTONS_MAX = 100  # api/bots/buttons: "up to 100 buttons" per inline keyboard (REPLY_MARKUP_TOO_LONG)
# Assumption (issue 10, no exact figure in the docs): ~15 s, then QUERY_ID_INVALID
# (method/messages.setBotCallbackAnswer lists QUERY_ID_INVALID: "The query ID is invalid").
CALLBACK_ANSWER_DEADLINE = 15.0


def utf16_len(text: str) -> int:
    # Telegram counts text lengths in UTF-16 code units (api/entities: "offsets and lengths ... UTF-16").
    return len(text.encode("utf-16-le")) // 2


class TelegramClock:
    """Virtual time for Telethon's own waits. A sleep parks until a test advances the clock past its
    deadline; `now()` is wall time (frozen time under freezegun) plus what was advanced."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []  # every sleep Telethon asked for, in order
        self._sleepers: list = []
        self._seq = itertools.count()

    def now(self) -> float:
        return _time.time() + self.offset

    async def sleep(self, delay: float, result=None):
        self.sleeps.append(delay)
        if delay <= 0:
            await asyncio.sleep(0)
            return result
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now() + delay, next(self._seq), future))
        await future
        return result

    @property
    def sleeping(self) -> int:
        return sum(not f.done() for _, _, f in self._sleepers)

    def _move(self, seconds: float) -> None:
        from freezegun.api import freeze_factories

        if freeze_factories and hasattr(freeze_factories[-1], "tick"):
            freeze_factories[-1].tick(timedelta(seconds=seconds))
        else:
            self.offset += seconds

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its deadline and letting it run."""
        target = self.now() + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            if deadline > self.now():
                self._move(deadline - self.now())
            if not future.done():
                future.set_result(None)
                await settle()
        if target > self.now():
            self._move(target - self.now())
        await settle()

    async def run_until(self, condition, *, limit: float = 3600.0) -> None:
        """Settle and jump to the next sleeper's deadline until `condition()` holds (or `limit`
        virtual seconds pass): for reconnect loops whose many short sleeps a test does not count."""
        start, real_deadline = self.now(), asyncio.get_running_loop().time() + 10
        while True:
            await settle()
            if condition():
                return
            if asyncio.get_running_loop().time() > real_deadline:
                raise TimeoutError("condition not reached in 10 s of real time")
            pending = [d for d, _, f in self._sleepers if not f.done()]
            if not pending or self.now() - start > limit:
                await asyncio.sleep(0.01)  # a real timer (e.g. MessageBox's 0.5 s gap timeout) may be due
                if condition():
                    return
                if not pending and self.now() - start > limit:
                    raise TimeoutError("condition not reached")
                if not pending:
                    continue
            await self.advance(max(0.0, min(pending) - self.now()))


async def settle(rounds: int = 2000) -> None:
    """Let every runnable task run until the loop has nothing ready (only timers and sleepers)."""
    loop = asyncio.get_running_loop()
    for _ in range(rounds):
        await asyncio.sleep(0)
        if not loop._ready:  # asyncio's ready queue (a private deque): empty means everyone is waiting
            return


async def until(condition, timeout: float = 5.0) -> None:
    """Wait in real time (briefly) for something the client does on its own."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.005)


class _AsyncioSeenByTelethon:
    """`asyncio` as Telethon's flood and reconnect code sees it: the same module, but sleeps are virtual."""

    def __init__(self, clock: TelegramClock) -> None:
        self._clock = clock

    def __getattr__(self, name):
        return self._clock.sleep if name == "sleep" else getattr(asyncio, name)


class _TimeSeenByTelethon:
    """`time` as `telethon.client.users` sees it: flood deadlines (`time.time() + e.seconds`) on the clock."""

    def __init__(self, clock: TelegramClock) -> None:
        self._clock = clock

    def __getattr__(self, name):
        return self._clock.now if name == "time" else getattr(_time, name)


# --- the Telegram side -----------------------------------------------------------------------------


class RpcFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class FakeUser:
    id: int
    first_name: str
    username: str | None = None
    blocked_bot: bool = False
    deleted: bool = False
    met_bot: bool = False  # has written to (or pressed a button of) the bot at least once


@dataclass
class SentMessage:
    id: int
    user_id: int
    text: str
    buttons: list[list[tuple[str, bytes]]] | None  # decoded inline keyboard: [[(label, callback data)]]
    pts: int
    session: int  # auth key id of the session that sent it

    @property
    def labels(self) -> list[str]:
        return [label for row in self.buttons or [] for label, _ in row]

    def data_of(self, label: str) -> bytes:
        return next(data for row in self.buttons or [] for text, data in row if text == label)


@dataclass
class _Event:
    """One pts-carrying event of the bot account, kept for updates.getDifference (api/updates)."""

    pts: int
    update: types.UpdateNewMessage | types.UpdateEditMessage
    origin: int | None  # auth key id of the session that caused it (its own send), else None

    @property
    def user_id(self) -> int:
        return self.update.message.peer_id.user_id


@dataclass
class _CallbackQuery:
    id: int
    user_id: int
    msg_id: int
    data: bytes
    issued_at: float
    answered: bool = False


@dataclass
class _AuthKey:
    key: bytes
    key_id: int
    bot_id: int | None = None  # set by auth.importBotAuthorization
    api_id: int | None = None


@dataclass
class _Link:
    """One TCP connection: bytes from the client are parsed into frames; frames to it are fed to its reader."""

    server: FakeTelegram
    reader: asyncio.StreamReader
    inbox: bytearray = field(default_factory=bytearray)
    recv_seq: int = 0
    send_seq: int = 0
    auth: _AuthKey | None = None
    session_id: int | None = None
    subscribed: bool = False  # receives updates (api/updates: after a request not wrapped in invokeWithoutUpdates)
    closed: bool = False
    last_msg_id: int = 0


class _Writer:
    def __init__(self, link: _Link) -> None:
        self.link = link

    def write(self, data: bytes) -> None:
        if not self.link.closed:
            self.link.inbox.extend(data)
            self.link.server._on_bytes(self.link)

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def close(self) -> None:
        self.link.server._close(self.link, eof=False)

    async def wait_closed(self) -> None:
        return None

    def is_closing(self) -> bool:
        return self.link.closed


class FakeConnection(ConnectionTcpFull):
    """Telethon's own TCP-full connection (codec, send/receive loops) over an in-memory stream."""

    telegram: FakeTelegram  # set on the bound subclass

    async def _connect(self, timeout=None, ssl=None):
        # A TCP handshake takes a round trip, during which the old connection's loops finish
        # (Connection._recv_loop disconnects after its EOF; a connect that returned at once would
        # race it, which a real socket never does).
        await settle(50)
        self._reader, self._writer = self.telegram._open_link()  # raises ConnectionRefusedError when down
        self._codec = self.packet_codec(self)
        self._init_conn()
        await self._writer.drain()


async def _issue_auth_key(sender):
    # Replaces the DH exchange (mtproto/auth_key) in telethon/network/mtprotosender.py `_try_gen_auth_key`:
    # returns (auth key bytes, time offset) like authenticator.do_authentication.
    return sender._connection.telegram._new_auth_key(), 0


class FakeTelegram(ForumServer):
    """The Telegram server for one bot account, the users who talk to it, and its staff group
    (tests/fake_forum.py)."""

    def __init__(self, clock: TelegramClock | None = None, *, bot_id: int = BOT_ID, token: str = BOT_TOKEN,
                 bot_username: str = "salesbot_test_bot") -> None:
        self.clock = clock or TelegramClock()
        self.bot_id, self.token, self.bot_username = bot_id, token, bot_username
        self.users: dict[int, FakeUser] = {}
        self.keys: dict[int, _AuthKey] = {}
        self.links: list[_Link] = []
        self.down = False
        self.pts = 1  # the bot account's common message box (api/updates#message-related-event-sequences)
        self.events: list[_Event] = []
        self.sent: list[SentMessage] = []
        self.requests: list[tuple[int | None, TLRequest]] = []  # (auth key id, decoded inner request)
        self.refusals: list[tuple[str, TLRequest]] = []  # every RPC error the fake answered with
        self.unmodelled: list[str] = []  # requests this fake does not know: a test should fail on them
        self.callback_answers: list[dict] = []
        self.bot_error: str | None = None  # a 401 every request of the bot gets (revoked, banned)
        self._next_msg_id = itertools.count(1)  # one id sequence for the bot's private chats (api/updates)
        self._queries: dict[int, _CallbackQuery] = {}
        self._query_ids = itertools.count(7_000_000_000_001)
        self._floods: dict[int, tuple[int, float | None]] = {}  # user id -> (seconds, until)
        self._random_ids: set[int] = set()
        self.channels = {}  # the staff group(s): tests/fake_forum.py
        self._seen: dict[tuple[int, int], int] = {}  # (auth key id, channel id) -> the channel pts it was given
        self.user_messages: dict[int, list[types.Message]] = {}  # what each user wrote to the bot
        self.connection = type("BoundFakeConnection", (FakeConnection,), {"telegram": self})
        self.clients: list[TelegramClient] = []  # every client made, newest last (`serving(..., kill=True)`)
        server = self

        class HarnessClient(TelegramClient):
            """The real client; only its connection class is the fake's."""

            def __init__(self, session, api_id=API_ID, api_hash=API_HASH, **kwargs):
                kwargs["connection"] = server.connection
                super().__init__(session, api_id, api_hash, **kwargs)
                server.clients.append(self)

        self.client_class = HarnessClient

    # --- wiring --------------------------------------------------------------------------------

    def install(self, monkeypatch) -> None:
        """Patch the narrow places: DH key exchange, Telethon's sleeps/time, and salesbot's client class."""
        from salesbot import telegram as adapter

        monkeypatch.setattr(telethon.network.authenticator, "do_authentication", _issue_auth_key)
        monkeypatch.setattr(telethon.client.users, "asyncio", _AsyncioSeenByTelethon(self.clock))
        monkeypatch.setattr(telethon.client.users, "time", _TimeSeenByTelethon(self.clock))
        monkeypatch.setattr(telethon.network.mtprotosender, "asyncio", _AsyncioSeenByTelethon(self.clock))
        monkeypatch.setattr(adapter, "TelegramClient", self.client_class)

    def client(self, session, **kwargs) -> TelegramClient:
        return self.client_class(str(session), **kwargs)

    # --- test helpers: the world around the bot ---------------------------------------------------

    def add_user(self, user_id: int, first_name: str = "Анна", username: str | None = "anna") -> FakeUser:
        user = self.users[user_id] = FakeUser(user_id, first_name, username)
        return user

    def write(self, user: FakeUser, text: str) -> types.Message:
        """The user sends the bot a text message (updateNewMessage with pts, pushed to connected sessions)."""
        assert not user.deleted, "a deleted account cannot write"
        user.met_bot = True
        message = types.Message(id=next(self._next_msg_id), peer_id=types.PeerUser(user.id),
                                date=self._date(), message=text, out=False)
        self.user_messages.setdefault(user.id, []).append(message)
        self._event(types.UpdateNewMessage(message=message, pts=0, pts_count=1), origin=None)
        return message

    def send_media(self, user: FakeUser, kind: str = "voice") -> types.Message:
        """The user sends a voice message or a photo (api/files: media live on a DC; the fake keeps
        only what Telethon reads to tell the kind)."""
        user.met_bot = True
        if kind == "photo":
            media = types.MessageMediaPhoto(photo=types.Photo(
                id=9001, access_hash=1, file_reference=b"", date=self._date(), dc_id=2,
                sizes=[types.PhotoSize(type="m", w=320, h=240, size=1000)]))
        else:
            media = types.MessageMediaDocument(voice=True, document=types.Document(
                id=9002, access_hash=1, file_reference=b"", date=self._date(), mime_type="audio/ogg", size=2000,
                dc_id=2, attributes=[types.DocumentAttributeAudio(duration=3, voice=True)]))
        message = types.Message(id=next(self._next_msg_id), peer_id=types.PeerUser(user.id), date=self._date(),
                                message="", out=False, media=media)
        self.user_messages.setdefault(user.id, []).append(message)
        self._event(types.UpdateNewMessage(message=message, pts=0, pts_count=1), origin=None)
        return message

    def press(self, user: FakeUser, message: SentMessage, label: str) -> int:
        """The user taps an inline button of a message the bot sent them; returns the query id.
        updateBotCallbackQuery has no pts (api/updates): it is pushed to connected sessions only."""
        assert message.user_id == user.id, "a user can only press buttons in their own chat"
        data = message.data_of(label)
        user.met_bot = True
        query = _CallbackQuery(next(self._query_ids), user.id, message.id, data, self.clock.now())
        self._queries[query.id] = query
        update = types.UpdateBotCallbackQuery(query_id=query.id, user_id=user.id, peer=types.PeerUser(user.id),
                                              msg_id=message.id, chat_instance=user.id * 7, data=data)
        for link in self._subscribed():
            self._push(link, types.Updates(updates=[update], users=[self._user_for(link.auth, user)], chats=[],
                                           date=self._date(), seq=0))
        return query.id

    def messages_to(self, user: FakeUser | int) -> list[SentMessage]:
        user_id = user if isinstance(user, int) else user.id
        return [m for m in self.sent if m.user_id == user_id]

    def texts_to(self, user: FakeUser | int) -> list[str]:
        return [m.text for m in self.messages_to(user)]

    def block(self, user: FakeUser) -> None:
        user.blocked_bot = True

    def delete(self, user: FakeUser) -> None:
        user.deleted = True

    def flood(self, user: FakeUser | int, seconds: int) -> None:
        """The next message to this chat is refused with FLOOD_WAIT_<seconds>, and so is every one until
        the wait is over; other chats are not affected (api/errors#420-flood: "wait X seconds")."""
        self._floods[user if isinstance(user, int) else user.id] = (seconds, None)

    def revoke(self, message: str = "SESSION_REVOKED") -> None:
        """Every request of the bot now gets this 401 (api/errors#401-unauthorized: AUTH_KEY_UNREGISTERED,
        SESSION_REVOKED, USER_DEACTIVATED, USER_DEACTIVATED_BAN); the token stops working too."""
        self.bot_error = message

    def drop(self) -> None:
        """Every open connection is cut (EOF on the client's socket)."""
        for link in list(self.links):
            self._close(link, eof=True)

    def go_down(self) -> None:
        """Cut every connection and refuse new ones (a network outage)."""
        self.down = True
        self.drop()

    def come_back(self) -> None:
        self.down = False

    @property
    def online(self) -> bool:
        """A session of the bot is connected and subscribed to updates."""
        return bool(self._subscribed())

    def refused(self, error: str) -> list[TLRequest]:
        return [r for e, r in self.refusals if e == error]

    # --- the wire ------------------------------------------------------------------------------

    def _new_auth_key(self) -> bytes:
        key = os.urandom(256)
        key_id = struct.unpack("<Q", hashlib.sha1(key).digest()[-8:])[0]  # mtproto/description#key-identifier
        self.keys[key_id] = _AuthKey(key, key_id)
        return key

    def _open_link(self):
        if self.down:
            raise ConnectionRefusedError(111, "Connect call failed (fake Telegram is down)")
        link = _Link(self, asyncio.StreamReader())
        self.links.append(link)
        return link.reader, _Writer(link)

    def _close(self, link: _Link, *, eof: bool) -> None:
        if link.closed:
            return
        link.closed = True
        if link in self.links:
            self.links.remove(link)
        if eof:
            link.reader.feed_eof()

    def _on_bytes(self, link: _Link) -> None:
        # mtproto/mtproto-transports#full: length (4), seq (4), payload, crc32 of all before (4).
        while len(link.inbox) >= 4:
            length = struct.unpack("<i", link.inbox[:4])[0]
            if len(link.inbox) < length:
                return
            frame, link.inbox[:] = bytes(link.inbox[:length]), link.inbox[length:]
            seq = struct.unpack("<i", frame[4:8])[0]
            assert crc32(frame[:-4]) == struct.unpack("<I", frame[-4:])[0], "bad CRC from the client"
            assert seq == link.recv_seq, f"transport seq {seq}, expected {link.recv_seq}"
            link.recv_seq += 1
            asyncio.get_running_loop().call_soon(self._on_packet, link, frame[8:-4])

    def _send_frame(self, link: _Link, payload: bytes) -> None:
        if link.closed:
            return
        head = struct.pack("<ii", len(payload) + 12, link.send_seq)
        link.send_seq += 1
        link.reader.feed_data(head + payload + struct.pack("<I", crc32(head + payload)))

    def _on_packet(self, link: _Link, packet: bytes) -> None:
        if link.closed:
            return
        key_id = struct.unpack("<Q", packet[:8])[0]
        auth = self.keys.get(key_id)
        if auth is None:
            # mtproto/mtproto-transports#transport-errors: -404 for an unknown auth key
            self._send_frame(link, struct.pack("<i", -404))
            return
        link.auth = auth
        # mtproto/description#defining-aes-key-and-initialization-vector (x = 0 from the client)
        msg_key = packet[8:24]
        aes_key, aes_iv = MTProtoState._calc_key(auth.key, msg_key, True)
        plain = AES.decrypt_ige(packet[24:], aes_key, aes_iv)
        assert hashlib.sha256(auth.key[88:120] + plain).digest()[8:24] == msg_key, "msg_key mismatch"
        _salt, link.session_id, msg_id, _seq, length = struct.unpack("<qqqii", plain[:32])
        self._on_message(link, msg_id, BinaryReader(plain[32:32 + length]).tgread_object())

    def _on_message(self, link: _Link, msg_id: int, obj) -> None:
        if isinstance(obj, MessageContainer):  # mtproto/service_messages#simple-container
            for inner in obj.messages:
                self._on_message(link, inner.msg_id, inner.obj)
            return
        if isinstance(obj, GzipPacked):  # mtproto/service_messages#packed-object
            obj = BinaryReader(obj.data).tgread_object()
        if isinstance(obj, functions.PingRequest):  # mtproto/service_messages#ping-messages-pingpong
            self._send_message(link, bytes(types.Pong(msg_id=msg_id, ping_id=obj.ping_id)), response=True)
            return
        if not isinstance(obj, TLRequest):
            return  # msgs_ack and other service messages need no answer
        try:
            body = self._serve(link, obj, wants_updates=True)
        except AssertionError as bug:  # a result Telethon's own serializer refuses: a bug in this fake
            self.unmodelled.append(f"{type(obj).__name__}: {bug}")
            body = bytes(types.RpcError(error_code=500, error_message="INTERNAL"))
        except RpcFailure as failure:
            body = bytes(types.RpcError(error_code=failure.code, error_message=failure.message))
        # mtproto/service_messages#rpc-result: rpc_result#f35c6d01 req_msg_id:long result:Object
        self._send_message(link, struct.pack("<Iq", RpcResult.CONSTRUCTOR_ID, msg_id) + body, response=True)

    def _send_message(self, link: _Link, body: bytes, *, response: bool) -> None:
        if link.closed or link.auth is None or link.session_id is None:
            return
        # mtproto/description#message-identifier-msg-id: server msg_id is time-based, odd (1 mod 4 for
        # responses, 3 mod 4 otherwise) and increasing; Telethon drops ones >30 s off its clock.
        msg_id = (int(_time.time()) << 32) | (1 if response else 3)
        if msg_id <= link.last_msg_id:
            msg_id = link.last_msg_id + 4 - ((link.last_msg_id + 4) % 4) + (1 if response else 3)
        link.last_msg_id = msg_id
        data = struct.pack("<qqqii", 0, link.session_id, msg_id, 1, len(body)) + body
        padding = os.urandom(-(len(data) + 12) % 16 + 12)
        # x = 8 from the server (mtproto/description#defining-aes-key-and-initialization-vector)
        msg_key = hashlib.sha256(link.auth.key[96:128] + data + padding).digest()[8:24]
        aes_key, aes_iv = MTProtoState._calc_key(link.auth.key, msg_key, False)
        self._send_frame(link, struct.pack("<Q", link.auth.key_id) + msg_key
                         + AES.encrypt_ige(data + padding, aes_key, aes_iv))

    def _push(self, link: _Link, updates: types.TypeUpdates) -> None:
        # Updates arrive as plain (non-rpc_result) messages, which Telethon's sender queues for its
        # update loop (network/mtprotosender.py `_handle_update`).
        self._send_message(link, bytes(updates), response=False)

    def _subscribed(self) -> list[_Link]:
        return [link for link in self.links if link.subscribed and link.auth and link.auth.bot_id == self.bot_id
                and not self.bot_error]

    # --- the API -------------------------------------------------------------------------------

    def _serve(self, link: _Link, request: TLRequest, *, wants_updates: bool) -> bytes:
        # Wrappers first: api/invoking#layers (invokeWithLayer, initConnection), api/invoking
        # (invokeWithoutUpdates: "Invoke a request without subscribing the used connection for updates").
        if isinstance(request, functions.InvokeWithLayerRequest):
            return self._serve(link, request.query, wants_updates=wants_updates)
        if isinstance(request, functions.InitConnectionRequest):
            link.auth.api_id = request.api_id
            return self._serve(link, request.query, wants_updates=wants_updates)
        if isinstance(request, functions.InvokeWithoutUpdatesRequest):
            return self._serve(link, request.query, wants_updates=False)
        if isinstance(request, functions.InvokeAfterMsgRequest):
            return self._serve(link, request.query, wants_updates=wants_updates)
        self.requests.append((link.auth.key_id, request))
        try:
            handler = self._handlers.get(type(request))
            if handler is None:
                self.unmodelled.append(type(request).__name__)
                raise RpcFailure(400, "INPUT_METHOD_INVALID")  # api/errors: method unknown to this server
            if handler not in (FakeTelegram._get_config, FakeTelegram._import_bot_authorization):
                self._require_login(link.auth)
                if wants_updates:
                    link.subscribed = True  # api/updates: a logged-in session gets updates after a request
            result = handler(self, link, request)
        except RpcFailure as failure:
            self.refusals.append((failure.message, request))
            raise
        return result if isinstance(result, bytes) else bytes(result)

    def _require_login(self, auth: _AuthKey) -> None:
        if self.bot_error and auth.bot_id == self.bot_id:
            raise RpcFailure(401, self.bot_error)
        if auth.bot_id is None:
            # api/errors#401-unauthorized: "AUTH_KEY_UNREGISTERED: the key is not registered in the system"
            raise RpcFailure(401, "AUTH_KEY_UNREGISTERED")

    def _get_config(self, link, request):
        now = self._date()
        return types.Config(
            date=now, expires=now + timedelta(hours=1), test_mode=False, this_dc=2,
            dc_options=[types.DcOption(id=2, ip_address="149.154.167.51", port=443)], dc_txt_domain_name="",
            chat_size_max=200, megagroup_size_max=200000, forwarded_count_max=100, online_update_period_ms=210000,
            offline_blur_timeout_ms=5000, offline_idle_timeout_ms=30000, online_cloud_timeout_ms=300000,
            notify_cloud_delay_ms=30000, notify_default_delay_ms=1500, push_chat_period_ms=60000, push_chat_limit=2,
            edit_time_limit=172800, revoke_time_limit=172800, revoke_pm_time_limit=172800, rating_e_decay=2419200,
            stickers_recent_limit=200, channels_read_media_period=604800, call_receive_timeout_ms=20000,
            call_ring_timeout_ms=90000, call_connect_timeout_ms=30000, call_packet_timeout_ms=10000,
            me_url_prefix="https://t.me/", caption_length_max=1024, message_length_max=MESSAGE_LENGTH_MAX,
            webfile_dc_id=4)

    def _import_bot_authorization(self, link, request):
        # method/auth.importBotAuthorization: ACCESS_TOKEN_INVALID, API_ID_INVALID.
        if (request.api_id, request.api_hash) != (API_ID, API_HASH):
            raise RpcFailure(400, "API_ID_INVALID")
        if request.bot_auth_token != self.token or self.bot_error:
            raise RpcFailure(400, "ACCESS_TOKEN_INVALID")
        link.auth.bot_id = self.bot_id
        return types.auth.Authorization(user=self._bot_user(link.auth))

    def _get_users(self, link, request):
        result = []
        for wanted in request.id:
            if isinstance(wanted, types.InputUserSelf) or getattr(wanted, "user_id", None) == self.bot_id:
                result.append(self._bot_user(link.auth))
                continue
            # Assumption: a hash this session was not given is refused as a peer would be (api/peers#access-hash).
            user = self._resolve(link.auth, wanted.user_id, wanted.access_hash, error="USER_ID_INVALID")
            result.append(self._user_for(link.auth, user))
        return _vector(result)

    def _get_state(self, link, request):
        return types.updates.State(pts=self.pts, qts=0, date=self._date(), seq=0, unread_count=0)

    def _get_difference(self, link, request):
        # api/updates#recovering-gaps: everything after the client's pts, with the users it mentions
        # (with this session's access hashes) and the new state. No slicing: tests stay small.
        # Channels with news this session was not given: updateChannelTooLong (tests/fake_forum.py).
        too_long = self._channels_too_long(link.auth)
        if request.pts >= self.pts and not too_long:
            return types.updates.DifferenceEmpty(date=self._date(), seq=0)
        missed = [e for e in self.events if e.pts > request.pts]
        users = {e.user_id for e in missed}
        return types.updates.Difference(
            new_messages=[e.update.message for e in missed if isinstance(e.update, types.UpdateNewMessage)],
            new_encrypted_messages=[], chats=[],
            other_updates=[e.update for e in missed if not isinstance(e.update, types.UpdateNewMessage)] + too_long,
            users=[self._user_for(link.auth, self.users[u]) for u in sorted(users)],
            state=types.updates.State(pts=self.pts, qts=0, date=self._date(), seq=0, unread_count=0))

    def _send_message_request(self, link, request: functions.messages.SendMessageRequest):
        if isinstance(request.peer, types.InputPeerChannel):
            return self._post(link, request)  # the staff group: tests/fake_forum.py
        # method/messages.sendMessage "Possible errors", checked in this order.
        user = self._peer(link.auth, request.peer)
        if user.deleted:
            raise RpcFailure(400, "INPUT_USER_DEACTIVATED")
        if user.blocked_bot:
            raise RpcFailure(400, "USER_IS_BLOCKED")
        self._check_flood(user.id)
        if not request.message.strip():
            raise RpcFailure(400, "MESSAGE_EMPTY")
        if utf16_len(request.message) > MESSAGE_LENGTH_MAX:
            raise RpcFailure(400, "MESSAGE_TOO_LONG")
        buttons = self._check_markup(request.reply_markup)
        if request.random_id in self._random_ids:
            raise RpcFailure(500, "RANDOM_ID_DUPLICATE")  # method/messages.sendMessage: a random_id is used once
        self._random_ids.add(request.random_id)
        message = types.Message(id=next(self._next_msg_id), peer_id=types.PeerUser(user.id), date=self._date(),
                                message=request.message, out=True, reply_markup=request.reply_markup)
        event = self._event(types.UpdateNewMessage(message=message, pts=0, pts_count=1), origin=link.auth.key_id)
        self.sent.append(SentMessage(message.id, user.id, request.message, buttons, event.pts, link.auth.key_id))
        # method/messages.sendMessage returns Updates; for a private chat, updateShortSentMessage.
        return types.UpdateShortSentMessage(id=message.id, pts=event.pts, pts_count=1, date=message.date, out=True)

    def _edit_message(self, link, request: functions.messages.EditMessageRequest):
        # method/messages.editMessage: MESSAGE_ID_INVALID, MESSAGE_NOT_MODIFIED, MESSAGE_TOO_LONG...
        user = self._peer(link.auth, request.peer)
        sent = next((m for m in self.sent if m.id == request.id and m.user_id == user.id), None)
        if sent is None:
            raise RpcFailure(400, "MESSAGE_ID_INVALID")
        text = sent.text if request.message is None else request.message
        if request.message is not None and utf16_len(text) > MESSAGE_LENGTH_MAX:
            raise RpcFailure(400, "MESSAGE_TOO_LONG")
        buttons = self._check_markup(request.reply_markup)
        if text == sent.text and buttons == sent.buttons:
            raise RpcFailure(400, "MESSAGE_NOT_MODIFIED")
        sent.text, sent.buttons = text, buttons
        message = types.Message(id=sent.id, peer_id=types.PeerUser(user.id), date=self._date(), message=text,
                                out=True, reply_markup=request.reply_markup, edit_date=self._date())
        event = self._event(types.UpdateEditMessage(message=message, pts=0, pts_count=1), origin=link.auth.key_id)
        return types.Updates(updates=[event.update], users=[self._user_for(link.auth, user)], chats=[],
                             date=self._date(), seq=0)

    def _set_bot_callback_answer(self, link, request):
        # method/messages.setBotCallbackAnswer: QUERY_ID_INVALID for an unknown or expired query; a query
        # is answered once.
        query = self._queries.get(request.query_id)
        if query is None or query.answered or self.clock.now() - query.issued_at > CALLBACK_ANSWER_DEADLINE:
            raise RpcFailure(400, "QUERY_ID_INVALID")
        query.answered = True
        self.callback_answers.append({"query_id": query.id, "at": self.clock.now() - query.issued_at,
                                      "message": request.message, "alert": bool(request.alert)})
        return _TRUE

    _handlers: ClassVar[dict] = {
        functions.help.GetConfigRequest: _get_config,
        functions.auth.ImportBotAuthorizationRequest: _import_bot_authorization,
        functions.users.GetUsersRequest: _get_users,
        functions.updates.GetStateRequest: _get_state,
        functions.updates.GetDifferenceRequest: _get_difference,
        functions.messages.SendMessageRequest: _send_message_request,
        functions.messages.EditMessageRequest: _edit_message,
        functions.messages.SetBotCallbackAnswerRequest: _set_bot_callback_answer,
        **ForumServer.forum_handlers,
    }

    @staticmethod
    def _failure(code: int, message: str) -> RpcFailure:
        return RpcFailure(code, message)

    # --- rules shared by the methods ------------------------------------------------------------

    def access_hash(self, auth_key_id: int, user_id: int) -> int:
        """The access hash this session (auth key) is given for a user. api/peers#access-hash: "Access
        hashes may not be reused across different accounts or different sessions of the same account"."""
        digest = hashlib.blake2b(f"{auth_key_id}:{user_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little", signed=True) or 1

    def _resolve(self, auth: _AuthKey, user_id: int, access_hash: int, *, error: str) -> FakeUser:
        user = self.users.get(user_id)
        if user is None:
            raise RpcFailure(400, error)
        if access_hash == self.access_hash(auth.key_id, user_id):
            return user
        # api/peers#access-hash: "Zero access hash: equal to 0, must be used by bots when only a min
        # access hash (or no access hash) is available locally" — for users the bot has met.
        if access_hash == 0 and auth.bot_id is not None and user.met_bot:
            return user
        raise RpcFailure(400, error)

    def _peer(self, auth: _AuthKey, peer) -> FakeUser:
        if isinstance(peer, types.InputPeerUser):
            return self._resolve(auth, peer.user_id, peer.access_hash, error="PEER_ID_INVALID")
        raise RpcFailure(400, "PEER_ID_INVALID")  # only private chats with users are modelled

    def _check_flood(self, user_id: int) -> None:
        if user_id not in self._floods:
            return
        seconds, until = self._floods[user_id]
        now = self.clock.now()
        if until is None:
            self._floods[user_id] = (seconds, now + seconds)
            raise RpcFailure(420, f"FLOOD_WAIT_{seconds}")
        if now < until:
            raise RpcFailure(420, f"FLOOD_WAIT_{math.ceil(until - now)}")
        del self._floods[user_id]

    @staticmethod
    def _check_markup(markup) -> list[list[tuple[str, bytes]]] | None:
        if markup is None:
            return None
        if not isinstance(markup, types.ReplyInlineMarkup):
            raise RpcFailure(400, "REPLY_MARKUP_INVALID")
        # In this layer an inline button is keyboardInlineButton with a `type` (callback: its data).
        rows = [[(b.text, getattr(b.type, "data", None)) for b in row.buttons] for row in markup.rows]
        if sum(len(row) for row in rows) > BUTTONS_MAX:
            raise RpcFailure(400, "REPLY_MARKUP_TOO_LONG")
        for row in markup.rows:
            for button in row.buttons:
                if isinstance(button.type, types.InlineButtonTypeCallback) and not (
                        1 <= len(button.type.data) <= CALLBACK_DATA_MAX):
                    raise RpcFailure(400, "BUTTON_DATA_INVALID")
        return rows

    def _bot_user(self, auth: _AuthKey) -> types.User:
        return types.User(id=self.bot_id, is_self=True, bot=True, bot_info_version=1, first_name="Salesbot",
                          access_hash=self.access_hash(auth.key_id, self.bot_id), username=self.bot_username)

    def _user_for(self, auth: _AuthKey, user: FakeUser) -> types.User:
        if user.deleted:
            return types.User(id=user.id, deleted=True, access_hash=self.access_hash(auth.key_id, user.id))
        return types.User(id=user.id, access_hash=self.access_hash(auth.key_id, user.id),
                          first_name=user.first_name, username=user.username)

    def _event(self, update, *, origin: int | None) -> _Event:
        """A pts event of the bot account: logged for getDifference, pushed to the other connected
        sessions (api/updates: pts grows by pts_count with each message event of the account)."""
        self.pts += 1
        update.pts = self.pts
        event = _Event(self.pts, update, origin)
        self.events.append(event)
        user = self.users[event.user_id]
        for link in self._subscribed():
            if link.auth.key_id == origin:
                continue  # the sender learns of its own message from the result
            self._push(link, types.Updates(updates=[update], users=[self._user_for(link.auth, user)], chats=[],
                                           date=update.message.date, seq=0))
        return event

    def _date(self) -> datetime:
        return datetime.fromtimestamp(int(self.clock.now()), UTC)


_TRUE = struct.pack("<I", 0x997275B5)  # boolTrue


def _vector(items) -> bytes:
    return struct.pack("<Ii", 0x1CB5C415, len(items)) + b"".join(bytes(i) for i in items)


def kill(server: FakeTelegram, tasks: set[asyncio.Task]) -> None:
    """What `kill -9` leaves of a serve: only what reached the disk. The session file's uncommitted
    writes are thrown away (a new process reads the committed file, as SQLite does after a crash), then
    every task serve started stops where it stands — no finally of ours saves anything (Telethon's
    update and keepalive loops return on cancellation without saving) — and its connections are cut."""
    client = server.clients[-1]
    conn = client.session._conn
    if conn is not None:
        conn.rollback()
        conn.close()
    client.session._conn = None
    client.session.save = client.session.set_update_state = client.session.process_entities = \
        lambda *args, **kwargs: None  # the process is gone: nothing it would still run reaches the file
    for task in tasks:
        task.cancel()
    for link in list(server.links):
        server._close(link, eof=False)


@contextlib.asynccontextmanager
async def serving(server: FakeTelegram, settings, engine_factory, *, kill9: bool = False):
    """`salesbot.telegram.serve` running against the fake until the block ends (then SIGTERM, as
    systemd stops it; with `kill9`, the process dies instead: `kill`). `engine_factory(transport)`
    makes the engine; its outbox waits (retries, the delivery loop's poll) run on the fake's clock.
    Yields the serve task."""
    from salesbot import telegram as adapter
    from salesbot.store import leads

    def build(transport):
        engine = engine_factory(transport)
        engine.outbox.sleep = server.clock.sleep
        return engine, engine.outbox

    before = asyncio.all_tasks()
    task = asyncio.create_task(adapter.serve(settings, build, leads.leads_with_unanswered))
    await until(lambda: server.online or task.done())
    await settle()  # login finished (getState taken): what a user writes from now on is news to serve
    if task.done():
        task.result()
    try:
        yield task
    finally:
        if kill9:
            started = asyncio.all_tasks() - before - {asyncio.current_task()}
            kill(server, started)
            await asyncio.gather(*started, return_exceptions=True)
        elif not task.done():
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(task, 5)
