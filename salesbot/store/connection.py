"""The SQLite connection: WAL, a busy timeout, BEGIN IMMEDIATE, and SQLite's failures as StoreError.

Times are naive UTC, stored the way Peewee's DateTimeField stores them (README, Database). `serve` and the
cron sweep use the same file at once, so the database runs in WAL mode with a busy timeout and
every write transaction starts with BEGIN IMMEDIATE: a writer waits for the lock up front instead of
failing half-way when it tries to upgrade a read lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path

from peewee import DatabaseError, DatabaseProxy, IntegrityError, SqliteDatabase

from salesbot.errors import StoreError
from salesbot.store.migrations import check_current, migrate

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000

db = DatabaseProxy()


def transaction():
    """One write transaction (BEGIN IMMEDIATE; a savepoint when already inside one)."""
    return db.atomic()


@contextlib.contextmanager
def without_waiting():
    """Inside, a write that finds another process's write lock fails at once («locked») instead of
    waiting out the busy timeout on the event loop: `serve` keeps what it could not store and retries
    it a moment later (dialogue/intake.py)."""
    database = db.obj
    (busy,) = database.execute_sql("PRAGMA busy_timeout").fetchone()
    database.execute_sql("PRAGMA busy_timeout = 0")
    try:
        yield
    finally:
        database.execute_sql(f"PRAGMA busy_timeout = {int(busy)}")


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
    it is a constraint doing its job (a booking race), which the caller decides about. Errors name
    the file (`path`), never the URI a read-only connection is opened with."""

    path: str = ""

    def _guard(self, call, *args):
        try:
            return call(*args)
        except IntegrityError:
            raise
        except DatabaseError as exc:  # OperationalError among them
            raise _translated(self.path, exc) from exc

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


def writable(path: Path) -> bool:
    """Whether this user may write the database: the file and its folder (WAL keeps files beside it)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


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
    try:
        database = _connect(path, busy, pragmas, new, read_only)
    except StoreError as exc:
        if not (read_only and "unable to open" in str(exc.__cause__ or exc)):
            raise
        # WAL needs its -shm file; a reader who may not create it in the folder (and no writer has it
        # open: then it would be there) reads the file as it is, with nothing in a WAL to miss.
        log.debug("the database %s: its folder is read-only and no writer has it open; reading it as it is", path)
        database = _connect(path, busy, pragmas, new, read_only, immutable=True)
    db.initialize(database)
    return database


def _connect(path: Path, busy: int, pragmas: dict, new: bool, read_only: bool, immutable: bool = False) -> Database:
    uri = f"file:{path}?mode=ro" + ("&immutable=1" if immutable else "")
    database = Database(uri if read_only else str(path), pragmas=pragmas, timeout=busy / 1000,
                        lock_type="IMMEDIATE", uri=read_only)
    database.path = str(path)
    try:
        database.connect()
        tables = set(database.get_tables())
        if tables and "migrations" not in tables:
            raise StoreError(
                f"{path} is an SQLite database but not salesbot's (it has no migrations table); "
                "point SALESBOT_DB at another file"
            )
        if read_only:
            check_current(database, path)
        else:
            migrate(database, quiet=new)
        if new:
            log.info("created a new database at %s", path)
    except StoreError as exc:
        database.close()
        if isinstance(exc.__cause__, DatabaseError | sqlite3.DatabaseError):
            error = _open_error(path, exc.__cause__, read_only)
            raise error from exc.__cause__
        raise
    except (DatabaseError, sqlite3.DatabaseError) as exc:
        database.close()
        raise _open_error(path, exc, read_only) from exc
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
