"""The funnel (issue 22): where leads come from, how far they get, and what Claude cost on the way.

Per source (the deep link a lead came through) or per week of the lead's first contact: leads →
answered (the bot wrote to them) → warm → hot → booked → came, with no-shows and the leads lost or
cold now, each step's conversion from the step before, the median time to the bot's first answer,
and Claude's cost (per lead, per booked meeting). The steps are cumulative, so each is a subset of
the one before: a lead who reached hot (or booked, which makes a lead hot) was warm enough, even if
no warm status was ever recorded on the way, and a warm lead was answered (rows written by hand
or imported may lack the first answer's time). "Ever" comes from `lead_status_change`.

Leads forgotten with `leads delete` are still counted: their anonymous row keeps its source, times,
status history, meetings and Claude calls, nothing that names them.

One query reads each lead once with indexed lookups of its history, meetings and Claude calls (the
plan needs no statistics: production databases are never ANALYZEd); grouping and medians are done
in Python. scripts/bench_funnel.py times it on 100k leads.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from salesbot.claude import pricing
from salesbot.claude.spend import cost_expression, models_in_ledger
from salesbot.store import db, to_utc_naive

STEPS = ("leads", "answered", "warm", "hot", "booked", "came")
NO_SOURCE = "(none)"
BY = ("source", "week")


@dataclass
class FunnelRow:
    key: str  # the source (NO_SOURCE for leads without one), or the week's Monday (ISO date)
    leads: int = 0
    answered: int = 0
    warm: int = 0
    hot: int = 0
    booked: int = 0
    came: int = 0
    no_show: int = 0
    lost: int = 0  # lost or cold now
    median_first_answer_seconds: float | None = None
    cost_usd: float = 0.0
    unpriced_calls: int = 0  # Claude calls of a model without a known price (not in cost_usd)
    _delays: list[float] = field(default_factory=list, repr=False)

    @property
    def conversion(self) -> dict[str, float | None]:
        """Each step as a share of the step before it."""
        return {step: (getattr(self, step) / getattr(self, before)) if getattr(self, before) else None
                for before, step in pairwise(STEPS)}

    @property
    def cost_per_lead_usd(self) -> float | None:
        return self.cost_usd / self.leads if self.leads else None

    @property
    def cost_per_booked_usd(self) -> float | None:
        return self.cost_usd / self.booked if self.booked else None

    def add(self, other: FunnelRow) -> None:
        for name in ("leads", "answered", "warm", "hot", "booked", "came", "no_show", "lost", "cost_usd",
                     "unpriced_calls"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self._delays.extend(other._delays)

    def finish(self) -> None:
        self.median_first_answer_seconds = statistics.median(self._delays) if self._delays else None


@dataclass
class Funnel:
    by: str
    since: datetime | None
    rows: list[FunnelRow]
    total: FunnelRow


_FUNNEL_SQL = """
SELECT l.source, l.created_at, l.status, l.first_answer_at,
       (SELECT max(h.to_status = 'warm') + 2 * max(h.to_status = 'hot')
        FROM lead_status_change AS h INDEXED BY lead_status_change_lead WHERE h.lead_id = l.id),
       (SELECT 1 + 2 * max(m.status = 'done') + 4 * max(m.status = 'no_show')
        FROM meeting AS m INDEXED BY meeting_lead WHERE m.lead_id = l.id),
       l.id
FROM lead AS l {where}
"""

# Each lead's Claude cost in one pass over the ledger in table order: looking each lead's calls up
# through an index cost a random read per call (1.2 s for 500k calls against 0.4 s).
_COST_SQL = """
SELECT c.lead_id, sum({cost}), sum(c.model NOT IN ({priced}))
FROM llm_call AS c NOT INDEXED WHERE c.lead_id IS NOT NULL GROUP BY c.lead_id
"""


def _parse(stored: str) -> datetime:
    return datetime.fromisoformat(stored)


def week_of(created: datetime, tz: ZoneInfo) -> date:
    """The Monday of the week (in the business's zone) a stored naive-UTC time falls in."""
    local = created.replace(tzinfo=UTC).astimezone(tz).date()
    return local - timedelta(days=local.weekday())


def funnel(tz: ZoneInfo, by: str = "source", since: datetime | None = None) -> Funnel:
    """The funnel of the leads first seen since `since` (all when None), one row per source or week."""
    if by not in BY:
        raise ValueError(f"by must be one of {BY}")
    costs = _costs()
    where, bounds = ("WHERE l.created_at >= ?", [str(to_utc_naive(since))]) if since else ("", [])
    cursor = db.execute_sql(_FUNNEL_SQL.format(where=where), bounds)
    rows: dict[str, FunnelRow] = {}
    weeks: dict[str, str] = {}  # a stored hour (or minute) → its week: leads come in bursts
    cut = 13 if _whole_hours(tz) else 16
    while batch := cursor.fetchmany(2000):
        for source, created, status, first_answer, reached, meetings, lead_id in batch:
            if by == "source":
                key = source or NO_SOURCE
            else:
                key = weeks.get(created[:cut]) or weeks.setdefault(created[:cut],
                                                                   week_of(_parse(created), tz).isoformat())
            row = rows.get(key) or rows.setdefault(key, FunnelRow(key))
            reached = reached or 0
            row.leads += 1
            if first_answer is not None:
                row._delays.append(max(0.0, (_parse(first_answer) - _parse(created)).total_seconds()))
            hot = bool(reached & 2) or meetings is not None or status == "hot"
            warm = hot or bool(reached & 1) or status == "warm"
            row.answered += first_answer is not None or warm  # a lead who got further was answered
            row.warm += warm
            row.hot += hot
            if meetings is not None:
                row.booked += 1
                row.came += bool(meetings & 2)
                row.no_show += bool(meetings & 4) and not meetings & 2
            row.lost += status in ("lost", "cold")
            spent = costs.get(lead_id)
            if spent is not None:
                row.cost_usd += spent[0] or 0.0
                row.unpriced_calls += spent[1] or 0
    ordered = sorted(rows.values(), key=lambda r: (-r.leads, r.key)) if by == "source" else \
        sorted(rows.values(), key=lambda r: r.key)
    total = FunnelRow("total")
    for row in ordered:
        total.add(row)
        row.finish()
    total.finish()
    return Funnel(by=by, since=since, rows=ordered, total=total)


def _costs() -> dict[int, tuple[float | None, int]]:
    """Each lead's Claude cost in USD and its calls of a model without a known price."""
    models = models_in_ledger()
    cost, params = cost_expression(models)
    priced = [model for model in models if pricing.price_of(model) is not None] or [""]
    sql = _COST_SQL.format(cost=cost, priced=", ".join("?" * len(priced)))
    return {lead_id: (usd, unpriced) for lead_id, usd, unpriced in db.execute_sql(sql, [*params, *priced])}


def _whole_hours(tz: ZoneInfo) -> bool:
    """Whether the zone's offset is a whole number of hours (checked over the years salesbot's data
    spans): then every moment of a stored UTC hour falls in the same local week."""
    moments = (datetime(year, month, 1, tzinfo=UTC) for year in range(2000, 2041) for month in (1, 4, 7, 10))
    return all(moment.astimezone(tz).utcoffset().total_seconds() % 3600 == 0 for moment in moments)


def as_json(result: Funnel) -> dict:
    def row_json(row: FunnelRow) -> dict:
        return {result.by: row.key, "leads": row.leads, "answered": row.answered, "warm": row.warm, "hot": row.hot,
                "booked": row.booked, "came": row.came, "no_show": row.no_show, "lost": row.lost,
                "conversion": row.conversion, "median_first_answer_seconds": row.median_first_answer_seconds,
                "cost_usd": round(row.cost_usd, 6), "cost_per_lead_usd": _round(row.cost_per_lead_usd),
                "cost_per_booked_usd": _round(row.cost_per_booked_usd), "unpriced_calls": row.unpriced_calls}

    total = row_json(result.total)
    total[result.by] = "total"
    return {"by": result.by, "since": result.since.isoformat() if result.since else None,
            "rows": [row_json(row) for row in result.rows], "total": total}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
