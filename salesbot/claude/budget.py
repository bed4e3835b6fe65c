"""The monthly spend ceiling (SALESBOT_MONTHLY_BUDGET_USD), enforced where every Claude call passes:
the client (claude/client.py) asks `check()` before a call and `after_call()` after it.

What is spent is read from the `llm_call` ledger at list prices (claude/spend.py), never kept in a
process, so `serve`, the sweep, `parse-time` and a rehearsal all agree. The month is the calendar
month in SALESBOT_TZ. At 80% the managers are told once; at 100% no more calls are made until the
month ends (the caller gets BudgetExhausted, an LLMUnavailable: the lead gets a polite answer) and
the managers are told once. "Once" holds across processes: the alert is a row of `budget_alert`.
A call already under way when the ceiling is reached finishes, so the month can end a few cents over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from salesbot.claude.spend import spent_since
from salesbot.errors import BudgetExhausted

log = logging.getLogger(__name__)

WARN_AT = 0.8
LEVELS = (80, 100)


@dataclass(frozen=True)
class BudgetState:
    month: str  # 2025-12
    limit_usd: float
    spent_usd: float
    start: datetime  # naive UTC: the month's first moment in the business's zone
    end: datetime

    @property
    def left_usd(self) -> float:
        return max(0.0, self.limit_usd - self.spent_usd)

    @property
    def exhausted(self) -> bool:
        return self.spent_usd >= self.limit_usd


def month_bounds(now: datetime, tz: ZoneInfo) -> tuple[str, datetime, datetime]:
    """The calendar month (in `tz`) holding `now`, as a label and naive-UTC bounds."""
    local = now.astimezone(tz)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        following = start.replace(year=start.year + 1, month=1)
    else:
        following = start.replace(month=start.month + 1)
    utc = [moment.astimezone(UTC).replace(tzinfo=None) for moment in (start, following)]
    return f"{start:%Y-%m}", utc[0], utc[1]


# What the runtime does when an alert level is first reached: queue the managers' notice (it gets
# the month, the level and the state, and claims the alert in the notice's own transaction).
Alert = Callable[[str, int, BudgetState], None]


@dataclass
class Budget:
    limit_usd: float
    tz: ZoneInfo
    alert: Alert | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def state(self) -> BudgetState:
        month, start, end = month_bounds(self.now(), self.tz)
        spent, _ = spent_since(start, end)
        return BudgetState(month, self.limit_usd, spent, start, end)

    def check(self) -> None:
        """Before a call: BudgetExhausted when this month's ceiling is reached."""
        state = self.state()
        if state.exhausted:
            self._alert(100, state)
            raise BudgetExhausted(f"the monthly Claude budget is spent (${state.spent_usd:.2f} of "
                                  f"${state.limit_usd:.2f} in {state.month})")

    def after_call(self) -> None:
        """After a call is in the ledger: the 80% and 100% alerts, once each (never raises: the call's
        answer matters more than the alert)."""
        try:
            state = self.state()
        except Exception:
            log.exception("could not read this month's Claude spend")
            return
        if state.exhausted:
            self._alert(100, state)
        elif state.spent_usd >= WARN_AT * state.limit_usd:
            self._alert(80, state)

    def _alert(self, level: int, state: BudgetState) -> None:
        if self.alert is None:
            return
        try:
            self.alert(state.month, level, state)
        except Exception:  # an alert must never cost a lead its answer
            log.exception("could not queue the budget alert")
