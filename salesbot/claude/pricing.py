"""Model facts from Anthropic's published tables: list prices, cache minimums, effort and thinking.

Pure and free of anthropic, so `salesbot usage` can price the ledger and the engine can lay out a
request without importing the SDK. Every figure comes from a page in SOURCES (read on the date
given); when Anthropic changes a page, change the row and its date together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# What each table below was read from. (page, what it gave, date read)
SOURCES: tuple[tuple[str, str, str], ...] = (
    ("https://platform.claude.com/docs/en/about-claude/pricing",
     "model pricing table: base input, 5m cache writes, 1h cache writes, cache hits, output; "
     "5m write = 1.25x input, 1h write = 2x input; long context pricing (Haiku 5.5 above 100,000 "
     "prompt tokens; Sonnet 4.5/4 above 200,000)", "2026-10-08"),
    ("https://platform.claude.com/docs/en/models/haiku-5-5/overview",
     "Haiku 5.5: $0.10 / $0.50, 5m write $0.125, 1h write $0.20, cache read $0.01 for prompts up to "
     "100,000 tokens; $0.50 / $2.50, $0.625, $1, $0.05 over; default effort medium", "2026-10-08"),
    ("https://platform.claude.com/docs/en/models/sonnet-5-5/migration-guide",
     "Sonnet 5.5: Sonnet 5 prices except cache reads at $0.10 (0.05x); thinking on by default; "
     "thinking {type: disabled} and budget_tokens are a 400; accepted types adaptive, between_tools",
     "2026-10-08"),
    ("https://platform.claude.com/docs/en/build-with-claude/prompt-caching",
     "minimum cacheable prompt length per model; TTL 5m (default) or 1h; at most 4 breakpoints; "
     "1h entries must come before 5m ones; a hit refreshes the entry at no cost", "2026-10-08"),
    ("https://platform.claude.com/docs/en/build-with-claude/prompt-engineering/prompting-claude-haiku-5-5",
     "Haiku 5.5: thinking on by default and counts toward max_tokens; effort low..max; "
     "thinking {type: disabled} accepted only at low, medium, high (400 at xhigh, max)", "2026-10-08"),
    ("https://platform.claude.com/docs/en/models/overview",
     "default effort per model (Sonnet 5.5 high, Haiku 5.5 medium, Opus 5.5 medium, Fable 5.1 high); "
     "Haiku 4.5: extended thinking, effort not supported", "2026-10-08"),
)

MTOK = 1_000_000


@dataclass(frozen=True)
class Rates:
    """USD per million tokens."""

    input: float
    output: float
    write_5m: float
    write_1h: float
    read: float


@dataclass(frozen=True)
class Price:
    base: Rates
    long: Rates | None = None  # every token of a request whose prompt is above `long_above`
    long_above: int | None = None  # prompt tokens: input + cache reads + cache writes

    def rates(self, long_prompt: bool) -> Rates:
        return self.long if long_prompt and self.long else self.base


def _std(inp: float, out: float, read_factor: float = 0.1) -> Rates:
    """The pricing page's multipliers: 5m write 1.25x, 1h write 2x, hit `read_factor` x input."""
    return Rates(inp, out, round(inp * 1.25, 6), round(inp * 2, 6), round(inp * read_factor, 6))


# Longest matching prefix wins, so dated ids (claude-haiku-4-5-20251001) find their family.
PRICES: dict[str, Price] = {
    "claude-fable-5-1": Price(_std(10, 50, 0.025)),
    "claude-mythos-5-1": Price(_std(10, 50, 0.025)),
    "claude-fable-5": Price(_std(10, 50)),
    "claude-mythos-5": Price(_std(10, 50)),
    "claude-opus-5-5": Price(_std(4, 20, 0.05)),
    "claude-opus-5": Price(_std(5, 25)),
    "claude-opus-4-8": Price(_std(5, 25)),
    "claude-opus-4-7": Price(_std(5, 25)),
    "claude-opus-4-6": Price(_std(5, 25)),
    "claude-opus-4-5": Price(_std(5, 25)),
    "claude-opus-4-1": Price(_std(15, 75)),
    "claude-opus-4": Price(_std(15, 75)),
    "claude-sonnet-5-5": Price(_std(2, 10, 0.05)),
    "claude-sonnet-5": Price(_std(2, 10)),
    "claude-sonnet-4-6": Price(_std(3, 15)),
    "claude-sonnet-4-5": Price(_std(3, 15), _std(6, 22.5), 200_000),
    "claude-sonnet-4": Price(_std(3, 15), _std(6, 22.5), 200_000),
    "claude-haiku-5-5": Price(Rates(0.10, 0.50, 0.125, 0.20, 0.01), Rates(0.50, 2.50, 0.625, 1.00, 0.05), 100_000),
    "claude-haiku-4-5": Price(_std(1, 5)),
    "claude-haiku-3-5": Price(_std(0.8, 4)),
}
LONG_PROMPT_BANDS = (100_000, 200_000)  # every `long_above` in PRICES is one of these (usage groups by band)

# The shortest prefix, in tokens, prompt caching will store; shorter is silently not cached.
MIN_CACHEABLE_TOKENS: dict[str, int] = {
    "claude-fable-5": 512, "claude-mythos-5": 512, "claude-opus-5": 512, "claude-sonnet-5-5": 512,
    "claude-haiku-5-5": 512,
    "claude-sonnet-5": 1024, "claude-opus-4-8": 1024, "claude-sonnet-4": 1024, "claude-opus-4-1": 1024,
    "claude-opus-4-0": 1024, "claude-opus-4-2": 1024,
    "claude-mythos-preview": 2048, "claude-opus-4-7": 2048, "claude-haiku-3-5": 2048,
    "claude-opus-4-6": 4096, "claude-opus-4-5": 4096, "claude-haiku-4-5": 4096,
}
UNKNOWN_MIN_CACHEABLE = 4096  # the largest documented minimum: never promise caching we cannot check

EFFORTS = ("low", "medium", "high", "xhigh", "max")


@dataclass(frozen=True)
class Thinking:
    """How a model thinks: `efforts` it accepts (empty: the parameter is not supported), its
    default effort, whether it thinks when `thinking` is left out, and the `thinking.type` values it
    takes ('disabled' only up to `disable_upto` effort where that is a rule)."""

    efforts: tuple[str, ...] = ()
    default_effort: str | None = None
    on_by_default: bool = False
    types: tuple[str, ...] = ("enabled", "disabled")
    disable_upto: str | None = None


THINKING: dict[str, Thinking] = {
    "claude-sonnet-5-5": Thinking(EFFORTS, "high", True, ("adaptive", "between_tools")),
    "claude-haiku-5-5": Thinking(EFFORTS, "medium", True, ("adaptive", "disabled"), disable_upto="high"),
    "claude-opus-5-5": Thinking(EFFORTS, "medium", True, ("adaptive",)),
    "claude-fable-5-1": Thinking(EFFORTS, "high", True, ("adaptive",)),
    "claude-sonnet-5": Thinking(EFFORTS, "high", True, ("adaptive", "disabled")),
    "claude-opus-5": Thinking(EFFORTS, "high", True, ("adaptive", "disabled"), disable_upto="high"),
    "claude-haiku-4-5": Thinking(),
}
UNKNOWN_THINKING = Thinking()  # send nothing the model might reject


def _lookup(table: dict[str, Any], model: str) -> Any:
    matches = [prefix for prefix in table if model == prefix or model.startswith(prefix + "-")
               or model.startswith(prefix + "[") or model.startswith(prefix + "@")]
    return table[max(matches, key=len)] if matches else None


def price_of(model: str) -> Price | None:
    return _lookup(PRICES, model)


def min_cacheable_tokens(model: str) -> int:
    return _lookup(MIN_CACHEABLE_TOKENS, model) or UNKNOWN_MIN_CACHEABLE


def thinking_of(model: str) -> Thinking:
    return _lookup(THINKING, model) or UNKNOWN_THINKING


def effort_for(model: str, wanted: str) -> str | None:
    """The effort to send: `wanted` when the model takes it, else the nearest level below it (then
    above); None when the model has no effort parameter (sending one would be a 400)."""
    efforts = thinking_of(model).efforts
    if not efforts:
        return None
    rank = EFFORTS.index(wanted)
    for candidate in (*reversed(EFFORTS[: rank + 1]), *EFFORTS[rank + 1:]):
        if candidate in efforts:
            return candidate
    return None


@dataclass
class Tokens:
    """Token counts of one call, or of many summed (the ledger's columns)."""

    input: int = 0
    output: int = 0
    writes_5m: int = 0
    writes_1h: int = 0
    reads: int = 0

    @property
    def prompt(self) -> int:
        return self.input + self.writes_5m + self.writes_1h + self.reads


def cost_usd(model: str, tokens: Tokens, long_prompt: bool | None = None) -> float | None:
    """What `tokens` cost at list prices; None for a model without a published price.

    `long_prompt` says whether the tokens belong to requests above the model's long-prompt
    threshold; left out, `tokens` is taken as one request and its prompt size decides.
    """
    price = price_of(model)
    if price is None:
        return None
    if long_prompt is None:
        long_prompt = price.long_above is not None and tokens.prompt > price.long_above
    r = price.rates(long_prompt)
    return (tokens.input * r.input + tokens.output * r.output + tokens.writes_5m * r.write_5m
            + tokens.writes_1h * r.write_1h + tokens.reads * r.read) / MTOK


def uncached_cost_usd(model: str, tokens: Tokens, long_prompt: bool | None = None) -> float | None:
    """The same prompt and answer with no caching at all: every prompt token at the input price."""
    return cost_usd(model, Tokens(input=tokens.prompt, output=tokens.output), long_prompt)
