"""Storing what a lead sends, before anything can fail: the lead row (made on first contact), the
message (a button press stored as its label), and replays of the same Telegram message ignored."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime

from salesbot import keyboards, links, texts
from salesbot.dialogue.turn import BUTTON, MEDIA, TEXT, Incoming, Sender, Stored
from salesbot.errors import StoreError
from salesbot.keyboards import moment_of
from salesbot.store import leads
from salesbot.store.leads import LeadState
from salesbot.time.slots import Calendar

log = logging.getLogger(__name__)

STORE_ATTEMPTS = 5  # storing an incoming message: 5 tries over about 1.5 s


class Intake:
    def __init__(self, calendar: Calendar, now: Callable[[], datetime],
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self.calendar = calendar
        self.now = now
        self.sleep = sleep

    async def store(self, incoming: Incoming) -> tuple[LeadState, Stored] | StoreError | None:
        """The lead and the stored message; None for a replay; the error when the database stayed
        broken. A busy database (locked by another process past serve's short busy timeout) is retried
        without blocking the event loop."""
        failure = StoreError("not tried")
        for attempt in range(STORE_ATTEMPTS):
            try:
                lead = self._lead_for(incoming.sender, (incoming.text or "").strip())
                message = self._record(lead, incoming)
            except StoreError as exc:
                failure = exc
                if attempt + 1 < STORE_ATTEMPTS:
                    await self.sleep(0.1 * 2**attempt)
                continue
            if message is None:
                log.info("lead %s: Telegram message %s was stored before; ignored", lead.id,
                         incoming.telegram_message_id)
                return None
            return lead, message
        return failure

    @staticmethod
    def known_lead(sender: Sender) -> LeadState | None:
        if sender.lead_id is not None:
            return leads.by_id(sender.lead_id)
        return leads.by_telegram_id(sender.telegram_id)

    @staticmethod
    def _lead_for(sender: Sender, text: str = "") -> LeadState:
        """The lead writing; a new one keeps the source its deep link's `/start PAYLOAD` carries."""
        if sender.lead_id is not None:
            lead = leads.by_id(sender.lead_id)
            if lead is None:
                raise ValueError(f"no lead {sender.lead_id}")
            return lead
        return leads.upsert_telegram_lead(sender.telegram_id, sender.access_hash, sender.username, sender.first_name,
                                          source=links.start_payload(text))

    def _record(self, lead: LeadState, incoming: Incoming) -> Stored | None:
        """Store the lead's message (before anything can fail); None when it was stored before."""
        kind, text = incoming.kind, (incoming.text or "").strip()
        if kind == BUTTON:
            stored = self._button_label(incoming.button or "")
        elif kind == MEDIA:
            stored = texts.MEDIA_LABELS.get(incoming.media or "", texts.MEDIA_OTHER)
        else:
            stored = text or texts.EMPTY_MESSAGE
        message_id = leads.record_lead_message(lead.id, stored, self.now(), unanswered=kind == TEXT,
                                               telegram_message_id=incoming.telegram_message_id)
        return Stored(message_id, stored) if message_id is not None else None

    def _button_label(self, data: str) -> str:
        if action := keyboards.meeting_action(data):
            return keyboards.meeting_label(action[0])
        if data == keyboards.OWN:
            return texts.BUTTON_OWN_TIME
        if data == keyboards.OTHER:
            return texts.BUTTON_OTHER
        moment = moment_of(data)
        if moment is not None and data.startswith("ok:"):
            return f"{texts.BUTTON_CONFIRM}: {texts.slot_label(moment.astimezone(self.calendar.tz), self._today())}"
        if moment is not None:
            return texts.slot_label(moment.astimezone(self.calendar.tz), self._today())
        return texts.unknown_button(data[:20])

    def _today(self) -> date:
        return self.now().astimezone(self.calendar.tz).date()
