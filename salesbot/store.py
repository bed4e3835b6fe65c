"""The SQLite store: Peewee models, the connection, and numbered migrations.

Times are naive UTC, stored the way Peewee's DateTimeField stores them (DESIGN.md). `serve` and the
cron sweep use the same file at once, so the database runs in WAL mode with a busy timeout and
every write transaction starts with BEGIN IMMEDIATE: a writer waits for the lock up front instead of
failing half-way when it tries to upgrade a read lock.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from peewee import (
    BigIntegerField,
    BooleanField,
    DatabaseError,
    DatabaseProxy,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    OperationalError,
    SqliteDatabase,
    TextField,
)

from salesbot.errors import StoreError

log = logging.getLogger(__name__)

LEAD_STATUSES = ("new", "warm", "hot", "cold")
BUSY_TIMEOUT_MS = 10_000

db = DatabaseProxy()


def utcnow() -> datetime:
    """Now as naive UTC, the storage convention (freezegun-friendly)."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_utc_naive(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is required")
    return moment.astimezone(UTC).replace(tzinfo=None)


def to_local(stored: datetime, tz: ZoneInfo) -> datetime:
    return stored.replace(tzinfo=UTC).astimezone(tz)


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

    class Meta:
        table_name = "lead"

    @property
    def display_name(self) -> str:
        name = self.first_name or ""
        if self.username:
            name = f"{name} @{self.username}".strip()
        return name or f"lead {self.id}"


class Message(BaseModel):
    lead = ForeignKeyField(Lead, column_name="lead_id", backref="messages", on_delete="CASCADE")
    role = TextField()  # lead | bot
    text = TextField()
    created_at = DateTimeField(default=utcnow)
    unanswered = BooleanField(default=False)  # a lead message Claude has not answered (yet)

    class Meta:
        table_name = "message"


class Meeting(BaseModel):
    lead = ForeignKeyField(Lead, column_name="lead_id", backref="meetings", on_delete="CASCADE")
    starts_at = DateTimeField()
    status = TextField(default="booked")  # booked | cancelled
    source = TextField()  # slot | custom
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "meeting"


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


MODELS = (Lead, Message, Meeting, LlmCall)


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

MIGRATIONS: list[tuple[str, list[str] | Callable[[SqliteDatabase], None]]] = [
    ("001_initial", M001_INITIAL),
    ("002_indexes", M002_INDEXES),
    ("003_dialogue", M003_DIALOGUE),
    ("004_follow_ups", M004_FOLLOW_UPS),
    ("006_llm_calls", M006_LLM_CALLS),
]


def _apply(database: SqliteDatabase, step: list[str] | Callable[[SqliteDatabase], None]) -> None:
    if callable(step):
        step(database)
    else:
        for statement in step:
            database.execute_sql(statement)


def migrate(database: SqliteDatabase, upto: int | None = None) -> list[str]:
    """Apply the pending migrations (the first `upto` of them, for tests); return the names applied."""
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
    for name, step in MIGRATIONS[:upto]:
        if name in applied:
            continue
        with database.atomic():  # BEGIN IMMEDIATE: a second process starting now waits, then skips
            if database.execute_sql("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
                continue
            _apply(database, step)
            database.execute_sql(
                "INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, str(utcnow()))
            )
        log.info("applied migration %s", name)
        done.append(name)
    return done


def open_database(path: Path, *, upto: int | None = None) -> SqliteDatabase:
    """Open (creating if needed) and migrate the database, and bind the models to it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder for the database {path}: {exc.strerror}") from None
    if path.is_dir():
        raise StoreError(f"SALESBOT_DB {path} is a folder, not a database file")
    database = SqliteDatabase(
        str(path),
        pragmas={
            "journal_mode": "wal",
            "busy_timeout": BUSY_TIMEOUT_MS,
            "foreign_keys": 1,
            "synchronous": "normal",
        },
        timeout=BUSY_TIMEOUT_MS / 1000,
        lock_type="IMMEDIATE",
    )
    try:
        database.connect()
        tables = set(database.get_tables())
        if tables and "migrations" not in tables:
            raise StoreError(
                f"{path} is an SQLite database but not salesbot's (it has no migrations table); "
                "point SALESBOT_DB at another file"
            )
        migrate(database, upto=upto)
    except StoreError:
        database.close()
        raise
    except (DatabaseError, OperationalError, sqlite3.DatabaseError) as exc:
        database.close()
        reason = str(exc) or exc.__class__.__name__
        if "not a database" in reason or "malformed" in reason:
            raise StoreError(f"{path} is not a salesbot database (SQLite says: {reason})") from None
        raise StoreError(f"cannot open the database {path}: {reason}") from None
    db.initialize(database)
    return database


# --- the dialogue's hot path ----------------------------------------------------------------------
# Fixed SQL for what every message does. Peewee builds its SQL anew on each call, which was most of
# the engine's CPU per message (scripts/bench_dialogue.py); these statements are parsed once by
# sqlite3's statement cache. Times are stored exactly as DateTimeField stores them (str of naive UTC).

_LEAD_COLUMNS = "id, telegram_id, access_hash, username, first_name, status, state, pending_time, opted_out"


def _lead_from_row(row: tuple | None) -> Lead | None:
    if row is None:
        return None
    lead = Lead(id=row[0], telegram_id=row[1], access_hash=row[2], username=row[3], first_name=row[4],
                status=row[5], state=row[6], pending_time=Lead.pending_time.python_value(row[7]),
                opted_out=bool(row[8]))
    lead._dirty.clear()
    return lead


def lead_by_telegram_id(telegram_id: int) -> Lead | None:
    return _lead_from_row(db.execute_sql(f"SELECT {_LEAD_COLUMNS} FROM lead WHERE telegram_id = ?",
                                         (telegram_id,)).fetchone())


def lead_by_id(lead_id: int) -> Lead | None:
    return _lead_from_row(db.execute_sql(f"SELECT {_LEAD_COLUMNS} FROM lead WHERE id = ?", (lead_id,)).fetchone())


def record_lead_message(lead_id: int, text: str, at: datetime, unanswered: bool) -> int:
    """Store what the lead wrote and what writing means: reminders start over, a cold lead is warm."""
    with db.atomic():
        cursor = db.execute_sql(
            "INSERT INTO message (lead_id, role, text, created_at, unanswered) VALUES (?, 'lead', ?, ?, ?)",
            (lead_id, text, str(at), int(unanswered)))
        db.execute_sql(
            "UPDATE lead SET last_message_at = ?, follow_up_count = 0,"
            " cold_reason = CASE WHEN status = 'cold' THEN NULL ELSE cold_reason END,"
            " status = CASE WHEN status = 'cold' THEN 'warm' ELSE status END WHERE id = ?",
            (str(at), lead_id))
    return cursor.lastrowid


def record_bot_message(lead_id: int, text: str, at: datetime) -> int:
    cursor = db.execute_sql(
        "INSERT INTO message (lead_id, role, text, created_at, unanswered) VALUES (?, 'bot', ?, ?, 0)",
        (lead_id, text, str(at)))
    return cursor.lastrowid


def latest_lead_message_id(lead_id: int) -> int | None:
    return db.execute_sql("SELECT max(id) FROM message WHERE lead_id = ? AND role = 'lead'", (lead_id,)).fetchone()[0]


def count_messages(lead_id: int, upto: int) -> int:
    return db.execute_sql("SELECT count(*) FROM message WHERE lead_id = ? AND id <= ?", (lead_id, upto)).fetchone()[0]


def recent_messages(lead_id: int, upto: int, limit: int) -> list[tuple[str, str]]:
    """(role, text) of the lead's last `limit` messages with id <= upto, oldest first."""
    rows = db.execute_sql("SELECT role, text FROM message WHERE lead_id = ? AND id <= ? ORDER BY id DESC LIMIT ?",
                          (lead_id, upto, limit)).fetchall()
    return rows[::-1]


def next_meeting_start(lead_id: int, now: datetime) -> datetime | None:
    row = db.execute_sql("SELECT starts_at FROM meeting WHERE lead_id = ? AND status = 'booked' AND starts_at >= ?"
                         " ORDER BY starts_at LIMIT 1", (lead_id, str(now))).fetchone()
    return Meeting.starts_at.python_value(row[0]) if row else None


def mark_answered(lead_id: int, upto: int, status: str | None = None) -> None:
    with db.atomic():
        if status is not None:
            db.execute_sql("UPDATE lead SET status = ? WHERE id = ?", (status, lead_id))
        db.execute_sql("UPDATE message SET unanswered = 0 WHERE lead_id = ? AND id <= ? AND unanswered = 1",
                       (lead_id, upto))
