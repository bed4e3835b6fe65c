"""Long outputs are streamed: `leads list --limit 0` (table and JSON) and the sweep's --json hold a
chunk at a time, however many rows there are, and convert rows directly."""

import gc
import io
import json
import sys
import weakref
from datetime import datetime, timedelta

import pytest
from freezegun import freeze_time

from salesbot.cli import render
from salesbot.store import Lead, Message, Outbox, queries
from salesbot.store.queries import LeadSummary
from tests.engine_fakes import MSK, NOW
from tests.factories import make_lead, make_meeting


def summaries(count: int, most: list[int]):
    """LeadSummary rows made on demand; records the most that were alive at once."""
    when = datetime(2025, 12, 1, tzinfo=MSK)
    alive = [0]

    def gone():
        alive[0] -= 1

    for i in range(count):
        if i % 10 == 0:
            gc.collect()
        most[0] = max(most[0], alive[0])
        row = LeadSummary(i + 1, f"Лид {i}", f"user{i}", "warm", None, 1000 + i, when, when, 0, None, False, None, None)
        alive[0] += 1
        weakref.finalize(row, gone)
        yield row


@pytest.fixture
def quick_gc():
    """What is alive before the test moves to the permanent generation, so the collections that
    count rows only walk what the test makes (a full collection of the whole heap took ~90 ms)."""
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.mark.parametrize("draw", ["table", "json"])
def test_rows_are_written_a_chunk_at_a_time(monkeypatch, draw, quick_gc):
    monkeypatch.setattr(render, "LEADS_CHUNK", 20)
    monkeypatch.setattr(render, "JSON_CHUNK", 20)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    most = [0]
    rows = summaries(500, most)
    if draw == "json":
        render.stream_json_list(rows, render.lead_json)
        assert len(json.loads(sys.stdout.getvalue())) == 500
    else:
        render.leads_table(rows, None, MSK, datetime(2025, 12, 23, tzinfo=MSK))
        assert "500 leads, newest activity first" in sys.stdout.getvalue()
    assert most[0] <= 2 * 20 + 1  # never all 500 at once


def test_nothing_is_written_when_the_query_fails_at_once(monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.StringIO())

    def failing():
        raise RuntimeError("database is locked")
        yield

    with pytest.raises(RuntimeError):
        render.stream_json_list(failing(), render.lead_json)
    assert sys.stdout.getvalue() == ""


@pytest.fixture
def crowd(db):
    """Leads with every field of the listing filled somewhere."""
    with freeze_time(NOW):
        hot = make_lead(first_name="Горячий", username="hot", status="hot", last_message_ago=timedelta(hours=1),
                        follow_up_count=1, last_follow_up_at=datetime(2025, 12, 22, 9, 0), state="MEETING_CUSTOM_TIME")
        make_meeting(hot, datetime(2025, 12, 24, 7, 0))
        stopped = make_lead(first_name=None, username="quiet", opted_out=True, opted_out_reason="stop",
                            status="cold", cold_reason="no_reply", last_message_ago=timedelta(days=3))
        Message.create(lead=stopped, role="lead", text="?", unanswered=True)
        message = Message.create(lead=stopped, role="bot", text="Ответ")
        Outbox.create(lead=stopped, message=message, kind="reply", text="Ответ", random_id=1, state="failed",
                      error="UserIsBlockedError", not_before=datetime(2025, 12, 23))
        for i in range(5):
            make_lead(first_name=f"Лид {i} с очень-очень длинным именем, которое не влезет в колонку" if i == 4
                      else f"Лид {i}", last_message_ago=timedelta(days=10 + i))
    return hot, stopped


def test_the_direct_json_is_the_generic_conversion(crowd, run):
    with freeze_time(NOW):
        rows = list(queries.iter_leads(MSK, limit=None))
        listed = json.loads(run("leads", "list", "--limit", "0", "--json").stdout)
    assert [render.lead_json(row) for row in rows] == render.plain(rows) == listed
    by_id = {row["id"]: row for row in listed}
    hot, stopped = crowd
    assert by_id[hot.id]["next_meeting"] == "2025-12-24T10:00:00+03:00"
    assert by_id[hot.id]["last_follow_up_at"] == "2025-12-22T12:00:00+03:00"
    assert (by_id[stopped.id]["unanswered"], by_id[stopped.id]["undelivered"], by_id[stopped.id]["opted_out"]) == (
        1, 1, True)


def test_the_streamed_table_keeps_its_columns_across_chunks(crowd, run, monkeypatch):
    monkeypatch.setattr(render, "LEADS_CHUNK", 3)  # the long name comes in a later chunk
    with freeze_time(NOW):
        table = run("leads", "list", "--limit", "0").stdout
    lines = table.splitlines()
    assert "7 leads, newest activity first; times in Europe/Moscow" in lines[-1]
    rows = lines[2:-1]
    assert len(rows) == 7 and len({len(line.rstrip()) for line in rows if "—" in line[-3:]}) <= 2
    assert "Горячий @hot" in rows[0] and "(1 unanswered) (1 undelivered)" in table and "(stopped)" in table
    long_row = next(line for line in rows if "Лид 4" in line)
    assert "…" in long_row and "не влезет в колонку" not in long_row
    assert long_row.index("new ") == next(line for line in rows if "Лид 0" in line).index("new ")


def test_a_name_cannot_write_to_the_terminal(db, run):
    make_lead(first_name="Злой\x1b[2J\x1b[31m", username=None)
    assert "\x1b" not in run("leads", "list").stdout


def test_leads_list_reads_lead_rows_straight_from_the_cursor(crowd):
    rows = queries.iter_leads(MSK, limit=None)
    assert not isinstance(rows, list)
    assert next(rows).first_name is not None
    assert Lead.select().count() == 7
