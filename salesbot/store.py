"""The SQLite store: Peewee models, the connection, and numbered migrations.

Times are naive UTC, stored the way Peewee's DateTimeField stores them (DESIGN.md). `serve` and the
cron sweep use the same file at once, so the database runs in WAL mode with a busy timeout and
every write transaction starts with BEGIN IMMEDIATE: a writer waits for the lock up front instead of
failing half-way when it tries to upgrade a read lock.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from peewee import (
    BigIntegerField,
    BooleanField,
    DatabaseError,
    DatabaseProxy,
    DateField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    IntegrityError,
    Model,
    SqliteDatabase,
    TextField,
)

from salesbot.errors import StoreError

log = logging.getLogger(__name__)

LEAD_STATUSES = ("new", "warm", "hot", "cold")
BUSY_TIMEOUT_MS = 10_000

db = DatabaseProxy()


def append_llm_call(database: SqliteDatabase, row: dict) -> None:
    """A ledger row written to `database` itself, whatever the models are bound to: `salesbot chat`
    rehearses in a sandbox database, and what its Claude calls cost belongs in the real ledger."""
    columns = {field.column_name for field in LlmCall._meta.sorted_fields} - {"id"}
    values = {key: value for key, value in row.items() if key in columns}
    values.setdefault("created_at", str(utcnow()))
    with database.atomic():
        database.execute_sql(f"INSERT INTO llm_call ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                             tuple(values.values()))


def transaction():
    """One write transaction (BEGIN IMMEDIATE; a savepoint when already inside one)."""
    return db.atomic()


def utcnow() -> datetime:
    """Now as naive UTC, the storage convention (freezegun-friendly)."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_utc_naive(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is required")
    return moment.astimezone(UTC).replace(tzinfo=None)


def to_local(stored: datetime, tz: ZoneInfo) -> datetime:
    return stored.replace(tzinfo=UTC).astimezone(tz)


_LOCKED_HINT = " (another salesbot process holds a long write; try again)"


def _is_locked(reason: str) -> bool:
    return "locked" in reason or "busy" in reason


def damaged(path: str | Path, reason: str) -> StoreError:
    return StoreError(f"the database {path} is damaged (SQLite says: {reason}); stop salesbot, keep a copy of the "
                      f"file, run `sqlite3 {path} 'PRAGMA integrity_check'` to see what is hit, then restore a "
                      "backup or rebuild it with sqlite3's `.recover`")


def _translated(path: str, exc: Exception) -> StoreError:
    reason = str(exc) or exc.__class__.__name__
    if _is_locked(reason):
        reason += _LOCKED_HINT
    elif "malformed" in reason or "not a database" in reason:
        return damaged(path, reason)
    elif "readonly" in reason or "read-only" in reason:
        return StoreError(f"the database {path} is read-only for this user: only reading commands work "
                          f"(SQLite says: {reason})")
    elif "full" in reason:
        return StoreError(f"disk full: cannot write to the database {path}; free some space "
                          f"(nothing was half-written; SQLite says: {reason})")
    return StoreError(f"the database failed: {reason}")


class Database(SqliteDatabase):
    """SqliteDatabase whose failures (locked past the busy timeout, disk full, read-only file, damage)
    surface as StoreError, so no caller sees a raw OperationalError. IntegrityError passes through:
    it is a constraint doing its job (a booking race), which the caller decides about."""

    def _guard(self, call, *args):
        try:
            return call(*args)
        except IntegrityError:
            raise
        except DatabaseError as exc:  # OperationalError among them
            raise _translated(self.database, exc) from exc

    def execute_sql(self, sql, params=None):
        try:
            return self._guard(super().execute_sql, sql, params)
        except StoreError as exc:
            if isinstance(sql, str) and sql.startswith("ROLLBACK") and _already_rolled_back(exc):
                return None  # see rollback(): the error that undid the transaction is the one to report
            raise

    def begin(self, lock_type=None):
        return self._guard(super().begin, lock_type)

    def commit(self):
        return self._guard(super().commit)

    def rollback(self):
        # After SQLITE_FULL (and some I/O errors) SQLite has already rolled the transaction back;
        # a second ROLLBACK would replace the real reason ("disk full") with "cannot rollback".
        try:
            return self._guard(super().rollback)
        except StoreError as exc:
            if not _already_rolled_back(exc):
                raise


def _already_rolled_back(exc: Exception) -> bool:
    return "no transaction is active" in str(exc) or "no such savepoint" in str(exc)


class BaseModel(Model):
    class Meta:
        database = db


class Lead(BaseModel):
    telegram_id = BigIntegerField(null=True, unique=True)
    access_hash = BigIntegerField(null=True)
    username = TextField(null=True)
    first_name = TextField(null=True)
    status = TextField(default="new")
    state = TextField(null=True)
    created_at = DateTimeField(default=utcnow)
    last_message_at = DateTimeField(null=True)
    follow_up_count = IntegerField(default=0)
    last_follow_up_at = DateTimeField(null=True)
    opted_out = BooleanField(default=False)
    cold_reason = TextField(null=True)
    pending_time = DateTimeField(null=True)  # own time understood, awaiting the lead's confirmation
    opted_out_reason = TextField(null=True)  # stop (the lead's /stop), or why Telegram cannot reach them
    pending_day = DateField(null=True)  # a day the lead named without a time ("завтра"), local to SALESBOT_TZ

    class Meta:
        table_name = "lead"

    @property
    def display_name(self) -> str:
        return display_name(self.first_name, self.username, self.id)


def display_name(first_name: str | None, username: str | None, lead_id: int | None = None) -> str:
    """How staff see a lead: `Анна @anna`, `@anna`, `Анна`, or `lead 7` when Telegram gave neither."""
    name = " ".join(part for part in (first_name or "", f"@{username}" if username else "") if part)
    return name or (f"lead {lead_id}" if lead_id is not None else "—")


class Message(BaseModel):
    lead = ForeignKeyField(Lead, column_name="lead_id", backref="messages", on_delete="CASCADE")
    role = TextField()  # lead | bot
    text = TextField()
    created_at = DateTimeField(default=utcnow)
    unanswered = BooleanField(default=False)  # a lead message Claude has not answered (yet)
    telegram_message_id = BigIntegerField(null=True)  # a lead message: Telegram's id of it

    class Meta:
        table_name = "message"


class Meeting(BaseModel):
    lead = ForeignKeyField(Lead, column_name="lead_id", backref="meetings", on_delete="CASCADE")
    starts_at = DateTimeField()
    status = TextField(default="booked")  # booked | cancelled | done | no_show
    source = TextField()  # slot | custom
    created_at = DateTimeField(default=utcnow)
    confirmed_at = DateTimeField(null=True)  # the lead pressed «Подтверждаю»
    cancelled_at = DateTimeField(null=True)
    cancelled_by = TextField(null=True)  # lead | staff (a moved meeting: moved_to is set)
    cancel_reason = TextField(null=True)  # what staff gave with --reason
    moved_to = IntegerField(null=True)  # the meeting that replaced this one
    outcome_at = DateTimeField(null=True)  # when staff marked it done or no_show

    class Meta:
        table_name = "meeting"


class MeetingReminder(BaseModel):
    """What was sent about a meeting, once each: a reminder before it (`24h`, `2h`…) or `no_show`."""

    meeting = ForeignKeyField(Meeting, column_name="meeting_id", backref="reminders", on_delete="CASCADE")
    kind = TextField()
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "meeting_reminder"


class Outbox(BaseModel):
    """A message on its way to a lead or a manager (delivery.py owns these rows)."""

    lead = ForeignKeyField(Lead, column_name="lead_id", null=True, backref="outbox", on_delete="CASCADE")
    chat_id = BigIntegerField(null=True)  # a manager's Telegram id, for a notice
    message = ForeignKeyField(Message, column_name="message_id", null=True, on_delete="CASCADE")
    kind = TextField()  # reply | notice | reminder
    text = TextField()
    buttons = TextField(null=True)
    random_id = BigIntegerField()
    state = TextField(default="queued")  # queued | sent | failed
    telegram_message_id = BigIntegerField(null=True)
    attempts = IntegerField(default=0)
    error = TextField(null=True)
    pressed = TextField(null=True)
    not_before = DateTimeField()
    created_at = DateTimeField(default=utcnow)
    sent_at = DateTimeField(null=True)
    follow_up_step = TextField(null=True)  # a reminder of the sweep: follow_up_1 | follow_up_2 | hot_1 | hot_2

    class Meta:
        table_name = "outbox"


class LlmCall(BaseModel):
    lead = ForeignKeyField(Lead, column_name="lead_id", null=True, backref="llm_calls", on_delete="SET NULL")
    purpose = TextField()
    model = TextField()
    input_tokens = IntegerField(default=0)
    output_tokens = IntegerField(default=0)
    cache_creation_input_tokens = IntegerField(default=0)
    cache_read_input_tokens = IntegerField(default=0)
    attempts = IntegerField(default=1)
    duration_ms = IntegerField(default=0)
    error = TextField(null=True)
    created_at = DateTimeField(default=utcnow)
    request_id = TextField(null=True)  # the API's request-id, to quote to Anthropic support
    stop_reason = TextField(null=True)
    thinking_tokens = IntegerField(default=0)  # part of output_tokens
    cache_creation_5m_input_tokens = IntegerField(default=0)  # the two add up to cache_creation_input_tokens
    cache_creation_1h_input_tokens = IntegerField(default=0)

    class Meta:
        table_name = "llm_call"


# --- migrations ---------------------------------------------------------------------------------
# Each migration is a list of SQL statements applied once, in order, inside one transaction, and
# recorded in the `migrations` table. Never edit a released migration: add the next one. Columns
# beyond DESIGN.md's are nullable or carry an SQL default so rows inserted by hand stay valid.

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

MIGRATIONS: list[tuple[str, list[str]]] = [
    ("001_initial", M001_INITIAL),
    ("002_indexes", M002_INDEXES),
    ("003_dialogue", M003_DIALOGUE),
    ("004_follow_ups", M004_FOLLOW_UPS),
    ("005_pending_day", M005_PENDING_DAY),
    ("006_llm_calls", M006_LLM_CALLS),
    ("007_delivery", M007_DELIVERY),
    ("008_meetings", M008_MEETINGS),
    ("009_follow_up_plan", M009_FOLLOW_UP_PLAN),
]


def writable(path: Path) -> bool:
    """Whether this user may write the database: the file and its folder (WAL keeps files beside it)."""
    import os

    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def _check_current(database: SqliteDatabase, path: Path) -> None:
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
        with database.atomic():  # BEGIN IMMEDIATE: a second process starting now waits, then skips
            if database.execute_sql("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
                continue
            for statement in statements:
                database.execute_sql(statement)
            database.execute_sql(
                "INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, str(utcnow()))
            )
        log.log(logging.DEBUG if quiet else logging.INFO, "applied migration %s", name)
        done.append(name)
    return done


def open_database(path: Path, busy_timeout_ms: int | None = None) -> SqliteDatabase:
    """Open (creating if needed) and migrate the database, and bind the models to it. `busy_timeout_ms`
    bounds how long one statement waits for another process's write (default BUSY_TIMEOUT_MS)."""
    busy = busy_timeout_ms or BUSY_TIMEOUT_MS
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder for the database {path}: {exc.strerror}") from None
    if path.is_dir():
        raise StoreError(f"SALESBOT_DB {path} is a folder, not a database file")
    new = not path.exists()
    read_only = not new and not writable(path)
    pragmas = {"busy_timeout": busy, "foreign_keys": 1}
    if not read_only:
        pragmas.update(journal_mode="wal", synchronous="normal")
    database = Database(
        f"file:{path}?mode=ro" if read_only else str(path),
        pragmas=pragmas,
        timeout=busy / 1000,
        lock_type="IMMEDIATE",
        uri=read_only,
    )
    try:
        database.connect()
        tables = set(database.get_tables())
        if tables and "migrations" not in tables:
            raise StoreError(
                f"{path} is an SQLite database but not salesbot's (it has no migrations table); "
                "point SALESBOT_DB at another file"
            )
        if read_only:
            _check_current(database, path)
        else:
            migrate(database, quiet=new)
        if new:
            log.info("created a new database at %s", path)
    except StoreError as exc:
        database.close()
        if isinstance(exc.__cause__, DatabaseError | sqlite3.DatabaseError):
            raise _open_error(path, exc.__cause__, read_only) from None
        raise
    except (DatabaseError, sqlite3.DatabaseError) as exc:
        database.close()
        raise _open_error(path, exc, read_only) from None
    db.initialize(database)
    return database


def _open_error(path: Path, exc: Exception, read_only: bool = False) -> StoreError:
    reason = str(exc) or exc.__class__.__name__
    if read_only and "readonly" not in reason:
        reason = f"read-only for this user, and SQLite cannot read it so: {reason}"
    if "readonly" in reason or "full" in reason:
        return _translated(str(path), exc)
    if "malformed" in reason:
        return damaged(path, reason)
    if "not a database" in reason:
        return StoreError(f"{path} is not a salesbot database (SQLite says: {reason})")
    return StoreError(f"cannot open the database {path}: {reason}{_LOCKED_HINT if _is_locked(reason) else ''}")
