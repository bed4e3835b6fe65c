"""The reminder sweep, with `now` passed in: it decides and queues; `serve` delivers (delivery.py).

Who may be reminded at all: a Telegram lead with an access hash (chat leads never are), status new,
warm or hot, fewer than two reminders in this cycle. Of those, a lead is due when all hold: not
opted out; no booked meeting ahead (a hot lead: no meeting at all but cancelled ones — after a
meeting, staff take over); none of our messages to the lead still waits in the outbox or failed (a
lead who never got our answer is not reminded of it); none of the lead's messages waits for an
answer (when Claude was down, it is we who owe the lead a reply); the bot spoke last (the lead is
the one who went quiet); and either
- step 1: no reminder yet and the lead's last message is at least FOLLOW_UP_1 hours old, or
- step 2: one reminder, and it was sent at least FOLLOW_UP_2 hours ago.
new and warm leads get FOLLOW_UP_1/2; hot leads (they wanted to buy, then went quiet) get the
meeting offer with the free slots as buttons. The second reminder makes the lead cold (cold_reason
`no_reply`) once it is really sent. Reminders go out only inside the send window, on send days.

Never twice: each lead is claimed (leads.claim_follow_up) by a compare-and-set UPDATE (on
follow_up_count, the lead's last message and status), in the same transaction that queues the
reminder. Overlapping sweeps cannot both claim a lead. The deliverer checks again just before each
send: a lead who wrote after the reminder was queued is not reminded, and a reminder that would go
out after the window closed is dropped and its claim given back (delivery.py), so the next sweep
inside the window decides afresh — with today's free slots and texts.

The plan does not depend on statistics. Production databases are never ANALYZEd, and without
statistics SQLite chose the status/activity index and sorted every page (a 100k-lead dry run took
19 s). Every query here names the partial index `lead_reminder` (migration 009), which holds exactly
the leads that may be reminded, with the columns the time test needs: a sweep reads that index in id
order (keyset pages, so memory stays flat and no read is open while the sweep writes) and touches a
lead's row, messages and outbox only when the lead is due by time. scripts/bench_followups.py
measures the alternatives on a database that was never analysed.

Why the sweep does not send itself: one Telegram session talks to Telegram (`serve`'s). Access
hashes belong to the session that received them (core.telegram.org/api/peers), so a second session
addressing leads with `serve`'s hashes may be refused (PEER_ID_INVALID) — and the old sweep took
that as "unreachable" and opted the lead out for good. One egress also keeps the whole bot under
Telegram's ~30 messages a second, with live replies ahead of reminders.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from salesbot import delivery, keyboards, store, texts
from salesbot.claude import prompts
from salesbot.store import Lead, db, leads, to_utc_naive
from salesbot.time.slots import Calendar, at_clock, clock_label, free_slots
from salesbot.transport import Keyboard

log = logging.getLogger(__name__)

PAGE = 1000
WORKING_DAYS = frozenset(range(5))


@dataclass(frozen=True)
class Policy:
    tz: ZoneInfo
    first_after: timedelta = timedelta(hours=24)
    second_after: timedelta = timedelta(hours=24)
    window: tuple[time, time] = (time(10), time(20))
    days: frozenset[int] = WORKING_DAYS  # Monday is 0
    calendar: Calendar | None = None  # hot leads are offered its free slots (none: only «own time»)

    def in_window(self, now: datetime) -> bool:
        """Whether a reminder may go out at `now`: a send day, inside the window's hours."""
        local = now.astimezone(self.tz)
        start, end = self.window
        return local.weekday() in self.days and start <= local.time() < end

    def next_open(self, moment: datetime) -> datetime:
        """The first instant at or after `moment` at which a reminder may go out."""
        if self.in_window(moment):
            return moment
        local = moment.astimezone(self.tz)
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            opens = at_clock(day, self.window[0], self.tz)
            if day.weekday() in self.days and opens >= local:
                return opens
        raise ValueError("no send day")  # days is never empty (config refuses it)

    def describe(self) -> str:
        """`10:00–20:00 Europe/Moscow, Mon–Fri` for the operator."""
        names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        ordered = sorted(self.days)
        if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
            days = f"{names[ordered[0]]}–{names[ordered[-1]]}"
        else:
            days = ",".join(names[d] for d in ordered)
        return f"{'–'.join(map(clock_label, self.window))} {self.tz.key}, {days}"




@dataclass
class Due:
    lead_id: int
    telegram_id: int
    first_name: str | None
    username: str | None
    step: int
    # As stored (text): the claim compares them with what is in the row, byte for byte.
    last_message_at: str
    status: str
    cancelled: bool = False  # the lead cancelled a meeting: no «Вы хотели записаться…» nudge

    @property
    def hot(self) -> bool:
        return self.status == "hot" and not self.cancelled

    @property
    def label(self) -> str:
        return f"{'hot' if self.hot else 'follow_up'}_{self.step}"

    @property
    def text(self) -> str:
        return (texts.hot_follow_up if self.hot else texts.follow_up)(self.step, self.first_name)


@dataclass
class Action:
    lead_id: int
    step: int
    becomes_cold: bool
    telegram_id: int
    first_name: str | None
    outcome: str  # would_send (dry run) | queued | claimed_elsewhere (another sweep, or the lead wrote)
    username: str | None = None
    nudge: str = "follow_up"  # follow_up (new and warm leads) | hot (the meeting offer, with slot buttons)
    text: str = ""  # what the lead gets

    def as_json(self) -> dict:
        """The action as JSON-ready values (direct: the generic dataclass walk cost a quarter of a
        100k-lead --json run)."""
        return {"lead_id": self.lead_id, "step": self.step, "becomes_cold": self.becomes_cold,
                "telegram_id": self.telegram_id, "first_name": self.first_name, "username": self.username,
                "nudge": self.nudge, "text": self.text, "outcome": self.outcome}


NOT_DUE = {  # why a lead who may be reminded is not due now, in the order they are tested
    "opted_out": "opted out (/stop, or unreachable)",
    "has_meeting": "has a meeting",
    "reminder_queued": "a reminder waits for serve to send it",
    "taken_over": "a person has the conversation (salesbot/inbox: takeover or handoff)",
    "owed_answer": "we owe them an answer (unanswered, or our reply not delivered)",
    "lead_spoke_last": "the lead spoke last",
    "not_silent_long_enough": "not silent long enough",
    "outside_window": "outside the send window or days",
}


@dataclass
class Diagnosis:
    """Why leads are not due, per reason (NOT_DUE), how many are due, and when the next one will be."""

    due: int
    not_due: dict[str, int]
    next_due_at: datetime | None  # in the business's zone


@dataclass
class SweepResult:
    """Counts for every lead the sweep touched; the actions themselves only up to `keep` of them
    (a sweep over 100k leads must not hold 100k actions: the CLI streams them instead)."""

    now: datetime
    dry_run: bool
    in_window: bool
    actions: list[Action] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)
    last_reminders: int = 0  # the second reminders queued: each makes its lead cold once it is sent
    due_later: int | None = None  # dry run outside the window: how many are due once it opens
    meetings: list = field(default_factory=list)  # meeting reminders and no-show offers (meeting_reminders.py)
    diagnosis: Diagnosis | None = None  # dry run: why the others are not due, and when the next is

    def count(self, outcome: str) -> int:
        return self.outcomes[outcome]

    def record(self, action: Action, keep: int | None) -> None:
        self.outcomes[action.outcome] += 1
        self.last_reminders += action.becomes_cold and action.outcome in ("queued", "would_send")
        if keep is None or len(self.actions) < keep:
            self.actions.append(action)

    @property
    def summary(self) -> dict[str, int]:
        return {
            "queued": self.count("queued"),
            "would_send": self.count("would_send"),
            "last_reminders": self.last_reminders,
            "skipped": self.count("claimed_elsewhere"),
        }


# --- who is due (the module docstring in SQL) ----------------------------------------------------------
# Named parameters: :now, :first and :second (the cutoffs), as stored text. Every query reads the
# partial index lead_reminder (INDEXED BY: the statement fails rather than silently falling back to
# a scan if the index were ever missing or no longer matched _MAY_REMIND).

_MAY_REMIND = ("l.status IN ('new', 'warm', 'hot') AND l.telegram_id IS NOT NULL AND l.access_hash IS NOT NULL"
               " AND l.follow_up_count < 2")  # exactly the WHERE of the index lead_reminder
_SILENT = ("((l.follow_up_count = 0 AND l.last_message_at <= :first)"
           " OR (l.follow_up_count = 1 AND l.last_follow_up_at <= :second))")
_MEETING = ("EXISTS (SELECT 1 FROM meeting AS m INDEXED BY meeting_lead WHERE m.lead_id = l.id"
            " AND ((m.status = 'booked' AND m.starts_at >= :now) OR (l.status = 'hot' AND m.status != 'cancelled')))")
_UNANSWERED = "EXISTS (SELECT 1 FROM message AS u WHERE u.lead_id = l.id AND u.unanswered = 1)"
_LAST_SPEAKER = ("(SELECT x.role FROM message AS x WHERE x.lead_id = l.id AND x.role != 'note'"
                 " ORDER BY x.id DESC LIMIT 1)")  # staff's internal notes are not conversation
_TAKEN_OVER = "coalesce(l.takeover_until > :now, 0)"  # a person has the lead: reminders wait
_LAST_OUTBOX = "(SELECT o.state || ' ' || o.kind FROM outbox AS o WHERE o.lead_id = l.id ORDER BY o.id DESC LIMIT 1)"

_DUE_WHERE = f"""{_MAY_REMIND} AND l.opted_out = 0 AND {_SILENT} AND NOT {_TAKEN_OVER}
  AND NOT {_MEETING} AND coalesce({_LAST_OUTBOX}, 'sent none') LIKE 'sent %' AND NOT {_UNANSWERED}
  AND {_LAST_SPEAKER} IN ('bot', 'manager')"""
_DUE_SQL = f"""
SELECT l.id, l.telegram_id, l.first_name, l.username, l.follow_up_count, l.last_message_at, l.status,
  l.status = 'hot' AND EXISTS (SELECT 1 FROM meeting AS c INDEXED BY meeting_lead WHERE c.lead_id = l.id
    AND c.status = 'cancelled' AND c.cancelled_by = 'lead' AND c.moved_to IS NULL)
FROM lead AS l INDEXED BY lead_reminder
WHERE {_DUE_WHERE} AND l.id > :after
ORDER BY l.id
LIMIT :page
"""
_COUNT_DUE_SQL = f"SELECT count(*) FROM lead AS l INDEXED BY lead_reminder WHERE {_DUE_WHERE}"

# One pass over the leads who may be reminded: each gets the first reason it is not due (NOT_DUE's
# order), or `due`; the earliest "silent since" per step tells when the next one comes due.
_DIAGNOSIS_SQL = f"""
SELECT reason, follow_up_count, count(*), min(since) FROM (
  SELECT CASE
      WHEN l.opted_out THEN 'opted_out'
      WHEN {_MEETING} THEN 'has_meeting'
      WHEN {_LAST_OUTBOX} = 'queued reminder' THEN 'reminder_queued'
      WHEN {_TAKEN_OVER} THEN 'taken_over'
      WHEN coalesce({_LAST_OUTBOX}, 'sent none') NOT LIKE 'sent %' OR {_UNANSWERED} THEN 'owed_answer'
      WHEN coalesce({_LAST_SPEAKER}, 'lead') NOT IN ('bot', 'manager') THEN 'lead_spoke_last'
      WHEN NOT coalesce({_SILENT}, 0) THEN 'not_silent_long_enough'
      ELSE 'due' END AS reason,
    l.follow_up_count AS follow_up_count,
    CASE l.follow_up_count WHEN 0 THEN l.last_message_at ELSE l.last_follow_up_at END AS since
  FROM lead AS l INDEXED BY lead_reminder
  WHERE {_MAY_REMIND}
)
GROUP BY reason, follow_up_count
"""


def _params(now: datetime, policy: Policy, **more) -> dict:
    now_db = to_utc_naive(now)
    return {"now": str(now_db), "first": str(now_db - policy.first_after),
            "second": str(now_db - policy.second_after), **more}


def count_due(now: datetime, policy: Policy) -> int:
    """How many leads are due by everything but the send window (for a progress bar)."""
    return db.execute_sql(_COUNT_DUE_SQL, _params(now, policy)).fetchone()[0]


def due_leads(now: datetime, policy: Policy, limit: int | None = None) -> Iterator[Due]:
    """Leads due for a reminder at `now` (the send window aside), in id order, streamed a page at a time."""
    after, produced = 0, 0
    while limit is None or produced < limit:
        page = PAGE if limit is None else min(PAGE, limit - produced)
        rows = db.execute_sql(_DUE_SQL, _params(now, policy, after=after, page=page)).fetchall()
        for lead_id, telegram_id, first_name, username, count, last_message_at, status, cancelled in rows:
            yield Due(lead_id, telegram_id, first_name, username, count + 1, last_message_at, status,
                      bool(cancelled))
        produced += len(rows)
        if len(rows) < page:
            return
        after = rows[-1][0]


def diagnose(now: datetime, policy: Policy) -> Diagnosis:
    """Why the leads who may be reminded are not due at `now`, and when the next one becomes due
    (the send window and days included)."""
    counts: Counter = Counter()
    earliest: list[datetime] = []
    for reason, count, leads_, since in db.execute_sql(_DIAGNOSIS_SQL, _params(now, policy)).fetchall():
        counts[reason] += leads_
        if reason == "not_silent_long_enough" and since is not None:
            silent = Lead.last_message_at.python_value(since).replace(tzinfo=UTC)
            earliest.append(silent + (policy.first_after if count == 0 else policy.second_after))
    due = counts.pop("due", 0)
    if due and not policy.in_window(now):
        counts["outside_window"] = due
        earliest.append(now)
    next_due = min((policy.next_open(max(moment, now)) for moment in earliest), default=None)
    not_due = {reason: counts[reason] for reason in NOT_DUE if counts[reason]}
    return Diagnosis(due=due, not_due=not_due, next_due_at=next_due.astimezone(policy.tz) if next_due else None)


# --- the sweep ------------------------------------------------------------------------------------------


def slot_keyboard(now: datetime, policy: Policy) -> Keyboard:
    """The buttons of a hot lead's reminder: the next free slots and «own time», exactly as the
    dialogue offers them (conversation.py acts on the press the same way)."""
    calendar = policy.calendar
    if calendar is None:
        return keyboards.slots([], policy.tz)
    return keyboards.slots(free_slots(now, calendar, leads.booked_starts(now - calendar.slot)), calendar.tz)


def sweep(
    now: datetime,
    policy: Policy,
    *,
    dry_run: bool = False,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
    on_action: Callable[[Action], None] | None = None,
    keep: int | None = None,
    writer: Callable[[Due], str | None] | None = None,
) -> SweepResult:
    """One sweep at `now`: queue a reminder for each lead who is due (with dry_run, only list them,
    and say why the others are not due).

    Each finished action goes to `on_action`; `keep` bounds how many stay in the result. `writer`
    writes a lead's reminder from the conversation (the model, runtime.py); when it gives nothing, or
    in a dry run, the template (texts.py) goes."""
    result = SweepResult(now=now, dry_run=dry_run, in_window=policy.in_window(now))
    if dry_run:
        result.diagnosis = diagnose(now, policy)
    if not result.in_window:
        log.debug("outside the send window (%s): nothing to do", policy.describe())
        if dry_run:  # tell the operator what the window is holding back
            result.due_later = result.diagnosis.not_due.get("outside_window", 0)
        return result
    keyboard: Keyboard | None = None  # the same free slots for every hot lead of this sweep
    for due in due_leads(now, policy, limit):
        action = Action(due.lead_id, due.step, due.step == 2, due.telegram_id, due.first_name, "would_send",
                        due.username, "hot" if due.hot else "follow_up", due.text)
        if not dry_run:
            if due.hot and keyboard is None:
                keyboard = slot_keyboard(now, policy)
            written = writer(due) if writer is not None else None  # outside any transaction: it may take seconds
            action.text, model_chars = (written, len(written)) if written else (due.text, 0)
            action.outcome = "queued" if _claim_and_queue(due, now, keyboard if due.hot else None, action.text,
                                                          model_chars) \
                else "claimed_elsewhere"
        result.record(action, keep)
        if on_action:
            on_action(action)
        if progress:
            progress(1)
    return result


def _claim_and_queue(due: Due, now: datetime, buttons: Keyboard | None, text: str, model_chars: int) -> bool:
    """Claim the lead and queue its reminder in one transaction (delivery.py sends it)."""
    with store.transaction():
        if not leads.claim_follow_up(due.lead_id, due.step, due.last_message_at, due.status):
            return False
        delivery.queue_to_lead(due.lead_id, text, now, buttons, kind="reminder", follow_up_step=due.label,
                               model_chars=model_chars)
    return True


HISTORY_FOR_REMINDERS = 20  # the last messages a model-written reminder is written from


def reminder_history(lead_id: int, max_chars: int = 2000) -> list[tuple[str, str]]:
    """The conversation as the dialogue shows it to the model (no commands, no «one moment» notes, no
    staff notes, no summary: a reminder has nothing in front of it that it must not quote)."""
    rows = leads.recent_messages(lead_id, 2**62, HISTORY_FOR_REMINDERS)
    skip = lambda role, text: (role == "lead" and text.startswith("/")) or text == texts.ONE_MOMENT  # noqa: E731
    return prompts.history_of(rows, max_chars, skip)


@contextlib.contextmanager
def sweep_lock(home: Path) -> Iterator[bool]:
    """An exclusive flock on $SALESBOT_HOME/follow-ups.lock; yields False when another sweep holds it."""
    import fcntl

    path = home / "follow-ups.lock"
    handle = open(path, "a+")  # noqa: SIM115 - held for the whole sweep
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()

