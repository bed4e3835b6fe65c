"""Small helpers that put leads, messages and meetings into the test database."""

from __future__ import annotations

from datetime import datetime, timedelta

from salesbot.store import Lead, Meeting, Message, utcnow

_next_tg = iter(range(1000, 10**9))


def make_lead(*, telegram: bool = True, messages: list[tuple[str, str]] | None = None,
              last_message_ago: timedelta | None = None, **fields) -> Lead:
    now = utcnow()
    if telegram:
        fields.setdefault("telegram_id", next(_next_tg))
        fields.setdefault("access_hash", 1234567890123)
    fields.setdefault("first_name", "Анна")
    if last_message_ago is not None:
        fields.setdefault("last_message_at", now - last_message_ago)
    lead = Lead.create(**fields)
    for role, text in messages or []:
        Message.create(lead=lead, role=role, text=text)
    return lead


def make_meeting(lead: Lead, starts_at: datetime, *, status: str = "booked", source: str = "slot") -> Meeting:
    return Meeting.create(lead=lead, starts_at=starts_at, status=status, source=source)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def database_at(path, migrations: int) -> None:
    """A database as an older salesbot left it: only its first `migrations` migrations applied."""
    import sqlite3

    from salesbot.store import MIGRATIONS

    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=wal")
        conn.execute("CREATE TABLE migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
                     " applied_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)")
        for name, statements in MIGRATIONS[:migrations]:
            for statement in statements:
                if callable(statement):  # a step in Python (010's table rebuild) takes a Peewee-like database
                    statement(_Conn(conn))
                else:
                    conn.execute(statement)
            conn.execute("INSERT INTO migrations (name) VALUES (?)", (name,))
    conn.close()


class _Conn:
    """What a migration step written in Python calls on a database: execute_sql."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def execute_sql(self, sql, params=()):
        return self.conn.execute(sql, params)
