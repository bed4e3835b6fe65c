"""Numbered migrations: each a list of SQL statements applied once, in order, inside one transaction,
and recorded in the `migrations` table (simonw/llm's migrations.py is the model). Never edit a
released migration: add the next one. Columns beyond the original schema's are nullable or carry an SQL
default so rows inserted by hand stay valid."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from peewee import SqliteDatabase

from salesbot.errors import StoreError
from salesbot.store.clock import utcnow

log = logging.getLogger(__name__)

M001_INITIAL = [
    """CREATE TABLE lead (
        id INTEGER PRIMARY KEY,
        telegram_id INTEGER UNIQUE,
        access_hash INTEGER,
        username TEXT,
        first_name TEXT,
        status TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'warm', 'hot', 'cold')),
        state TEXT,
        created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
        last_message_at DATETIME,
        follow_up_count INTEGER NOT NULL DEFAULT 0,
        last_follow_up_at DATETIME,
        opted_out INTEGER NOT NULL DEFAULT 0,
        cold_reason TEXT
    )""",
    """CREATE TABLE message (
        id INTEGER PRIMARY KEY,
        lead_id INTEGER NOT NULL REFERENCES lead (id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('lead', 'bot')),
        text TEXT NOT NULL,
        created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
    )""",
    """CREATE TABLE meeting (
        id INTEGER PRIMARY KEY,
        lead_id INTEGER NOT NULL REFERENCES lead (id) ON DELETE CASCADE,
        starts_at DATETIME NOT NULL,
        status TEXT NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'cancelled')),
        source TEXT NOT NULL CHECK (source IN ('slot', 'custom')),
        created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
    )""",
    """CREATE TABLE llm_call (
        id INTEGER PRIMARY KEY,
        lead_id INTEGER REFERENCES lead (id) ON DELETE SET NULL,
        purpose TEXT NOT NULL,
        model TEXT NOT NULL,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_input_tokens INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 1,
        duration_ms INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
    )""",
]

# The queries `leads list`, `leads show`, `meetings list`, `usage` and the reminder sweep make.
M002_INDEXES = [
    # Newest activity first, optionally per status: LIMIT 50 reads 50 index entries, no sort.
    "CREATE INDEX lead_activity ON lead (coalesce(last_message_at, created_at), id)",
    "CREATE INDEX lead_status_activity ON lead (status, coalesce(last_message_at, created_at), id)",
    "CREATE INDEX message_lead ON message (lead_id, id)",
    "CREATE INDEX meeting_lead ON meeting (lead_id, starts_at)",
    "CREATE INDEX meeting_upcoming ON meeting (status, starts_at)",
    "CREATE INDEX llm_call_created ON llm_call (created_at)",
]

# The dialogue: unanswered lead messages (Claude was unavailable), the own-time proposal awaiting
# confirmation (it survives a restart), and one booked meeting per start time (booking races lose
# in the database, not in a check-then-insert).
M003_DIALOGUE = [
    "ALTER TABLE message ADD COLUMN unanswered INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE lead ADD COLUMN pending_time DATETIME",
    "CREATE UNIQUE INDEX meeting_booked_start ON meeting (starts_at) WHERE status = 'booked'",
]

# Reminders: why a lead is opted out (its /stop, or Telegram saying it is unreachable), and an index
# that holds exactly the leads the sweep may remind, so a sweep reads only those.
M004_FOLLOW_UPS = [
    "ALTER TABLE lead ADD COLUMN opted_out_reason TEXT",
    "CREATE INDEX lead_follow_up ON lead (id) WHERE status IN ('new', 'warm') AND opted_out = 0"
    " AND telegram_id IS NOT NULL AND access_hash IS NOT NULL AND follow_up_count < 2",
]

# Each column means one thing: `pending_time` is a time awaiting the lead's confirmation; a day the
# lead named without a time gets its own column (it was stored as local noon in `pending_time`).
# The old noon is moved to its date as seen one hour later in UTC, which is the local date for
# every zone from UTC-10 to UTC+12; the state is a half-finished question, so nothing else is lost.
M005_PENDING_DAY = [
    "ALTER TABLE lead ADD COLUMN pending_day DATE",
    "UPDATE lead SET pending_day = date(pending_time, '+1 hours'), pending_time = NULL"
    " WHERE state = 'MEETING_CUSTOM_TIME' AND pending_time IS NOT NULL",
]

# What a call to Claude needs for support and for true prices: the request id, why the answer
# stopped, the thinking share of the output, and cache writes split by TTL (5m and 1h are priced
# 1.25x and 2x the input price); the old total stays filled for queries that read it.
M006_LLM_CALLS = [
    "ALTER TABLE llm_call ADD COLUMN request_id TEXT",
    "ALTER TABLE llm_call ADD COLUMN stop_reason TEXT",
    "ALTER TABLE llm_call ADD COLUMN thinking_tokens INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE llm_call ADD COLUMN cache_creation_5m_input_tokens INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE llm_call ADD COLUMN cache_creation_1h_input_tokens INTEGER NOT NULL DEFAULT 0",
]

# Delivery (the outbox, delivery.py): every message to a lead or a manager is a row with a state,
# `sent` only once Telegram accepted it. A lead's message keeps Telegram's id, unique per lead, so an
# update replayed after a restart is not stored (or answered) twice.
M007_DELIVERY = [
    """CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        lead_id INTEGER REFERENCES lead (id) ON DELETE CASCADE,
        chat_id INTEGER,
        message_id INTEGER REFERENCES message (id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('reply', 'notice', 'reminder')),
        text TEXT NOT NULL,
        buttons TEXT,
        random_id INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),
        telegram_message_id INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        pressed TEXT,
        not_before DATETIME NOT NULL,
        created_at DATETIME NOT NULL,
        sent_at DATETIME,
        CHECK ((lead_id IS NULL) != (chat_id IS NULL))
    )""",
    "CREATE INDEX outbox_queued ON outbox (not_before) WHERE state = 'queued'",
    "CREATE INDEX outbox_lead ON outbox (lead_id, id)",
    "CREATE INDEX outbox_chat ON outbox (chat_id, id) WHERE chat_id IS NOT NULL",
    "CREATE INDEX outbox_message ON outbox (message_id)",
    "ALTER TABLE message ADD COLUMN telegram_message_id INTEGER",
    "CREATE UNIQUE INDEX message_telegram_id ON message (lead_id, telegram_message_id)"
    " WHERE role = 'lead' AND telegram_message_id IS NOT NULL",
]

# Meetings that happen: the outcome (`done`, `no_show`) joins the statuses, which SQLite can only do by
# rebuilding the table (its CHECK cannot change in place: create, copy, drop, rename, then the indexes
# again, the unique booked-start one among them); the lead's confirmation, who cancelled and why,
# the meeting a moved one became, when the outcome was marked; and a log of what was sent about
# each meeting (reminders before it, the no-show offer), one row each, so nothing goes twice.
M008_MEETINGS = [
    """CREATE TABLE meeting_new (
        id INTEGER PRIMARY KEY,
        lead_id INTEGER NOT NULL REFERENCES lead (id) ON DELETE CASCADE,
        starts_at DATETIME NOT NULL,
        status TEXT NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'cancelled', 'done', 'no_show')),
        source TEXT NOT NULL CHECK (source IN ('slot', 'custom')),
        created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
        confirmed_at DATETIME,
        cancelled_at DATETIME,
        cancelled_by TEXT CHECK (cancelled_by IN ('lead', 'staff')),
        cancel_reason TEXT,
        moved_to INTEGER,
        outcome_at DATETIME
    )""",
    "INSERT INTO meeting_new (id, lead_id, starts_at, status, source, created_at)"
    " SELECT id, lead_id, starts_at, status, source, created_at FROM meeting",
    "DROP TABLE meeting",
    "ALTER TABLE meeting_new RENAME TO meeting",
    "CREATE INDEX meeting_lead ON meeting (lead_id, starts_at)",
    "CREATE INDEX meeting_upcoming ON meeting (status, starts_at)",
    "CREATE UNIQUE INDEX meeting_booked_start ON meeting (starts_at) WHERE status = 'booked'",
    """CREATE TABLE meeting_reminder (
        id INTEGER PRIMARY KEY,
        meeting_id INTEGER NOT NULL REFERENCES meeting (id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
        UNIQUE (meeting_id, kind)
    )""",
]

# Reminders that sell (issue 14). Hot leads without a meeting are reminded too, so the sweep's
# population changes: a partial index holds exactly the leads that may ever be reminded, with the
# columns the due test reads (so the time test runs on the index, and the table row is read only for
# a lead due by time). The sweep names it (INDEXED BY): its plan must not depend on statistics
# that production databases never have (nobody runs ANALYZE on them). The old index goes: nothing
# reads it and every write to a lead paid for it. Unanswered lead messages get an index of their
# own (the sweep asks "does this lead have one?" for every lead). An outbox row of the reminder
# sweep says which reminder it is, for `follow-ups stats`.
M009_FOLLOW_UP_PLAN = [
    "CREATE INDEX lead_reminder ON lead (id, opted_out, follow_up_count, last_message_at, last_follow_up_at, status)"
    " WHERE status IN ('new', 'warm', 'hot') AND telegram_id IS NOT NULL AND access_hash IS NOT NULL"
    " AND follow_up_count < 2",
    "DROP INDEX lead_follow_up",
    "CREATE INDEX message_unanswered ON message (lead_id) WHERE unanswered = 1",
    "ALTER TABLE outbox ADD COLUMN follow_up_step TEXT"
    " CHECK (follow_up_step IN ('follow_up_1', 'follow_up_2', 'hot_1', 'hot_2'))",
    "CREATE INDEX outbox_follow_up ON outbox (sent_at) WHERE follow_up_step IS NOT NULL AND state = 'sent'",
    # `leads list` counts each lead's undelivered messages: through outbox_lead that read every row of
    # every lead's outbox (1.2 s of a 100k-lead listing); failed rows are few.
    "CREATE INDEX outbox_failed ON outbox (lead_id) WHERE state = 'failed'",
]


def widen_check(table: str, narrow: str, wide: str, migration: str) -> Callable[[SqliteDatabase], None]:
    """A step that lets a CHECK accept more values. SQLite cannot change a CHECK in place, so the table
    is rebuilt the documented way (sqlite.org/lang_altertable.html, "Making Other Kinds Of Table
    Schema Changes"): with foreign keys off (migrate does that for FOREIGN_KEYS_OFF: a DROP TABLE with
    them on would first delete, by ON DELETE CASCADE, every row that refers to the table), a new table
    from the stored CREATE statement with only the CHECK widened, every row copied, the old one
    dropped, the new one renamed, its indexes created again from their stored SQL. Copying the stored
    definition keeps any column a later migration may have added before this one ran."""

    def step(database: SqliteDatabase) -> None:
        (table_sql,) = database.execute_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                                            (table,)).fetchone()
        if narrow not in table_sql:
            raise StoreError(f"migration {migration}: the {table} table's CHECK is not the one this migration "
                             "widens; nothing was changed")
        indexes = [sql for (sql,) in database.execute_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,))]
        renamed = re.sub(rf'^CREATE TABLE\s+("?){table}\1', f"CREATE TABLE {table}_new", table_sql, count=1)
        database.execute_sql(renamed.replace(narrow, wide))
        database.execute_sql(f"INSERT INTO {table}_new SELECT * FROM {table}")
        database.execute_sql(f"DROP TABLE {table}")
        database.execute_sql(f"ALTER TABLE {table}_new RENAME TO {table}")
        for sql in indexes:
            database.execute_sql(sql)

    return step


_lead_status_takes_lost = widen_check("lead", "CHECK (status IN ('new', 'warm', 'hot', 'cold'))",
                                      "CHECK (status IN ('new', 'warm', 'hot', 'cold', 'lost'))", "010")


# The conversation (issue 19): what the model learned of a lead (`summary`, rewritten whole each turn);
# `lost` for a lead who refused (never reminded: lead_reminder holds new, warm and hot only); and
# which words of a bot message are the model's (`model_chars`: the first that many characters; the
# rest, or all of it at 0, the bot's own service text — a greeting, a slot offer, «записал вас…»), so
# the model is never shown the engine's words as its own. NULL (messages from before): all the model's.
M010_CONVERSATION: list[str | Callable[[SqliteDatabase], None]] = [
    "ALTER TABLE lead ADD COLUMN summary TEXT",
    _lead_status_takes_lost,
    "ALTER TABLE message ADD COLUMN model_chars INTEGER",
]
FOREIGN_KEYS_OFF = {"010_conversation", "014_staff_moves"}  # migrations that rebuild a table others refer to


# The staff inbox (issue 20). A staff member's words to a lead (`manager`, with their Telegram id in
# `staff_id`) and internal notes (`note`, never sent) join the message roles, and posts to the staff
# group (`staff`) the outbox kinds. Both lists are CHECK constraints, which SQLite cannot alter; a
# rebuild would copy every message and outbox row (and needs foreign keys off, or it cascades). A CHECK
# that allows more values changes nothing on disk, so the stored CREATE statement is widened in
# place, SQLite's own procedure for such changes (sqlite.org/lang_altertable.html#otheralter:
# writable_schema, then schema_version + 1, which makes every connection re-read the schema).
# The lead gets its topic in the staff group (and which group it is in: a new group gets new
# topics), the takeover (since, by whom — NULL for the terminal — and until when) and the handoff
# (when the lead asked for a person, how many alerts went out). A staff post of a lead's media
# forwards the lead's Telegram message (`forward_id`).
def _widen_checks(database: SqliteDatabase) -> None:
    version = database.execute_sql("PRAGMA schema_version").fetchone()[0]
    database.execute_sql("PRAGMA writable_schema = ON")
    database.execute_sql(
        "UPDATE sqlite_master SET sql = replace(sql, 'CHECK (role IN (''lead'', ''bot''))',"
        " 'CHECK (role IN (''lead'', ''bot'', ''manager'', ''note''))') WHERE type = 'table' AND name = 'message'")
    database.execute_sql(
        "UPDATE sqlite_master SET sql = replace(sql, 'CHECK (kind IN (''reply'', ''notice'', ''reminder''',"
        " 'CHECK (kind IN (''reply'', ''notice'', ''reminder'', ''staff''') WHERE type = 'table' AND name = 'outbox'")
    database.execute_sql(f"PRAGMA schema_version = {version + 1}")
    database.execute_sql("PRAGMA writable_schema = OFF")


M011_INBOX: list[str | Callable[[SqliteDatabase], None]] = [
    _widen_checks,
    "ALTER TABLE message ADD COLUMN staff_id INTEGER",
    "ALTER TABLE lead ADD COLUMN topic_id INTEGER",
    "ALTER TABLE lead ADD COLUMN topic_chat_id INTEGER",
    "ALTER TABLE lead ADD COLUMN takeover_at DATETIME",
    "ALTER TABLE lead ADD COLUMN takeover_by INTEGER",
    "ALTER TABLE lead ADD COLUMN takeover_until DATETIME",
    "ALTER TABLE lead ADD COLUMN handoff_at DATETIME",
    "ALTER TABLE lead ADD COLUMN handoff_alerts INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE outbox ADD COLUMN forward_id INTEGER",
    "CREATE UNIQUE INDEX lead_topic ON lead (topic_chat_id, topic_id) WHERE topic_id IS NOT NULL",
    "CREATE INDEX lead_takeover ON lead (takeover_until) WHERE takeover_until IS NOT NULL",
    "CREATE INDEX lead_handoff ON lead (handoff_at) WHERE handoff_at IS NOT NULL",
    "CREATE INDEX outbox_staff ON outbox (id) WHERE kind = 'staff' AND state = 'queued'",
]

# The owner's view (issue 22). Where a lead came from (`source`, the deep link's start parameter),
# when the bot first answered it (`first_answer_at`: the funnel's "answered" and its time to answer,
# kept on the lead so they survive `leads delete`), and when a lead was forgotten (`deleted_at`: the
# row stays, anonymous, so the funnel still counts it). `lead_status_change` is the history of
# statuses ("ever warm" in the funnel), backfilled from what is known: a creation row per lead, a
# meeting means the lead was hot when it was first booked, and any other status was reached by the
# lead's last activity. `webhook_event` holds events for CRMs until `serve` delivers them, in order
# per lead (webhook_event_queued), each with an id that stays the same on every retry.
# `budget_alert` remembers which spend alerts managers had in which month (once each).
M012_OWNER: list[str | Callable[[SqliteDatabase], None]] = [
    "ALTER TABLE lead ADD COLUMN source TEXT",
    "ALTER TABLE lead ADD COLUMN first_answer_at DATETIME",
    "ALTER TABLE lead ADD COLUMN deleted_at DATETIME",
    "UPDATE lead SET first_answer_at = (SELECT m.created_at FROM message AS m INDEXED BY message_lead"
    " WHERE m.lead_id = lead.id AND m.role = 'bot' ORDER BY m.id LIMIT 1)",
    """CREATE TABLE lead_status_change (
        id INTEGER PRIMARY KEY,
        lead_id INTEGER NOT NULL REFERENCES lead (id) ON DELETE CASCADE,
        at DATETIME NOT NULL,
        from_status TEXT,
        to_status TEXT NOT NULL
    )""",
    "CREATE INDEX lead_status_change_lead ON lead_status_change (lead_id, to_status)",
    "INSERT INTO lead_status_change (lead_id, at, from_status, to_status) SELECT id, created_at, NULL, 'new' FROM lead",
    "INSERT INTO lead_status_change (lead_id, at, from_status, to_status)"
    " SELECT lead_id, min(created_at), 'new', 'hot' FROM meeting GROUP BY lead_id",
    "INSERT INTO lead_status_change (lead_id, at, from_status, to_status)"
    " SELECT l.id, max(coalesce(l.last_follow_up_at, l.last_message_at, l.created_at),"
    " coalesce(l.last_message_at, l.created_at)),"
    " CASE WHEN EXISTS (SELECT 1 FROM meeting AS m WHERE m.lead_id = l.id) THEN 'hot' ELSE 'new' END, l.status"
    " FROM lead AS l WHERE l.status != 'new'"
    " AND NOT (l.status = 'hot' AND EXISTS (SELECT 1 FROM meeting AS m WHERE m.lead_id = l.id))",
    """CREATE TABLE webhook_event (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        lead_id INTEGER REFERENCES lead (id) ON DELETE CASCADE,
        type TEXT NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        not_before DATETIME NOT NULL,
        created_at DATETIME NOT NULL,
        sent_at DATETIME
    )""",
    "CREATE INDEX webhook_event_queued ON webhook_event (lead_id, id) WHERE state = 'queued'",
    "CREATE INDEX webhook_event_lead ON webhook_event (lead_id)",
    """CREATE TABLE budget_alert (
        month TEXT NOT NULL,
        level INTEGER NOT NULL,
        at DATETIME NOT NULL,
        PRIMARY KEY (month, level)
    )""",
]

# Trust (issue 23). An outbox row that depends on a meeting names it and what it says about it
# (`about`: `meeting_reminder`, `no_show`, `staff_moved`, `staff_cancelled`), so the deliverer checks the
# meeting again just before sending and staff changes withdraw what they make stale.
M013_TRUST = [
    "ALTER TABLE outbox ADD COLUMN meeting_id INTEGER",
    "ALTER TABLE outbox ADD COLUMN about TEXT"
    " CHECK (about IN ('meeting_reminder', 'no_show', 'staff_moved', 'staff_cancelled'))",
    "CREATE INDEX outbox_meeting ON outbox (meeting_id) WHERE meeting_id IS NOT NULL AND state = 'queued'",
]

# A meeting staff moved (`meetings move`) is the staff's booking, not the lead's slot or own time:
# its source is `staff`, so reports can tell who set the time.
M014_STAFF_MOVES: list[str | Callable[[SqliteDatabase], None]] = [
    widen_check("meeting", "CHECK (source IN ('slot', 'custom'))", "CHECK (source IN ('slot', 'custom', 'staff'))",
                "014"),
]

MIGRATIONS: list[tuple[str, list[str | Callable[[SqliteDatabase], None]]]] = [
    ("001_initial", M001_INITIAL),
    ("002_indexes", M002_INDEXES),
    ("003_dialogue", M003_DIALOGUE),
    ("004_follow_ups", M004_FOLLOW_UPS),
    ("005_pending_day", M005_PENDING_DAY),
    ("006_llm_calls", M006_LLM_CALLS),
    ("007_delivery", M007_DELIVERY),
    ("008_meetings", M008_MEETINGS),
    ("009_follow_up_plan", M009_FOLLOW_UP_PLAN),
    ("010_conversation", M010_CONVERSATION),
    ("011_inbox", M011_INBOX),
    ("012_owner", M012_OWNER),
    ("013_trust", M013_TRUST),
    ("014_staff_moves", M014_STAFF_MOVES),
]


def check_current(database: SqliteDatabase, path: Path) -> None:
    """A read-only database is read as it is: fine when no migration is pending."""
    applied = {row[0] for row in database.execute_sql("SELECT name FROM migrations")}
    pending = [name for name, _ in MIGRATIONS if name not in applied]
    if pending:
        raise StoreError(f"the database {path} is read-only for this user and needs upgrading "
                         f"({pending[0]} and later); run salesbot once as its owner")
    log.debug("the database %s is read-only for this user: reading only", path)


def migrate(database: SqliteDatabase, quiet: bool = False) -> list[str]:
    """Apply the pending migrations; return the names applied (logged, unless the file is new)."""
    database.execute_sql(
        "CREATE TABLE IF NOT EXISTS migrations ("
        " id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
        " applied_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    known = [name for name, _ in MIGRATIONS]
    applied = {row[0] for row in database.execute_sql("SELECT name FROM migrations")}
    newer = sorted(applied - set(known))
    if newer:
        raise StoreError(
            f"the database {database.database} was written by a newer salesbot "
            f"(it has migration {newer[-1]}, this version knows up to {known[-1]}); upgrade salesbot"
        )
    done = []
    for name, statements in MIGRATIONS:
        if name in applied:
            continue
        rebuilds = name in FOREIGN_KEYS_OFF
        if rebuilds:  # only outside a transaction does this pragma take effect
            database.execute_sql("PRAGMA foreign_keys = OFF")
        try:
            with database.atomic():  # BEGIN IMMEDIATE: a second process starting now waits, then skips
                if database.execute_sql("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
                    continue
                for statement in statements:
                    if callable(statement):
                        statement(database)
                    else:
                        database.execute_sql(statement)
                if rebuilds and database.execute_sql("PRAGMA foreign_key_check").fetchone():
                    raise StoreError(f"migration {name} would leave rows pointing at nothing; nothing was changed")
                database.execute_sql(
                    "INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, str(utcnow()))
                )
        finally:
            if rebuilds:
                database.execute_sql("PRAGMA foreign_keys = ON")
        log.log(logging.DEBUG if quiet else logging.INFO, "applied migration %s", name)
        done.append(name)
    return done
