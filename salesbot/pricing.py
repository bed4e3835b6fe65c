"""Model facts for reporting and caching: list prices and minimum cacheable lengths.

Kept apart from llm.py so `salesbot usage` can price the ledger without importing anthropic.
"""

from __future__ import annotations

from typing import Any

# Longest matching prefix wins. Prices are USD per million input/output tokens (list prices of the
# model families; estimates for reporting, not an invoice). Minimums are the shortest prefix, in
# tokens, that prompt caching will store: below it caching silently does nothing.

PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus-4-0": (15.0, 75.0),
    "claude-opus": (5.0, 25.0),
    "claude-sonnet": (3.0, 15.0),
    "claude-haiku-3": (0.8, 4.0),
    "claude-haiku": (1.0, 5.0),
}
CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1

MIN_CACHEABLE_TOKENS: dict[str, int] = {
    "claude-sonnet-4-6": 2048,
    "claude-sonnet": 1024,
    "claude-opus-4-5": 4096,
    "claude-opus-4-6": 4096,
    "claude-opus-4-7": 4096,
    "claude-opus-4": 1024,
    "claude-opus": 512,
    "claude-haiku-3": 2048,
    "claude-haiku": 4096,
}


def _lookup(table: dict[str, Any], model: str) -> Any:
    matches = [prefix for prefix in table if model.startswith(prefix)]
    return table[max(matches, key=len)] if matches else None


def price_of(model: str) -> tuple[float, float] | None:
    return _lookup(PRICES, model)


def min_cacheable_tokens(model: str) -> int:
    return _lookup(MIN_CACHEABLE_TOKENS, model) or 1024


def estimate_tokens(text: str) -> int:
    """A rough token count (about 3 characters a token for Russian and English prose)."""
    return len(text) // 3


def cost_usd(model: str, input_tokens: int, output_tokens: int, cache_writes: int, cache_reads: int) -> float | None:
    price = price_of(model)
    if price is None:
        return None
    per_in, per_out = price[0] / 1e6, price[1] / 1e6
    return (input_tokens * per_in + cache_writes * per_in * CACHE_WRITE_FACTOR
            + cache_reads * per_in * CACHE_READ_FACTOR + output_tokens * per_out)


