"""The Telethon adapter, tested at the client's call boundary: the real Telethon request objects
are captured instead of being sent, so no network is touched."""

import asyncio
import os
import signal
from datetime import UTC, datetime

import pytest
from freezegun import freeze_time
from telethon import errors, events
from telethon.tl import functions, types

from salesbot import telegram, texts
from salesbot.store import Lead
from salesbot.transport import Button, Peer, SendError
from tests.engine_fakes import FakeLLM, make_engine
from tests.telegram_fakes import CapturingClient


@pytest.fixture
def client():
    return CapturingClient()


def test_send_text_builds_a_send_message_request(client, aio):
    aio.run(telegram.TelethonTransport(client).send_text(Peer(user_id=101, access_hash=5550001), "Привет"))
    (request,) = client.sent
    assert request.peer == types.InputPeerUser(user_id=101, access_hash=5550001)
    assert request.message == "Привет" and request.reply_markup is None and request.no_webpage


def test_a_manager_is_looked_up_by_id(client, aio):
    aio.run(telegram.TelethonTransport(client).send_text(Peer(user_id=777), "Новая встреча"))
    lookup, request = client.requests
    assert isinstance(lookup, functions.users.GetUsersRequest) and lookup.id[0].user_id == 777
    assert request.peer == types.InputPeerUser(user_id=777, access_hash=4242)


def test_buttons_become_inline_callback_buttons(client, aio):
    keyboard = [[Button("Ср, 24 дек, 11:00", "s:29442780")], [Button("Предложить своё время", "own")]]
    aio.run(telegram.TelethonTransport(client).send_buttons(Peer(user_id=101, access_hash=1), "Выберите:", keyboard))
    markup = client.sent[0].reply_markup
    assert isinstance(markup, types.ReplyInlineMarkup)
    assert [[(b.text, b.type.data) for b in row.buttons] for row in markup.rows] == [
        [("Ср, 24 дек, 11:00", b"s:29442780")], [("Предложить своё время", b"own")]]
    assert all(isinstance(b.type, types.InlineButtonTypeCallback) for row in markup.rows for b in row.buttons)


@pytest.mark.parametrize("error, permanent, retry_after", [
    (errors.UserIsBlockedError(request=None), True, None),
    (errors.InputUserDeactivatedError(request=None), True, None),
    (errors.PeerIdInvalidError(request=None), True, None),
    (errors.FloodWaitError(request=None, capture=42), False, 42.0),
    (errors.RPCError(request=None, message="INTERNAL", code=500), False, None),
    (ConnectionError("reset"), False, None),
])
def test_send_errors_are_classified(client, aio, error, permanent, retry_after):
    client.fail.append(error)
    with pytest.raises(SendError) as caught:
        aio.run(telegram.TelethonTransport(client).send_text(Peer(user_id=101, access_hash=1), "x"))
    assert (caught.value.permanent, caught.value.retry_after) == (permanent, retry_after)


def new_message_event(client, text="", *, user_id=101, media=None, bot=False, chat=None):
    user = types.User(id=user_id, access_hash=5550001, first_name="Анна", username="anna", bot=bot)
    peer = chat or types.PeerUser(user_id)
    message = types.Message(id=7, peer_id=peer, date=datetime.now(UTC), message=text, out=False,
                            from_id=types.PeerUser(user_id) if chat else None, media=media)
    event = events.NewMessage.Event(message)
    event._entities = {user_id: user}
    if chat is not None:
        event._entities[-chat.chat_id] = types.Chat(id=chat.chat_id, title="group", photo=types.ChatPhotoEmpty(),
                                                    participants_count=3, date=datetime.now(UTC), version=1)
    event._set_client(client)
    return event


def callback_event(client, data: bytes, *, user_id=101, query_id=99):
    user = types.User(id=user_id, access_hash=5550001, first_name="Анна", username="anna")
    query = types.UpdateBotCallbackQuery(query_id=query_id, user_id=user_id, peer=types.PeerUser(user_id), msg_id=7,
                                         chat_instance=1, data=data)
    event = events.CallbackQuery.Event(query, query.peer, query.msg_id)
    event._entities = {user_id: user}
    event._set_client(client)
    return event


@pytest.fixture
def bot(client, db):
    with freeze_time("2025-12-23 11:05:00", real_asyncio=True):
        transport = telegram.TelethonTransport(client)
        engine, llm, _ = make_engine(transport=transport, managers=())
        yield telegram.BotHandlers(engine, transport), llm


def test_a_private_message_reaches_the_engine_and_the_reply_goes_out(bot, client, aio):
    handlers, llm = bot
    aio.run(handlers.on_message(new_message_event(client, "Здравствуйте!")))
    lead = Lead.get(Lead.telegram_id == 101)
    assert (lead.access_hash, lead.username, lead.first_name) == (5550001, "anna", "Анна")
    assert llm.calls[0]["history"] == [("user", "Здравствуйте!")]
    (request,) = client.sent
    assert request.peer == types.InputPeerUser(101, 5550001) and request.message == "Понял вас!"


def test_start_command_greets(bot, client, aio):
    handlers, llm = bot
    aio.run(handlers.on_message(new_message_event(client, "/start")))
    assert client.sent[0].message == texts.greeting("Анна") and llm.calls == []


def test_a_sticker_gets_the_text_request(bot, client, aio):
    handlers, _ = bot
    sticker = types.MessageMediaDocument(document=types.Document(
        id=1, access_hash=1, file_reference=b"", date=datetime.now(UTC), mime_type="image/webp", size=1, dc_id=1,
        attributes=[types.DocumentAttributeSticker(alt="🙂", stickerset=types.InputStickerSetEmpty())]))
    aio.run(handlers.on_message(new_message_event(client, "", media=sticker)))
    assert client.sent[0].message == texts.PLEASE_TEXT


def test_group_messages_and_bots_are_ignored(bot, client, aio):
    handlers, llm = bot
    aio.run(handlers.on_message(new_message_event(client, "всем привет", chat=types.PeerChat(555))))
    aio.run(handlers.on_message(new_message_event(client, "я бот", user_id=202, bot=True)))
    assert client.requests == [] and Lead.select().count() == 0


def test_a_button_press_is_handled_and_the_callback_answered(bot, client, aio):
    handlers, _ = bot
    aio.run(handlers.on_callback(callback_event(client, b"own", query_id=4242)))
    assert client.sent[0].message == texts.ASK_OWN_TIME
    answers = [r for r in client.requests if isinstance(r, functions.messages.SetBotCallbackAnswerRequest)]
    assert [a.query_id for a in answers] == [4242]
    assert Lead.get(Lead.telegram_id == 101).state == "MEETING_CUSTOM_TIME"


def test_the_callback_is_answered_even_when_handling_fails(bot, client, aio, monkeypatch):
    handlers, _ = bot

    async def broken(incoming):
        raise RuntimeError("boom")

    monkeypatch.setattr(handlers.engine, "handle", broken)
    with pytest.raises(RuntimeError):
        aio.run(handlers.on_callback(callback_event(client, b"re", query_id=7)))
    assert isinstance(client.requests[-1], functions.messages.SetBotCallbackAnswerRequest)


def test_serve_stops_cleanly_on_sigterm(monkeypatch, tmp_path):
    """The real serve loop with the client's network parts replaced; SIGTERM ends it cleanly."""
    calls = []

    class OfflineClient(CapturingClient):
        async def start(self, bot_token=None):
            calls.append(("start", bot_token))
            return self

        async def get_me(self):
            return types.User(id=1, username="salesbot_test_bot", bot=True)

        async def run_until_disconnected(self):
            await asyncio.Event().wait()

        async def disconnect(self):
            calls.append(("disconnect", None))

    class Settings:
        home = tmp_path
        bot_token = "123:token"

    monkeypatch.setattr(telegram, "make_client", lambda *a, **k: OfflineClient())

    async def main():
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(telegram.serve(Settings, lambda transport: FakeLLM()), 5)

    asyncio.run(main())
    assert calls == [("start", "123:token"), ("disconnect", None)]


@pytest.mark.parametrize("failure, says", [
    (errors.AccessTokenInvalidError(request=None), "Telegram refused to log the bot in: AccessTokenInvalidError"),
    (ConnectionError("Connection to Telegram failed 5 time(s)"), "cannot reach Telegram"),
])
def test_serve_login_failures_are_clear_errors(monkeypatch, tmp_path, failure, says):
    from salesbot.errors import SalesbotError

    class RefusedClient(CapturingClient):
        async def start(self, bot_token=None):
            raise failure

    class Settings:
        home = tmp_path
        bot_token = "123:token"

    monkeypatch.setattr(telegram, "make_client", lambda *a, **k: RefusedClient())
    with pytest.raises(SalesbotError, match=says) as caught:
        asyncio.run(telegram.serve(Settings, lambda transport: FakeLLM()))
    assert "123:token" not in str(caught.value)
