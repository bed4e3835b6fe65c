"""The fake Telegram's rules, each through the real TelegramClient (tests/fake_telegram.py), and
end-to-end smoke tests of today's `salesbot.telegram.serve` through it."""

import asyncio
import sqlite3
import time

import pytest
from telethon import Button, errors, events
from telethon.tl import functions, types

from salesbot import telegram, texts
from salesbot.dialogue import Answer
from salesbot.store import Lead
from tests.engine_fakes import make_engine
from tests.engine_fakes import run_frozen as run
from tests.fake_telegram import BOT_ID, BOT_TOKEN, FakeTelegram, serving, settle, until


async def logged_in(server, path, **kwargs):
    client = server.client(path, **kwargs)
    await client.start(bot_token=BOT_TOKEN)
    return client


def key_of(client) -> int:
    return client.session.auth_key.key_id


# --- login and the session file ----------------------------------------------------------------


def test_a_bot_logs_in_with_its_token_into_a_real_sqlite_session(telegram_server, tmp_path):
    async def main():
        client = await logged_in(telegram_server, tmp_path / "serve")
        me = await client.get_me()
        await client.disconnect()
        return me

    me = run(main())
    assert (me.id, me.bot, me.username) == (BOT_ID, True, "salesbot_test_bot")
    assert any(isinstance(r, functions.auth.ImportBotAuthorizationRequest) for _, r in telegram_server.requests)
    with sqlite3.connect(tmp_path / "serve.session") as db:  # Telethon's SQLiteSession, auth key included
        (key,) = db.execute("SELECT auth_key FROM sessions").fetchone()
    assert len(key) == 256


def test_a_wrong_token_is_access_token_invalid(telegram_server, tmp_path):
    async def main():
        client = telegram_server.client(tmp_path / "serve")
        try:
            with pytest.raises(errors.AccessTokenInvalidError):
                await client.start(bot_token=f"{BOT_ID}:wrong")
        finally:
            await client.disconnect()

    run(main())


def test_a_session_that_never_logged_in_is_unauthorized(telegram_server, tmp_path):
    async def main():
        client = telegram_server.client(tmp_path / "fresh")
        await client.connect()
        try:
            assert await client.get_me() is None  # Telethon maps the 401 to "not logged in"
            with pytest.raises(errors.AuthKeyUnregisteredError):
                await client(functions.updates.GetStateRequest())
        finally:
            await client.disconnect()

    run(main())


def test_a_restart_reuses_the_session_without_logging_in_again(telegram_server, tmp_path):
    async def main():
        await (await logged_in(telegram_server, tmp_path / "serve")).disconnect()
        logins = sum(isinstance(r, functions.auth.ImportBotAuthorizationRequest) for _, r in telegram_server.requests)
        client = await logged_in(telegram_server, tmp_path / "serve")
        await client.disconnect()
        again = sum(isinstance(r, functions.auth.ImportBotAuthorizationRequest) for _, r in telegram_server.requests)
        return logins, again

    assert run(main()) == (1, 1)


# --- the wire ----------------------------------------------------------------------------------


def test_requests_are_decoded_from_the_bytes_the_client_sent(telegram_server, tmp_path):
    async def main():
        client = await logged_in(telegram_server, tmp_path / "serve")
        anna = telegram_server.add_user(101)
        telegram_server.write(anna, "hi")
        entity = types.InputPeerUser(101, telegram_server.access_hash(key_of(client), 101))
        request = functions.messages.SendMessageRequest(peer=entity, message="Привет 👋", random_id=42)
        result = await client(request)
        await client.disconnect()
        return request, result

    request, result = run(main())
    seen = next(r for _, r in telegram_server.requests if isinstance(r, functions.messages.SendMessageRequest))
    assert seen is not request and bytes(seen) == bytes(request)  # a copy rebuilt from the wire
    assert isinstance(result, types.UpdateShortSentMessage) and result.id == telegram_server.sent[0].id


def test_a_request_the_fake_does_not_model_is_refused_and_reported(tmp_path, monkeypatch):
    server = FakeTelegram()
    server.install(monkeypatch)

    async def main():
        client = await logged_in(server, tmp_path / "serve")
        try:
            with pytest.raises(errors.InputMethodInvalidError):
                await client(functions.help.GetNearestDcRequest())
        finally:
            await client.disconnect()

    run(main())
    assert server.unmodelled == ["GetNearestDcRequest"]


# --- updates, pts and catching up --------------------------------------------------------------


def test_a_users_message_arrives_with_this_sessions_access_hash(telegram_server, tmp_path):
    async def main():
        client = await logged_in(telegram_server, tmp_path / "serve")
        got = []

        async def on_message(event):
            got.append(event)

        client.add_event_handler(on_message, events.NewMessage(incoming=True))
        telegram_server.write(telegram_server.add_user(101, "Анна", "anna"), "Здравствуйте")
        await until(lambda: got)
        await client.disconnect()
        return got[0], key_of(client)

    event, key = run(main())
    assert (event.raw_text, event.sender_id, event.sender.first_name) == ("Здравствуйте", 101, "Анна")
    assert event.sender.access_hash == telegram_server.access_hash(key, 101)


def test_pts_is_kept_per_account_not_per_session(telegram_server, tmp_path):
    async def main():
        serve = await logged_in(telegram_server, tmp_path / "serve")
        sweep = await logged_in(telegram_server, tmp_path / "sweep", receive_updates=False)
        anna = telegram_server.add_user(101)
        telegram_server.write(anna, "hi")
        await sweep.send_message(types.InputPeerUser(101, telegram_server.access_hash(key_of(sweep), 101)), "x")
        states = [await c(functions.updates.GetStateRequest()) for c in (serve, sweep)]
        await serve.disconnect()
        await sweep.disconnect()
        return states

    states = run(main())
    assert [s.pts for s in states] == [telegram_server.pts, telegram_server.pts]
    assert [e.pts for e in telegram_server.events] == [2, 3]  # one account-wide sequence


async def _restart_after_downtime(server, path, **kwargs):
    """serve runs, stops; the lead writes while it is down; serve starts again with `kwargs`."""
    first = await logged_in(server, path)
    anna = server.add_user(101)
    server.write(anna, "первое")
    await settle()
    await first.disconnect()
    server.write(anna, "пока вас не было")
    got = []
    second = server.client(path, **kwargs)

    async def on_message(event):
        got.append(event.raw_text)

    second.add_event_handler(on_message, events.NewMessage(incoming=True))
    await second.start(bot_token=BOT_TOKEN)
    await settle()
    await asyncio.sleep(0.2)  # real time for the update loop to ask for the difference
    await settle()
    await second.disconnect()
    return got


def test_with_catch_up_what_arrived_while_disconnected_is_delivered(telegram_server, tmp_path):
    got = run(_restart_after_downtime(telegram_server, tmp_path / "serve", catch_up=True))
    assert got == ["пока вас не было"]
    assert any(isinstance(r, functions.updates.GetDifferenceRequest) and r.pts == 2
               for _, r in telegram_server.requests)


def test_without_catch_up_telethon_drops_what_arrived_while_disconnected(telegram_server, tmp_path):
    """Telethon issue #4535: without catch_up the client takes the current state and skips the gap."""
    assert run(_restart_after_downtime(telegram_server, tmp_path / "serve")) == []


# --- limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, markup, error", [
    ("😀" * 2048, None, None),  # 4096 UTF-16 units: the limit exactly
    ("😀" * 2048 + "a", None, errors.MessageTooLongError),
    ("а" * 4097, None, errors.MessageTooLongError),
    (" \n ", None, errors.MessageEmptyError),
    ("x", [[Button.inline("ok", b"d" * 64)]], None),
    ("x", types.ReplyInlineMarkup([types.KeyboardInlineButtonRow([types.KeyboardInlineButton(
        "long", types.InlineButtonTypeCallback(b"d" * 65))])]),
     errors.ButtonDataInvalidError),  # Telethon's Button.inline refuses this itself; the raw type does not
    ("x", [[Button.inline(str(i), str(i).encode())] for i in range(100)], None),
    ("x", [[Button.inline(str(i), str(i).encode())] for i in range(101)], errors.ReplyMarkupTooLongError),
])
def test_message_limits(telegram_server, tmp_path, text, markup, error):
    async def main():
        client = await logged_in(telegram_server, tmp_path / "serve")
        telegram_server.write(telegram_server.add_user(101), "hi")
        peer = types.InputPeerUser(101, telegram_server.access_hash(key_of(client), 101))
        try:
            await client.send_message(peer, text, buttons=markup, parse_mode=None)
        finally:
            await client.disconnect()

    if error is None:
        run(main())
        assert telegram_server.texts_to(101) == [text]
    else:
        with pytest.raises(error):
            run(main())
        assert telegram_server.texts_to(101) == []


# --- buttons -----------------------------------------------------------------------------------


async def _pressed(server, tmp_path, then):
    client = await logged_in(server, tmp_path / "serve")
    anna = server.add_user(101)
    server.write(anna, "hi")
    peer = types.InputPeerUser(101, server.access_hash(key_of(client), 101))
    await client.send_message(peer, "Выберите:", buttons=[[Button.inline("Да", b"yes")]])
    presses = []

    async def on_press(event):
        presses.append(event)

    client.add_event_handler(on_press, events.CallbackQuery())
    query_id = server.press(anna, server.messages_to(anna)[0], "Да")
    await until(lambda: presses)
    try:
        return await then(client, presses[0], query_id)
    finally:
        await client.disconnect()


def test_a_press_arrives_as_a_callback_query_and_is_answered_once(telegram_server, tmp_path):
    async def then(client, press, query_id):
        assert (press.data, press.query.query_id, press.sender_id) == (b"yes", query_id, 101)
        await press.answer("Принято")
        with pytest.raises(errors.QueryIdInvalidError):  # a second answer (Telethon's event.answer() skips it)
            await client(functions.messages.SetBotCallbackAnswerRequest(query_id=query_id, cache_time=0))

    run(_pressed(telegram_server, tmp_path, then))
    assert [a["message"] for a in telegram_server.callback_answers] == ["Принято"]


def test_a_callback_answered_after_the_deadline_is_query_id_invalid(telegram_server, tmp_path):
    async def then(client, press, query_id):
        await telegram_server.clock.advance(14)
        assert not telegram_server.callback_answers
        await telegram_server.clock.advance(2)
        with pytest.raises(errors.QueryIdInvalidError):
            await press.answer()

    run(_pressed(telegram_server, tmp_path, then))


# --- refusals by the other side ----------------------------------------------------------------


@pytest.mark.parametrize("what, error", [("block", errors.UserIsBlockedError),
                                         ("delete", errors.InputUserDeactivatedError)])
def test_a_blocked_or_deleted_user_cannot_be_written_to(telegram_server, tmp_path, what, error):
    async def main():
        client = await logged_in(telegram_server, tmp_path / "serve")
        anna = telegram_server.add_user(101)
        telegram_server.write(anna, "hi")
        getattr(telegram_server, what)(anna)
        try:
            await client.send_message(types.InputPeerUser(101, telegram_server.access_hash(key_of(client), 101)), "x")
        finally:
            await client.disconnect()

    with pytest.raises(error):
        run(main())


def test_a_flood_wait_is_per_chat(telegram_server, tmp_path):
    async def main():
        serve = await logged_in(telegram_server, tmp_path / "serve", flood_sleep_threshold=0)
        other = await logged_in(telegram_server, tmp_path / "other", flood_sleep_threshold=0)
        anna, boris = telegram_server.add_user(101), telegram_server.add_user(202, "Борис", "boris")
        telegram_server.write(anna, "hi")
        telegram_server.write(boris, "hi")
        telegram_server.flood(anna, 8)
        with pytest.raises(errors.FloodWaitError) as caught:
            await serve.send_message(types.InputPeerUser(101, 0), "to anna")
        # a client that has not seen the flood (Telethon keeps it per request type) reaches Boris
        await other.send_message(types.InputPeerUser(202, 0), "to boris")
        with pytest.raises(errors.FloodWaitError):  # still waiting
            await other.send_message(types.InputPeerUser(101, 0), "to anna again")
        await telegram_server.clock.advance(8)
        await other.send_message(types.InputPeerUser(101, 0), "to anna, later")
        for client in (serve, other):
            await client.disconnect()
        return caught.value.seconds

    assert run(main()) == 8
    assert telegram_server.texts_to(202) == ["to boris"] and telegram_server.texts_to(101) == ["to anna, later"]


def test_telethons_flood_sleep_is_virtual_and_moves_frozen_time(telegram_server, tmp_path):
    async def main():
        client = await logged_in(telegram_server, tmp_path / "serve")  # threshold 60: Telethon sleeps
        telegram_server.write(telegram_server.add_user(101), "hi")
        telegram_server.flood(101, 8)
        started, before = asyncio.get_running_loop().time(), time.time()  # the loop's clock is real
        sending = asyncio.ensure_future(client.send_message(types.InputPeerUser(101, 0), "x"))
        await settle()
        assert not sending.done() and telegram_server.clock.sleeping == 1
        await telegram_server.clock.advance(8)
        await until(sending.done)
        await client.disconnect()
        return time.time() - before, asyncio.get_running_loop().time() - started

    virtual, real = run(main())
    assert telegram_server.clock.sleeps.count(8) == 1 and telegram_server.texts_to(101) == ["x"]
    assert virtual == 8 and real < 2  # freezegun's frozen clock moved by the flood wait, the test did not wait


# --- access hashes -----------------------------------------------------------------------------


def test_an_access_hash_is_valid_only_in_the_session_it_was_given_to(telegram_server, tmp_path):
    async def main():
        serve = await logged_in(telegram_server, tmp_path / "serve")
        sweep = await logged_in(telegram_server, tmp_path / "sweep", receive_updates=False)
        telegram_server.write(telegram_server.add_user(101), "hi")
        telegram_server.add_user(303, "Незнакомец", None)  # never wrote to the bot
        serve_hash = telegram_server.access_hash(key_of(serve), 101)
        try:
            with pytest.raises(errors.PeerIdInvalidError):  # api/peers: not reusable across sessions
                await sweep.send_message(types.InputPeerUser(101, serve_hash), "foreign hash")
            await sweep.send_message(types.InputPeerUser(101, 0), "bots may use 0")
            with pytest.raises(errors.PeerIdInvalidError):  # ...only for users they know
                await sweep.send_message(types.InputPeerUser(303, 0), "stranger")
            await serve.send_message(types.InputPeerUser(101, serve_hash), "own hash")
        finally:
            await serve.disconnect()
            await sweep.disconnect()

    run(main())
    assert telegram_server.texts_to(101) == ["bots may use 0", "own hash"]


# --- the bot's own authorization and the connection --------------------------------------------


@pytest.mark.parametrize("message, error", [("SESSION_REVOKED", errors.SessionRevokedError),
                                            ("AUTH_KEY_UNREGISTERED", errors.AuthKeyUnregisteredError),
                                            ("USER_DEACTIVATED_BAN", errors.UserDeactivatedBanError)])
def test_a_revoked_bot_gets_401_on_every_request(telegram_server, tmp_path, message, error):
    async def main():
        client = await logged_in(telegram_server, tmp_path / "serve")
        telegram_server.write(telegram_server.add_user(101), "hi")
        telegram_server.revoke(message)
        try:
            with pytest.raises(error):
                await client.send_message(types.InputPeerUser(101, 0), "x")
        finally:
            await client.disconnect()

    run(main())


def test_a_dropped_connection_is_reconnected_by_telethon(telegram_server, tmp_path):
    async def main():
        client = await logged_in(telegram_server, tmp_path / "serve")
        telegram_server.write(telegram_server.add_user(101), "hi")
        first = telegram_server.links[0]
        telegram_server.drop()
        await until(lambda: telegram_server.links and telegram_server.links[0] is not first)
        await client.send_message(types.InputPeerUser(101, 0), "after the reconnect")
        connected = client.is_connected()
        await client.disconnect()
        return connected

    assert run(main()) is True
    assert telegram_server.texts_to(101) == ["after the reconnect"]


def test_when_telegram_stays_down_the_client_ends_disconnected(telegram_server, tmp_path):
    async def main():
        client = await logged_in(telegram_server, tmp_path / "serve")
        telegram_server.go_down()
        await telegram_server.clock.run_until(lambda: not client.is_connected())
        with pytest.raises(ConnectionError):
            await client.disconnected
        await client.disconnect()

    run(main())
    assert telegram_server.clock.sleeps and not telegram_server.links


# --- today's serve, end to end -----------------------------------------------------------------


def test_serve_answers_a_lead_through_the_real_client(telegram_server, bot_settings):
    async def main():
        holder = {}

        def factory(transport):
            engine, holder["llm"], _ = make_engine(transport=transport, managers=())
            return engine

        async with serving(telegram_server, bot_settings, factory):
            anna = telegram_server.add_user(101, "Анна", "anna")
            telegram_server.write(anna, "Здравствуйте! Сколько стоит?")
            await until(lambda: telegram_server.messages_to(anna))
        return holder["llm"]

    llm = run(main())
    assert llm.calls[0]["history"] == [("user", "Здравствуйте! Сколько стоит?")]
    assert telegram_server.texts_to(101) == ["Понял вас!"]
    lead = Lead.get(Lead.telegram_id == 101)
    serve_key = telegram_server.sent[0].session
    assert (lead.first_name, lead.access_hash) == ("Анна", telegram_server.access_hash(serve_key, 101))


def test_serve_delivers_a_button_press_to_the_engine(telegram_server, bot_settings):
    async def main():
        def factory(transport):
            engine, llm, _ = make_engine(transport=transport, managers=())
            llm.enqueue(Answer("Давайте созвонимся", "warm", True))
            return engine

        async with serving(telegram_server, bot_settings, factory):
            anna = telegram_server.add_user(101, "Анна", "anna")
            telegram_server.write(anna, "Хочу встречу")
            await until(lambda: telegram_server.messages_to(anna))
            offer = telegram_server.messages_to(anna)[0]
            offered = list(offer.labels)
            telegram_server.press(anna, offer, texts.BUTTON_OWN_TIME)
            await until(lambda: len(telegram_server.messages_to(anna)) == 2 and telegram_server.callback_answers)
        return offer, offered

    offer, offered = run(main())
    assert offer.text == "Давайте созвонимся" and texts.BUTTON_OWN_TIME in offered
    assert offer.labels == []  # after the choice the keyboard came off the message (messages.editMessage)
    assert telegram_server.texts_to(101)[1] == texts.ASK_OWN_TIME
    assert Lead.get(Lead.telegram_id == 101).state == "MEETING_CUSTOM_TIME"


def test_serve_stops_on_sigterm_and_saves_the_update_state(telegram_server, bot_settings):
    async def main():
        async with serving(telegram_server, bot_settings, lambda t: make_engine(transport=t, managers=())[0]) as task:
            pass
        return task

    task = run(main())
    assert task.done() and task.exception() is None
    with sqlite3.connect(bot_settings.home / (telegram.SERVE_SESSION + ".session")) as db:
        (pts,) = db.execute("SELECT pts FROM update_state WHERE id = 0").fetchone()
    assert pts == telegram_server.pts
