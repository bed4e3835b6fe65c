import sqlite3
import subprocess
import sys
import textwrap
from datetime import date, datetime

import pytest

from salesbot import store
from salesbot.errors import StoreError
from salesbot.store import MIGRATIONS, Lead, Message, open_database
from tests.factories import database_at


def tables_and_indexes(path):
    with sqlite3.connect(path) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}


def test_fresh_database_has_the_documented_schema(tmp_path):
    path = tmp_path / "s.db"
    open_database(path).close()
    with sqlite3.connect(path) as conn:
        tables = ("lead", "message", "meeting", "llm_call")
        columns = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        applied = [r[0] for r in conn.execute("SELECT name FROM migrations ORDER BY id")]
    assert applied == [name for name, _ in MIGRATIONS]
    assert columns["lead"][:13] == [
        "id", "telegram_id", "access_hash", "username", "first_name", "status", "state", "created_at",
        "last_message_at", "follow_up_count", "last_follow_up_at", "opted_out", "cold_reason",
    ]
    assert columns["message"][:5] == ["id", "lead_id", "role", "text", "created_at"]
    assert columns["meeting"][:6] == ["id", "lead_id", "starts_at", "status", "source", "created_at"]
    assert columns["llm_call"][:12] == [
        "id", "lead_id", "purpose", "model", "input_tokens", "output_tokens", "cache_creation_input_tokens",
        "cache_read_input_tokens", "attempts", "duration_ms", "error", "created_at",
    ]


def test_database_from_the_first_migration_upgrades_with_nothing_lost(tmp_path):
    path = tmp_path / "old.db"
    database_at(path, 1)
    # Data written the way an old version (or staff with sqlite3) would.
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO lead (telegram_id, access_hash, username, first_name, status, created_at,"
                     " last_message_at, follow_up_count) VALUES (42, 777, 'olga', 'Ольга', 'warm',"
                     " '2025-12-20 09:00:00', '2025-12-22 10:30:00.123456', 1)")
        conn.execute("INSERT INTO message (lead_id, role, text, created_at) VALUES (1, 'lead', 'Сколько стоит?',"
                     " '2025-12-22 10:30:00.123456')")
        conn.execute("INSERT INTO meeting (lead_id, starts_at, source) VALUES (1, '2025-12-24 08:00:00', 'slot')")
    assert "lead_activity" not in tables_and_indexes(path)

    open_database(path).close()

    assert {"lead_activity", "message_lead", "meeting_upcoming"} <= tables_and_indexes(path)
    open_database(path)
    lead = Lead.get(Lead.telegram_id == 42)
    assert (lead.first_name, lead.status, lead.follow_up_count, lead.access_hash) == ("Ольга", "warm", 1, 777)
    assert lead.created_at == datetime(2025, 12, 20, 9, 0)
    assert lead.last_message_at == datetime(2025, 12, 22, 10, 30, 0, 123456)
    assert [m.text for m in lead.messages] == ["Сколько стоит?"]
    assert lead.meetings[0].status == "booked"


def test_migration_005_moves_a_remembered_day_to_its_own_column(tmp_path):
    path = tmp_path / "old.db"
    database_at(path, 4)
    with sqlite3.connect(path) as conn:  # how 004 stored "завтра" (24 Dec) and "in confirmation" (23 Dec 15:00 MSK)
        conn.execute("INSERT INTO lead (telegram_id, state, pending_time) VALUES (1, 'MEETING_CUSTOM_TIME',"
                     " '2025-12-24 09:00:00')")
        conn.execute("INSERT INTO lead (telegram_id, state, pending_time) VALUES (2, 'MEETING_CONFIRM_TIME',"
                     " '2025-12-23 12:00:00')")
    open_database(path)
    day, time = Lead.get(Lead.telegram_id == 1), Lead.get(Lead.telegram_id == 2)
    assert (day.pending_day, day.pending_time) == (date(2025, 12, 24), None)
    assert (time.pending_day, time.pending_time) == (None, datetime(2025, 12, 23, 12, 0))


def test_migration_010_lets_a_lead_be_lost_and_keeps_every_row_that_points_at_leads(tmp_path):
    """The lead table is rebuilt to widen its CHECK: with foreign keys on, dropping it would have
    cascaded to every message and meeting. Everything stays, the indexes come back, `lost` is taken."""
    path = tmp_path / "old.db"
    database_at(path, 9)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("INSERT INTO lead (telegram_id, access_hash, first_name, status, created_at, last_message_at)"
                     " VALUES (42, 7, 'Ольга', 'hot', '2025-12-20 09:00:00', '2025-12-22 10:30:00')")
        conn.execute("INSERT INTO message (lead_id, role, text, created_at) VALUES (1, 'lead', 'Сколько?',"
                     " '2025-12-22 10:30:00')")
        conn.execute("INSERT INTO meeting (lead_id, starts_at, source) VALUES (1, '2025-12-24 08:00:00', 'slot')")
        conn.execute("INSERT INTO outbox (lead_id, kind, text, random_id, not_before, created_at)"
                     " VALUES (1, 'reply', 'Ответ', 5, '2025-12-22 10:31:00', '2025-12-22 10:31:00')")
    before = tables_and_indexes(path)

    database = open_database(path)
    after = tables_and_indexes(path)  # lead_reminder, lead_activity… created again; no lead_new left
    assert before <= after and not {name for name in after - before if name.startswith("lead_new")}
    lead = Lead.get(Lead.telegram_id == 42)
    assert (lead.first_name, lead.status, lead.summary) == ("Ольга", "hot", None)
    assert [m.text for m in lead.messages] == ["Сколько?"] and lead.messages[0].model_chars is None
    assert lead.meetings.count() == 1 and store.Outbox.select().count() == 1
    Lead.update(status="lost").where(Lead.id == lead.id).execute()
    assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1  # back on after the rebuild
    with pytest.raises(Exception, match="CHECK"):
        Lead.update(status="gone").where(Lead.id == lead.id).execute()
    lead.delete_instance()  # the rebuilt table still cascades
    assert Message.select().count() == 0


def test_rows_inserted_by_hand_with_only_required_columns_are_valid(db):
    db.execute_sql("INSERT INTO lead (first_name) VALUES ('Импорт')")
    lead = Lead.get(Lead.first_name == "Импорт")
    assert (lead.status, lead.follow_up_count, lead.opted_out) == ("new", 0, False)
    assert isinstance(lead.created_at, datetime)


def test_a_database_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "new.db"
    open_database(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO migrations (name) VALUES ('999_future')")
    with pytest.raises(StoreError, match=r"newer salesbot .*999_future"):
        open_database(path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(StoreError, match="not a salesbot database"):
        open_database(path)
    assert path.read_bytes().startswith(b"these are my notes")


def test_another_programs_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(StoreError, match="not salesbot's"):
        open_database(path)


def test_status_values_are_enforced_by_the_database(db):
    with pytest.raises(Exception, match="CHECK"):
        Lead.create(first_name="x", status="vip")


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from salesbot.store import open_database, Lead, Message
    database = open_database(Path(sys.argv[1]))
    hold = float(sys.argv[3])
    with database.atomic():
        lead = Lead.create(first_name=sys.argv[2])
        print("locked", flush=True)
        time.sleep(hold)
        for i in range(50):
            Message.create(lead=lead, role="lead", text=f"{sys.argv[2]} {i}")
    print("done", flush=True)
""")


def test_two_processes_writing_at_once_both_succeed(tmp_path):
    path = tmp_path / "shared.db"
    open_database(path).close()
    holder = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "holder", "0.8"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"  # it now holds the write lock
    other = subprocess.run([sys.executable, "-c", WRITER, str(path), "other", "0"],
                           capture_output=True, text=True, timeout=60)
    assert holder.wait(timeout=60) == 0
    assert other.returncode == 0, other.stderr
    open_database(path)
    assert {lead.first_name: lead.messages.count() for lead in Lead.select()} == {"holder": 50, "other": 50}
    assert Message.select().count() == 100


def test_two_processes_migrating_a_new_database_at_once(tmp_path):
    path = tmp_path / "race.db"
    code = ("import sys; from pathlib import Path; from salesbot.store import open_database;"
            " open_database(Path(sys.argv[1]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    for proc in procs:
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM migrations").fetchone()[0] == len(store.MIGRATIONS)


def test_a_leads_meetings_are_looked_up_through_its_own_index(db):
    """Production databases have no statistics, and without them SQLite took `meeting_upcoming` for
    "this lead's booked meetings": every upcoming meeting of every lead, for each lead listed
    (`leads list --limit 0` went from 1.5 s to 17 s at 100k leads). The lookups name their index."""
    from datetime import UTC, datetime

    from salesbot.store import leads, queries
    from salesbot.time.slots import Calendar
    from tests.engine_fakes import CALENDAR

    seen: list[str] = []
    db.connection().set_trace_callback(seen.append)
    now = datetime(2025, 12, 23, 11, 0, tzinfo=UTC)
    leads.next_meeting_start(1, now)
    leads.booked_meeting(1, now)
    list(queries.iter_leads(CALENDAR.tz, limit=None))
    lead = leads.create_chat_lead("Тест")
    leads.book(lead.id, datetime(2025, 12, 24, 8, 0, tzinfo=UTC), "slot", now, Calendar(**vars(CALENDAR)))
    db.connection().set_trace_callback(None)
    lookups = [sql for sql in seen if "FROM meeting" in sql and "lead_id =" in sql and "status = 'booked'" in sql]
    assert len(lookups) >= 4
    for sql in lookups:
        plan = " / ".join(row[3] for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql).fetchall())
        assert "meeting_upcoming" not in plan and "meeting_lead" in plan, (sql, plan)


def test_migration_011_widens_the_role_and_kind_checks_in_place_with_every_row_kept(tmp_path):
    path = tmp_path / "old.db"
    database_at(path, 9)
    with sqlite3.connect(path) as conn:  # a round-2 database: a lead, their messages, an outbox row tied to one
        conn.execute("INSERT INTO lead (telegram_id, first_name) VALUES (42, 'Ольга')")
        conn.execute("INSERT INTO message (lead_id, role, text) VALUES (1, 'lead', 'Сколько стоит?')")
        conn.execute("INSERT INTO message (lead_id, role, text) VALUES (1, 'bot', 'От 50 000 ₽')")
        conn.execute("INSERT INTO outbox (lead_id, message_id, kind, text, random_id, state, not_before, created_at)"
                     " VALUES (1, 2, 'reply', 'От 50 000 ₽', 7, 'sent', '2025-12-22 10:00:00', '2025-12-22 10:00:00')")
    open_database(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys = 1")
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 1  # nothing cascaded away
        conn.execute("INSERT INTO message (lead_id, role, text, staff_id) VALUES (1, 'manager', 'Это Ольга', 555)")
        conn.execute("INSERT INTO message (lead_id, role, text) VALUES (1, 'note', 'перезвонить')")
        conn.execute("INSERT INTO outbox (lead_id, kind, text, random_id, not_before, created_at)"
                     " VALUES (1, 'staff', '👤 Сколько стоит?', 8, '2025-12-22 10:00:00', '2025-12-22 10:00:00')")
        with pytest.raises(sqlite3.IntegrityError):  # still checked: only the new values were added
            conn.execute("INSERT INTO message (lead_id, role, text) VALUES (1, 'robot', 'x')")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO outbox (lead_id, kind, text, random_id, not_before, created_at)"
                         " VALUES (1, 'spam', 'x', 9, '2025-12-22', '2025-12-22')")
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        roles = [r[0] for r in conn.execute("SELECT role FROM message ORDER BY id")]
        assert roles == ["lead", "bot", "manager", "note"]
