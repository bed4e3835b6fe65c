"""Every write of a lead's data and every status transition, in one SQL style.

The engine and the sweep decide; this module writes. Each function is one short transaction
(BEGIN IMMEDIATE, see store.py) and never spans an `await`. Statements are fixed SQL, parsed once by
sqlite3's statement cache: Peewee builds its SQL anew on each call, which was most of the engine's
CPU per message (scripts/bench_dialogue.py). Times are stored the way Peewee's DateTimeField
stores them: `str()` of a naive UTC datetime.

Status transitions:
- a new lead is `new`; Claude's answers move it forward only, new → warm → hot (`mark_answered`:
  a `new` or `warm` answer never lowers a hot lead), or to `lost` when the lead refused (no reminders);
- a booked meeting makes it `hot` (`book`); a cancel changes no status;
- the second reminder makes it `cold` when it is really sent (`follow_up_sent`); a claimed reminder
  that is dropped unsent gives the claim back (`release_follow_up`);
- any message from a cold or lost lead makes it `warm` again (`record_lead_message`): a refusal is
  undone by writing again.
Every change of status, whatever the status, is logged in `lead_status_change` in the transaction
that makes it (`_log_status`), with the webhook event `lead.status_changed` when webhooks are on;
a new lead's row in it has no `from_status`.

Meeting transitions: `booked` → `cancelled` (the lead or staff cancels: `cancel_meeting`; or it is
moved: `book` cancels it and points `moved_to` at its replacement) or → `done` / `no_show` (staff,
once it has started: `set_outcome`, which may also correct one outcome to the other). The lead's
confirmation is `confirmed_at` (`confirm_meeting`); what was sent about a meeting is logged once
each in `meeting_reminder` (`claim_meeting_reminder`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

from peewee import IntegrityError

from salesbot.store import Lead, Meeting, db, events, stamp, utcnow
from salesbot.time.slots import Calendar, Problem, check

log = logging.getLogger(__name__)

STATE_CUSTOM_TIME = "MEETING_CUSTOM_TIME"  # waiting for the lead to write a day and time
STATE_CONFIRM_TIME = "MEETING_CONFIRM_TIME"  # a time understood, waiting for the lead to confirm it
STATE_CONFIRM_CANCEL = "MEETING_CONFIRM_CANCEL"  # asked «Отменить встречу?»; pending_time is its start


@dataclass(frozen=True)
class LeadState:
    """What the dialogue engine knows of a lead, read fresh for each message."""

    id: int
    telegram_id: int | None
    access_hash: int | None
    username: str | None
    first_name: str | None
    status: str
    state: str | None
    pending_time: datetime | None  # aware UTC: the time awaiting the lead's confirmation
    pending_day: date | None  # a day named without a time, in the business's zone
    opted_out: bool


_LEAD_COLUMNS = ("id, telegram_id, access_hash, username, first_name, status, state, pending_time, pending_day,"
                 " opted_out")


def _state(row: tuple | None) -> LeadState | None:
    if row is None:
        return None
    pending = Lead.pending_time.python_value(row[7])
    return LeadState(id=row[0], telegram_id=row[1], access_hash=row[2], username=row[3], first_name=row[4],
                     status=row[5], state=row[6], pending_time=pending.replace(tzinfo=UTC) if pending else None,
                     pending_day=Lead.pending_day.python_value(row[8]), opted_out=bool(row[9]))


def _status_of(lead_id: int) -> str | None:
    row = db.execute_sql("SELECT status FROM lead WHERE id = ?", (lead_id,)).fetchone()
    return row[0] if row else None


def _log_status(lead_id: int, before: str | None, at: datetime) -> None:
    """Inside the caller's transaction, after its UPDATE: log the lead's status change (any status
    string: `lost` and whatever comes later too), and queue its webhook event."""
    after = _status_of(lead_id)
    if after is None or after == before:
        return
    db.execute_sql("INSERT INTO lead_status_change (lead_id, at, from_status, to_status) VALUES (?, ?, ?, ?)",
                   (lead_id, stamp(at), before, after))
    events.emit("lead.status_changed", lead_id, at=at, change={"from": before, "to": after})


def _created(lead_id: int, at: datetime) -> None:
    """A new lead: its first history row and its `lead.created` event (inside the insert's transaction)."""
    db.execute_sql("INSERT INTO lead_status_change (lead_id, at, from_status, to_status)"
                   " SELECT id, ?, NULL, status FROM lead WHERE id = ?", (stamp(at), lead_id))
    events.emit("lead.created", lead_id, at=at)


# --- reads the writers' callers need ---------------------------------------------------------------


def by_id(lead_id: int) -> LeadState | None:
    return _state(db.execute_sql(f"SELECT {_LEAD_COLUMNS} FROM lead WHERE id = ?", (lead_id,)).fetchone())


def by_telegram_id(telegram_id: int) -> LeadState | None:
    return _state(db.execute_sql(f"SELECT {_LEAD_COLUMNS} FROM lead WHERE telegram_id = ?",
                                 (telegram_id,)).fetchone())


def latest_lead_message_id(lead_id: int) -> int | None:
    return db.execute_sql("SELECT max(id) FROM message WHERE lead_id = ? AND role = 'lead'", (lead_id,)).fetchone()[0]


def count_messages(lead_id: int, upto: int) -> int:
    return db.execute_sql("SELECT count(*) FROM message WHERE lead_id = ? AND id <= ? AND role != 'note'",
                          (lead_id, upto)).fetchone()[0]


def latest_message_id(lead_id: int) -> int | None:
    return db.execute_sql("SELECT max(id) FROM message WHERE lead_id = ?", (lead_id,)).fetchone()[0]


def recent_messages(lead_id: int, upto: int, limit: int) -> list[tuple[str, str, int | None]]:
    """(role, text, model_chars) of the lead's last `limit` messages with id <= upto, oldest first —
    except that the lead's messages still unanswered come last: one that came in while the one before
    was being answered is stored before that answer, and must follow it in the conversation shown to
    the model (or the model answers the first message again). `model_chars` of a bot message: how
    many of its first characters are the model's words (the rest is the bot's own; NULL for messages
    stored before migration 010: all the model's)."""
    return db.execute_sql("SELECT role, text, model_chars FROM (SELECT id, role, text, model_chars, unanswered"
                          " FROM message WHERE lead_id = ? AND id <= ? AND role != 'note' ORDER BY id DESC LIMIT ?)"
                          " ORDER BY role = 'lead' AND unanswered = 1, id", (lead_id, upto, limit)).fetchall()


def summary_of(lead_id: int) -> str | None:
    row = db.execute_sql("SELECT summary FROM lead WHERE id = ?", (lead_id,)).fetchone()
    return row[0] if row else None


def cancelled_a_meeting(lead_id: int) -> bool:
    """Whether the lead itself cancelled a meeting (a move is not a cancel)."""
    return db.execute_sql("SELECT 1 FROM meeting INDEXED BY meeting_lead WHERE lead_id = ? AND status = 'cancelled'"
                          " AND cancelled_by = 'lead' AND moved_to IS NULL LIMIT 1", (lead_id,)).fetchone() is not None


def recent_lead_texts(lead_id: int, limit: int) -> list[str]:
    """The lead's own last `limit` messages, oldest first."""
    rows = db.execute_sql("SELECT text FROM message WHERE lead_id = ? AND role = 'lead' ORDER BY id DESC LIMIT ?",
                          (lead_id, limit)).fetchall()
    return [text for (text,) in reversed(rows)]


def next_meeting_start(lead_id: int, now: datetime) -> datetime | None:
    """The lead's next booked meeting at or after `now` (naive UTC in, naive UTC out)."""
    row = db.execute_sql("SELECT starts_at FROM meeting INDEXED BY meeting_lead WHERE lead_id = ? AND status = 'booked'"
                         " AND starts_at >= ?"
                         " ORDER BY starts_at LIMIT 1", (lead_id, stamp(now))).fetchone()
    return Meeting.starts_at.python_value(row[0]) if row else None


@dataclass(frozen=True)
class MeetingState:
    id: int
    lead_id: int
    starts_at: datetime  # aware UTC
    status: str
    source: str
    confirmed_at: datetime | None  # naive UTC, as stored


_MEETING_COLUMNS = "id, lead_id, starts_at, status, source, confirmed_at"


def _meeting(row: tuple | None) -> MeetingState | None:
    if row is None:
        return None
    return MeetingState(id=row[0], lead_id=row[1], starts_at=Meeting.starts_at.python_value(row[2]).replace(tzinfo=UTC),
                        status=row[3], source=row[4], confirmed_at=Meeting.confirmed_at.python_value(row[5]))


def meeting_by_id(meeting_id: int) -> MeetingState | None:
    if not 0 < meeting_id < 2**63:  # SQLite's integers; a larger id names no meeting
        return None
    return _meeting(db.execute_sql(f"SELECT {_MEETING_COLUMNS} FROM meeting WHERE id = ?", (meeting_id,)).fetchone())


def booked_meeting(lead_id: int, now: datetime) -> MeetingState | None:
    """The lead's next booked meeting that has not started by `now`."""
    return _meeting(db.execute_sql(f"SELECT {_MEETING_COLUMNS} FROM meeting INDEXED BY meeting_lead"
                                   " WHERE lead_id = ? AND status = 'booked'"
                                   " AND starts_at > ? ORDER BY starts_at LIMIT 1", (lead_id, stamp(now))).fetchone())


def booked_starts(since: datetime, exclude_lead: int | None = None) -> list[datetime]:
    """Starts (aware UTC) of booked meetings from `since` on, other than `exclude_lead`'s."""
    rows = db.execute_sql("SELECT starts_at FROM meeting WHERE status = 'booked' AND starts_at >= ?"
                          " AND lead_id IS NOT ?", (stamp(since), exclude_lead)).fetchall()
    return [Meeting.starts_at.python_value(start).replace(tzinfo=UTC) for (start,) in rows]


# --- leads -----------------------------------------------------------------------------------------


def upsert_telegram_lead(telegram_id: int, access_hash: int | None, username: str | None,
                         first_name: str | None, source: str | None = None) -> LeadState:
    """The lead writing from this Telegram account, created on first contact; the profile Telegram
    sends along (a new access hash, a changed name) is kept current. `source` (a deep link's start
    parameter) is kept only when the lead is created: it is never overwritten."""
    lead = by_telegram_id(telegram_id)
    if lead is None:
        now = utcnow()
        with db.atomic():
            cursor = db.execute_sql("INSERT INTO lead (telegram_id, access_hash, username, first_name, status,"
                                    " created_at, follow_up_count, opted_out, source)"
                                    " VALUES (?, ?, ?, ?, 'new', ?, 0, 0, ?)",
                                    (telegram_id, access_hash, username, first_name, str(now), source))
            _created(cursor.lastrowid, now)
        lead = by_telegram_id(telegram_id)
        log.info("new lead %s (telegram id %s)", lead.id, telegram_id)
        return lead
    profile = {"access_hash": access_hash, "username": username, "first_name": first_name}
    changes = {key: value for key, value in profile.items() if value is not None and getattr(lead, key) != value}
    if changes:
        with db.atomic():
            db.execute_sql(f"UPDATE lead SET {', '.join(f'{key} = ?' for key in changes)} WHERE id = ?",
                           (*changes.values(), lead.id))
        lead = by_id(lead.id)
    return lead


def create_chat_lead(first_name: str) -> LeadState:
    """A lead of `salesbot chat`: no Telegram account, so never reminded over Telegram."""
    now = utcnow()
    with db.atomic():
        cursor = db.execute_sql("INSERT INTO lead (first_name, status, created_at, follow_up_count, opted_out)"
                                " VALUES (?, 'new', ?, 0, 0)", (first_name, str(now)))
        _created(cursor.lastrowid, now)
    return by_id(cursor.lastrowid)


def chat_lead_named(first_name: str) -> LeadState | None:
    """The newest terminal lead called `first_name`, to continue its conversation."""
    row = db.execute_sql(f"SELECT {_LEAD_COLUMNS} FROM lead WHERE first_name = ? AND telegram_id IS NULL"
                         " ORDER BY id DESC LIMIT 1", (first_name,)).fetchone()
    return _state(row)


def set_summary(lead_id: int, summary: str) -> None:
    """What the model learned of the lead (need, budget, deadline, who decides, contact), kept whole."""
    with db.atomic():
        db.execute_sql("UPDATE lead SET summary = ? WHERE id = ?", (summary, lead_id))


def opt_out(lead_id: int, reason: str) -> None:
    """No more reminders: the lead's /stop (`stop`), or why Telegram cannot reach the lead."""
    with db.atomic():
        db.execute_sql("UPDATE lead SET opted_out = 1, opted_out_reason = ? WHERE id = ?", (reason, lead_id))


def opt_in(lead_id: int) -> None:
    """The lead wrote /start again: reminders may resume."""
    with db.atomic():
        db.execute_sql("UPDATE lead SET opted_out = 0, opted_out_reason = NULL WHERE id = ?", (lead_id,))


def set_state(lead_id: int, state: str | None, *, pending_time: datetime | None = None,
              pending_day: date | None = None) -> None:
    """The dialogue's state; each call states the whole of it (what is not given is cleared)."""
    with db.atomic():
        db.execute_sql("UPDATE lead SET state = ?, pending_time = ?, pending_day = ? WHERE id = ?",
                       (state, stamp(pending_time) if pending_time else None,
                        pending_day.isoformat() if pending_day else None, lead_id))


# --- messages --------------------------------------------------------------------------------------


def record_lead_message(lead_id: int, text: str, at: datetime, unanswered: bool,
                        telegram_message_id: int | None = None) -> int | None:
    """Store what the lead wrote and what writing means: reminders start over, a cold lead is warm.
    None when Telegram's id of the message was stored before (an update delivered twice)."""
    with db.atomic():
        try:
            with db.atomic():
                cursor = db.execute_sql(
                    "INSERT INTO message (lead_id, role, text, created_at, unanswered, telegram_message_id)"
                    " VALUES (?, 'lead', ?, ?, ?, ?)",
                    (lead_id, text, stamp(at), int(unanswered), telegram_message_id))
        except IntegrityError:
            return None
        before = _status_of(lead_id)
        db.execute_sql(
            "UPDATE lead SET last_message_at = ?, follow_up_count = 0,"
            " cold_reason = CASE WHEN status = 'cold' THEN NULL ELSE cold_reason END,"
            " status = CASE WHEN status IN ('cold', 'lost') THEN 'warm' ELSE status END WHERE id = ?",
            (stamp(at), lead_id))
        _log_status(lead_id, before, at)
    return cursor.lastrowid


def record_bot_message(lead_id: int, text: str, at: datetime, model_chars: int = 0) -> int:
    """What we said; its first `model_chars` characters are the model's words, the rest the bot's own
    (0: a greeting, a slot offer, «записал вас…» — the model is shown them as the bot's, not its own)."""
    with db.atomic():
        cursor = db.execute_sql(
            "INSERT INTO message (lead_id, role, text, created_at, unanswered, model_chars)"
            " VALUES (?, 'bot', ?, ?, 0, ?)", (lead_id, text, stamp(at), model_chars))
        db.execute_sql("UPDATE lead SET first_answer_at = ? WHERE id = ? AND first_answer_at IS NULL",
                       (stamp(at), lead_id))
    return cursor.lastrowid


def forget_message(message_id: int) -> None:
    """A bot message that was never sent and never will be (a dropped reminder)."""
    db.execute_sql("DELETE FROM message WHERE id = ? AND role = 'bot'", (message_id,))


def last_unanswered(lead_id: int) -> tuple[int, str] | None:
    """(id, text) of the lead's newest message still waiting for an answer."""
    return db.execute_sql("SELECT id, text FROM message WHERE lead_id = ? AND role = 'lead' AND unanswered = 1"
                          " ORDER BY id DESC LIMIT 1", (lead_id,)).fetchone()


def leads_with_unanswered() -> list[int]:
    """Telegram leads with a message still waiting for an answer, oldest first (a lead a person has
    taken over is answered by that person, not on restart)."""
    rows = db.execute_sql("SELECT m.lead_id FROM message AS m JOIN lead AS l ON l.id = m.lead_id"
                          " WHERE m.unanswered = 1 AND l.telegram_id IS NOT NULL"
                          " AND (l.takeover_until IS NULL OR l.takeover_until <= ?) GROUP BY m.lead_id"
                          " ORDER BY min(m.id)", (str(utcnow()),)).fetchall()
    return [lead_id for (lead_id,) in rows]


# new < warm < hot; a cold or lost lead who wrote again is warm already (record_lead_message)
_FORWARD = ("UPDATE lead SET status = CASE WHEN ?1 = 'lost' THEN 'lost' WHEN instr(' new warm hot', ' ' || status)"
            " < instr(' new warm hot', ' ' || ?1) THEN ?1 ELSE status END WHERE id = ?2")


def mark_answered(lead_id: int, upto: int, status: str | None = None) -> None:
    """The lead's messages up to `upto` are answered; Claude's view of the lead's status with them,
    forward only (new → warm → hot) or to `lost`."""
    with db.atomic():
        if status is not None:
            before = _status_of(lead_id)
            db.execute_sql(_FORWARD, (status, lead_id))
            _log_status(lead_id, before, utcnow())
        db.execute_sql("UPDATE message SET unanswered = 0 WHERE lead_id = ? AND id <= ? AND unanswered = 1",
                       (lead_id, upto))


# --- meetings --------------------------------------------------------------------------------------


def book(lead_id: int, start: datetime, source: str, now: datetime, calendar: Calendar,
         by: str = "lead") -> tuple[Problem, datetime | None]:
    """Book atomically (BEGIN IMMEDIATE): returns (problem, the start of the meeting it replaced). A
    lead's other upcoming meeting is moved, not doubled: it is cancelled (by `by`) and points at the
    new one; the unique index on booked start times decides a race between two leads. Booking makes
    the lead hot and ends the time dialogue."""
    start_utc, now_utc = stamp(start), stamp(now)
    with db.atomic():
        own = db.execute_sql("SELECT id, starts_at FROM meeting INDEXED BY meeting_lead WHERE lead_id = ?"
                             " AND status = 'booked'"
                             " AND starts_at >= ?", (lead_id, now_utc)).fetchall()
        if any(starts_at == start_utc for _, starts_at in own):
            return None, None  # pressed twice: already booked
        problem = check(start, now, calendar, booked_starts(now - calendar.slot, exclude_lead=lead_id))
        if problem:
            return problem, None
        try:
            with db.atomic():  # a savepoint: a lost race undoes only the insert
                cursor = db.execute_sql("INSERT INTO meeting (lead_id, starts_at, status, source, created_at)"
                                        " VALUES (?, ?, 'booked', ?, ?)", (lead_id, start_utc, source, now_utc))
        except IntegrityError:
            return "taken", None
        if own:
            ids = [meeting_id for meeting_id, _ in own]
            db.execute_sql("UPDATE meeting SET status = 'cancelled', cancelled_at = ?, cancelled_by = ?, moved_to = ?"
                           f" WHERE id IN ({', '.join('?' * len(ids))})", (now_utc, by, cursor.lastrowid, *ids))
        before = _status_of(lead_id)
        db.execute_sql("UPDATE lead SET status = 'hot', state = NULL, pending_time = NULL, pending_day = NULL"
                       " WHERE id = ?", (lead_id,))
        _log_status(lead_id, before, now)
        if own:
            events.emit("meeting.moved", lead_id, meeting_id=cursor.lastrowid, at=now,
                        previous_meeting=events.meeting_payload(own[0][0]))
        else:
            events.emit("meeting.booked", lead_id, meeting_id=cursor.lastrowid, at=now)
    previous = min((starts_at for _, starts_at in own), default=None)
    return None, Meeting.starts_at.python_value(previous).replace(tzinfo=UTC) if previous else None


def moved_from(meeting_id: int) -> MeetingState | None:
    """The meeting this one replaced (a move points the old one's `moved_to` here)."""
    row = db.execute_sql(f"SELECT {_MEETING_COLUMNS} FROM meeting WHERE moved_to = ?", (meeting_id,)).fetchone()
    return _meeting(row)


def confirm_meeting(meeting_id: int, now: datetime) -> bool:
    """The lead confirmed (the first time counts); False when the meeting is no longer booked."""
    with db.atomic():
        cursor = db.execute_sql("UPDATE meeting SET confirmed_at = coalesce(confirmed_at, ?)"
                                " WHERE id = ? AND status = 'booked'", (stamp(now), meeting_id))
        return cursor.rowcount == 1


def cancel_meeting(meeting_id: int, by: str, now: datetime, reason: str | None = None) -> bool:
    """Cancel a booked meeting (its slot is free again) and end a cancel question the lead was asked;
    False when it was not booked (cancelled meanwhile, or already over)."""
    with db.atomic():
        cursor = db.execute_sql("UPDATE meeting SET status = 'cancelled', cancelled_at = ?, cancelled_by = ?,"
                                " cancel_reason = ? WHERE id = ? AND status = 'booked'",
                                (stamp(now), by, reason, meeting_id))
        if cursor.rowcount != 1:
            return False
        db.execute_sql("UPDATE lead SET state = NULL, pending_time = NULL, pending_day = NULL"
                       " WHERE id = (SELECT lead_id FROM meeting WHERE id = ?) AND state = ?",
                       (meeting_id, STATE_CONFIRM_CANCEL))
        _meeting_event("meeting.cancelled", meeting_id, now)
    return True


OUTCOMES = ("done", "no_show")


def set_outcome(meeting_id: int, outcome: str, now: datetime) -> bool:
    """Staff's word on a meeting that has started: `done` or `no_show` (one may correct the other);
    False when it is cancelled or has not started yet."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    with db.atomic():
        cursor = db.execute_sql("UPDATE meeting SET status = ?, outcome_at = ? WHERE id = ?"
                                " AND status IN ('booked', 'done', 'no_show') AND starts_at <= ?",
                                (outcome, stamp(now), meeting_id, stamp(now)))
        if cursor.rowcount != 1:
            return False
        _meeting_event(f"meeting.{outcome}", meeting_id, now)
    return True


def _meeting_event(event_type: str, meeting_id: int, now: datetime) -> None:
    row = db.execute_sql("SELECT lead_id FROM meeting WHERE id = ?", (meeting_id,)).fetchone()
    if row is not None:
        events.emit(event_type, row[0], meeting_id=meeting_id, at=now)


def claim_meeting_reminder(meeting_id: int, kind: str, status: str, now: datetime) -> bool:
    """Take what is to be sent about a meeting (`24h`, `2h`, … or `no_show`), once: False when it was
    sent before or the meeting's status is no longer `status`. The caller queues the message in the
    same transaction."""
    with db.atomic():
        cursor = db.execute_sql("INSERT OR IGNORE INTO meeting_reminder (meeting_id, kind, created_at)"
                                " SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM meeting WHERE id = ? AND status = ?)",
                                (meeting_id, kind, stamp(now), meeting_id, status))
        return cursor.rowcount == 1


# --- reminders -------------------------------------------------------------------------------------
# Who is due is decided in followups.py (with its index); the writes are here. A reminder is claimed
# when the sweep queues it and takes effect when `serve` really sends it: the count goes up at the
# claim (so no other sweep claims the lead), the time and the step-2 cold status at the send.


def claim_follow_up(lead_id: int, step: int, stored_last_message_at: str, status: str) -> bool:
    """Compare-and-set: take the lead for reminder `step`, or False if someone else did (another
    sweep, or the lead wrote meanwhile: `stored_last_message_at` and `status` are compared as stored).
    Step 1 clears `last_follow_up_at` until the reminder is really sent, so step 2 cannot come due
    before step 1 went out. The caller queues the reminder in the same transaction."""
    with db.atomic():
        cursor = db.execute_sql(
            "UPDATE lead SET follow_up_count = ?,"
            " last_follow_up_at = CASE WHEN ? = 1 THEN NULL ELSE last_follow_up_at END"
            " WHERE id = ? AND follow_up_count = ? AND last_message_at = ? AND status = ? AND opted_out = 0",
            (step, step, lead_id, step - 1, stored_last_message_at, status))
        return cursor.rowcount == 1


def follow_up_sent(lead_id: int, at: datetime) -> None:
    """A reminder went out: the next step counts from when it was really sent, not from when it
    was queued (a long flood wait, or `serve` down for a while, can lie between the two); the
    second one makes the lead cold (cold_reason `no_reply`)."""
    with db.atomic():
        before = _status_of(lead_id)
        db.execute_sql("UPDATE lead SET last_follow_up_at = ?,"
                       " status = CASE WHEN follow_up_count = 2 THEN 'cold' ELSE status END,"
                       " cold_reason = CASE WHEN follow_up_count = 2 THEN 'no_reply' ELSE cold_reason END"
                       " WHERE id = ? AND follow_up_count > 0", (stamp(at), lead_id))
        _log_status(lead_id, before, at)


def release_follow_up(lead_id: int) -> None:
    """A claimed reminder was not sent (dropped): the lead is back where the claim found it, so a
    later sweep decides again. A lead who wrote meanwhile is at 0 already and stays there."""
    with db.atomic():
        db.execute_sql("UPDATE lead SET follow_up_count = follow_up_count - 1 WHERE id = ? AND follow_up_count > 0",
                       (lead_id,))


def still_quiet(lead_id: int, queued_at: str) -> bool:
    """Whether a reminder queued at `queued_at` (as stored) may still go: the lead has not written
    since and has not opted out."""
    row = db.execute_sql("SELECT 1 FROM lead WHERE id = ? AND opted_out = 0 AND follow_up_count > 0"
                         " AND (last_message_at IS NULL OR last_message_at <= ?)", (lead_id, queued_at)).fetchone()
    return row is not None


# --- forgetting a lead (152-ФЗ) ---------------------------------------------------------------------
# The row stays, anonymous, so the funnel still counts the lead: its source, times, status history,
# meetings and Claude calls name nobody. Everything else the lead wrote or was called goes.

KEPT_COLUMNS = {"id", "status", "created_at", "last_message_at", "follow_up_count", "last_follow_up_at",
                "opted_out", "source", "first_answer_at", "deleted_at"}


def is_forgotten(lead_id: int) -> bool:
    row = db.execute_sql("SELECT deleted_at IS NOT NULL FROM lead WHERE id = ?", (lead_id,)).fetchone()
    return bool(row and row[0])


def lead_words(lead_id: int) -> list[str]:
    """What identifies the lead in free text: names, @username, Telegram id, and every message."""
    row = db.execute_sql("SELECT first_name, username, telegram_id FROM lead WHERE id = ?", (lead_id,)).fetchone()
    if row is None:
        return []
    first_name, username, telegram_id = row
    words = [first_name, username, f"@{username}" if username else None, str(telegram_id) if telegram_id else None]
    words += [text for (text,) in db.execute_sql("SELECT text FROM message WHERE lead_id = ?", (lead_id,))]
    return [word for word in words if word]


def forget(lead_id: int, now: datetime) -> bool:
    """Inside the caller's transaction: the lead's messages go; its upcoming meetings are cancelled
    (the slot is free again) and no meeting keeps a reason staff typed; every column of the lead
    that could name or describe them is emptied (`summary` and whatever columns come later too:
    only KEPT_COLUMNS stay). False when there is no such lead or it was forgotten before."""
    if not db.execute_sql("SELECT 1 FROM lead WHERE id = ? AND deleted_at IS NULL", (lead_id,)).fetchone():
        return False
    when = stamp(now)
    db.execute_sql("DELETE FROM message WHERE lead_id = ?", (lead_id,))
    db.execute_sql("UPDATE meeting SET status = 'cancelled', cancelled_at = ?, cancelled_by = 'staff'"
                   " WHERE lead_id = ? AND status = 'booked' AND starts_at > ?", (when, lead_id, when))
    db.execute_sql("UPDATE meeting SET cancel_reason = NULL WHERE lead_id = ?", (lead_id,))
    columns = db.execute_sql("PRAGMA table_info(lead)").fetchall()  # (cid, name, type, notnull, default, pk)
    emptied = [name for _, name, _, notnull, _, _ in columns if name not in KEPT_COLUMNS and not notnull]
    assignments = ", ".join(f"{name} = NULL" for name in emptied)
    db.execute_sql(f"UPDATE lead SET {assignments}, opted_out = 1, deleted_at = ? WHERE id = ?", (when, lead_id))
    return True



# --- the staff inbox (salesbot/inbox): topics, takeover, handoff -------------------------------------
# A takeover pauses the bot for a lead until `takeover_until`; a handoff is a takeover the lead asked
# for (by NULL) with `handoff_at` set until a person answers. Nothing here decides; inbox/ does.


@dataclass(frozen=True)
class InboxState:
    lead_id: int
    topic_id: int | None
    topic_chat_id: int | None
    takeover_at: datetime | None  # aware UTC
    takeover_by: int | None
    takeover_until: datetime | None
    handoff_at: datetime | None
    handoff_alerts: int

    def paused(self, now: datetime) -> bool:
        return self.takeover_until is not None and self.takeover_until > now


def _aware(value) -> datetime | None:
    moment = Lead.takeover_until.python_value(value)
    return moment.replace(tzinfo=UTC) if moment else None


_INBOX_COLUMNS = "id, topic_id, topic_chat_id, takeover_at, takeover_by, takeover_until, handoff_at, handoff_alerts"


def _inbox(row) -> InboxState | None:
    if row is None:
        return None
    return InboxState(row[0], row[1], row[2], _aware(row[3]), row[4], _aware(row[5]), _aware(row[6]), row[7])


def inbox_state(lead_id: int) -> InboxState | None:
    return _inbox(db.execute_sql(f"SELECT {_INBOX_COLUMNS} FROM lead WHERE id = ?", (lead_id,)).fetchone())


def message_author(outbox_id: int) -> tuple[str, int | None] | None:
    """(role, staff id) of the message an outbox row delivers."""
    return db.execute_sql("SELECT m.role, m.staff_id FROM outbox AS o JOIN message AS m ON m.id = o.message_id"
                          " WHERE o.id = ?", (outbox_id,)).fetchone()


def lead_by_topic(chat_id: int, topic_id: int) -> int | None:
    row = db.execute_sql("SELECT id FROM lead WHERE topic_chat_id = ? AND topic_id = ?", (chat_id, topic_id)).fetchone()
    return row[0] if row else None


def takeovers_ended(now: datetime) -> list[int]:
    rows = db.execute_sql("SELECT id FROM lead INDEXED BY lead_takeover WHERE takeover_until IS NOT NULL"
                          " AND takeover_until <= ?", (stamp(now),)).fetchall()
    return [lead_id for (lead_id,) in rows]


def handoffs_waiting() -> list[InboxState]:
    rows = db.execute_sql(f"SELECT {_INBOX_COLUMNS} FROM lead INDEXED BY lead_handoff WHERE handoff_at IS NOT NULL"
                          " ORDER BY handoff_at").fetchall()
    return [_inbox(row) for row in rows]


def set_topic(lead_id: int, chat_id: int | None, topic_id: int | None) -> None:
    """The lead's topic in the staff group (None: there is none, or staff deleted it)."""
    with db.atomic():
        db.execute_sql("UPDATE lead SET topic_chat_id = ?, topic_id = ? WHERE id = ?", (chat_id, topic_id, lead_id))


def record_staff_message(lead_id: int, role: str, text: str, staff_id: int | None, at: datetime) -> int:
    """A staff member's words to the lead (`manager`) or an internal note (`note`, never sent)."""
    assert role in ("manager", "note")
    with db.atomic():
        cursor = db.execute_sql("INSERT INTO message (lead_id, role, text, created_at, unanswered, staff_id)"
                                " VALUES (?, ?, ?, ?, 0, ?)", (lead_id, role, text, stamp(at), staff_id))
    return cursor.lastrowid


def take_over(lead_id: int, by: int | None, at: datetime, until: datetime, answered: bool = True) -> None:
    """A person has the conversation until `until` (a staff message extends it). `answered`: a person
    wrote to the lead, so a handoff waiting for one is over and the lead's messages are answered."""
    with db.atomic():
        db.execute_sql("UPDATE lead SET takeover_at = coalesce(takeover_at, ?), takeover_by = coalesce(?, takeover_by),"
                       " takeover_until = ? WHERE id = ?", (stamp(at), by, stamp(until), lead_id))
        if answered:
            db.execute_sql("UPDATE lead SET handoff_at = NULL, handoff_alerts = 0 WHERE id = ?", (lead_id,))
            db.execute_sql("UPDATE message SET unanswered = 0 WHERE lead_id = ? AND unanswered = 1", (lead_id,))


def release(lead_id: int) -> bool:
    """The bot has the conversation again; False when no takeover was on."""
    with db.atomic():
        cursor = db.execute_sql("UPDATE lead SET takeover_at = NULL, takeover_by = NULL, takeover_until = NULL,"
                                " handoff_at = NULL, handoff_alerts = 0 WHERE id = ? AND takeover_until IS NOT NULL",
                                (lead_id,))
    return cursor.rowcount == 1


RELEASED_FROM_TERMINAL = 0  # takeover_by while `leads release` waits for serve to give the lead back


def end_takeover(lead_id: int, now: datetime) -> None:
    """`leads release`: the takeover ends now; serve's periodic check (inbox.tick) gives the lead back
    and answers them (takeover_by 0 says who ended it, until then)."""
    with db.atomic():
        db.execute_sql("UPDATE lead SET takeover_until = ?, takeover_by = ? WHERE id = ? AND takeover_until > ?",
                       (stamp(now), RELEASED_FROM_TERMINAL, lead_id, stamp(now)))


def start_handoff(lead_id: int, at: datetime, until: datetime, reason: str = "") -> None:
    """The lead asked for a person: the bot pauses and the first alert goes out (and the webhook
    event `lead.handoff`, with the lead's words, when webhooks are on)."""
    with db.atomic():
        db.execute_sql("UPDATE lead SET handoff_at = ?, handoff_alerts = 1, takeover_at = coalesce(takeover_at, ?),"
                       " takeover_until = max(coalesce(takeover_until, ''), ?) WHERE id = ?",
                       (stamp(at), stamp(at), stamp(until), lead_id))
        events.emit("lead.handoff", lead_id, at=at, reason=reason)


def handoff_alerted(lead_id: int, alerts: int) -> None:
    with db.atomic():
        db.execute_sql("UPDATE lead SET handoff_alerts = ? WHERE id = ?", (alerts, lead_id))


def mark_cold_by_staff(lead_id: int, at: datetime) -> None:
    """Staff say the lead is cold: no reminders (a message from the lead makes it warm again)."""
    with db.atomic():
        before = _status_of(lead_id)
        db.execute_sql("UPDATE lead SET status = 'cold', cold_reason = 'staff' WHERE id = ?", (lead_id,))
        _log_status(lead_id, before, at)
