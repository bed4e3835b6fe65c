"""`salesbot leads delete ID --yes`: a lead is forgotten everywhere (152-ФЗ, the right to erasure).

In one write transaction each table's own writer removes what it holds of the lead: its messages,
names and Telegram id (store/leads.py), its outbox rows and the managers' notices naming or
quoting it (store/outbox.py), its webhook events (store/events.py). A table added later whose rows
belong to a lead (`REFERENCES lead ON DELETE CASCADE`: SQLite itself would delete them with the
lead) loses the lead's rows here too, unless it is one of the anonymous ones the funnel keeps: the
one place that writes a table it does not own, so that no future table can keep a forgotten lead. The
lead's row stays, emptied, so the funnel keeps an anonymous count (source, times, status history,
meetings, Claude calls).

Deleted is not yet gone from the files: SQLite leaves old content in free space and in the WAL.
So the transaction runs with `PRAGMA secure_delete = ON` (freed content is overwritten with zeros),
and afterwards the WAL is checkpointed into the database and truncated to nothing
(`wal_checkpoint(TRUNCATE)`; the -shm file holds only page numbers). Telethon's session files in
SALESBOT_HOME cache the users the bot met (name, username): the lead's entry goes from them too.
It is safe while `serve` runs:
serve's reply to the lead, if one is being decided, is refused (delivery.queue_to_lead), and the
checkpoint waits for serve's readers (retried for up to CHECKPOINT_SECONDS).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from salesbot.errors import NotFoundError, SalesbotError
from salesbot.store import db, events, leads, outbox, transaction

log = logging.getLogger(__name__)

# Tables that point at a lead and keep nothing that names it: the funnel needs them.
ANONYMOUS = {"lead_status_change", "meeting", "meeting_reminder", "llm_call"}
# Tables whose own writer forgets the lead (above); the rest pointing at `lead` lose its rows here.
OWNED = {"message", "outbox", "webhook_event"}
CHECKPOINT_SECONDS = 10.0
# A running serve's Telethon writes the entities it meets into its session file and commits them
# about once a minute (telethon/client/updates.py, the keepalive loop: "Do it every minute instead"),
# holding the file's write lock meanwhile: the delete waits for that commit, and then removes the
# lead's row whether it was committed long ago or in that very minute.
SESSION_WAIT_SECONDS = 75.0


@dataclass
class Forgotten:
    lead_id: int
    outbox_rows: int
    webhook_events: int
    other_rows: int
    wal_cleared: bool


def _tables_pointing_at_lead() -> list[tuple[str, str]]:
    found = []
    for (table,) in db.execute_sql("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        if table in ANONYMOUS or table in OWNED or table == "lead":
            continue
        for row in db.execute_sql(f'PRAGMA foreign_key_list("{table}")').fetchall():  # (id, seq, table, from,
            if row[2] == "lead" and row[6].upper() == "CASCADE":                      # to, on_update, on_delete, …)
                found.append((table, row[3]))
    return found


def forget(lead_id: int, now: datetime, *, sessions: Iterable[Path] = (), sleep=time.sleep) -> Forgotten:
    """Forget the lead; NotFoundError when there is none (or it was forgotten already). `sessions`:
    Telethon's session files, whose entity cache also holds the lead's name and username."""
    db.execute_sql("PRAGMA secure_delete = ON")
    with transaction():
        words = leads.lead_words(lead_id)
        found = leads.by_id(lead_id)
        telegram_id = found.telegram_id if found else None
        if not leads.forget(lead_id, now):
            raise NotFoundError(f"no lead with id {lead_id} to delete (see `salesbot leads list`)")
        outbox_rows = outbox.forget_lead(lead_id, words)
        webhook_events = events.drop_lead(lead_id)
        other = 0
        for table, column in _tables_pointing_at_lead():
            other += db.execute_sql(f'DELETE FROM "{table}" WHERE "{column}" = ?', (lead_id,)).rowcount
    cleared = _checkpoint(sleep)
    if telegram_id is not None:
        for session in sessions:
            _forget_in_session(session, telegram_id)
    log.info("lead %s forgotten: %d outbox row(s), %d webhook event(s), %d other row(s)", lead_id, outbox_rows,
             webhook_events, other)
    return Forgotten(lead_id, outbox_rows, webhook_events, other, cleared)


def _forget_in_session(path: Path, telegram_id: int) -> None:
    """Telethon caches every user it meets (id, access hash, username, phone, name) in its session
    file's `entities` table (telethon/sessions/sqlite.py): the lead's row goes there too, zeroed.
    The session is another program's file: a failure is logged, not raised."""
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=SESSION_WAIT_SECONDS)) as conn:
            conn.execute("PRAGMA secure_delete = ON")
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'entities'").fetchone():
                with conn:
                    conn.execute("DELETE FROM entities WHERE id = ?", (telegram_id,))
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # a no-op unless the session uses a WAL
    except sqlite3.Error as exc:
        log.warning("could not remove the lead from the Telegram session %s: %s", path.name, exc)


def _checkpoint(sleep) -> bool:
    """Copy the WAL into the database and truncate it; False when readers kept it busy throughout."""
    deadline = time.monotonic() + CHECKPOINT_SECONDS
    while True:
        busy, _, _ = db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return True
        if time.monotonic() >= deadline:
            return False
        sleep(0.2)


def check_confirmed(yes: bool, lead_id: int) -> None:
    if not yes:
        raise SalesbotError(f"deleting lead {lead_id} cannot be undone: its messages, name, username and Telegram id "
                            "are erased from the database; add --yes to do it")
