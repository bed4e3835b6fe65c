"""The one writer of the `outbox` table: rows queued, claimed in order per chat, and marked sent,
retried, failed or dropped (delivery.py decides which). The `message` rows it points at are written
by leads.py."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime

from salesbot.store import db, leads, stamp
from salesbot.transport import Button, Keyboard

Key = tuple[str, int]  # ("lead", lead id), ("chat", Telegram user id of a manager) or STAFF (the staff group)
STAFF: Key = ("staff", 0)  # every post to the staff group: one queue, paced by salesbot/inbox/poster.py


@dataclass(frozen=True)
class Row:
    id: int
    lead_id: int | None
    chat_id: int | None
    kind: str
    text: str
    buttons: Keyboard | None
    random_id: int
    attempts: int
    created_at: str
    meeting_id: int | None = None  # the meeting the message is about (checked again before sending)
    about: str | None = None  # meeting_reminder | no_show | staff_moved | staff_cancelled

    @property
    def key(self) -> Key:
        return ("lead", self.lead_id) if self.lead_id is not None else ("chat", self.chat_id)


def keyboard_json(buttons: Keyboard | None) -> str | None:
    return json.dumps([[[b.label, b.data] for b in row] for row in buttons], ensure_ascii=False) if buttons else None


def keyboard_of(value: str | None) -> Keyboard | None:
    return [[Button(label, data) for label, data in row] for row in json.loads(value)] if value else None


def random_id() -> int:
    """messages.sendMessage's random_id: a signed 64-bit number, the same on every attempt."""
    return random.getrandbits(64) - 2**63


def insert(lead_id, chat_id, message_id, kind, text, buttons, now, follow_up_step=None, meeting_id=None,
           about=None, forward_id=None) -> int:
    cursor = db.execute_sql(
        "INSERT INTO outbox (lead_id, chat_id, message_id, kind, text, buttons, random_id, state, attempts,"
        " not_before, created_at, follow_up_step, meeting_id, about, forward_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?, ?)",
        (lead_id, chat_id, message_id, kind, text, keyboard_json(buttons), random_id(), stamp(now), stamp(now),
         follow_up_step, meeting_id, about, forward_id))
    return cursor.lastrowid


def withdraw_about(meeting_id: int) -> int:
    """Staff changed the meeting: what is still queued about it (a reminder, the news of an earlier
    move) would be stale, so it goes, with the message it would have said. Returns how many."""
    with db.atomic():
        rows = db.execute_sql("SELECT id, message_id FROM outbox WHERE meeting_id = ? AND state = 'queued'",
                              (meeting_id,)).fetchall()
        for row_id, message_id in rows:
            db.execute_sql("DELETE FROM outbox WHERE id = ?", (row_id,))
            if message_id is not None:
                leads.forget_message(message_id)
    return len(rows)


def told_of(meeting_id: int) -> bool:
    """Whether the lead was sent the news of a staff move to this meeting."""
    return db.execute_sql("SELECT 1 FROM outbox WHERE meeting_id = ? AND about = 'staff_moved' AND state = 'sent'"
                          " LIMIT 1", (meeting_id,)).fetchone() is not None  # a staff command: rare, a scan is fine


# What a message about a meeting needs to be still true when it goes out (`stale_reason`).
_MEETING_NOW_SQL = """
SELECT m.status, m.starts_at, l.opted_out,
       EXISTS (SELECT 1 FROM meeting AS later WHERE later.lead_id = m.lead_id AND later.id > m.id)
FROM meeting AS m JOIN lead AS l ON l.id = m.lead_id WHERE m.id = ?
"""


def stale_reason(row: Row, now: datetime) -> str | None:
    """Why a queued message about a meeting is no longer true, or None: a reminder needs the meeting
    still booked (a move makes a new meeting, so also at that time), still ahead and the lead not
    opted out; the news of a staff move needs the new meeting booked and ahead; a no-show offer
    needs the meeting still a no-show, no meeting booked since, and the lead not opted out."""
    if row.about is None or row.meeting_id is None:
        return None
    found = db.execute_sql(_MEETING_NOW_SQL, (row.meeting_id,)).fetchone()
    if found is None:
        return "the meeting is gone"
    status, starts_at, opted_out, later = found
    if opted_out and row.about in ("meeting_reminder", "no_show"):
        return "the lead opted out"
    if row.about in ("meeting_reminder", "staff_moved"):
        if status != "booked":
            return f"the meeting is {status.replace('_', '-')}"
        if starts_at <= stamp(now):
            return "the meeting has started"
    if row.about == "no_show" and (status != "no_show" or later):
        return "the lead has booked again" if later else f"the meeting is {status.replace('_', '-')}"
    return None


_ROW_COLUMNS = ("id, lead_id, chat_id, kind, text, buttons, random_id, attempts, created_at, meeting_id, about,"
                " not_before")


def next_queued(key: Key) -> tuple[Row, str] | None:
    column = "lead_id" if key[0] == "lead" else "chat_id"
    row = db.execute_sql(f"SELECT {_ROW_COLUMNS} FROM outbox WHERE {column} = ? AND state = 'queued'"
                         " AND kind != 'staff' ORDER BY id LIMIT 1", (key[1],)).fetchone()
    if row is None:
        return None
    return Row(row[0], row[1], row[2], row[3], row[4], keyboard_of(row[5]), row[6], row[7], row[8], row[9],
               row[10]), row[11]


def due_keys(now: datetime) -> list[Key]:
    rows = db.execute_sql("SELECT DISTINCT lead_id, chat_id, kind = 'staff' FROM outbox WHERE state = 'queued'"
                          " AND not_before <= ?", (stamp(now),)).fetchall()
    keys = {STAFF if staff else ("lead", lead_id) if lead_id is not None else ("chat", chat_id)
            for lead_id, chat_id, staff in rows}
    return sorted(keys)


def mark_sent(row: Row, telegram_id: int | None, now: datetime) -> None:
    with db.atomic():
        db.execute_sql("UPDATE outbox SET state = 'sent', telegram_message_id = ?, attempts = attempts + 1,"
                       " sent_at = ?, error = NULL WHERE id = ?", (telegram_id, stamp(now), row.id))
        if row.kind == "reminder":
            leads.follow_up_sent(row.lead_id, now)


def mark_later(row: Row, error: str, at: datetime, count_attempt: bool) -> None:
    with db.atomic():
        db.execute_sql("UPDATE outbox SET attempts = attempts + ?, not_before = ?, error = ? WHERE id = ?",
                       (int(count_attempt), stamp(at), error, row.id))


def mark_failed(row: Row, error: str) -> None:
    with db.atomic():
        db.execute_sql("UPDATE outbox SET state = 'failed', attempts = attempts + 1, error = ? WHERE id = ?",
                       (error, row.id))


def drop(row: Row) -> None:
    """A message that is no longer to be sent: the row and the message it would have said go; for a
    reminder of the sweep the lead's claim is given back (a lead who wrote meanwhile has started over
    already). The claim of a message about a meeting stays: its meeting changed, or the lead said /stop."""
    with db.atomic():
        message_id = db.execute_sql("SELECT message_id FROM outbox WHERE id = ?", (row.id,)).fetchone()
        db.execute_sql("DELETE FROM outbox WHERE id = ?", (row.id,))
        if message_id and message_id[0] is not None:
            leads.forget_message(message_id[0])
        if row.kind == "reminder":
            leads.release_follow_up(row.lead_id)


def live_keyboard(lead_id: int) -> tuple[int, int | None, str | None] | None:
    """(outbox id, Telegram message id, what was pressed) of the last keyboard sent to the lead."""
    return db.execute_sql("SELECT id, telegram_message_id, pressed FROM outbox WHERE lead_id = ? AND state = 'sent'"
                          " AND buttons IS NOT NULL ORDER BY id DESC LIMIT 1", (lead_id,)).fetchone()


def showing(lead_id: int) -> Keyboard | None:
    """The buttons under our newest message that has any, unless one was pressed (what the lead sees)."""
    shown = last_keyboard(lead_id)
    return shown[1] if shown else None


def last_keyboard(lead_id: int) -> tuple[str, Keyboard] | None:
    """Our newest message with buttons and its buttons, unless one was pressed: (text, keyboard)."""
    row = db.execute_sql("SELECT text, buttons, pressed FROM outbox WHERE lead_id = ? AND buttons IS NOT NULL"
                         " ORDER BY id DESC LIMIT 1", (lead_id,)).fetchone()
    return (row[0], keyboard_of(row[1])) if row and row[2] is None else None


def press(lead_id: int, telegram_message_id: int | None, data: str) -> str:
    """A button pressed on one of our messages: `new` (act on it), `again` (the same choice pressed
    twice: do nothing) or `stale` (not the lead's current keyboard, or another choice on it)."""
    live = live_keyboard(lead_id)
    if live is None or (telegram_message_id is not None and live[1] != telegram_message_id):
        return "stale"
    with db.atomic():
        cursor = db.execute_sql("UPDATE outbox SET pressed = ? WHERE id = ? AND pressed IS NULL", (data, live[0]))
    if cursor.rowcount == 1:
        return "new"
    pressed = db.execute_sql("SELECT pressed FROM outbox WHERE id = ?", (live[0],)).fetchone()[0]
    return "again" if pressed == data else "stale"


def forget_lead(lead_id: int, words: list[str]) -> int:
    """`leads delete`: the lead's outbox rows go (sent or not), and so do the managers' notices that
    name the lead or quote it (a notice has no lead of its own: its text is searched for `words`, the
    lead's names and the start of each of its messages, so a notice about another lead of the same
    first name goes too: history, not a message still to send, is what is lost). Runs inside the
    caller's transaction; returns the rows deleted."""
    deleted = db.execute_sql("DELETE FROM outbox WHERE lead_id = ?", (lead_id,)).rowcount
    needles = [word.strip()[:100] for word in words if len(word.strip()) >= 2]  # a quote keeps the start
    if needles:
        notices = db.execute_sql("SELECT id, text FROM outbox WHERE chat_id IS NOT NULL").fetchall()
        doomed = [row_id for row_id, text in notices if any(needle in text for needle in needles)]
        for start in range(0, len(doomed), 500):
            chunk = doomed[start:start + 500]
            deleted += db.execute_sql(f"DELETE FROM outbox WHERE id IN ({', '.join('?' * len(chunk))})",
                                      chunk).rowcount
    return deleted


# --- posts to the staff group (salesbot/inbox): a line for a lead's topic, several sent as one post ---


@dataclass(frozen=True)
class StaffRow:
    id: int
    lead_id: int
    text: str
    buttons: Keyboard | None
    random_id: int
    attempts: int
    forward_id: int | None  # the lead's Telegram message to forward (media)


def queued_staff(now: datetime, limit: int = 500) -> list[StaffRow]:
    """The staff group's due posts, oldest first."""
    rows = db.execute_sql("SELECT id, lead_id, text, buttons, random_id, attempts, forward_id FROM outbox"
                          " INDEXED BY outbox_staff WHERE kind = 'staff' AND state = 'queued' AND not_before <= ?"
                          " ORDER BY id LIMIT ?", (stamp(now), limit)).fetchall()
    return [StaffRow(r[0], r[1], r[2], keyboard_of(r[3]), r[4], r[5], r[6]) for r in rows]


def next_staff_due() -> str | None:
    """When the first staff post that waits (a backoff) is due, as stored."""
    return db.execute_sql("SELECT min(not_before) FROM outbox INDEXED BY outbox_staff"
                          " WHERE kind = 'staff' AND state = 'queued'").fetchone()[0]


def _ids(ids: list[int]) -> str:
    return ",".join("?" * len(ids))


def staff_sent(ids: list[int], telegram_id: int | None, now: datetime) -> None:
    with db.atomic():
        db.execute_sql(f"UPDATE outbox SET state = 'sent', telegram_message_id = ?, attempts = attempts + 1,"
                       f" sent_at = ?, error = NULL WHERE id IN ({_ids(ids)})", (telegram_id, stamp(now), *ids))


def staff_later(ids: list[int], error: str, at: datetime, count_attempt: bool) -> None:
    with db.atomic():
        db.execute_sql(f"UPDATE outbox SET attempts = attempts + ?, not_before = ?, error = ?"
                       f" WHERE id IN ({_ids(ids)})", (int(count_attempt), stamp(at), error, *ids))


def staff_failed(ids: list[int], error: str) -> None:
    with db.atomic():
        db.execute_sql(f"UPDATE outbox SET state = 'failed', attempts = attempts + 1, error = ?"
                       f" WHERE id IN ({_ids(ids)})", (error, *ids))
