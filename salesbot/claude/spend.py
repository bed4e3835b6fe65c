"""What Claude cost, summed in SQL from the `llm_call` ledger at list prices (claude/pricing.py).

One expression prices each row by its own model and prompt size (a model priced higher above a
prompt length is priced per request, as the API bills it), so sums need no Python loop over the
ledger: the monthly budget (every process reads the same ledger, so all agree on what is spent)
and the funnel's cost per lead are both one query. A model without a published price costs nothing
here and is counted as `unpriced`.
"""

from __future__ import annotations

from datetime import datetime

from salesbot.claude import pricing
from salesbot.store.connection import db

# Cache writes not split by TTL (rows from before migration 006, or an answer without
# `usage.cache_creation`) are 5-minute writes, the API's default TTL (as `usage` prices them).
_UNSPLIT = ("max(0, c.cache_creation_input_tokens - c.cache_creation_5m_input_tokens"
            " - c.cache_creation_1h_input_tokens)")
_PROMPT = "(c.input_tokens + c.cache_creation_input_tokens + c.cache_read_input_tokens)"


def _rates_sql(rates: pricing.Rates) -> str:
    return (f"(c.input_tokens * {rates.input!r} + c.output_tokens * {rates.output!r}"
            f" + (c.cache_creation_5m_input_tokens + {_UNSPLIT}) * {rates.write_5m!r}"
            f" + c.cache_creation_1h_input_tokens * {rates.write_1h!r}"
            f" + c.cache_read_input_tokens * {rates.read!r}) / {pricing.MTOK}.0")


def models_in_ledger(since: datetime | None = None) -> list[str]:
    if since is None:
        return [model for (model,) in db.execute_sql("SELECT DISTINCT model FROM llm_call").fetchall()]
    return [model for (model,) in db.execute_sql("SELECT DISTINCT model FROM llm_call INDEXED BY llm_call_created"
                                                 " WHERE created_at >= ?", (str(since),)).fetchall()]


def cost_expression(models: list[str]) -> tuple[str, list[str]]:
    """An SQL expression of one `llm_call` row (aliased `c`) in USD, and its parameters; NULL for a
    model without a price. The numbers are ours (pricing.py); the model names are parameters."""
    cases, params = [], []
    for model in models:
        price = pricing.price_of(model)
        if price is None:
            continue
        base = _rates_sql(price.base)
        if price.long is not None and price.long_above is not None:
            base = f"CASE WHEN {_PROMPT} > {int(price.long_above)} THEN {_rates_sql(price.long)} ELSE {base} END"
        cases.append(f"WHEN ? THEN {base}")
        params.append(model)
    if not cases:
        return "NULL", []
    return f"(CASE c.model {' '.join(cases)} END)", params


def spent_since(start: datetime, end: datetime | None = None) -> tuple[float, int]:
    """USD spent on calls from `start` (naive UTC) to `end`, and how many calls had no known price."""
    expression, params = cost_expression(models_in_ledger(start))
    where = "c.created_at >= ?" + (" AND c.created_at < ?" if end is not None else "")
    bounds = [str(start)] + ([str(end)] if end is not None else [])
    row = db.execute_sql(f"SELECT coalesce(sum({expression}), 0), coalesce(sum({expression} IS NULL), 0)"
                         f" FROM llm_call AS c INDEXED BY llm_call_created WHERE {where}",
                         [*params, *params, *bounds]).fetchone()
    return float(row[0]), int(row[1])
