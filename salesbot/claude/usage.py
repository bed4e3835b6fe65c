"""What Claude cost: the usage ledger (llm_call) per purpose and model, priced at list prices, with
what caching saved. Reads the store; prices from pricing.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from peewee import Case, fn

from salesbot.claude import pricing
from salesbot.store import LlmCall, to_utc_naive


@dataclass
class UsageRow:
    purpose: str
    model: str
    calls: int
    failures: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int  # all cache writes; the 5m and 1h split follows
    cache_read_input_tokens: int
    cache_hit_ratio: float | None  # share of input tokens read from cache
    cost_usd: float | None
    uncached_cost_usd: float | None
    saved_usd: float | None
    cache_creation_5m_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0
    thinking_tokens: int = 0  # part of output_tokens


@dataclass
class UsageReport:
    since: datetime | None
    rows: list[UsageRow]
    total: UsageRow
    budget: dict | None = None  # SALESBOT_MONTHLY_BUDGET_USD: {"month", "limit_usd", "spent_usd", "left_usd"}


_SUMS = ("calls", "failures", "input_tokens", "output_tokens", "cache_creation_input_tokens",
         "cache_read_input_tokens", "cache_creation_5m_input_tokens", "cache_creation_1h_input_tokens",
         "thinking_tokens")


def _tokens(sums: dict[str, int]) -> pricing.Tokens:
    """Ledger sums as priced tokens. Writes not split by TTL (rows from before migration 006, or an
    answer without `usage.cache_creation`) are 5-minute writes, the API's default TTL."""
    five, hour = sums["cache_creation_5m_input_tokens"], sums["cache_creation_1h_input_tokens"]
    unsplit = max(0, sums["cache_creation_input_tokens"] - five - hour)
    return pricing.Tokens(input=sums["input_tokens"], output=sums["output_tokens"], writes_5m=five + unsplit,
                          writes_1h=hour, reads=sums["cache_read_input_tokens"])


def _usage_row(purpose: str, model: str, bands: dict[int, dict[str, int]]) -> UsageRow:
    """One purpose and model; `bands` holds its sums per prompt-size band (0, or the long-prompt
    threshold the calls were above), so a model priced by prompt length is priced per band."""
    sums = {k: sum(b[k] for b in bands.values()) for k in _SUMS}
    price = pricing.price_of(model)
    cost = uncached = None
    if price is not None:
        cost = uncached = 0.0
        for band, band_sums in bands.items():
            long_prompt = price.long_above is not None and band >= price.long_above
            tokens = _tokens(band_sums)
            cost += pricing.cost_usd(model, tokens, long_prompt)
            uncached += pricing.uncached_cost_usd(model, tokens, long_prompt)
    all_input = sums["input_tokens"] + sums["cache_creation_input_tokens"] + sums["cache_read_input_tokens"]
    return UsageRow(
        purpose=purpose, model=model, **sums,
        cache_hit_ratio=(sums["cache_read_input_tokens"] / all_input) if all_input else None,
        cost_usd=cost, uncached_cost_usd=uncached,
        saved_usd=(uncached - cost) if cost is not None and uncached is not None else None,
    )


def usage_report(since: datetime | None = None) -> UsageReport:
    """Claude usage per purpose and model from the ledger, with its cost at list prices and what
    caching saved. Grouped by prompt-size band too, for models priced by prompt length."""
    prompt = (LlmCall.input_tokens + LlmCall.cache_creation_input_tokens + LlmCall.cache_read_input_tokens)
    low, high = pricing.LONG_PROMPT_BANDS
    band = Case(None, ((prompt > high, high), (prompt > low, low)), 0)
    query = LlmCall.select(
        LlmCall.purpose,
        LlmCall.model,
        band,
        fn.COUNT(LlmCall.id),
        fn.SUM(LlmCall.error.is_null(False).cast("integer")),
        *(fn.SUM(getattr(LlmCall, k)) for k in _SUMS[2:]),
    ).group_by(LlmCall.purpose, LlmCall.model, band).order_by(LlmCall.purpose, LlmCall.model)
    if since is not None:
        query = query.where(LlmCall.created_at >= to_utc_naive(since))
    grouped: dict[tuple[str, str], dict[int, dict[str, int]]] = {}
    for purpose, model, band_value, *sums in query.tuples():
        grouped.setdefault((purpose, model), {})[band_value] = {k: v or 0 for k, v in zip(_SUMS, sums, strict=True)}
    rows = [_usage_row(purpose, model, bands) for (purpose, model), bands in grouped.items()]
    total = _usage_row("all", "all", {0: {k: sum(getattr(r, k) for r in rows) for k in _SUMS}})
    costs = [r for r in rows if r.cost_usd is not None]
    total.cost_usd = sum(r.cost_usd for r in costs) if costs else None
    total.uncached_cost_usd = sum(r.uncached_cost_usd for r in costs) if costs else None
    total.saved_usd = (total.uncached_cost_usd - total.cost_usd) if costs else None
    return UsageReport(since=since, rows=rows, total=total)
