import json
from datetime import datetime, timedelta

import pytest

from salesbot.claude.pricing import Tokens, cost_usd
from salesbot.cli import render
from salesbot.store import LlmCall, utcnow


def call(purpose="dialogue", model="claude-sonnet-5-5", error=None, created_at=None, **tokens):
    return LlmCall.create(purpose=purpose, model=model, error=error, created_at=created_at or utcnow(), **tokens)


# Anthropic's published prices, USD per million tokens, typed from the pages (read 2026-10-08):
# https://platform.claude.com/docs/en/about-claude/pricing and the models' overview pages.
SONNET_5_5 = dict(inp=2.00, out=10.00, w5=2.50, w1=4.00, read=0.10)
HAIKU_5_5 = dict(inp=0.10, out=0.50, w5=0.125, w1=0.20, read=0.01)  # prompts up to 100,000 tokens
HAIKU_5_5_LONG = dict(inp=0.50, out=2.50, w5=0.625, w1=1.00, read=0.05)  # prompts over 100,000 tokens


def published(p, inp=0, out=0, w5=0, w1=0, read=0):
    return (inp * p["inp"] + out * p["out"] + w5 * p["w5"] + w1 * p["w1"] + read * p["read"]) / 1e6


@pytest.mark.parametrize("model, prices", [("claude-sonnet-5-5", SONNET_5_5), ("claude-haiku-5-5", HAIKU_5_5)])
def test_cost_follows_the_published_tables(model, prices):
    for field, tokens, amount in (("inp", Tokens(input=50_000), 50_000), ("out", Tokens(output=10**6), 10**6),
                                  ("w5", Tokens(writes_5m=50_000), 50_000), ("w1", Tokens(writes_1h=50_000), 50_000),
                                  ("read", Tokens(reads=50_000), 50_000)):
        assert cost_usd(model, tokens) == pytest.approx(amount * prices[field] / 1e6, rel=1e-9), field
    assert cost_usd("somebody-elses-model", Tokens(1, 1, 1, 1, 1)) is None


def test_haiku_5_5_prompts_over_100k_tokens_pay_the_higher_rates_on_every_token():
    short = Tokens(input=90_000, output=1000, reads=10_000)  # 100,000 prompt tokens: still the low band
    long = Tokens(input=90_001, output=1000, reads=10_000)
    assert cost_usd("claude-haiku-5-5", short) == pytest.approx(published(HAIKU_5_5, 90_000, 1000, read=10_000))
    assert cost_usd("claude-haiku-5-5", long) == pytest.approx(published(HAIKU_5_5_LONG, 90_001, 1000, read=10_000))


def test_usage_report_per_purpose_and_model(db, run):
    call(input_tokens=100, output_tokens=50, cache_creation_input_tokens=2000, cache_creation_1h_input_tokens=2000)
    call(input_tokens=120, output_tokens=60, cache_read_input_tokens=2000, thinking_tokens=40)
    call(input_tokens=10, cache_creation_input_tokens=500)  # a row from before the 5m/1h split: 5m writes
    call(error="529 overloaded_error", attempts=3)
    call(purpose="parse_time", model="claude-haiku-5-5", input_tokens=300, output_tokens=20)
    call(purpose="parse_time", model="claude-haiku-5-5", input_tokens=150_000, output_tokens=20)
    data = json.loads(run("usage", "--json").stdout)
    rows = {(r["purpose"], r["model"]): r for r in data["rows"]}
    dialogue = rows[("dialogue", "claude-sonnet-5-5")]
    assert (dialogue["calls"], dialogue["failures"]) == (4, 1)
    assert (dialogue["input_tokens"], dialogue["output_tokens"], dialogue["thinking_tokens"]) == (230, 110, 40)
    assert (dialogue["cache_creation_input_tokens"], dialogue["cache_read_input_tokens"]) == (2500, 2000)
    assert (dialogue["cache_creation_5m_input_tokens"], dialogue["cache_creation_1h_input_tokens"]) == (0, 2000)
    assert dialogue["cache_hit_ratio"] == pytest.approx(2000 / 4730)
    expected = published(SONNET_5_5, inp=230, out=110, w5=500, w1=2000, read=2000)
    assert dialogue["cost_usd"] == pytest.approx(expected, rel=0.01)
    uncached = published(SONNET_5_5, inp=4730, out=110)
    assert dialogue["saved_usd"] == pytest.approx(uncached - expected, rel=0.01)
    parse = rows[("parse_time", "claude-haiku-5-5")]
    parse_cost = published(HAIKU_5_5, inp=300, out=20) + published(HAIKU_5_5_LONG, inp=150_000, out=20)
    assert parse["cost_usd"] == pytest.approx(parse_cost, rel=0.01)
    assert data["total"]["calls"] == 6
    assert data["total"]["cost_usd"] == pytest.approx(expected + parse_cost, rel=0.01)

    table = run("usage").stdout
    assert "dialogue" in table and "parse_time" in table and "42%" in table and "write 1h" in table


def test_usage_since(db, run):
    call(created_at=utcnow() - timedelta(days=10), input_tokens=1)
    call(input_tokens=2)
    assert json.loads(run("usage", "--since", "7d", "--json").stdout)["total"]["input_tokens"] == 2
    day = (datetime.now() - timedelta(days=30)).date().isoformat()
    assert json.loads(run("usage", "--since", day, "--json").stdout)["total"]["input_tokens"] == 3


def test_usage_bad_since_and_empty(run):
    assert "No Claude calls recorded." in run("usage").stdout
    assert "--since: expected a date" in run("usage", "--since", "last tuesday", code=1).stderr


def test_usage_on_a_narrow_terminal_is_one_block_per_row(db, run, monkeypatch):
    from rich.console import Console


    monkeypatch.setattr(render, "out", Console(width=80, highlight=False))
    call(input_tokens=1234, output_tokens=5)
    text = run("usage").stdout
    assert "dialogue claude-sonnet-5-5" in text and "  input               1,234" in text
    assert "…" not in text
