"""The dialogue engine, transport-agnostic: a lead's message in, replies and buttons out.

Every message is stored before anything can fail. Text goes to Claude in exactly one call that
returns the reply, the lead's status, whether to offer a meeting, what the lead wants done with a
booked one (move, cancel) and the time phrase the lead proposed; only the engine books: from buttons
or from the lead's own words (timeparse, then a confirm step), with the state kept in the database
so a restart in the middle changes nothing. A booked meeting carries «Подтверждаю», «Перенести»,
«Отменить» on its confirmation (and on every reminder, meeting_reminders.py). Messages of one lead
are handled one at a time and in order; different leads concurrently. Database work is synchronous
and never spans an `await`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from salesbot import delivery, keyboards, store, texts
from salesbot.claude import prompts
from salesbot.delivery import Outbox
from salesbot.errors import LLMUnavailable, StoreError
from salesbot.keyboards import moment_of, slot_data
from salesbot.store import leads
from salesbot.store.leads import STATE_CONFIRM_CANCEL, STATE_CONFIRM_TIME, STATE_OWN_TIME, LeadState, MeetingState
from salesbot.time import parse as timeparse
from salesbot.time.slots import Calendar, at_clock, check, clock_label, free_slots, slots_around, slots_in
from salesbot.transport import Keyboard, Transport

log = logging.getLogger(__name__)

__all__ = ["STATE_CONFIRM_CANCEL", "STATE_CONFIRM_TIME", "STATE_OWN_TIME", "Answer", "Dialogue", "DialogueConfig",
           "Incoming", "Sender", "moment_of", "slot_data"]

RECENT_FOR_MANAGERS = 5
PERIOD_SLOTS = 6  # at most this many slots offered for a part of a day ("в пятницу после обеда")
STORE_ATTEMPTS = 5  # storing an incoming message: 5 tries over about 1.5 s

@dataclass
class Answer:
    reply: str
    status: str
    offer_meeting: bool
    meeting_action: str = "none"  # none | move | cancel: what the lead wants done with the booked meeting
    proposed_time: str = ""  # the lead's own words for a meeting time ("в пятницу в 11"), when written


class DialogueLLM(Protocol):
    """What the engine needs from a language model (tests use a recording fake)."""

    async def answer(self, history: list[tuple[str, str]], context: str, lead_id: int) -> Answer: ...

    async def parse_time(self, text: str, now: datetime, calendar: Calendar, lead_id: int) -> timeparse.ParseResult:
        ...


class ClaudeDialogue:
    """The real DialogueLLM: the cached playbook, the conversation, one structured call.

    It remembers when each prefix was last sent (prompts.CachePlanner) so every breakpoint gets the
    TTL the bot's and the lead's pace calls for.
    """

    def __init__(self, client: Any, prompt: str) -> None:
        self.client = client
        self.prompt = prompt
        self.planner = prompts.CachePlanner()

    async def answer(self, history: list[tuple[str, str]], context: str, lead_id: int) -> Answer:
        model = self.client.model
        now = self.client.clock()
        system_key, lead_key = prompts.prompt_key(model, self.prompt), ("lead", lead_id)
        system_ttl, history_ttl = prompts.ordered(self.planner.plan(system_key, now, unknown="1h"),
                                                  self.planner.plan(lead_key, now, unknown="5m"))
        messages = prompts.conversation_messages(history, context, history_ttl)
        result = await self.client.complete(
            purpose="dialogue",
            system=prompts.system_blocks(self.prompt, system_ttl),
            messages=messages,
            schema=prompts.DIALOGUE_SCHEMA,
            check=prompts.reply_problem,
            answer_tokens=prompts.DIALOGUE_ANSWER_TOKENS,
            lead_id=lead_id,
        )
        self.planner.used(system_key, now, system_ttl)
        self.planner.used(lead_key, now, history_ttl if prompts.has_history_breakpoint(messages) else None)
        data = result.data
        return Answer(reply=data["reply"], status=data["status"], offer_meeting=data["offer_meeting"],
                      meeting_action=data["meeting_action"], proposed_time=data["proposed_time"])

    async def parse_time(self, text: str, now: datetime, calendar: Calendar, lead_id: int) -> timeparse.ParseResult:
        return await timeparse.parse(text, now, calendar.tz, self.client, lead_id)


@dataclass
class Sender:
    telegram_id: int | None = None
    access_hash: int | None = None
    username: str | None = None
    first_name: str | None = None
    lead_id: int | None = None  # a terminal lead, made by `salesbot chat`


@dataclass
class Incoming:
    sender: Sender
    text: str = ""
    button: str | None = None  # callback data of a pressed button
    media: str | None = None  # sticker, voice, photo, video, document, or another kind
    private: bool = True
    telegram_message_id: int | None = None  # a message: Telegram's id of it (replays are ignored)
    button_message_id: int | None = None  # a button: Telegram's id of the message that carried it


@dataclass
class DialogueConfig:
    calendar: Calendar
    manager_ids: tuple[int, ...] = ()
    max_chars: int = 2000
    history_turns: int = 30


@dataclass
class _LeadSlot:
    """Per-lead concurrency: one handler at a time, and how far the lead's texts are answered."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    answered_upto: int = 0
    told_to_wait: bool = False


COMMANDS = ("/start", "/stop", "/cancel")


def command_of(text: str) -> str | None:
    """`/start`, `/stop` or `/cancel` (also as `/start@salesbot` or with a payload), else None."""
    word = text.split(maxsplit=1)[0].split("@")[0].lower() if text.startswith("/") else ""
    return word if word in COMMANDS else None


@dataclass(frozen=True)
class _Stored:
    id: int
    text: str


def _said(text: str, words: set[str]) -> bool:
    """The text is one of `words`, give or take case, ё, spaces and end punctuation."""
    return " ".join(text.lower().replace("ё", "е").strip(" .!?)").split()) in {w.replace("ё", "е") for w in words}


# The lead message a handler is answering: the first thing it says marks it (and the messages before
# it) answered in the same transaction that queues the reply, so a crash can neither lose the
# answer nor send it twice. A context variable, because each handler runs in its own task.
_ANSWERING: contextvars.ContextVar[int | None] = contextvars.ContextVar("answering", default=None)


class Dialogue:
    def __init__(self, llm: DialogueLLM, transport: Transport, config: DialogueConfig,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), outbox: Outbox | None = None) -> None:
        self.llm = llm
        self.config = config
        self.calendar = config.calendar
        self.now = now
        self.outbox = outbox or Outbox(transport, managers=config.manager_ids, now=now)
        self.accepting = True  # False while shutting down: messages are stored, answered after the restart
        self._leads: dict[int, _LeadSlot] = {}
        self._notes: set[asyncio.Task] = set()  # "one moment" notes in flight (a task needs a reference)

    # --- entry points --------------------------------------------------------------------------

    def press(self, incoming: Incoming) -> str:
        """Check a button press before acting on it: `new`, `again` (the same choice pressed twice,
        nothing to do) or `stale` (an old keyboard: nothing changes). Sync, so a Telegram handler can
        answer the callback at once with what to show."""
        lead = self._known_lead(incoming.sender)
        if lead is None:
            return "stale"
        return delivery.press(lead.id, incoming.button_message_id, incoming.button or "")

    async def handle(self, incoming: Incoming) -> None:
        if not incoming.private:
            return  # group chats: not a conversation with a lead
        text = (incoming.text or "").strip()
        kind = self._kind(incoming, text)
        stored = await self._store_incoming(incoming, text, kind)
        if stored is None:
            return
        lead, message = stored
        if not self.accepting:
            return  # stored (and unanswered): the next start answers it
        await self._handle(lead, message, kind, incoming, text)

    async def resume(self, lead_id: int) -> None:
        """Answer a lead's newest stored message that was never answered (a restart in the middle)."""
        lead = leads.by_id(lead_id)
        pending = leads.last_unanswered(lead_id)
        if lead is None or pending is None:
            return
        message = _Stored(*pending)
        await self._handle(lead, message, "text", Incoming(Sender(lead_id=lead_id), text=message.text), message.text)

    async def _handle(self, lead: LeadState, message: _Stored, kind: str, incoming: Incoming, text: str) -> None:
        slot = self._leads.setdefault(lead.id, _LeadSlot())
        if kind == "text" and slot.lock.locked() and lead.state is None and not slot.told_to_wait:
            # A flood while Claude is busy with this lead: one short note, and the messages are
            # answered together by the next call, not one call each.
            slot.told_to_wait = True
            note = asyncio.get_running_loop().create_task(self._say(lead, texts.ONE_MOMENT))
            self._notes.add(note)
            note.add_done_callback(self._notes.discard)
        slot.users += 1
        try:
            async with slot.lock:
                _ANSWERING.set(message.id)
                await self._dispatch(lead.id, message, kind, incoming, text, slot)
        except Exception:
            # A bug or a broken database must not leave the lead without an answer (or kill the
            # bot): the message is stored and stays unanswered; the lead gets the polite fallback.
            log.exception("could not handle a message from lead %s", lead.id)
            _ANSWERING.set(None)
            with contextlib.suppress(Exception):
                await self._say(lead, texts.FALLBACK)
        finally:
            slot.users -= 1
            if slot.users == 0:
                self._leads.pop(lead.id, None)

    async def _store_incoming(self, incoming: Incoming, text: str, kind: str) -> tuple[LeadState, _Stored] | None:
        """The lead and the stored message, or None for a replay. A database that is busy (locked by
        another process, past serve's short busy timeout) is retried without blocking the event loop;
        one that stays broken still gets the lead a polite answer, and the failure is logged loudly."""
        for attempt in range(STORE_ATTEMPTS):
            try:
                lead = self._lead_for(incoming.sender)
                message = self._record(lead, incoming, text, kind)
            except StoreError as exc:
                failure = exc
                if attempt + 1 < STORE_ATTEMPTS:
                    await self.outbox.sleep(0.1 * 2**attempt)
                continue
            if message is None:
                log.info("lead %s: Telegram message %s was stored before; ignored", lead.id,
                         incoming.telegram_message_id)
                return None
            return lead, message
        log.error("A MESSAGE WAS NOT STORED (Telegram user %s): %s. The lead got the polite fallback; "
                  "ask them to repeat it", incoming.sender.telegram_id or incoming.sender.lead_id, failure)
        await self.outbox.send_unrecorded(incoming.sender, texts.FALLBACK)
        return None

    @staticmethod
    def _kind(incoming: Incoming, text: str) -> str:
        if incoming.button is not None:
            return "button"
        if incoming.media is not None and not text:
            return "media"
        return "command" if command_of(text) else "text"

    async def _dispatch(self, lead_id: int, message: _Stored, kind: str, incoming: Incoming, text: str,
                        slot: _LeadSlot) -> None:
        lead = leads.by_id(lead_id)  # fresh: an earlier handler may have changed the state
        command = command_of(text)
        if kind == "media":
            await self._say(lead, texts.PLEASE_TEXT)
        elif command == "/start":
            leads.opt_in(lead.id)
            await self._say(lead, texts.greeting(lead.first_name))
        elif command == "/stop":
            leads.opt_out(lead.id, "stop")
            log.info("lead %s opted out of reminders", lead.id)
            await self._say(lead, texts.STOPPED)
        elif command == "/cancel" and lead.state is None:
            await self._say(lead, texts.NOTHING_TO_CANCEL)
        elif command == "/cancel" or (kind == "text" and lead.state and lead.state != STATE_CONFIRM_CANCEL
                                      and _said(text, texts.CANCEL_WORDS)):
            leads.set_state(lead.id, None)
            await self._say(lead, texts.CANCELLED)
        elif kind == "button":
            await self._on_button(lead, incoming.button or "")
        elif lead.state == STATE_CONFIRM_CANCEL and _said(text, texts.CANCEL_YES_WORDS | texts.CANCEL_NO_WORDS):
            await self._on_cancel_answer(lead, _said(text, texts.CANCEL_YES_WORDS))
        elif lead.state == STATE_CONFIRM_CANCEL:
            leads.set_state(lead.id, None)  # not an answer to the question: back to the conversation
            await self._converse(lead, message, slot)
        elif lead.state == STATE_CONFIRM_TIME and lead.pending_time and _said(text, texts.CONFIRM_WORDS):
            await self._book(lead, lead.pending_time, "custom")
        elif lead.state == STATE_CONFIRM_TIME and _said(text, texts.DECLINE_WORDS):
            leads.set_state(lead.id, STATE_OWN_TIME)
            await self._offer_slots(lead, texts.ANOTHER_TIME)
        elif lead.state in (STATE_OWN_TIME, STATE_CONFIRM_TIME):
            await self._on_own_time(lead, text)
        else:
            await self._converse(lead, message, slot)

    # --- storage (synchronous, never across an await) ------------------------------------------

    @staticmethod
    def _known_lead(sender: Sender) -> LeadState | None:
        if sender.lead_id is not None:
            return leads.by_id(sender.lead_id)
        return leads.by_telegram_id(sender.telegram_id)

    @staticmethod
    def _lead_for(sender: Sender) -> LeadState:
        if sender.lead_id is not None:
            lead = leads.by_id(sender.lead_id)
            if lead is None:
                raise ValueError(f"no lead {sender.lead_id}")
            return lead
        return leads.upsert_telegram_lead(sender.telegram_id, sender.access_hash, sender.username, sender.first_name)

    def _record(self, lead: LeadState, incoming: Incoming, text: str, kind: str) -> _Stored | None:
        """Store the lead's message (before anything can fail); None when it was stored before."""
        if kind == "button":
            stored = self._button_label(incoming.button or "")
        elif kind == "media":
            stored = texts.MEDIA_LABELS.get(incoming.media or "", texts.MEDIA_OTHER)
        else:
            stored = text or texts.EMPTY_MESSAGE
        message_id = leads.record_lead_message(lead.id, stored, self.now(), unanswered=kind == "text",
                                               telegram_message_id=incoming.telegram_message_id)
        return _Stored(message_id, stored) if message_id is not None else None

    def _button_label(self, data: str) -> str:
        if action := keyboards.meeting_action(data):
            return keyboards.meeting_label(action[0])
        if data == "own":
            return texts.BUTTON_OWN_TIME
        if data == "re":
            return texts.BUTTON_OTHER
        moment = moment_of(data)
        if moment is not None and data.startswith("ok:"):
            return f"{texts.BUTTON_CONFIRM}: {texts.slot_label(moment.astimezone(self.calendar.tz), self._today())}"
        if moment is not None:
            return texts.slot_label(moment.astimezone(self.calendar.tz), self._today())
        return texts.unknown_button(data[:20])

    def _today(self):
        """Today in the business's zone: a lead reads «сегодня», «завтра» and no year for this one."""
        return self.now().astimezone(self.calendar.tz).date()

    def _booked_starts(self, exclude_lead: int | None = None) -> list[datetime]:
        return leads.booked_starts(self.now() - self.calendar.slot, exclude_lead)

    # --- saying things -------------------------------------------------------------------------

    async def _say(self, lead: LeadState, text: str, buttons: Keyboard | None = None,
                   status: str | None = None) -> None:
        """Queue what we say (marking what it answers, with the lead's new status) and send it now."""
        answering = _ANSWERING.get()
        with store.transaction():
            if answering is not None:
                leads.mark_answered(lead.id, answering, status)
                _ANSWERING.set(None)
            self.outbox.to_lead(lead.id, text, buttons)
        await self.outbox.deliver(("lead", lead.id))

    async def _tell_managers(self, text: str) -> None:
        self.outbox.to_managers(text)
        for manager in self.config.manager_ids:
            await self.outbox.deliver(("chat", manager))

    async def _offer_slots(self, lead: LeadState, text: str, status: str | None = None,
                           slots: list[datetime] | None = None) -> None:
        """`text` with slot buttons: `slots`, or the next free ones spread over the coming working days."""
        if slots is None:
            slots = free_slots(self.now(), self.calendar, self._booked_starts())
        if not slots:
            text = f"{text}\n\n{texts.NO_SLOTS}" if text != texts.CHOOSE_SLOT else texts.NO_SLOTS
        await self._say(lead, text, keyboards.slots(slots, self.calendar.tz, self._today()), status=status)

    def _when(self, moment: datetime) -> str:
        """A meeting's time as the lead reads it: «в четверг, 26 ноября, в 11:00 по московскому времени»."""
        return texts.meeting_time(moment.astimezone(self.calendar.tz), self._today())

    # --- the conversation ----------------------------------------------------------------------

    def _history(self, lead_id: int, upto: int) -> list[tuple[str, str]]:
        """The conversation up to message `upto`, as much of it as the window sends (positions
        counted from the lead's first message, so the start stays put and the prefix stays cached)."""
        total = leads.count_messages(lead_id, upto)
        keep = total - prompts.window_start(total, self.config.history_turns)
        history = []
        for role, text in leads.recent_messages(lead_id, upto, keep):
            if (role == "lead" and command_of(text)) or (role == "bot" and text == texts.ONE_MOMENT):
                continue  # commands and "one moment" notes are not conversation
            if len(text) > self.config.max_chars:
                text = text[: self.config.max_chars] + "…"
            history.append(("user" if role == "lead" else "assistant", text))
        return history

    def _context(self, lead: LeadState, meeting: MeetingState | None) -> str:
        now = self.now().astimezone(self.calendar.tz)
        # for Claude the absolute date and year (it also gets today's): no «завтра» to misread
        booked = timeparse.describe(meeting.starts_at.astimezone(self.calendar.tz)) if meeting else None
        return prompts.context_block(timeparse.describe(now), lead.first_name, lead.status, booked)

    async def _converse(self, lead: LeadState, message: _Stored, slot: _LeadSlot) -> None:
        if message.id <= slot.answered_upto:
            return  # answered together with the messages before it
        upto = leads.latest_lead_message_id(lead.id)
        slot.answered_upto = upto
        _ANSWERING.set(None)  # set again once Claude has answered
        history = self._history(lead.id, upto)
        if not history or history[-1][0] != "user":
            return
        meeting = leads.booked_meeting(lead.id, self.now())
        try:
            answer = await self.llm.answer(history, self._context(lead, meeting), lead.id)
        except LLMUnavailable as exc:
            log.warning("no answer for lead %s: %s", lead.id, exc)
            slot.told_to_wait = False
            await self._say(lead, texts.FALLBACK)  # the lead's messages stay marked unanswered
            await self._tell_managers(texts.manager_unanswered(lead.first_name, lead.id, lead.username, message.text))
            return
        slot.told_to_wait = False
        has_meeting = meeting is not None  # only this lead's handlers book, and they wait for us
        status = "hot" if has_meeting else answer.status
        _ANSWERING.set(upto)
        reply = answer.reply
        if meeting is not None and answer.meeting_action == "cancel":
            await self._ask_cancel(lead, meeting, prefix=reply, status=status)
        elif answer.proposed_time.strip():
            # A time written in the conversation: the parser reads it and the lead confirms it; Claude's
            # reply goes first, but never books (the prompt says so; only the engine books).
            await self._on_own_time(lead, answer.proposed_time, prefix=reply, status=status)
        elif meeting is not None and answer.meeting_action == "move":
            await self._offer_slots(lead, f"{reply}\n\n{texts.CHOOSE_NEW_TIME}", status=status)
        elif answer.offer_meeting and not has_meeting:
            await self._offer_slots(lead, reply, status=status)
        else:
            await self._say(lead, reply, status=status)

    # --- meetings ------------------------------------------------------------------------------

    async def _on_button(self, lead: LeadState, data: str) -> None:
        if action := keyboards.meeting_action(data):
            await self._on_meeting_button(lead, *action)
        elif data == keyboards.OWN:
            leads.set_state(lead.id, STATE_OWN_TIME)
            await self._say(lead, texts.ASK_OWN_TIME)
        elif data == keyboards.OTHER:
            leads.set_state(lead.id, None)
            await self._offer_slots(lead, texts.CHOOSE_SLOT)
        elif data.startswith("s:") and (moment := moment_of(data)):
            await self._book(lead, moment, "slot")
        elif data.startswith("ok:") and (moment := moment_of(data)):
            if lead.state != STATE_CONFIRM_TIME or lead.pending_time != moment:
                await self._offer_slots(lead, f"{texts.STALE_BUTTON} {texts.CHOOSE_SLOT}")
            else:
                await self._book(lead, moment, "custom")
        else:
            log.info("unknown button %r from lead %s", data, lead.id)
            await self._offer_slots(lead, f"{texts.STALE_BUTTON} {texts.CHOOSE_SLOT}")

    async def _on_meeting_button(self, lead: LeadState, action: str, meeting_id: int) -> None:
        """«Подтверждаю», «Перенести», «Отменить» (and the answer to «Отменить встречу?») on a meeting."""
        meeting = leads.meeting_by_id(meeting_id)
        if meeting is None or meeting.lead_id != lead.id or meeting.status != "booked" \
                or meeting.starts_at <= self.now():
            await self._meeting_gone(lead)
        elif action == keyboards.CONFIRM:
            leads.confirm_meeting(meeting.id, self.now())
            await self._say(lead, texts.meeting_confirmed(self._when(meeting.starts_at)))
            if meeting.confirmed_at is None:
                await self._tell_managers(texts.manager_meeting_confirmed(lead.first_name, lead.id, lead.username,
                                                                          self._when(meeting.starts_at)))
        elif action == keyboards.MOVE:
            leads.set_state(lead.id, None)
            await self._offer_slots(lead, texts.CHOOSE_NEW_TIME)
        elif action == keyboards.CANCEL:
            await self._ask_cancel(lead, meeting)
        elif action == keyboards.CANCEL_YES:
            await self._cancel(lead, meeting)
        else:
            leads.set_state(lead.id, None)
            await self._say(lead, texts.meeting_kept(self._when(meeting.starts_at)), keyboards.meeting(meeting.id))

    async def _meeting_gone(self, lead: LeadState) -> None:
        """A button of a meeting that was moved, cancelled or is over: the current one, or slots."""
        current = leads.booked_meeting(lead.id, self.now())
        if current is None:
            await self._offer_slots(lead, f"{texts.MEETING_GONE} {texts.CHOOSE_SLOT}")
        else:
            await self._say(lead, f"{texts.MEETING_GONE} {texts.meeting_kept(self._when(current.starts_at))}",
                            keyboards.meeting(current.id))

    async def _ask_cancel(self, lead: LeadState, meeting: MeetingState, prefix: str | None = None,
                          status: str | None = None) -> None:
        """Cancelling asks once: «Отменить встречу — …?» with «Да, отменить» / «Нет, оставить»."""
        leads.set_state(lead.id, STATE_CONFIRM_CANCEL, pending_time=meeting.starts_at)
        await self._say(lead, _joined(prefix, texts.ask_cancel(self._when(meeting.starts_at))),
                        keyboards.cancel_question(meeting.id), status=status)

    async def _on_cancel_answer(self, lead: LeadState, yes: bool) -> None:
        meeting = leads.booked_meeting(lead.id, self.now())
        if meeting is None or meeting.starts_at != lead.pending_time:
            leads.set_state(lead.id, None)
            await self._meeting_gone(lead)
        elif yes:
            await self._cancel(lead, meeting)
        else:
            leads.set_state(lead.id, None)
            await self._say(lead, texts.meeting_kept(self._when(meeting.starts_at)), keyboards.meeting(meeting.id))

    async def _cancel(self, lead: LeadState, meeting: MeetingState) -> None:
        if not leads.cancel_meeting(meeting.id, "lead", self.now()):
            await self._meeting_gone(lead)
            return
        when = self._when(meeting.starts_at)
        log.info("lead %s cancelled meeting %s (%s)", lead.id, meeting.id, when)
        await self._say(lead, texts.meeting_cancelled(when))
        await self._tell_managers(texts.manager_meeting_cancelled(lead.first_name, lead.id, lead.username, when))

    async def _offer_instead(self, lead: LeadState, problem: str, wanted: datetime, prefix: str | None = None,
                             status: str | None = None) -> None:
        """Why `wanted` cannot be booked, and free slots instead: from both sides of it when it is taken
        or outside hours; the next ones from now when it is past, too soon or too far ahead."""
        booked = self._booked_starts()
        if problem in ("taken", "outside_hours", "ends_late"):
            slots = slots_around(wanted, self.now(), self.calendar, booked)
        else:
            slots = free_slots(self.now(), self.calendar, booked)
        await self._offer_slots(lead, _joined(prefix, f"{self._problem_text(problem)} {texts.NEAREST_SLOTS}"),
                                status=status, slots=slots)

    def _problem_text(self, problem: str) -> str:
        cal = self.calendar
        if problem == "outside_hours":
            return texts.outside_hours(texts.work_days_text(cal.work_days), clock_label(cal.opens),
                                       clock_label(cal.closes))
        if problem == "ends_late":
            return texts.ends_late(clock_label(cal.closes))
        if problem == "too_far":
            return texts.too_far(cal.horizon.days)
        return {"past": texts.TIME_PASSED, "too_soon": texts.TOO_SOON, "taken": texts.TAKEN}[problem]

    async def _on_own_time(self, lead: LeadState, text: str, prefix: str | None = None,
                           status: str | None = None) -> None:
        """The lead's words for a time: in the own-time step, or (with Claude's reply as `prefix`)
        written anywhere in the conversation. Understood and bookable → «Правильно понял: …?»."""
        result = await self.llm.parse_time(text, self.now(), self.calendar, lead.id)
        if result.kind == "need_time" and result.period is not None:
            await self._offer_period(lead, result.day, result.period, prefix, status)
            return
        if result.kind == "need_time" and result.day is not None:
            # "завтра": remember the day, so a following "в 15" means tomorrow at 15:00
            leads.set_state(lead.id, STATE_OWN_TIME, pending_day=result.day)
            await self._say(lead, _joined(prefix, texts.need_time_for(texts.day_phrase(result.day, self._today()))),
                            status=status)
            return
        if result.ok and result.time_only and lead.state == STATE_OWN_TIME and lead.pending_day:
            result.when = datetime.combine(lead.pending_day, result.when.time(), tzinfo=self.calendar.tz)
        if result.kind == "past":
            await self._offer_slots(lead, _joined(prefix, f"{texts.TIME_PASSED} {texts.NEAREST_SLOTS}"),
                                    status=status)
            return
        if not result.ok:
            # In the conversation a phrase the parser cannot place is just conversation: Claude's reply
            # alone. In the own-time step the lead is asked again.
            await self._say(lead, prefix if prefix is not None else
                            texts.NOT_UNDERSTOOD if result.kind != "need_time" else texts.NEED_TIME, status=status)
            return
        problem = check(result.when, self.now(), self.calendar, self._booked_starts(exclude_lead=lead.id))
        if problem:
            leads.set_state(lead.id, STATE_OWN_TIME)
            await self._offer_instead(lead, problem, result.when, prefix, status)
            return
        leads.set_state(lead.id, STATE_CONFIRM_TIME, pending_time=result.when)
        await self._say(lead, _joined(prefix, texts.confirm_own_time(self._when(result.when))),
                        keyboards.confirm_time(result.when), status=status)

    async def _offer_period(self, lead: LeadState, day: date | None, period: tuple[time, time],
                            prefix: str | None, status: str | None) -> None:
        """"в пятницу после обеда", "вечером": the free slots in that part of that day (today while it
        lasts, when no day was named), or, when there are none, the nearest on both sides of it."""
        cal, now = self.calendar, self.now()
        if day is None:
            today = now.astimezone(cal.tz).date()
            day = today if at_clock(today, period[1], cal.tz) > now else today + timedelta(days=1)
        start, end = max(period[0], cal.opens), min(period[1], cal.closes)
        if start >= end:  # the part of the day is outside working hours altogether
            start, end = period
        booked = self._booked_starts()
        slots = slots_in(day, (start, end), now, cal, booked)[:PERIOD_SLOTS]
        leads.set_state(lead.id, STATE_OWN_TIME, pending_day=day)  # "в 15" next means that day at 15:00
        labels = (texts.day_phrase(day, self._today()), clock_label(start), clock_label(end))
        if slots:
            await self._offer_slots(lead, _joined(prefix, texts.period_slots(*labels)), status=status, slots=slots)
        else:
            around = slots_around(at_clock(day, start, cal.tz), now, cal, booked)
            await self._offer_slots(lead, _joined(prefix, texts.period_full(*labels)), status=status, slots=around)

    async def _book(self, lead: LeadState, start: datetime, source: str) -> None:
        problem, previous = leads.book(lead.id, start, source, self.now(), self.calendar)
        if problem:
            await self._offer_instead(lead, problem, start)
            return
        when = self._when(start)
        meeting = leads.booked_meeting(lead.id, self.now())
        buttons = keyboards.meeting(meeting.id) if meeting is not None else None
        log.info("lead %s booked a meeting: %s (%s)", lead.id, when, source)
        await self._say(lead, texts.rebooked(when) if previous else texts.booked(when), buttons)
        if previous:
            await self._tell_managers(texts.manager_meeting_moved(lead.first_name, lead.id, lead.username,
                                                                  self._when(previous), when))
            return
        last = leads.recent_lead_texts(lead.id, RECENT_FOR_MANAGERS)
        await self._tell_managers(texts.manager_booking(lead.first_name, lead.id, lead.username, when, source, last))


def _joined(prefix: str | None, text: str) -> str:
    """Claude's reply, then what the engine says about the meeting, as one message."""
    return f"{prefix}\n\n{text}" if prefix else text
