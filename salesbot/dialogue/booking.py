"""The booking flow: offering slots, the lead's own time and its confirm step, and a booked meeting's
buttons (confirm, move, cancel). Only this class books, moves or cancels for a lead; the state it
waits in (own time, confirm a time, confirm a cancel) is kept in the database, so a restart in the
middle changes nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from salesbot import keyboards, texts
from salesbot.dialogue.turn import DialogueLLM, Turn, command_of
from salesbot.dialogue.voice import Voice, joined
from salesbot.keyboards import moment_of
from salesbot.store import leads
from salesbot.store.leads import STATE_CONFIRM_CANCEL, STATE_CONFIRM_TIME, STATE_CUSTOM_TIME, MeetingState
from salesbot.time import parse as timeparse
from salesbot.time.slots import (
    OFFER_DAYS,
    PER_DAY,
    Calendar,
    at_clock,
    check,
    clock_label,
    free_slots,
    slots_around,
    slots_in,
)

log = logging.getLogger(__name__)

RECENT_FOR_MANAGERS = 5
FREE_WEEK = timedelta(days=7)  # offered slots this far off (a vacation): the first free day is named
PERIOD_SLOTS = 6  # at most this many slots offered for a part of a day ("в пятницу после обеда")
LOOK_AHEAD_DAYS = 7  # a window with no day ("после 3"): the first of these days with a free slot in it
UNPLACED = ("not_understood", "invalid")  # a phrase the parser could not place: no time, no window


class Booking:
    def __init__(self, llm: DialogueLLM, voice: Voice, calendar: Calendar, now: Callable[[], datetime]) -> None:
        self.llm = llm
        self.voice = voice
        self.calendar = calendar
        self.now = now

    # --- offering ------------------------------------------------------------------------------

    async def offer_slots(self, turn: Turn, text: str, status: str | None = None,
                          slots: list[datetime] | None = None) -> None:
        """`text` with slot buttons: `slots`, or the next free ones spread over the coming working days."""
        if slots is None:
            slots = free_slots(self.now(), self.calendar, self._booked_starts())
            if slots and slots[0].astimezone(self.calendar.tz).date() >= self.voice.today() + FREE_WEEK:
                # a vacation or the New Year break: the lead hears when the business is back
                first = slots[0].astimezone(self.calendar.tz).date()
                text = f"{text}\n\n{texts.first_free_day(texts.day_phrase(first, self.voice.today()))}"
        if not slots:
            text = f"{text}\n\n{texts.NO_SLOTS}" if text != texts.CHOOSE_SLOT else texts.NO_SLOTS
        await self.voice.say(turn, text, keyboards.slots(slots, self.calendar.tz, self.voice.today()), status=status)

    async def offer_instead(self, turn: Turn, problem: str, wanted: datetime, prefix: str | None = None,
                            status: str | None = None) -> None:
        """Why `wanted` cannot be booked, and free slots instead: from both sides of it when it is taken
        or outside hours; the next ones from now when it is past, too soon or too far ahead."""
        slots = None  # the next free ones from now
        if problem in ("taken", "outside_hours", "ends_late", "day_off", "break", "busy"):
            slots = slots_around(wanted, self.now(), self.calendar, self._booked_starts())
        reason = problem_text(problem, self.calendar, wanted)
        await self.offer_slots(turn, joined(prefix, f"{reason} {texts.NEAREST_SLOTS}"), status=status, slots=slots)

    async def offer_window(self, turn: Turn, day: date | None, last_day: date | None, period: tuple[time, time] | None,
                           prefix: str | None, status: str | None) -> None:
        """A day, a part of a day, a range or a part of a week ("в четверг", "в пятницу после обеда", "после
        3", "на следующей неделе"): the free slots inside it (each day's window within that day's hours).
        One day: up to PERIOD_SLOTS of its slots in the window, and the day is remembered ("в 15" next
        means that day at 15:00); no day named: the first day from today with a free slot in the window;
        several days: up to two a day, as free_slots spreads them. When nothing inside is free, the
        nearest slots on both sides of it."""
        cal, now, today = self.calendar, self.now(), self.voice.today()
        clock = period or (cal.opens, cal.closes)

        def window(on: date) -> tuple[time, time]:
            opens, closes = cal.hours(on) or (cal.opens, cal.closes)
            start, end = max(clock[0], opens), min(clock[1], closes)
            return (start, end) if start < end else clock  # outside that day's hours altogether

        booked = self._booked_starts()
        if last_day is not None:  # several days
            first = max(day or today, today)
            slots: list[datetime] = []
            used = 0
            for offset in range((last_day - first).days + 1):
                free = slots_in(first + timedelta(days=offset), window(first + timedelta(days=offset)), now, cal,
                                booked)
                if free and used < OFFER_DAYS:
                    slots += spread(free, PER_DAY)
                    used += 1
            leads.set_state(turn.lead.id, None)
            start = window(first)[0]  # where the nearest are looked for when nothing inside is free
            hours = (clock_label(max(clock[0], cal.opens)), clock_label(min(clock[1], cal.closes)))
            text = texts.days_slots(first, last_day, *hours, whole_day=period is None)
            full = texts.days_full(first, last_day, *hours)
        else:
            if day is None:  # today while the window lasts, else the next day with room in it
                days = [today + timedelta(days=n) for n in range(LOOK_AHEAD_DAYS)]
                days = [d for d in days if at_clock(d, window(d)[1], cal.tz) > now] or [today + timedelta(days=1)]
                day = next((d for d in days if slots_in(d, window(d), now, cal, booked)), days[0])
            first = day
            start, end = window(day)
            slots = slots_in(day, (start, end), now, cal, booked)[:PERIOD_SLOTS]
            leads.set_state(turn.lead.id, STATE_CUSTOM_TIME, pending_day=day)  # "в 15" next means that day at 15:00
            labels = (texts.day_phrase(day, today), clock_label(start), clock_label(end))
            text, full = texts.period_slots(*labels), texts.period_full(*labels)
        if slots:
            await self.offer_slots(turn, joined(prefix, text), status=status, slots=slots)
        else:
            around = slots_around(at_clock(first, start, cal.tz), now, cal, booked)
            await self.offer_slots(turn, joined(prefix, full), status=status, slots=around)

    # --- the lead's own time -------------------------------------------------------------------

    async def own_time(self, turn: Turn, text: str, prefix: str | None = None, status: str | None = None,
                       result: timeparse.ParseResult | None = None) -> None:
        """The lead's words for a time (parsed here, or `result` when the caller parsed them): in the
        own-time step, or (with Claude's reply as `prefix`) written anywhere in the conversation.
        Understood and bookable → «Правильно понял: …?»; a day, a part of a day or a range → the free
        slots inside it; anything else → slots too: the lead who named a time always has a next step."""
        lead = turn.lead
        if result is None:
            result = await self.llm.parse_time(text, self.now(), self.calendar, lead.id)
        if result.kind in ("range", "need_time") and (result.day is not None or result.period is not None):
            await self.offer_window(turn, result.day, result.last_day, result.period, prefix, status)
            return
        if result.ok and result.time_only and lead.state == STATE_CUSTOM_TIME and lead.pending_day:
            result.when = datetime.combine(lead.pending_day, result.when.time(), tzinfo=self.calendar.tz)
        if result.kind == "past":
            await self.offer_slots(turn, joined(prefix, f"{texts.TIME_PASSED} {texts.NEAREST_SLOTS}"), status=status)
            return
        if not result.ok:
            if prefix is None:  # the own-time step: asked again
                await self.voice.say(turn, texts.NOT_UNDERSTOOD if result.kind != "need_time" else texts.NEED_TIME)
            else:  # in the conversation: Claude's reply, and the free slots to pick from
                await self.offer_slots(turn, joined(prefix, texts.CHOOSE_SLOT), status=status)
            return
        problem = check(result.when, self.now(), self.calendar, self._booked_starts(exclude_lead=lead.id))
        if problem:
            leads.set_state(lead.id, STATE_CUSTOM_TIME)
            await self.offer_instead(turn, problem, result.when, prefix, status)
            return
        await self.ask_confirm(turn, result.when, prefix, status)

    async def ask_confirm(self, turn: Turn, when: datetime, prefix: str | None = None,
                          status: str | None = None) -> None:
        """«Правильно понял: …?» with «Да, записать» / «Выбрать другое время» (asked again, it stays the
        newest keyboard, the one a press is checked against)."""
        leads.set_state(turn.lead.id, STATE_CONFIRM_TIME, pending_time=when)
        await self.voice.say(turn, joined(prefix, texts.confirm_own_time(self.voice.when(when))),
                             keyboards.confirm_time(when), status=status)

    async def confirm_own_time(self, turn: Turn) -> None:
        """«да» to «Правильно понял: …?»."""
        await self.book(turn, turn.lead.pending_time, "custom")

    async def decline_own_time(self, turn: Turn) -> None:
        """«нет» to «Правильно понял: …?»: another time, in words or from the slots."""
        leads.set_state(turn.lead.id, STATE_CUSTOM_TIME)
        await self.offer_slots(turn, texts.ANOTHER_TIME)

    async def ask_own_time(self, turn: Turn) -> None:
        leads.set_state(turn.lead.id, STATE_CUSTOM_TIME)
        await self.voice.say(turn, texts.ASK_OWN_TIME)

    # --- buttons -------------------------------------------------------------------------------

    async def on_button(self, turn: Turn) -> None:
        lead, data = turn.lead, turn.incoming.button or ""
        if action := keyboards.meeting_action(data):
            await self.on_meeting_button(turn, *action)
        elif data == keyboards.OWN:
            await self.ask_own_time(turn)
        elif data == keyboards.OTHER:
            leads.set_state(lead.id, None)
            await self.offer_slots(turn, texts.CHOOSE_SLOT)
        elif data.startswith("s:") and (moment := moment_of(data)):
            await self.book(turn, moment, "slot")
        elif data.startswith("ok:") and (moment := moment_of(data)):
            if lead.state != STATE_CONFIRM_TIME or lead.pending_time != moment:
                await self.offer_slots(turn, f"{texts.STALE_BUTTON} {texts.CHOOSE_SLOT}")
            else:
                await self.book(turn, moment, "custom")
        else:
            log.info("unknown button %r from lead %s", data, lead.id)
            await self.offer_slots(turn, f"{texts.STALE_BUTTON} {texts.CHOOSE_SLOT}")

    async def on_meeting_button(self, turn: Turn, action: str, meeting_id: int) -> None:
        """«Подтверждаю», «Перенести», «Отменить» (and the answer to «Отменить встречу?») on a meeting."""
        lead = turn.lead
        meeting = leads.meeting_by_id(meeting_id)
        if meeting is None or meeting.lead_id != lead.id or meeting.status != "booked" \
                or meeting.starts_at <= self.now():
            await self.meeting_gone(turn)
        elif action == keyboards.CONFIRM:
            leads.confirm_meeting(meeting.id, self.now())
            await self.voice.say(turn, texts.meeting_confirmed(self.voice.when(meeting.starts_at)))
            if meeting.confirmed_at is None:
                await self.voice.tell_managers(texts.manager_meeting_confirmed(
                    lead.first_name, lead.id, lead.username, self.voice.when(meeting.starts_at)))
        elif action == keyboards.MOVE:
            await self.move(turn)
        elif action == keyboards.CANCEL:
            await self.ask_cancel(turn, meeting)
        elif action == keyboards.CANCEL_YES:
            await self.cancel(turn, meeting)
        else:
            await self.keep(turn, meeting)

    # --- a booked meeting ----------------------------------------------------------------------

    async def move(self, turn: Turn, prefix: str | None = None, status: str | None = None) -> None:
        leads.set_state(turn.lead.id, None)
        await self.offer_slots(turn, joined(prefix, texts.CHOOSE_NEW_TIME), status=status)

    async def keep(self, turn: Turn, meeting: MeetingState) -> None:
        leads.set_state(turn.lead.id, None)
        await self.voice.say(turn, texts.meeting_kept(self.voice.when(meeting.starts_at)),
                             keyboards.meeting(meeting.id))

    async def meeting_gone(self, turn: Turn) -> None:
        """A button of a meeting that was moved, cancelled or is over: the current one, or slots."""
        current = leads.booked_meeting(turn.lead.id, self.now())
        if current is None:
            await self.offer_slots(turn, f"{texts.MEETING_GONE} {texts.CHOOSE_SLOT}")
        else:
            await self.voice.say(turn, f"{texts.MEETING_GONE} {texts.meeting_kept(self.voice.when(current.starts_at))}",
                                 keyboards.meeting(current.id))

    async def ask_cancel(self, turn: Turn, meeting: MeetingState, prefix: str | None = None,
                         status: str | None = None) -> None:
        """Cancelling asks once: «Отменить встречу — …?» with «Да, отменить» / «Нет, оставить»."""
        leads.set_state(turn.lead.id, STATE_CONFIRM_CANCEL, pending_time=meeting.starts_at)
        await self.voice.say(turn, joined(prefix, texts.ask_cancel(self.voice.when(meeting.starts_at))),
                             keyboards.cancel_question(meeting.id), status=status)

    async def answer_cancel(self, turn: Turn, yes: bool) -> None:
        """«да» / «нет» in words to «Отменить встречу?»."""
        meeting = leads.booked_meeting(turn.lead.id, self.now())
        if meeting is None or meeting.starts_at != turn.lead.pending_time:
            leads.set_state(turn.lead.id, None)
            await self.meeting_gone(turn)
        elif yes:
            await self.cancel(turn, meeting)
        else:
            await self.keep(turn, meeting)

    async def cancel(self, turn: Turn, meeting: MeetingState) -> None:
        lead = turn.lead
        if not leads.cancel_meeting(meeting.id, "lead", self.now()):
            await self.meeting_gone(turn)
            return
        when = self.voice.when(meeting.starts_at)
        log.info("lead %s cancelled meeting %s (%s)", lead.id, meeting.id, when)
        await self.voice.say(turn, texts.meeting_cancelled(when))
        await self.voice.tell_managers(texts.manager_meeting_cancelled(lead.first_name, lead.id, lead.username, when))

    async def book(self, turn: Turn, start: datetime, source: str) -> None:
        lead = turn.lead
        problem, previous = leads.book(lead.id, start, source, self.now(), self.calendar)
        if problem:
            await self.offer_instead(turn, problem, start)
            return
        when = self.voice.when(start)
        meeting = leads.booked_meeting(lead.id, self.now())
        buttons = keyboards.meeting(meeting.id) if meeting is not None else None
        log.info("lead %s booked a meeting: %s (%s)", lead.id, when, source)
        await self.voice.say(turn, texts.rebooked(when) if previous else texts.booked(when), buttons)
        if previous:
            await self.voice.tell_managers(texts.manager_meeting_moved(lead.first_name, lead.id, lead.username,
                                                                       self.voice.when(previous), when))
            return
        summary = leads.summary_of(lead.id)
        last = [] if summary else [t for t in leads.recent_lead_texts(lead.id, RECENT_FOR_MANAGERS)
                                   if not command_of(t)]
        await self.voice.tell_managers(texts.manager_booking(lead.first_name, lead.id, lead.username, when, source,
                                                             last, summary))

    def _booked_starts(self, exclude_lead: int | None = None) -> list[datetime]:
        return leads.booked_starts(self.now() - self.calendar.slot, exclude_lead)


def spread(slots: list[datetime], count: int) -> list[datetime]:
    """`count` of a day's free slots spread over it, as free_slots offers them (time/slots.py)."""
    return slots if len(slots) <= count else [slots[i * len(slots) // count] for i in range(count)]


def problem_text(problem: str, cal: Calendar, wanted: datetime) -> str:
    """Why `wanted` cannot be booked, in the lead's words (slots.check's problem)."""
    local = wanted.astimezone(cal.tz)
    hours = cal.hours(local.date())
    if problem == "outside_hours" and len(groups := cal.schedule()) > 1:  # hours differ by day
        if hours is not None:  # that day's own hours
            return texts.outside_hours(texts.work_days_text(frozenset({local.weekday()})),
                                       clock_label(hours[0]), clock_label(hours[1]))
        return texts.outside_schedule([(texts.work_days_text(days), clock_label(span[0]), clock_label(span[1]))
                                       for days, span in groups])
    if problem == "outside_hours":
        return texts.outside_hours(texts.work_days_text(cal.work_days), clock_label(cal.opens), clock_label(cal.closes))
    if problem == "ends_late":
        return texts.ends_late(clock_label(hours[1] if hours else cal.closes))
    if problem == "too_far":
        return texts.too_far(cal.horizon.days)
    if problem == "break" and (span := cal.in_break(local, cal.slot)):
        return texts.in_break(clock_label(span[0]), clock_label(span[1]))
    return {"past": texts.TIME_PASSED, "too_soon": texts.TOO_SOON, "taken": texts.TAKEN, "busy": texts.BUSY,
            "day_off": texts.DAY_OFF, "break": texts.TAKEN}[problem]
