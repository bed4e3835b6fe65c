import json
from datetime import datetime, timedelta

import pytest

from salesbot import render
from salesbot.pricing import cost_usd
from salesbot.store import LlmCall, utcnow


def call(purpose="dialogue", model="claude-sonnet-5-5", error=None, created_at=None, **tokens):
    return LlmCall.create(purpose=purpose, model=model, error=error, created_at=created_at or utcnow(), **tokens)


def test_cost_follows_the_price_table():
    # Sonnet: $3 in, $15 out per million; writes 1.25x, reads 0.1x of the input price
    assert cost_usd("claude-sonnet-5-5", 1_000_000, 0, 0, 0) == pytest.approx(3.0)
    assert cost_usd("claude-sonnet-5-5", 0, 1_000_000, 0, 0) == pytest.approx(15.0)
    assert cost_usd("claude-sonnet-5-5", 0, 0, 1_000_000, 0) == pytest.approx(3.75)
    assert cost_usd("claude-sonnet-5-5", 0, 0, 0, 1_000_000) == pytest.approx(0.3)
    assert cost_usd("claude-haiku-5-5", 1_000_000, 1_000_000, 0, 0) == pytest.approx(6.0)
    assert cost_usd("somebody-elses-model", 1, 1, 1, 1) is None


def test_usage_report_per_purpose_and_model(db, run):
    call(input_tokens=100, output_tokens=50, cache_creation_input_tokens=2000)
    call(input_tokens=120, output_tokens=60, cache_read_input_tokens=2000)
    call(error="529 overloaded_error", attempts=3)
    call(purpose="parse_time", model="claude-haiku-5-5", input_tokens=300, output_tokens=20)
    data = json.loads(run("usage", "--json").stdout)
    rows = {(r["purpose"], r["model"]): r for r in data["rows"]}
    dialogue = rows[("dialogue", "claude-sonnet-5-5")]
    assert (dialogue["calls"], dialogue["failures"]) == (3, 1)
    assert (dialogue["input_tokens"], dialogue["output_tokens"]) == (220, 110)
    assert (dialogue["cache_creation_input_tokens"], dialogue["cache_read_input_tokens"]) == (2000, 2000)
    assert dialogue["cache_hit_ratio"] == pytest.approx(2000 / 4220)
    expected = (220 * 3 + 2000 * 3 * 1.25 + 2000 * 3 * 0.1 + 110 * 15) / 1e6
    assert dialogue["cost_usd"] == pytest.approx(expected)
    uncached = (4220 * 3 + 110 * 15) / 1e6
    assert dialogue["saved_usd"] == pytest.approx(uncached - expected)
    assert data["total"]["calls"] == 4
    assert data["total"]["cost_usd"] == pytest.approx(expected + (300 * 1 + 20 * 5) / 1e6)

    table = run("usage").stdout
    assert "dialogue" in table and "parse_time" in table and "47%" in table


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
