"""The one writer of the `llm_call` ledger: every Claude call becomes a row with its usage."""

from __future__ import annotations

from peewee import SqliteDatabase

from salesbot.store.clock import utcnow
from salesbot.store.connection import db
from salesbot.store.models import LlmCall


def append_llm_call(database: SqliteDatabase, row: dict) -> None:
    """A ledger row written to `database` itself, whatever the models are bound to: `salesbot chat`
    rehearses in a sandbox database, and what its Claude calls cost belongs in the real ledger."""
    columns = {field.column_name for field in LlmCall._meta.sorted_fields} - {"id"}  # unknown keys dropped
    values = {key: value for key, value in row.items() if key in columns}
    values.setdefault("created_at", str(utcnow()))
    with database.atomic():
        database.execute_sql(f"INSERT INTO llm_call ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                             tuple(values.values()))


def record_call(row: dict) -> None:
    """The ledger row of one Claude call, in the database the models are bound to."""
    append_llm_call(db.obj, row)
