"""The Telethon adapter at the client's call boundary: how Telegram's errors are classified, and
handler details the fake Telegram does not model (media kinds, groups). What goes over the wire,
end to end, is tested through the fake Telegram (test_fake_telegram.py, test_serve_delivery.py)."""

import itertools
from datetime import UTC, datetime

import pytest
from freezegun import freeze_time
from telethon import errors, events
from telethon.tl import functions, types

from salesbot import telegram, texts
from salesbot.dialogue import Answer
from salesbot.store import Lead, Message
from salesbot.transport import BotUnauthorized, Button, Peer, SendError
from tests.engine_fakes import make_engine
from tests.telegram_fakes import CapturingClient


@pytest.fixture
def client():
    return CapturingClient()


def handled(aio, handlers, call) -> None:
    """A handler as Telethon runs it (it returns once the update is handed over), then its answer."""
    aio.run(call)
    aio.run(handlers.idle())


def send(client, aio, peer, text="x", buttons=None, random_id=7):
    return aio.run(telegram.TelethonTransport(client).send(peer, text, buttons, random_id))


def test_a_message_is_one_send_message_request_and_its_id_comes_back(client, aio):
    assert send(client, aio, Peer(user_id=101, access_hash=5550001), "Привет", random_id=-42) == 1
    (request,) = client.sent
    assert request.peer == types.InputPeerUser(user_id=101, access_hash=5550001)
    assert (request.message, request.random_id, request.reply_markup, request.no_webpage) == ("Привет", -42, None,
                                                                                              True)


def test_a_manager_is_looked_up_by_id(client, aio):
    send(client, aio, Peer(user_id=777), "Новая встреча")
    lookup, request = client.requests
    assert isinstance(lookup, functions.users.GetUsersRequest) and lookup.id[0].user_id == 777
    assert request.peer == types.InputPeerUser(user_id=777, access_hash=4242)


def test_buttons_become_inline_callback_buttons(client, aio):
    keyboard = [[Button("Ср, 24 дек, 11:00", "s:29442780")], [Button("Предложить своё время", "own")]]
    send(client, aio, Peer(user_id=101, access_hash=1), "Выберите:", keyboard)
    markup = client.sent[0].reply_markup
    assert isinstance(markup, types.ReplyInlineMarkup)
    assert [[(b.text, b.type.data) for b in row.buttons] for row in markup.rows] == [
        [("Ср, 24 дек, 11:00", b"s:29442780")], [("Предложить своё время", b"own")]]
    assert all(isinstance(b.type, types.InlineButtonTypeCallback) for row in markup.rows for b in row.buttons)


@pytest.mark.parametrize("error, kind, retry_after", [
    (errors.UserIsBlockedError(request=None), "unreachable", None),
    (errors.InputUserDeactivatedError(request=None), "unreachable", None),
    (errors.PeerIdInvalidError(request=None), "rejected", None),  # a wrong address, not a lead gone
    (errors.MessageTooLongError(request=None), "rejected", None),
    (errors.FloodWaitError(request=None, capture=42), "transient", 42.0),
    (errors.RPCError(request=None, message="INTERNAL", code=500), "transient", None),
    (ValueError("Request was unsuccessful 5 time(s)"), "transient", None),
    (ConnectionError("reset"), "transient", None),
])
def test_send_errors_are_classified(client, aio, error, kind, retry_after):
    client.fail.append(error)
    with pytest.raises(SendError) as caught:
        send(client, aio, Peer(user_id=101, access_hash=1))
    got = "unreachable" if caught.value.unreachable else "rejected" if caught.value.rejected else "transient"
    assert (got, caught.value.retry_after) == (kind, retry_after)


@pytest.mark.parametrize("error", [errors.AuthKeyUnregisteredError(request=None),
                                   errors.SessionRevokedError(request=None),
                                   errors.UserDeactivatedBanError(request=None)])
def test_errors_about_the_bot_itself_are_not_blamed_on_the_lead(client, aio, error):
    client.fail.append(error)
    with pytest.raises(BotUnauthorized):
        send(client, aio, Peer(user_id=101, access_hash=1))


def test_a_resend_telegram_already_has_counts_as_sent(client, aio):
    client.fail.append(errors.RandomIdDuplicateError(request=None))
    assert send(client, aio, Peer(user_id=101, access_hash=1)) is None  # delivered; its id unknown


def test_a_flood_wait_holds_back_only_its_own_chat(client, aio):
    """Telethon records a flood wait per request type (client/users.py); the transport forgets it,
    so that the next chat's message is still sent."""
    client.fail.append(errors.FloodWaitError(request=None, capture=8))
    client._flood_waited_requests[functions.messages.SendMessageRequest.CONSTRUCTOR_ID] = 1e12
    with pytest.raises(SendError):
        send(client, aio, Peer(user_id=101, access_hash=1))
    assert functions.messages.SendMessageRequest.CONSTRUCTOR_ID not in client._flood_waited_requests


_message_ids = itertools.count(1000)


def new_message_event(client, text="", *, user_id=101, media=None, bot=False, chat=None, msg_id=None):
    user = types.User(id=user_id, access_hash=5550001, first_name="Анна", username="anna", bot=bot)
    peer = chat or types.PeerUser(user_id)
    message = types.Message(id=msg_id or next(_message_ids), peer_id=peer, date=datetime.now(UTC), message=text,
                            out=False, from_id=types.PeerUser(user_id) if chat else None, media=media)
    event = events.NewMessage.Event(message)
    event._entities = {user_id: user}
    if chat is not None:
        event._entities[-chat.chat_id] = types.Chat(id=chat.chat_id, title="group", photo=types.ChatPhotoEmpty(),
                                                    participants_count=3, date=datetime.now(UTC), version=1)
    event._set_client(client)
    return event


def callback_event(client, data: bytes, *, user_id=101, query_id=99, msg_id=7):
    user = types.User(id=user_id, access_hash=5550001, first_name="Анна", username="anna")
    query = types.UpdateBotCallbackQuery(query_id=query_id, user_id=user_id, peer=types.PeerUser(user_id),
                                         msg_id=msg_id, chat_instance=1, data=data)
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


def test_start_command_greets(bot, client, aio):
    handlers, llm = bot
    handled(aio, handlers, handlers.on_message(new_message_event(client, "/start")))
    assert client.sent[0].message == texts.greeting("Анна") and llm.calls == []


def test_a_sticker_gets_the_text_request(bot, client, aio):
    handlers, _ = bot
    sticker = types.MessageMediaDocument(document=types.Document(
        id=1, access_hash=1, file_reference=b"", date=datetime.now(UTC), mime_type="image/webp", size=1, dc_id=1,
        attributes=[types.DocumentAttributeSticker(alt="🙂", stickerset=types.InputStickerSetEmpty())]))
    handled(aio, handlers, handlers.on_message(new_message_event(client, "", media=sticker)))
    assert client.sent[0].message == texts.PLEASE_TEXT


def test_group_messages_and_bots_are_ignored(bot, client, aio):
    handlers, llm = bot
    handled(aio, handlers, handlers.on_message(new_message_event(client, "всем привет", chat=types.PeerChat(555))))
    handled(aio, handlers, handlers.on_message(new_message_event(client, "я бот", user_id=202, bot=True)))
    assert client.requests == [] and Lead.select().count() == 0


def offer_a_keyboard(handlers, client, aio, llm):
    llm.enqueue(Answer("Выберите время", "hot", True))
    handled(aio, handlers, handlers.on_message(new_message_event(client, "Когда можно созвониться?")))
    return len(client.requests)  # the capturing client numbers messages by request


def test_the_same_choice_pressed_twice_does_nothing_the_second_time(bot, client, aio):
    handlers, llm = bot
    keyboard_id = offer_a_keyboard(handlers, client, aio, llm)
    handled(aio, handlers, handlers.on_callback(callback_event(client, b"own", query_id=1, msg_id=keyboard_id)))
    before = len(client.requests)
    handled(aio, handlers, handlers.on_callback(callback_event(client, b"own", query_id=2, msg_id=keyboard_id)))
    (answer,) = client.requests[before:]
    assert answer.query_id == 2 and answer.message is None


def test_a_message_telegram_delivers_twice_is_stored_and_answered_once(bot, client, aio):
    handlers, llm = bot
    handled(aio, handlers, handlers.on_message(new_message_event(client, "Здравствуйте!", msg_id=55)))
    handled(aio, handlers, handlers.on_message(new_message_event(client, "Здравствуйте!", msg_id=55)))
    assert len(llm.calls) == 1 and len(client.sent) == 1
    assert Lead.get(Lead.telegram_id == 101).messages.where(Message.role == "lead").count() == 1
