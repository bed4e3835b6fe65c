"""The staff group of the offline Telegram: a forum supergroup (a channel with `megagroup` and `forum`).

A mixin of `FakeTelegram` (tests/fake_telegram.py), kept in its own file: the private chats stay
there, the staff inbox's group lives here. Each rule names its source; pages are core.telegram.org
unless a full address is given.

What is modelled:
- the channel's own update sequence: every new message in it raises the channel's pts
  (api/updates#message-related-event-sequences: "each channel and supergroup has its own pts");
  messages are pushed as `updateNewChannelMessage` to the bot while it is a member, and served by
  `updates.getChannelDifference` from any pts (method/updates.getChannelDifference);
- a session that has not seen the channel's latest pts is told so in `updates.getDifference` by
  `updateChannelTooLong` (constructor/updateChannelTooLong: "There are new updates in the
  specified channel, the client must fetch them manually by invoking updates.getChannelDifference");
- topics: `messages.createForumTopic` (method/messages.createForumTopic) makes a service message
  (`messageActionTopicCreate`) whose id is the topic's id (api/forum: "the ID of the topic is the
  ID of the service message"); posts into a topic carry `InputReplyToMessage(top_msg_id=…)` and come
  back with `messageReplyHeader(forum_topic=True, reply_to_msg_id=topic)` (api/forum#forum-topics);
- rights: creating or reopening a topic takes an admin with `manage_topics` (api/forum: "Bots
  and users with the manage_topics admin right"), else CHAT_ADMIN_REQUIRED; a bot that is not a
  member gets CHANNEL_PRIVATE (method/channels.getChannels, method/messages.sendMessage); a
  deleted topic is TOPIC_DELETED and a closed one TOPIC_CLOSED (method/messages.sendMessage);
- the bot is an admin, and a bot admin receives every message of the group (core.telegram.org/bots/features
  #privacy-mode: privacy mode does not apply to admins); a bot that is not an admin is not modelled;
- pace: a bot that posts more than 20 messages a minute in one group gets FLOOD_WAIT (bots/faq:
  "your bot will not be able to send more than 20 messages per minute to the same group"); posts
  are sendMessage, forwardMessages and createForumTopic (each puts a message in the group);
- leaving and rights changes are announced with `updateChannel` (constructor/updateChannel:
  "Channel/supergroup (channel and/or channelFull) information was updated").
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import ClassVar

from telethon.tl import functions, types

GROUP_POSTS_PER_MINUTE = 20  # bots/faq: "no more than 20 messages per minute to the same group"
GENERAL_TOPIC = 1  # api/forum: the "General" topic has id 1


@dataclass
class FakeTopic:
    id: int
    title: str
    closed: bool = False
    deleted: bool = False


@dataclass
class GroupPost:
    """A message in the group: by the bot (`from_id` is the bot) or by a member."""

    id: int
    from_id: int
    topic_id: int
    text: str
    buttons: list[list[tuple[str, bytes]]] | None = None
    forwarded: tuple[int, int] | None = None  # (user id, message id) of a forwarded private message
    session: int | None = None
    mentions: list[int] = field(default_factory=list)  # users a mention-name entity points at

    def data_of(self, label: str) -> bytes:
        return next(data for row in self.buttons or [] for text, data in row if text == label)


@dataclass
class FakeChannel:
    id: int  # the bare id; the Bot API and SALESBOT_STAFF_CHAT write it -100<id>
    title: str
    forum: bool = True
    bot_member: bool = True
    bot_admin: bool = True
    manage_topics: bool = True
    pts: int = 1
    events: list[tuple[int, types.TypeUpdate]] = field(default_factory=list)  # (pts, update)
    topics: dict[int, FakeTopic] = field(default_factory=dict)
    posts: list[GroupPost] = field(default_factory=list)
    bot_posts_at: list[float] = field(default_factory=list)  # clock times of the bot's last minute's posts
    bot_posts_at_all: list[float] = field(default_factory=list)  # and of all of them, for tests
    members: set[int] = field(default_factory=set)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(2))  # 1 is the General topic

    @property
    def marked_id(self) -> int:
        return -1_000_000_000_000 - self.id

    def in_topic(self, topic_id: int) -> list[GroupPost]:
        return [p for p in self.posts if p.topic_id == topic_id]

    def topic_named(self, title: str) -> FakeTopic:
        return next(t for t in self.topics.values() if t.title == title and not t.deleted)


class ForumServer:
    """Mixed into FakeTelegram: `self.channels`, the group's handlers, and the world's actions."""

    channels: dict[int, FakeChannel]
    flags_channels = True  # getDifference names channels with news (updateChannelTooLong)

    # --- test helpers ----------------------------------------------------------------------------

    def add_group(self, channel_id: int = 1987654321, title: str = "Продажи", **kwargs) -> FakeChannel:
        channel = self.channels[channel_id] = FakeChannel(channel_id, title, **kwargs)
        channel.topics[GENERAL_TOPIC] = FakeTopic(GENERAL_TOPIC, "General")
        return channel

    def staff_write(self, channel: FakeChannel, user, text: str, topic_id: int = GENERAL_TOPIC,
                    reply_to: int | None = None) -> types.Message:
        """A member writes in a topic (or replies to a message in it)."""
        channel.members.add(user.id)
        header = None
        if topic_id != GENERAL_TOPIC:  # api/forum: messages in a topic reply to its service message
            header = types.MessageReplyHeader(forum_topic=True, reply_to_msg_id=reply_to or topic_id,
                                              reply_to_top_id=topic_id if reply_to else None)
        message = types.Message(id=next(channel._ids), peer_id=types.PeerChannel(channel.id), date=self._date(),
                                message=text, from_id=types.PeerUser(user.id), reply_to=header)
        channel.posts.append(GroupPost(message.id, user.id, topic_id, text))
        self._channel_event(channel, types.UpdateNewChannelMessage(message=message, pts=0, pts_count=1),
                            origin=None, users=[user])
        return message

    def press_in_group(self, channel: FakeChannel, user, post: GroupPost, label: str) -> int:
        """A member taps an inline button of the bot's post in the group (updateBotCallbackQuery, no pts)."""
        from tests.fake_telegram import _CallbackQuery

        data = post.data_of(label)
        query = _CallbackQuery(next(self._query_ids), user.id, post.id, data, self.clock.now())
        self._queries[query.id] = query
        update = types.UpdateBotCallbackQuery(query_id=query.id, user_id=user.id, peer=types.PeerChannel(channel.id),
                                              msg_id=post.id, chat_instance=channel.id * 7, data=data)
        for link in self._subscribed():
            self._push(link, types.Updates(updates=[update], users=[self._user_for(link.auth, user)],
                                           chats=[self._channel_for(link.auth, channel)], date=self._date(), seq=0))
        return query.id

    def delete_topic(self, channel: FakeChannel, topic_id: int) -> None:
        channel.topics[topic_id].deleted = True

    def close_topic(self, channel: FakeChannel, topic_id: int) -> None:
        channel.topics[topic_id].closed = True

    def set_rights(self, channel: FakeChannel, *, member: bool = True, admin: bool = True,
                   manage_topics: bool = True) -> None:
        """Staff change the bot's place in the group; the bot is told with updateChannel."""
        channel.bot_member = member
        channel.bot_admin, channel.manage_topics = admin and member, manage_topics and admin and member
        for link in self._subscribed():
            self._push(link, types.Updates(updates=[types.UpdateChannel(channel_id=channel.id)], users=[],
                                           chats=[self._channel_for(link.auth, channel)], date=self._date(), seq=0))

    def bot_posts(self, channel: FakeChannel) -> list[GroupPost]:
        return [p for p in channel.posts if p.from_id == self.bot_id]

    # --- the API -------------------------------------------------------------------------------

    def _channel(self, auth, peer) -> FakeChannel:
        """The channel an InputPeerChannel / InputChannel names, as this session may use it."""
        channel_id = getattr(peer, "channel_id", None)
        channel = self.channels.get(channel_id)
        if channel is None:
            raise self._failure(400, "CHANNEL_INVALID")  # method/channels.getChannels
        # api/peers#access-hash: this session's hash, or 0 for a bot (Telethon's get_input_entity
        # asks channels.getChannels with access_hash=0 when it has none: client/users.py).
        if peer.access_hash not in (0, self.access_hash(auth.key_id, channel.id)):
            raise self._failure(400, "CHANNEL_INVALID")
        if not channel.bot_member:
            raise self._failure(406, "CHANNEL_PRIVATE")  # "You haven't joined this channel/supergroup"
        return channel

    def _channel_for(self, auth, channel: FakeChannel):
        if not channel.bot_member:
            return types.ChannelForbidden(id=channel.id, access_hash=self.access_hash(auth.key_id, channel.id),
                                          title=channel.title, megagroup=True)
        rights = types.ChatAdminRights(post_messages=True, delete_messages=True, pin_messages=True,
                                       manage_topics=channel.manage_topics) if channel.bot_admin else None
        return types.Channel(id=channel.id, title=channel.title, photo=types.ChatPhotoEmpty(), date=self._date(),
                             megagroup=True, forum=channel.forum,
                             access_hash=self.access_hash(auth.key_id, channel.id), admin_rights=rights)

    def _get_channels(self, link, request: functions.channels.GetChannelsRequest):
        chats = [self._channel_for(link.auth, self._channel(link.auth, wanted)) for wanted in request.id]
        return types.messages.Chats(chats=chats)

    def _check_group_flood(self, channel: FakeChannel) -> None:
        # bots/faq: at most 20 messages a minute in one group; api/errors#420-flood: FLOOD_WAIT_X
        now = self.clock.now()
        channel.bot_posts_at[:] = [t for t in channel.bot_posts_at if now - t < 60]
        if len(channel.bot_posts_at) >= GROUP_POSTS_PER_MINUTE:
            raise self._failure(420, f"FLOOD_WAIT_{max(1, math.ceil(channel.bot_posts_at[0] + 60 - now))}")
        channel.bot_posts_at.append(now)
        channel.bot_posts_at_all.append(now)

    def _topic_for_post(self, channel: FakeChannel, reply_to) -> int:
        if reply_to is None:
            return GENERAL_TOPIC
        topic_id = reply_to.top_msg_id or reply_to.reply_to_msg_id
        topic = channel.topics.get(topic_id)
        if topic is None or topic.deleted:
            raise self._failure(400, "TOPIC_DELETED")  # method/messages.sendMessage
        if topic.closed:
            raise self._failure(400, "TOPIC_CLOSED")  # method/messages.sendMessage
        return topic_id

    def _new_group_message(self, link, channel: FakeChannel, message, random_id: int) -> types.Updates:
        """The bot's own message in the group: the channel's pts grows; the result carries
        updateMessageID (our random_id) and updateNewChannelMessage (method/messages.sendMessage)."""
        update = types.UpdateNewChannelMessage(message=message, pts=0, pts_count=1)
        self._channel_event(channel, update, origin=link.auth.key_id, users=[])
        return types.Updates(updates=[types.UpdateMessageID(id=message.id, random_id=random_id), update],
                             users=[], chats=[self._channel_for(link.auth, channel)], date=self._date(), seq=0)

    def _post(self, link, request: functions.messages.SendMessageRequest):
        channel = self._channel(link.auth, request.peer)
        topic_id = self._topic_for_post(channel, request.reply_to)
        if not request.message.strip():
            raise self._failure(400, "MESSAGE_EMPTY")
        from tests.fake_telegram import MESSAGE_LENGTH_MAX, utf16_len

        if utf16_len(request.message) > MESSAGE_LENGTH_MAX:
            raise self._failure(400, "MESSAGE_TOO_LONG")
        buttons = self._check_markup(request.reply_markup)
        self._check_group_flood(channel)
        message = types.Message(id=next(channel._ids), peer_id=types.PeerChannel(channel.id), date=self._date(),
                                message=request.message, out=True, from_id=types.PeerUser(self.bot_id),
                                reply_markup=request.reply_markup, reply_to=self._header(topic_id))
        # api/mentions: inputMessageEntityMentionName names a user by InputUser (this session's hash)
        mentions = [self._resolve(link.auth, e.user_id.user_id, e.user_id.access_hash, error="USER_ID_INVALID").id
                    for e in request.entities or [] if isinstance(e, types.InputMessageEntityMentionName)]
        channel.posts.append(GroupPost(message.id, self.bot_id, topic_id, request.message, buttons,
                                       session=link.auth.key_id, mentions=mentions))
        return self._new_group_message(link, channel, message, request.random_id)

    @staticmethod
    def _header(topic_id: int):
        # api/forum: a message in a topic has reply_to with forum_topic and the topic's id
        if topic_id == GENERAL_TOPIC:
            return None
        return types.MessageReplyHeader(forum_topic=True, reply_to_msg_id=topic_id)

    def _forward(self, link, request: functions.messages.ForwardMessagesRequest):
        # method/messages.forwardMessages: from a private chat with a user into the group's topic
        channel = self._channel(link.auth, request.to_peer)
        user = self._peer(link.auth, request.from_peer)
        topic_id = self._topic_for_post(channel, types.InputReplyToMessage(reply_to_msg_id=request.top_msg_id or 0,
                                                                           top_msg_id=request.top_msg_id)
                                        if request.top_msg_id else None)
        known = {m.id for m in self.user_messages.get(user.id, [])}
        if any(i not in known for i in request.id):
            raise self._failure(400, "MESSAGE_ID_INVALID")
        self._check_group_flood(channel)
        updates = []
        for message_id, random_id in zip(request.id, request.random_id, strict=True):
            message = types.Message(id=next(channel._ids), peer_id=types.PeerChannel(channel.id), date=self._date(),
                                    message="", out=True, from_id=types.PeerUser(self.bot_id),
                                    fwd_from=types.MessageFwdHeader(date=self._date(), from_id=types.PeerUser(user.id)),
                                    reply_to=self._header(topic_id))
            channel.posts.append(GroupPost(message.id, self.bot_id, topic_id, "", None, (user.id, message_id),
                                           session=link.auth.key_id))
            result = self._new_group_message(link, channel, message, random_id)
            updates.extend(result.updates)
        return types.Updates(updates=updates, users=[self._user_for(link.auth, user)],
                             chats=[self._channel_for(link.auth, channel)], date=self._date(), seq=0)

    def _create_topic(self, link, request: functions.messages.CreateForumTopicRequest):
        # method/messages.createForumTopic: CHANNEL_FORUM_MISSING, CHAT_ADMIN_REQUIRED (no manage_topics)
        channel = self._channel(link.auth, request.peer)
        if not channel.forum:
            raise self._failure(400, "CHANNEL_FORUM_MISSING")
        if not (channel.bot_admin and channel.manage_topics):
            raise self._failure(400, "CHAT_ADMIN_REQUIRED")
        if not request.title.strip():
            raise self._failure(400, "TOPIC_TITLE_EMPTY")
        self._check_group_flood(channel)
        topic_id = next(channel._ids)
        channel.topics[topic_id] = FakeTopic(topic_id, request.title)
        message = types.MessageService(id=topic_id, peer_id=types.PeerChannel(channel.id), date=self._date(),
                                       action=types.MessageActionTopicCreate(title=request.title, icon_color=0x6FB9F0),
                                       out=True, from_id=types.PeerUser(self.bot_id))
        return self._new_group_message(link, channel, message, request.random_id)

    def _edit_topic(self, link, request: functions.messages.EditForumTopicRequest):
        # method/messages.editForumTopic: reopening takes manage_topics (CHAT_ADMIN_REQUIRED); TOPIC_ID_INVALID
        channel = self._channel(link.auth, request.peer)
        topic = channel.topics.get(request.topic_id)
        if topic is None or topic.deleted:
            raise self._failure(400, "TOPIC_ID_INVALID")
        if not (channel.bot_admin and channel.manage_topics):
            raise self._failure(400, "CHAT_ADMIN_REQUIRED")
        if request.closed is not None:
            topic.closed = request.closed
        if request.title:
            topic.title = request.title
        return types.Updates(updates=[], users=[], chats=[self._channel_for(link.auth, channel)], date=self._date(),
                             seq=0)

    def _get_channel_difference(self, link, request: functions.updates.GetChannelDifferenceRequest):
        # method/updates.getChannelDifference: the channel's events after `pts` (CHANNEL_PRIVATE when
        # the bot is no longer a member); no slicing: tests stay small.
        channel = self._channel(link.auth, request.channel)
        self._seen[(link.auth.key_id, channel.id)] = channel.pts
        missed = [u for pts, u in channel.events if pts > request.pts]
        if not missed:
            return types.updates.ChannelDifferenceEmpty(pts=channel.pts, final=True)
        users = {u.message.from_id.user_id for u in missed if isinstance(getattr(u.message, "from_id", None),
                                                                           types.PeerUser)}
        return types.updates.ChannelDifference(
            pts=channel.pts, final=True, new_messages=[u.message for u in missed], other_updates=[],
            chats=[self._channel_for(link.auth, channel)],
            users=[self._user_for(link.auth, self.users[u]) for u in sorted(users) if u in self.users])

    def _channels_too_long(self, auth) -> list[types.UpdateChannelTooLong]:
        """For getDifference: channels with events this session has not been given (unless a test
        turns `flags_channels` off: the docs do not promise the flag for every case)."""
        if not self.flags_channels:
            return []
        return [types.UpdateChannelTooLong(channel_id=c.id, pts=c.pts) for c in self.channels.values()
                if c.bot_member and c.pts > self._seen.get((auth.key_id, c.id), 1)]

    def _channel_event(self, channel: FakeChannel, update, *, origin: int | None, users: list) -> None:
        """api/updates: each event in the channel raises its pts by pts_count; pushed to the bot's
        other connected sessions while it is a member (the sender learns from its result)."""
        channel.pts += 1
        update.pts = channel.pts
        channel.events.append((channel.pts, update))
        if not channel.bot_member:
            return
        for link in self._subscribed():
            if link.auth.key_id == origin:
                self._seen[(link.auth.key_id, channel.id)] = channel.pts
                continue
            self._seen[(link.auth.key_id, channel.id)] = channel.pts
            self._push(link, types.Updates(updates=[update], users=[self._user_for(link.auth, u) for u in users],
                                           chats=[self._channel_for(link.auth, channel)],
                                           date=self._date(), seq=0))

    forum_handlers: ClassVar[dict] = {
        functions.channels.GetChannelsRequest: _get_channels,
        functions.messages.CreateForumTopicRequest: _create_topic,
        functions.messages.EditForumTopicRequest: _edit_topic,
        functions.messages.ForwardMessagesRequest: _forward,
        functions.updates.GetChannelDifferenceRequest: _get_channel_difference,
    }
