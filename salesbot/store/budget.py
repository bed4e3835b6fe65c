"""The one writer of `budget_alert`: which spend alerts managers had in which month, once each."""

from __future__ import annotations

from datetime import datetime

from salesbot.store.connection import db


def claim_alert(month: str, level: int, now: datetime) -> bool:
    """Take the `level`% alert of `month` (e.g. `2025-12`, 80): True the first time only, in any
    process. The caller queues the managers' notice in the same transaction."""
    cursor = db.execute_sql("INSERT OR IGNORE INTO budget_alert (month, level, at) VALUES (?, ?, ?)",
                            (month, level, str(now)))
    return cursor.rowcount == 1


def alerts(month: str) -> list[int]:
    return [level for (level,) in db.execute_sql("SELECT level FROM budget_alert WHERE month = ? ORDER BY level",
                                                 (month,)).fetchall()]
