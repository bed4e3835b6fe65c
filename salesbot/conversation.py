"""The dialogue engine, transport-agnostic: a lead's message in, replies and buttons out.

Every message is stored before anything can fail. Text goes to Claude in exactly one call that
returns the reply, the lead's status and whether to offer a meeting; the meeting is booked from
buttons or from the lead's own words (timeparse), with the state kept in the database so a restart
in the middle changes nothing. Messages of one lead are handled one at a time and in order;
different leads concurrently. Database work is synchronous and never spans an `await`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any, Protocol

from peewee import IntegrityError

from salesbot import prompts, store, texts, timeparse
from salesbot.errors import LLMUnavailable
from salesbot.slots import Calendar, check, free_slots
from salesbot.store import Lead, Meeting, Message, db, to_local, to_utc_naive
from salesbot.transport import Button, Keyboard, Peer, SendError, Transport

log = logging.getLogger(__name__)

STATE_OWN_TIME = "MEETING_CUSTOM_TIME"  # waiting for the lead to write a day and time
STATE_CONFIRM_TIME = "MEETING_CONFIRM_TIME"  # a time understood, waiting for the lead to confirm it
MEDIA_LABELS = {"sticker": "[стикер]", "voice": "[голосовое сообщение]", "photo": "[фото]", "video": "[видео]",
                "document": "[файл]"}
RECENT_FOR_MANAGERS = 5

@dataclass
class Answer:
    reply: str
    status: str
    offer_meeting: bool


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
        result = await self.client.structured(
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
        return Answer(reply=result.data["reply"], status=result.data["status"],
                      offer_meeting=result.data["offer_meeting"])

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


def slot_data(prefix: str, moment: datetime) -> str:
    return f"{prefix}:{int(moment.timestamp()) // 60}"


def moment_of(data: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(data.split(":", 1)[1]) * 60, UTC)
    except (IndexError, ValueError, OverflowError):
        return None


def load_prompt(settings) -> str:
    from salesbot.errors import ConfigError

    path = settings.prompt_file
    try:
        prompt = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"SALESBOT_PROMPT_FILE: cannot read {path}: {reason}") from None
    if not prompt:
        raise ConfigError(f"SALESBOT_PROMPT_FILE: {path} is empty")
    return prompt


class Dialogue:
    @classmethod
    def from_settings(cls, settings, transport: Transport, claude: Any) -> Dialogue:
        """The engine as `serve` and `chat` run it: the Claude client, the playbook, the calendar."""
        turns = settings.get("SALESBOT_HISTORY_TURNS")
        config = DialogueConfig(
            calendar=Calendar.from_settings(settings),
            manager_ids=settings.get("SALESBOT_MANAGER_IDS"),
            max_chars=settings.get("SALESBOT_MAX_MESSAGE_CHARS"),
            history_turns=turns,
        )
        return cls(ClaudeDialogue(claude, load_prompt(settings)), transport, config)

    def __init__(self, llm: DialogueLLM, transport: Transport, config: DialogueConfig,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.llm = llm
        self.transport = transport
        self.config = config
        self.calendar = config.calendar
        self.now = now
        self._leads: dict[int, _LeadSlot] = {}

    # --- entry point ---------------------------------------------------------------------------

    async def handle(self, incoming: Incoming) -> None:
        if not incoming.private:
            return  # group chats: not a conversation with a lead
        lead = self._lead_for(incoming.sender)
        text = (incoming.text or "").strip()
        kind = self._kind(incoming, text)
        message = self._record(lead, incoming, text, kind)
        slot = self._leads.setdefault(lead.id, _LeadSlot())
        if kind == "text" and slot.lock.locked() and lead.state is None and not slot.told_to_wait:
            # A flood while Claude is busy with this lead: one short note, and the messages are
            # answered together by the next call, not one call each.
            slot.told_to_wait = True
            asyncio.get_running_loop().create_task(self._say(lead, texts.ONE_MOMENT))
        slot.users += 1
        try:
            async with slot.lock:
                await self._dispatch(lead.id, message, kind, incoming, text, slot)
        except Exception:
            # A bug or a broken database must not leave the lead without an answer (or kill the
            # bot): the message is stored and stays unanswered; the lead gets the polite fallback.
            log.exception("could not handle a message from lead %s", lead.id)
            with contextlib.suppress(Exception):
                await self._say(lead, texts.FALLBACK)
        finally:
            slot.users -= 1
            if slot.users == 0:
                self._leads.pop(lead.id, None)

    @staticmethod
    def _kind(incoming: Incoming, text: str) -> str:
        if incoming.button is not None:
            return "button"
        if incoming.media is not None and not text:
            return "media"
        return "command" if command_of(text) else "text"

    async def _dispatch(self, lead_id: int, message: _Stored, kind: str, incoming: Incoming, text: str,
                        slot: _LeadSlot) -> None:
        lead = store.lead_by_id(lead_id)  # fresh: an earlier handler may have changed the state
        command = command_of(text)
        if kind == "media":
            await self._say(lead, texts.PLEASE_TEXT)
        elif command == "/start":
            Lead.update(opted_out=False, opted_out_reason=None).where(Lead.id == lead.id).execute()
            await self._say(lead, texts.greeting(lead.first_name))
        elif command == "/stop":
            Lead.update(opted_out=True, opted_out_reason="stop").where(Lead.id == lead.id).execute()
            log.info("lead %s opted out of reminders", lead.id)
            await self._say(lead, texts.STOPPED)
        elif command == "/cancel" or (kind == "text" and lead.state and _said(text, texts.CANCEL_WORDS)):
            self._set_state(lead.id, None)
            await self._say(lead, texts.CANCELLED)
        elif kind == "button":
            await self._on_button(lead, incoming.button or "")
        elif lead.state == STATE_CONFIRM_TIME and lead.pending_time and _said(text, texts.CONFIRM_WORDS):
            await self._book(lead, lead.pending_time.replace(tzinfo=UTC), "custom")
        elif lead.state in (STATE_OWN_TIME, STATE_CONFIRM_TIME):
            await self._on_own_time(lead, text)
        else:
            await self._converse(lead, message, slot)
            return
        store.mark_answered(lead.id, message.id)

    # --- storage (synchronous, never across an await) ------------------------------------------

    def _lead_for(self, sender: Sender) -> Lead:
        if sender.lead_id is not None:
            lead = store.lead_by_id(sender.lead_id)
            if lead is None:
                raise ValueError(f"no lead {sender.lead_id}")
            return lead
        lead = store.lead_by_telegram_id(sender.telegram_id)
        if lead is None:
            lead = Lead.create(telegram_id=sender.telegram_id, access_hash=sender.access_hash,
                               username=sender.username, first_name=sender.first_name, status="new")
            log.info("new lead %s (telegram id %s)", lead.id, sender.telegram_id)
            return lead
        changes = {field: value for field, value in (("access_hash", sender.access_hash),
                                                      ("username", sender.username),
                                                      ("first_name", sender.first_name))
                   if value is not None and getattr(lead, field) != value}
        if changes:
            Lead.update(**changes).where(Lead.id == lead.id).execute()
            for key, value in changes.items():
                setattr(lead, key, value)
        return lead

    def _record(self, lead: Lead, incoming: Incoming, text: str, kind: str) -> _Stored:
        """Store the lead's message (before anything can fail)."""
        if kind == "button":
            stored = self._button_label(incoming.button or "")
        elif kind == "media":
            stored = MEDIA_LABELS.get(incoming.media or "", "[вложение]")
        else:
            stored = text or "[пустое сообщение]"
        message_id = store.record_lead_message(lead.id, stored, to_utc_naive(self.now()), unanswered=kind == "text")
        return _Stored(message_id, stored)

    def _button_label(self, data: str) -> str:
        if data == "own":
            return texts.BUTTON_OWN_TIME
        if data == "re":
            return texts.BUTTON_OTHER
        moment = moment_of(data)
        if moment is not None and data.startswith("ok:"):
            return f"{texts.BUTTON_CONFIRM}: {texts.slot_label(moment.astimezone(self.calendar.tz))}"
        if moment is not None:
            return texts.slot_label(moment.astimezone(self.calendar.tz))
        return f"[кнопка {data[:20]}]"

    @staticmethod
    def _set_state(lead_id: int, state: str | None, pending: datetime | None = None) -> None:
        Lead.update(state=state, pending_time=pending).where(Lead.id == lead_id).execute()

    def _booked_starts(self, exclude_lead: int | None = None) -> list[datetime]:
        since = to_utc_naive(self.now() - self.calendar.slot)
        query = Meeting.select(Meeting.starts_at).where((Meeting.status == "booked") & (Meeting.starts_at >= since))
        if exclude_lead is not None:
            query = query.where(Meeting.lead != exclude_lead)
        return [start.replace(tzinfo=UTC) for (start,) in query.tuples()]

    # --- saying things -------------------------------------------------------------------------

    @staticmethod
    def _peer(lead: Lead) -> Peer:
        return Peer(user_id=lead.telegram_id, access_hash=lead.access_hash, lead_id=lead.id)

    async def _say(self, lead: Lead, text: str, buttons: Keyboard | None = None) -> None:
        store.record_bot_message(lead.id, text, to_utc_naive(self.now()))
        try:
            if buttons:
                await self.transport.send_buttons(self._peer(lead), text, buttons)
            else:
                await self.transport.send_text(self._peer(lead), text)
        except SendError as exc:
            log.warning("could not send to lead %s: %s", lead.id, exc.reason)

    async def _tell_managers(self, text: str) -> None:
        for manager in self.config.manager_ids:
            try:
                await self.transport.send_text(Peer(user_id=manager), text)
            except SendError as exc:
                log.warning("could not tell manager %s: %s", manager, exc.reason)

    def _slot_keyboard(self, slots: list[datetime]) -> Keyboard:
        rows = [[Button(texts.slot_label(s.astimezone(self.calendar.tz)), slot_data("s", s))] for s in slots]
        rows.append([Button(texts.BUTTON_OWN_TIME, "own")])
        return rows

    async def _offer_slots(self, lead: Lead, text: str, after: datetime | None = None) -> None:
        slots = free_slots(self.now(), self.calendar, self._booked_starts(), after=after)
        if not slots:
            text = f"{text}\n\n{texts.NO_SLOTS}" if text != texts.CHOOSE_SLOT else texts.NO_SLOTS
        await self._say(lead, text, self._slot_keyboard(slots))

    # --- the conversation ----------------------------------------------------------------------

    def _history(self, lead_id: int, upto: int) -> list[tuple[str, str]]:
        """The conversation up to message `upto`, as much of it as the window sends (positions
        counted from the lead's first message, so the start stays put and the prefix stays cached)."""
        total = store.count_messages(lead_id, upto)
        keep = total - prompts.window_start(total, self.config.history_turns)
        history = []
        for role, text in store.recent_messages(lead_id, upto, keep):
            if (role == "lead" and command_of(text)) or (role == "bot" and text == texts.ONE_MOMENT):
                continue  # commands and "one moment" notes are not conversation
            if len(text) > self.config.max_chars:
                text = text[: self.config.max_chars] + "…"
            history.append(("user" if role == "lead" else "assistant", text))
        return history

    def _context(self, lead: Lead, meeting: datetime | None) -> str:
        now = self.now().astimezone(self.calendar.tz)
        booked = timeparse.describe(to_local(meeting, now.tzinfo)) if meeting else None
        return prompts.context_block(timeparse.describe(now), lead.first_name, lead.status, booked)

    async def _converse(self, lead: Lead, message: _Stored, slot: _LeadSlot) -> None:
        if message.id <= slot.answered_upto:
            return  # answered together with the messages before it
        upto = store.latest_lead_message_id(lead.id)
        slot.answered_upto = upto
        history = self._history(lead.id, upto)
        if not history or history[-1][0] != "user":
            return
        meeting = store.next_meeting_start(lead.id, to_utc_naive(self.now()))
        try:
            answer = await self.llm.answer(history, self._context(lead, meeting), lead.id)
        except LLMUnavailable as exc:
            log.warning("no answer for lead %s: %s", lead.id, exc)
            slot.told_to_wait = False
            await self._say(lead, texts.FALLBACK)
            name = lead.first_name or f"лид {lead.id}"
            await self._tell_managers(texts.manager_unanswered(name, lead.username, message.text))
            return  # the lead's messages stay marked unanswered
        slot.told_to_wait = False
        has_meeting = meeting is not None  # only this lead's handlers book, and they wait for us
        store.mark_answered(lead.id, upto, status="hot" if has_meeting else answer.status)
        if answer.offer_meeting and not has_meeting:
            await self._offer_slots(lead, answer.reply)
        else:
            await self._say(lead, answer.reply)

    # --- meetings ------------------------------------------------------------------------------

    async def _on_button(self, lead: Lead, data: str) -> None:
        if data == "own":
            self._set_state(lead.id, STATE_OWN_TIME)
            await self._say(lead, texts.ASK_OWN_TIME)
        elif data == "re":
            self._set_state(lead.id, None)
            await self._offer_slots(lead, texts.CHOOSE_SLOT)
        elif data.startswith("s:") and (moment := moment_of(data)):
            await self._book(lead, moment, "slot")
        elif data.startswith("ok:") and (moment := moment_of(data)):
            pending = lead.pending_time.replace(tzinfo=UTC) if lead.pending_time else None
            if lead.state != STATE_CONFIRM_TIME or pending != moment:
                await self._offer_slots(lead, f"{texts.STALE_BUTTON} {texts.CHOOSE_SLOT}")
            else:
                await self._book(lead, moment, "custom")
        else:
            log.info("unknown button %r from lead %s", data, lead.id)
            await self._offer_slots(lead, f"{texts.STALE_BUTTON} {texts.CHOOSE_SLOT}")

    async def _offer_instead(self, lead: Lead, problem: str, wanted: datetime) -> None:
        """Why `wanted` cannot be booked, and the nearest free slots (after it, when it is in the future
        but taken or outside hours; from now, when it is past or too soon)."""
        after = wanted if problem in ("taken", "outside_hours") else None
        await self._offer_slots(lead, f"{self._problem_text(problem)} {texts.NEAREST_SLOTS}", after=after)

    def _problem_text(self, problem: str) -> str:
        cal = self.calendar
        if problem == "outside_hours":
            return texts.outside_hours(texts.work_days_text(cal.work_days), f"{cal.opens:%H:%M}",
                                       "24:00" if cal.closes.hour == 23 and cal.closes.minute == 59
                                       else f"{cal.closes:%H:%M}")
        return {"past": texts.TIME_PASSED, "too_soon": texts.TOO_SOON, "taken": texts.TAKEN}[problem]

    async def _on_own_time(self, lead: Lead, text: str) -> None:
        result = await self.llm.parse_time(text, self.now(), self.calendar, lead.id)
        if result.kind == "need_time" and result.day is not None:
            # "завтра": remember the day, so a following "в 15" means tomorrow at 15:00
            noon = datetime.combine(result.day, time(12), tzinfo=self.calendar.tz)
            self._set_state(lead.id, STATE_OWN_TIME, to_utc_naive(noon))
            await self._say(lead, texts.need_time_for(timeparse.describe_day(result.day)))
            return
        if result.kind == "need_time":
            await self._say(lead, texts.NEED_TIME)
            return
        if result.ok and result.time_only and lead.state == STATE_OWN_TIME and lead.pending_time:
            day = to_local(lead.pending_time, self.calendar.tz).date()
            result.when = datetime.combine(day, result.when.time(), tzinfo=self.calendar.tz)
        if result.kind == "past":
            await self._offer_slots(lead, f"{texts.TIME_PASSED} {texts.NEAREST_SLOTS}")
            return
        if not result.ok:
            await self._say(lead, texts.NOT_UNDERSTOOD)
            return
        problem = check(result.when, self.now(), self.calendar, self._booked_starts(exclude_lead=lead.id))
        if problem:
            await self._offer_instead(lead, problem, result.when)
            self._set_state(lead.id, STATE_OWN_TIME)
            return
        self._set_state(lead.id, STATE_CONFIRM_TIME, to_utc_naive(result.when))
        confirm = [[Button(texts.BUTTON_CONFIRM, slot_data("ok", result.when))],
                   [Button(texts.BUTTON_OTHER, "re")]]
        await self._say(lead, texts.confirm_own_time(timeparse.describe(result.when)), confirm)

    def _reserve(self, lead_id: int, start: datetime, source: str) -> tuple[str | None, bool]:
        """Book atomically (BEGIN IMMEDIATE): returns (problem, rebooked). A lead's other upcoming
        meeting is moved, not doubled; the unique index decides a race between two leads."""
        start_utc = to_utc_naive(start)
        with db.atomic():
            own = list(Meeting.select().where((Meeting.lead == lead_id) & (Meeting.status == "booked")
                                              & (Meeting.starts_at >= to_utc_naive(self.now()))))
            if any(m.starts_at == start_utc for m in own):
                return None, False  # pressed twice: already booked
            problem = check(start, self.now(), self.calendar, self._booked_starts(exclude_lead=lead_id))
            if problem:
                return problem, False
            try:
                with db.atomic():  # a savepoint: a lost race undoes only the insert
                    Meeting.create(lead=lead_id, starts_at=start_utc, status="booked", source=source,
                                   created_at=to_utc_naive(self.now()))
            except IntegrityError:
                return "taken", False
            if own:
                Meeting.update(status="cancelled").where(Meeting.id.in_([m.id for m in own])).execute()
            Lead.update(status="hot", state=None, pending_time=None).where(Lead.id == lead_id).execute()
        return None, bool(own)

    async def _book(self, lead: Lead, start: datetime, source: str) -> None:
        problem, rebooked = self._reserve(lead.id, start, source)
        if problem:
            await self._offer_instead(lead, problem, start)
            return
        when = timeparse.describe(start.astimezone(self.calendar.tz))
        log.info("lead %s booked a meeting: %s (%s)", lead.id, when, source)
        await self._say(lead, texts.rebooked(when) if rebooked else texts.booked(when))
        recent = (Message.select(Message.text).where((Message.lead == lead.id) & (Message.role == "lead"))
                  .order_by(Message.id.desc()).limit(RECENT_FOR_MANAGERS).tuples())
        last = [text for (text,) in reversed(list(recent))]
        await self._tell_managers(texts.manager_booking(lead.first_name or f"лид {lead.id}", lead.username, when,
                                                        source, last))
