"""What staff do from Telegram: write in a lead's topic (the lead gets it, the bot pauses), `/note`,
`/bot`, the card's buttons; and in a private chat with the bot, the short staff menu (`/today`,
`/hot`, a meeting's outcome). A manager is never a lead: no lead row, no Claude call."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from salesbot import delivery, texts
from salesbot.inbox.inbox import COLD, DONE, NO_SHOW, RELEASE, TAKE, Inbox, card_buttons, meeting_keyboard, staff_button
from salesbot.store import Lead, Meeting, leads, to_utc_naive
from salesbot.time.slots import Calendar
from salesbot.transport import Keyboard, Peer

log = logging.getLogger(__name__)

LIST_LIMIT = 20  # lines of /today and /hot (a message stays readable on a phone)


def _word(text: str) -> str:
    return text.split(maxsplit=1)[0].split("@")[0].lower() if text.startswith("/") else ""


def staff_name(first_name: str | None, username: str | None, telegram_id: int | None) -> str:
    return first_name or (f"@{username}" if username else f"менеджер {telegram_id}")


class StaffDesk:
    def __init__(self, inbox: Inbox, calendar: Calendar,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.inbox = inbox
        self.calendar = calendar
        self.now = now

    # -- what the group poster needs about a lead --

    def title(self, lead_id: int) -> str:
        lead = leads.by_id(lead_id)
        return texts.lead_topic_title(lead.first_name, lead.username, lead_id)

    def card(self, lead_id: int) -> tuple[str, Keyboard]:
        lead = leads.by_id(lead_id)
        row = Lead.get_by_id(lead_id)
        meeting = leads.booked_meeting(lead_id, self.now())
        when = texts.meeting_time(meeting.starts_at.astimezone(self.calendar.tz), self._today()) if meeting else None
        state = leads.inbox_state(lead_id)
        text = texts.lead_card(lead.first_name, lead.username, lead_id, lead.status, getattr(row, "source", None),
                               when, getattr(row, "summary", None), state is not None and state.paused(self.now()))
        return text, card_buttons(lead_id)

    @staticmethod
    def peer(lead_id: int) -> Peer | None:
        lead = leads.by_id(lead_id)
        if lead is None:
            return None
        return Peer(user_id=lead.telegram_id, access_hash=lead.access_hash, lead_id=lead.id)

    # -- the group --

    async def topic_message(self, topic_id: int | None, staff_id: int, who: str, text: str, media: bool) -> None:
        """A member wrote in the staff group; in a lead's topic it is for the lead (or a command)."""
        lead_id = leads.lead_by_topic(self.inbox.config.staff_chat, topic_id) if topic_id else None
        if lead_id is None:
            return  # staff talking among themselves (General, or a topic of their own)
        word = _word(text)
        if word == "/note":
            body = text.split(maxsplit=1)[1] if len(text.split(maxsplit=1)) > 1 else ""
            if body.strip():
                self.inbox.note(lead_id, body.strip(), staff_id)
                self._post(lead_id, texts.NOTE_SAVED)
            return
        if word == "/bot":
            if not await self.inbox.release(lead_id, who):
                self._post(lead_id, texts.released(who))
            return
        if word:
            self._post(lead_id, texts.STAFF_TOPIC_HELP)
            return
        if media or not text.strip():
            self._post(lead_id, texts.STAFF_MEDIA_UNSUPPORTED)
            return
        self.inbox.reply(lead_id, text, staff_id)
        log.info("staff %s wrote to lead %s from the topic", staff_id, lead_id)
        await self.inbox.outbox.deliver(("lead", lead_id))

    async def group_button(self, data: str, staff_id: int, who: str) -> str | None:
        """A card's button; returns the toast to show (None: nothing to say)."""
        action = staff_button(data)
        if action is None or leads.by_id(action[1]) is None:
            return texts.STALE_TOAST
        kind, lead_id = action
        if kind == TAKE:
            self.inbox.take_over(lead_id, staff_id, who)
        elif kind == RELEASE:
            await self.inbox.release(lead_id, who)
        elif kind == COLD:
            self.inbox.mark_cold(lead_id, who)
        else:
            return texts.STALE_TOAST
        return None

    def _post(self, lead_id: int, text: str) -> None:
        delivery.queue_staff(lead_id, text, self.now())
        self.inbox._kick()

    # -- a manager in private --

    async def private(self, telegram_id: int, text: str) -> None:
        word = _word(text.strip())
        if word == "/today":
            self._today_meetings(telegram_id)
        elif word == "/hot":
            self._hot(telegram_id)
        else:
            delivery.queue_to_chat(telegram_id, texts.STAFF_HELP, self.now())
        await self.inbox.outbox.deliver(("chat", telegram_id))

    async def private_button(self, telegram_id: int, data: str) -> str | None:
        action = staff_button(data)
        if action is None or action[0] not in (DONE, NO_SHOW):
            return texts.STALE_TOAST
        outcome = "done" if action[0] == DONE else "no_show"
        meeting = leads.meeting_by_id(action[1])
        # as `salesbot meetings done|no-show`: only a meeting that has started and was not cancelled
        if meeting is None or meeting.status == "cancelled" or meeting.starts_at > self.now() \
                or not leads.set_outcome(meeting.id, outcome, self.now()):
            return texts.STALE_TOAST
        lead = leads.by_id(meeting.lead_id)
        log.info("manager %s marked meeting %s %s", telegram_id, meeting.id, outcome)
        label = texts.STAFF_BUTTON_DONE if outcome == "done" else texts.STAFF_BUTTON_NO_SHOW
        return f"{label}: {lead.first_name or lead.username or lead.id}"

    def _today(self):
        return self.now().astimezone(self.calendar.tz).date()

    def _today_meetings(self, telegram_id: int) -> None:
        tz = self.calendar.tz
        start = datetime.combine(self._today(), datetime.min.time(), tzinfo=tz)
        end = start + timedelta(days=1)
        rows = (Meeting.select(Meeting, Lead).join(Lead)
                .where(Meeting.starts_at >= to_utc_naive(start), Meeting.starts_at < to_utc_naive(end),
                       Meeting.status != "cancelled")
                .order_by(Meeting.starts_at).limit(LIST_LIMIT))
        meetings = list(rows)
        if not meetings:
            delivery.queue_to_chat(telegram_id, texts.STAFF_NO_MEETINGS, self.now())
            return
        for meeting in meetings:
            moment = meeting.starts_at.replace(tzinfo=UTC).astimezone(tz)
            line = texts.staff_meeting_line(moment.strftime("%H:%M"), meeting.lead.first_name, meeting.lead.id,
                                            meeting.lead.username)
            if meeting.status in ("done", "no_show"):
                line += f" · {texts.STAFF_BUTTON_DONE if meeting.status == 'done' else texts.STAFF_BUTTON_NO_SHOW}"
                delivery.queue_to_chat(telegram_id, line, self.now())
            else:
                delivery.queue_to_chat(telegram_id, line, self.now(), meeting_keyboard(meeting.id))

    def _hot(self, telegram_id: int) -> None:
        now = to_utc_naive(self.now())
        booked = Meeting.select(Meeting.lead).where(Meeting.status == "booked", Meeting.starts_at > now)
        hot = (Lead.select().where(Lead.status == "hot", Lead.id.not_in(booked))
               .order_by(Lead.last_message_at.desc()).limit(LIST_LIMIT))
        lines = [f"🔥 {lead.display_name} · #{lead.id}" for lead in hot]
        delivery.queue_to_chat(telegram_id, "\n".join(lines) if lines else texts.STAFF_NO_HOT, self.now())
