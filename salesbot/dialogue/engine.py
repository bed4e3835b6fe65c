"""The dialogue engine, transport-agnostic: a lead's message in, replies and buttons out.

Every message is stored before anything can fail (intake.py). Then one handler is chosen from a
table of (the lead's dialogue state, the kind of input), the way python-telegram-bot's
ConversationHandler lists its states: the rows for any state first (media, commands, buttons), then
the state's own rows, first match wins. Text with no step pending goes to Claude in exactly one call
that returns the reply, the lead's status, whether to offer a meeting, what the lead wants done with a
booked one (move, cancel) and the time phrase the lead proposed; only the engine books (booking.py),
from buttons or from the lead's own words, with the state kept in the database so a restart in the
middle changes nothing. Messages of one lead are handled one at a time and in order; different leads
concurrently. Database work is synchronous and never spans an `await`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from salesbot import texts
from salesbot.claude.dialogue import Answer
from salesbot.delivery import Outbox
from salesbot.dialogue import conversation
from salesbot.dialogue.booking import UNPLACED, Booking
from salesbot.dialogue.intake import Intake
from salesbot.dialogue.retry import Retry
from salesbot.dialogue.turn import (
    BUTTON,
    COMMAND,
    MEDIA,
    TEXT,
    DialogueConfig,
    DialogueLLM,
    Incoming,
    LeadLock,
    Sender,
    Stored,
    Turn,
    said,
)
from salesbot.dialogue.voice import Voice
from salesbot.errors import BudgetExhausted, LLMUnavailable
from salesbot.inbox import Inbox, staff_side
from salesbot.store import leads, outbox
from salesbot.store.leads import STATE_CONFIRM_CANCEL, STATE_CONFIRM_TIME, STATE_CUSTOM_TIME, LeadState, MeetingState
from salesbot.transport import Transport

log = logging.getLogger(__name__)

ANY_STATE = "*"
SUMMARY_CHARS = 2000  # the summary kept of a lead (the model is asked for a short one)

Handler = Callable[[Turn], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    """One row of the dispatch table: input of `kind` (that passes `test`, when given) goes to `handler`."""

    kind: str
    handler: Handler
    test: Callable[[Turn], bool] | None = None

    def matches(self, turn: Turn) -> bool:
        return turn.kind == self.kind and (self.test is None or self.test(turn))


def command(name: str) -> Callable[[Turn], bool]:
    return lambda turn: turn.command == name


def words(*sets: set[str]) -> Callable[[Turn], bool]:
    every = set().union(*sets)
    return lambda turn: said(turn.text, every)


class Dialogue:
    def __init__(self, llm: DialogueLLM, transport: Transport, config: DialogueConfig,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), outbox: Outbox | None = None,
                 inbox: Inbox | None = None) -> None:
        self.llm = llm
        self.config = config
        self.calendar = config.calendar
        self.now = now
        self.outbox = outbox or Outbox(transport, managers=config.manager_ids, now=now)
        self.voice = Voice(self.outbox, self.calendar, config.manager_ids, now)
        self.booking = Booking(llm, self.voice, self.calendar, now)
        self.intake = Intake(self.calendar, now, lambda seconds: self.outbox.sleep(seconds))
        self.accepting = True  # False while shutting down: messages are stored, answered after the restart
        self.inbox, self.desk = staff_side(inbox, self.outbox, self.calendar, config.manager_ids, now, self.resume)
        self.routes = self._routes()
        self._leads: dict[int, LeadLock] = {}
        self._notes: set[asyncio.Task] = set()  # "one moment" notes in flight (a task needs a reference)
        self.retry = Retry(self.resume, self.voice, lambda seconds: self.outbox.sleep(seconds))  # Claude was down

    def _routes(self) -> dict[str | None, list[Route]]:
        """The dispatch table: state → its rows; ANY_STATE's rows are tried first in every state."""
        b = self.booking
        return {
            ANY_STATE: [
                Route(MEDIA, self._please_text),
                Route(COMMAND, self._start, command("/start")),
                Route(COMMAND, self._stop, command("/stop")),
                Route(COMMAND, self._cancel_command, command("/cancel")),
                Route(BUTTON, b.on_button),
            ],
            None: [
                Route(TEXT, self._converse),
            ],
            STATE_CUSTOM_TIME: [
                Route(TEXT, self._leave_step, words(texts.CANCEL_WORDS)),
                Route(TEXT, self._in_step),
            ],
            STATE_CONFIRM_TIME: [
                Route(TEXT, self._leave_step, words(texts.CANCEL_WORDS)),
                Route(TEXT, b.confirm_own_time, lambda t: t.lead.pending_time is not None
                      and said(t.text, texts.CONFIRM_WORDS)),
                Route(TEXT, b.decline_own_time, words(texts.DECLINE_WORDS)),
                Route(TEXT, self._in_step),
            ],
            STATE_CONFIRM_CANCEL: [
                Route(TEXT, lambda t: b.answer_cancel(t, said(t.text, texts.CANCEL_YES_WORDS)),
                      words(texts.CANCEL_YES_WORDS, texts.CANCEL_NO_WORDS)),
                Route(TEXT, self._back_to_conversation),  # not an answer to the question
            ],
        }

    def route(self, turn: Turn) -> Route | None:
        rows = self.routes[ANY_STATE] + self.routes.get(turn.lead.state, self.routes[None])
        return next((row for row in rows if row.matches(turn)), None)

    # --- entry points --------------------------------------------------------------------------

    def press(self, incoming: Incoming) -> str:
        """Check a button press before acting on it: `new`, `again` (the same choice pressed twice,
        nothing to do) or `stale` (an old keyboard: nothing changes). Sync, so a Telegram handler can
        answer the callback at once with what to show."""
        lead = self.intake.known_lead(incoming.sender)
        if lead is None:
            return "stale"
        return outbox.press(lead.id, incoming.button_message_id, incoming.button or "")

    async def handle(self, incoming: Incoming) -> None:
        """Store the message and answer it; returns once it is answered (the terminal chat, tests)."""
        await self.accept(incoming)

    def accept(self, incoming: Incoming) -> asyncio.Future:
        """Store the message now (or keep it until the database takes it) and answer it in a task of
        its own (intake.accept); a future done once it is answered. Group chats are no conversation (the
        staff group: telegram.py → inbox); a lead a person has is only mirrored to their topic; while
        stopping, a stored message is left for the next start."""
        return self.intake.accept(incoming, lambda lead, message: None if self.inbox.holds(lead, message, incoming)
                                  or not self.accepting else self._handle(lead, message, incoming))

    @property
    def answering(self) -> set[asyncio.Task]:
        return self.intake.answering

    @property
    def holding(self) -> int:
        """Messages received but not stored yet: serve's position in Telegram's updates must not pass them."""
        return self.intake.holding

    async def resume(self, lead_id: int) -> None:
        """Answer a lead's newest stored message that was never answered (a restart in the middle, or
        Claude back after an outage): quietly, with no «Минутку» beside a message handled meanwhile."""
        lead = leads.by_id(lead_id)
        pending = leads.last_unanswered(lead_id)
        if lead is None or pending is None:
            return
        message = Stored(*pending)
        await self._handle(lead, message, Incoming(Sender(lead_id=lead_id), text=message.text), quiet=True)

    async def close(self) -> None:
        """Stop the retries of leads Claude could not answer and the writers of what the database
        refused: the next start resumes the unanswered, and Telegram sends the unstored again."""
        await self.retry.close()
        await self.intake.close()
        await self.voice.close()

    async def _handle(self, lead: LeadState, message: Stored, incoming: Incoming, quiet: bool = False) -> None:
        lock = self._leads.setdefault(lead.id, LeadLock())
        if incoming.kind == TEXT and lock.thinking and not quiet and not lock.told_to_wait:
            # A flood while Claude is busy with this lead: one short note, and the messages are
            # answered together by the next call, not one call each. Not while a quick step holds
            # the lead (/start's greeting), and not for a message of a restart or a retry.
            lock.told_to_wait = True
            note = asyncio.get_running_loop().create_task(self.voice.note(lead.id, texts.ONE_MOMENT))
            self._notes.add(note)
            note.add_done_callback(self._notes.discard)
        lock.users += 1
        try:
            async with lock.lock:
                fresh = leads.by_id(lead.id)  # an earlier handler may have changed the state
                turn = Turn(fresh, message, incoming.kind, incoming, (incoming.text or "").strip(), message.id,
                            quiet=quiet)
                row = self.route(turn)
                if row is not None:
                    await row.handler(turn)
        except Exception:
            # A bug or a broken database must not leave the lead without an answer (or kill the
            # bot): the message is stored and stays unanswered; the lead gets the polite fallback.
            log.exception("could not handle a message from lead %s", lead.id)
            with contextlib.suppress(Exception):
                await self.voice.note(lead.id, texts.FALLBACK)
        finally:
            lock.users -= 1
            if lock.users == 0:
                self._leads.pop(lead.id, None)

    # --- handlers of the table -----------------------------------------------------------------

    async def _please_text(self, turn: Turn) -> None:
        await self.voice.say(turn, texts.PLEASE_TEXT)

    async def _start(self, turn: Turn) -> None:
        leads.opt_in(turn.lead.id)
        await self.voice.say(turn, texts.greeting(turn.lead.first_name))

    async def _stop(self, turn: Turn) -> None:
        leads.opt_out(turn.lead.id, "stop")
        log.info("lead %s opted out of reminders", turn.lead.id)
        await self.voice.say(turn, texts.STOPPED)

    async def _cancel_command(self, turn: Turn) -> None:
        if turn.lead.state is None:
            await self.voice.say(turn, texts.NOTHING_TO_CANCEL)
        else:
            await self._leave_step(turn)

    async def _leave_step(self, turn: Turn) -> None:
        """«отмена» while a step is pending: the step is dropped."""
        leads.set_state(turn.lead.id, None)
        await self.voice.say(turn, texts.CANCELLED)

    async def _in_step(self, turn: Turn) -> None:
        """Text while the bot waits for a time (or for «да» to one): a time, a day or a range goes to the
        booking; anything else («а кто будет на созвоне?») to Claude, who sees the pending step in the
        context, and the step stays pending (its buttons still work)."""
        result = await self.llm.parse_time(turn.text, self.now(), self.calendar, turn.lead.id)
        if result.kind in UNPLACED:
            await self._converse(turn)
        else:
            await self.booking.own_time(turn, turn.text, result=result)

    async def _back_to_conversation(self, turn: Turn) -> None:
        leads.set_state(turn.lead.id, None)
        await self._converse(turn)

    # --- the conversation ----------------------------------------------------------------------

    async def _converse(self, turn: Turn) -> None:
        lead, message = turn.lead, turn.message
        lock = self._leads[lead.id]
        if message.id <= lock.answered_upto:
            return  # answered together with the messages before it
        upto = leads.latest_lead_message_id(lead.id)
        lock.answered_upto = upto
        turn.answering = None  # set again once Claude has answered
        history = conversation.history(lead.id, leads.latest_message_id(lead.id), self.config)
        if not history or history[-1][0] != "user":
            return
        meeting = leads.booked_meeting(lead.id, self.now())
        lock.thinking = True
        try:
            answer = await self.llm.answer(history, conversation.context(lead, meeting, self.now(), self.calendar),
                                           lead.id)
        except BudgetExhausted as exc:  # managers were told once, at the ceiling: not once per message
            log.warning("no answer for lead %s: %s", lead.id, exc)
            lock.told_to_wait = False
            if not turn.quiet:
                await self.voice.say(turn, texts.BUDGET_PAUSED)  # the lead's messages stay marked unanswered
            return
        except LLMUnavailable as exc:
            log.warning("no answer for lead %s: %s", lead.id, exc)
            lock.told_to_wait = False
            if not turn.quiet:  # once: a retry that fails again says nothing more
                await self.voice.say(turn, texts.FALLBACK)  # the lead's messages stay marked unanswered
            self.retry.later(lead.id)
            return
        finally:
            lock.thinking = False
        lock.told_to_wait = False
        if answer.summary.strip():
            leads.set_summary(lead.id, answer.summary.strip()[:SUMMARY_CHARS])
        turn.answering, turn.reply = upto, answer.reply
        await self._decide(turn, answer, meeting)

    async def _decide(self, turn: Turn, answer: Answer, meeting: MeetingState | None) -> None:
        """What the lead sees after Claude's answer, in this order (the first that applies decides):

        1. a booked meeting and `meeting_action` cancel → the cancel question;
        2. a `proposed_time` the parser places → an exact time: the confirm question (or why not, and
           the nearest slots); a day, a part of a day or a range: the free slots inside it; the past:
           the next free slots;
        3. a booked meeting and `meeting_action` move → the free slots to move it to;
        4. no meeting and `offer_meeting` → the free slots (a `proposed_time` the parser could not place
           is conversation: «когда-нибудь»), or, while a time waits for «да», that confirm question again;
        5. otherwise Claude's reply alone.
        Claude's reply always comes first, in the same message; the status is Claude's, applied forward
        only (store/leads.py), so neither a cancel nor a question makes a lead hot, and a refusal is `lost`.
        """
        b, reply, status = self.booking, answer.reply, answer.status
        proposed = answer.proposed_time.strip()
        if answer.handoff:  # a person is wanted: the lead hears when one answers; the bot pauses, staff are alerted
            return await self.voice.say(turn, self.inbox.handoff(turn.lead, turn.message.text, reply), status=status)
        if meeting is not None and answer.meeting_action == "cancel":
            await b.ask_cancel(turn, meeting, prefix=reply, status=status)
            return
        if proposed:
            # Claude's reply goes first, but never books (the prompt says so; only the engine books)
            result = await self.llm.parse_time(proposed, self.now(), self.calendar, turn.lead.id)
            if result.kind not in UNPLACED:
                await b.own_time(turn, proposed, prefix=reply, status=status, result=result)
                return
        if meeting is not None and answer.meeting_action == "move":
            await b.move(turn, prefix=reply, status=status)
        elif meeting is None and answer.offer_meeting and turn.lead.state == STATE_CONFIRM_TIME \
                and turn.lead.pending_time is not None:
            # a time waits for «да»: the question again, not slots that would make its buttons stale
            await b.ask_confirm(turn, turn.lead.pending_time, prefix=reply, status=status)
        elif meeting is None and answer.offer_meeting:
            await b.offer_slots(turn, reply, status=status)
        else:
            await self.voice.say(turn, reply, status=status)
