"""`salesbot leads export --csv FILE`: every lead as a spreadsheet.

UTF-8 with a byte-order mark, so Excel (which otherwise guesses a Windows code page) shows Cyrillic
names; times in SALESBOT_TZ as `YYYY-MM-DD HH:MM`. A cell that starts with `=`, `+`, `-`, `@`, a tab
or a carriage return gets a leading `'`: a lead chooses their own name, and a spreadsheet would run
such a cell as a formula (OWASP, "CSV Injection"). Forgotten leads (`leads delete`) are not exported.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from salesbot.store import db, utcnow

HEADER = ("id", "name", "username", "telegram_id", "source", "status", "summary", "created", "last_message",
          "next_meeting")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _has_summary() -> bool:
    return any(row[1] == "summary" for row in db.execute_sql("PRAGMA table_info(lead)").fetchall())


def rows(tz: ZoneInfo) -> Iterator[tuple]:
    summary = "l.summary" if _has_summary() else "NULL"
    cursor = db.execute_sql(
        f"SELECT l.id, l.first_name, l.username, l.telegram_id, l.source, l.status, {summary}, l.created_at,"
        " l.last_message_at, (SELECT min(m.starts_at) FROM meeting AS m INDEXED BY meeting_lead"
        "  WHERE m.lead_id = l.id AND m.status = 'booked' AND m.starts_at >= ?)"
        " FROM lead AS l WHERE l.deleted_at IS NULL ORDER BY l.id", (str(utcnow()),))
    while batch := cursor.fetchmany(1000):
        for row in batch:
            yield (*row[:7], *(_local(value, tz) for value in row[7:]))


def _local(stored: str | None, tz: ZoneInfo) -> str:
    if stored is None:
        return ""
    return datetime.fromisoformat(stored).replace(tzinfo=UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _cell(value) -> str:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(FORMULA_START) else text


def write_csv(target: str, tz: ZoneInfo) -> int:
    """Write every lead to `target` (a path, or `-` for stdout); returns how many."""
    count = 0
    if target == "-":
        handle = sys.stdout
        handle.write("\ufeff")
    else:
        handle = open(target, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed below
    try:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for row in rows(tz):
            writer.writerow([_cell(value) for value in row])
            count += 1
    finally:
        if handle is not sys.stdout:
            handle.close()
    return count
