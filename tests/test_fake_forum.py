"""The fake Telegram's staff group (tests/fake_forum.py), rule by rule, through the real TelegramClient:
what salesbot relies on behaves as core.telegram.org documents it."""


import pytest
from telethon import errors, events
from telethon.tl import functions, types

from tests.engine_fakes import run_frozen as run
from tests.fake_telegram import BOT_TOKEN, settle, until


async def bot(server, path):
    client = server.client(path, flood_sleep_threshold=0)  # a FLOOD_WAIT comes back to the test
    await client.start(bot_token=BOT_TOKEN)
    return client


async def channel_peer(client, group):
    # Telethon's get_input_entity asks channels.getChannels with access_hash 0 (client/users.py)
    return await client.get_input_entity(types.PeerChannel(group.id))


async def create(client, peer, title, random_id=1):
    result = await client(functions.messages.CreateForumTopicRequest(peer=peer, title=title, random_id=random_id))
    return next(u.id for u in result.updates if isinstance(u, types.UpdateMessageID))


async def post(client, peer, topic, text, random_id):
    return await client(functions.messages.SendMessageRequest(
        peer=peer, message=text, random_id=random_id,
        reply_to=types.InputReplyToMessage(reply_to_msg_id=topic, top_msg_id=topic)))


def test_a_topic_is_created_and_posts_land_in_it(telegram_server, tmp_path):
    async def main():
        group = telegram_server.add_group()
        client = await bot(telegram_server, tmp_path / "s")
        try:
            peer = await channel_peer(client, group)
            topic = await create(client, peer, "Анна · #1")
            result = await post(client, peer, topic, "👤 Здравствуйте", 11)
            return group, topic, result
        finally:
            await client.disconnect()

    group, topic, result = run(main())
    assert group.topics[topic].title == "Анна · #1"  # api/forum: the topic's id is its service message's id
    (posted,) = group.in_topic(topic)
    assert posted.text == "👤 Здравствуйте"
    new = next(u for u in result.updates if isinstance(u, types.UpdateNewChannelMessage))
    assert new.message.reply_to.forum_topic and new.message.reply_to.reply_to_msg_id == topic
    assert new.pts == group.pts


@pytest.mark.parametrize("world, error", [
    ({"manage_topics": False}, errors.ChatAdminRequiredError),
    ({"admin": False}, errors.ChatAdminRequiredError),
    ({"forum": False}, errors.ChannelForumMissingError),
])
def test_creating_a_topic_takes_an_admin_with_manage_topics_in_a_forum(telegram_server, tmp_path, world, error):
    async def main():
        group = telegram_server.add_group(**{"bot_admin" if k == "admin" else k: v for k, v in world.items()})
        client = await bot(telegram_server, tmp_path / "s")
        try:
            with pytest.raises(error):
                await create(client, await channel_peer(client, group), "Анна")
        finally:
            await client.disconnect()

    run(main())


def test_deleted_and_closed_topics_and_a_removed_bot_are_refused(telegram_server, tmp_path):
    async def main():
        group = telegram_server.add_group()
        client = await bot(telegram_server, tmp_path / "s")
        try:
            peer = await channel_peer(client, group)
            gone, closed = await create(client, peer, "A", 1), await create(client, peer, "B", 2)
            telegram_server.delete_topic(group, gone)
            telegram_server.close_topic(group, closed)
            with pytest.raises(errors.TopicDeletedError):
                await post(client, peer, gone, "x", 3)
            with pytest.raises(errors.BadRequestError, match="TOPIC_CLOSED"):
                await post(client, peer, closed, "x", 4)
            await client(functions.messages.EditForumTopicRequest(peer=peer, topic_id=closed, closed=False))
            await post(client, peer, closed, "снова открыта", 5)
            telegram_server.set_rights(group, member=False)  # staff removed the bot
            with pytest.raises(errors.ChannelPrivateError):
                await post(client, peer, closed, "x", 6)
        finally:
            await client.disconnect()

    run(main())


def test_more_than_20_posts_a_minute_in_one_group_is_a_flood_wait(telegram_server, tmp_path):
    async def main():
        group = telegram_server.add_group()
        client = await bot(telegram_server, tmp_path / "s")
        try:
            peer = await channel_peer(client, group)
            topic = await create(client, peer, "A")  # the topic's message is the first post of the minute
            for n in range(19):
                await post(client, peer, topic, f"line {n}", 100 + n)
            with pytest.raises(errors.FloodWaitError) as flood:
                await post(client, peer, topic, "one too many", 200)
            await telegram_server.clock.advance(flood.value.seconds)
            await post(client, peer, topic, "after the wait", 201)
            return flood.value.seconds
        finally:
            await client.disconnect()

    seconds = run(main())
    assert 0 < seconds <= 60


def test_staff_messages_are_pushed_with_their_topic_and_served_by_get_channel_difference(telegram_server, tmp_path):
    async def main():
        group = telegram_server.add_group()
        olga = telegram_server.add_user(555, "Ольга", "olga")
        client = await bot(telegram_server, tmp_path / "s")
        seen = []
        client.add_event_handler(lambda e: seen.append(e), events.NewMessage(incoming=True))
        try:
            topic = await create(client, await channel_peer(client, group), "A")
            await settle()
            telegram_server.staff_write(group, olga, "Ответ клиенту", topic)
            await until(lambda: seen)
            before = group.pts
            telegram_server.staff_write(group, olga, "Ещё одно", topic)
            diff = await client(functions.updates.GetChannelDifferenceRequest(
                channel=await client.get_input_entity(types.PeerChannel(group.id)),
                filter=types.ChannelMessagesFilterEmpty(), pts=before, limit=100))
            return seen, diff, topic
        finally:
            await client.disconnect()

    seen, diff, topic = run(main())
    message = seen[0].message
    assert message.message == "Ответ клиенту" and message.reply_to.forum_topic
    assert message.reply_to.reply_to_msg_id == topic and seen[0].sender_id == 555
    assert [m.message for m in diff.new_messages] == ["Ещё одно"] and diff.final
