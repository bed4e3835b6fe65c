"""Webhook events (issue 22): the one writer of the `webhook_event` table.

An event is written in the same transaction as the change it reports (the lead writer calls `emit`
inside its own transaction), so a change and its event are stored together or not at all; `serve`
delivers them (salesbot/webhooks.py). Events are written only while webhooks are configured
(`configure`, from SALESBOT_WEBHOOK_URL): without a receiver they would only pile up.

The body is fixed when the event is written: every retry sends the same bytes, the same `id`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from salesbot.store.clock import to_utc_naive, utcnow
from salesbot.store.connection import db

TYPES = ("lead.created", "lead.status_changed", "lead.handoff", "meeting.booked", "meeting.moved",
         "meeting.cancelled", "meeting.done", "meeting.no_show")

_enabled = False


def configure(enabled: bool) -> None:
    """Whether this process writes webhook events (SALESBOT_WEBHOOK_URL is set)."""
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _enabled


def _iso(stored: str | None) -> str | None:
    if stored is None:
        return None
    return datetime.fromisoformat(stored).replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def _columns(table: str) -> set[str]:
    return {row[1] for row in db.execute_sql(f"PRAGMA table_info({table})").fetchall()}


def lead_payload(lead_id: int) -> dict | None:
    """The lead as a receiver sees it: who, where from, where in the funnel, what the model learned
    (`summary`, when this database has that column)."""
    summary = "summary" if "summary" in _columns("lead") else "NULL"
    row = db.execute_sql("SELECT id, telegram_id, username, first_name, status, source, created_at, last_message_at,"
                         f" {summary} FROM lead WHERE id = ?", (lead_id,)).fetchone()
    if row is None:
        return None
    keys = ("id", "telegram_id", "username", "first_name", "status", "source", "created_at", "last_message_at",
            "summary")
    lead = dict(zip(keys, row, strict=True))
    lead["created_at"], lead["last_message_at"] = _iso(lead["created_at"]), _iso(lead["last_message_at"])
    return lead


def meeting_payload(meeting_id: int) -> dict | None:
    row = db.execute_sql("SELECT id, starts_at, status, source, confirmed_at, cancelled_by, moved_to"
                         " FROM meeting WHERE id = ?", (meeting_id,)).fetchone()
    if row is None:
        return None
    keys = ("id", "starts_at", "status", "source", "confirmed_at", "cancelled_by", "moved_to")
    meeting = dict(zip(keys, row, strict=True))
    meeting["starts_at"], meeting["confirmed_at"] = _iso(meeting["starts_at"]), _iso(meeting["confirmed_at"])
    return meeting


def emit(event_type: str, lead_id: int, *, meeting_id: int | None = None, at: datetime | None = None,
         **extra) -> str | None:
    """Queue one event about a lead (and a meeting); returns its id, or None when webhooks are off.
    Call it inside the transaction that makes the change: the event then exists exactly when the
    change does. `extra` adds fields (`from`/`to` of a status change, `previous_meeting` of a move)."""
    if not _enabled:
        return None
    if event_type not in TYPES:
        raise ValueError(f"unknown webhook event {event_type!r}")
    stamp = to_utc_naive(at) if at is not None and at.tzinfo else (at or utcnow())
    event_id = str(uuid.uuid4())
    body = {"id": event_id, "type": event_type, "created_at": _iso(str(stamp)), "lead": lead_payload(lead_id),
            "meeting": meeting_payload(meeting_id) if meeting_id is not None else None, **extra}
    with db.atomic():
        db.execute_sql("INSERT INTO webhook_event (event_id, lead_id, type, body, state, attempts, not_before,"
                       " created_at) VALUES (?, ?, ?, ?, 'queued', 0, ?, ?)",
                       (event_id, lead_id, event_type, json.dumps(body, ensure_ascii=False), str(stamp), str(stamp)))
    return event_id


# --- the deliverer's side -------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    id: int
    event_id: str
    lead_id: int | None
    type: str
    body: str
    attempts: int
    created_at: datetime


def due(now: datetime, limit: int = 100) -> list[Event]:
    """Each lead's oldest queued event, when it is due: a later event of a lead waits for the earlier
    one (in order per lead)."""
    rows = db.execute_sql(
        "SELECT e.id, e.event_id, e.lead_id, e.type, e.body, e.attempts, e.created_at FROM webhook_event AS e"
        " WHERE e.id IN (SELECT min(id) FROM webhook_event WHERE state = 'queued' GROUP BY lead_id)"
        " AND e.not_before <= ? ORDER BY e.id LIMIT ?", (str(now), limit)).fetchall()
    return [Event(*row[:6], datetime.fromisoformat(row[6])) for row in rows]


def sent(event_id: int, now: datetime) -> None:
    with db.atomic():
        db.execute_sql("UPDATE webhook_event SET state = 'sent', sent_at = ?, attempts = attempts + 1, error = NULL"
                       " WHERE id = ?", (str(now), event_id))


def later(event_id: int, error: str, at: datetime) -> None:
    with db.atomic():
        db.execute_sql("UPDATE webhook_event SET attempts = attempts + 1, error = ?, not_before = ? WHERE id = ?",
                       (error, str(at), event_id))


def failed(event_id: int, error: str) -> None:
    with db.atomic():
        db.execute_sql("UPDATE webhook_event SET state = 'failed', attempts = attempts + 1, error = ? WHERE id = ?",
                       (error, event_id))


def next_due() -> datetime | None:
    row = db.execute_sql("SELECT min(not_before) FROM webhook_event WHERE state = 'queued'").fetchone()
    return datetime.fromisoformat(row[0]) if row and row[0] else None


def counts() -> dict[str, int]:
    """Events per state (doctor shows the failed ones)."""
    rows = db.execute_sql("SELECT state, count(*) FROM webhook_event GROUP BY state").fetchall()
    return {state: count for state, count in rows}


def drop_lead(lead_id: int) -> int:
    """A forgotten lead's events go, sent or not: their bodies carry the lead's name."""
    return db.execute_sql("DELETE FROM webhook_event WHERE lead_id = ?", (lead_id,)).rowcount
