import json
import logging

import pytest

from salesbot import llm
from salesbot.errors import LLMUnavailable
from salesbot.store import LlmCall
from scripts.fake_claude import Drop, Error, Hang, Reply
from tests.conftest import TEST_KEY, make_claude

HELLO = [{"role": "user", "content": "Здравствуйте"}]


def ask(client, **kwargs):
    kwargs.setdefault("purpose", "test")
    kwargs.setdefault("messages", HELLO)
    return client.run(client.complete(**kwargs))


def only_row():
    rows = list(LlmCall.select())
    assert len(rows) == 1
    return rows[0]


def test_429_with_retry_after_waits_that_long_and_logs(claude, fake_api, clock, caplog):
    fake_api.enqueue(Error(429, "rate_limit_error", headers={"retry-after": "1"}), Reply("Добрый день!"))
    with caplog.at_level(logging.WARNING, logger="salesbot.llm"):
        result = ask(claude)
    assert result.text == "Добрый день!"
    assert len(fake_api.requests) == 2
    assert fake_api.requests[1].at - fake_api.requests[0].at >= 1.0
    assert clock.waits == [1.0]
    assert "Retry 1 after error: 429 rate_limit_error" in caplog.text
    row = only_row()
    assert (row.attempts, row.error, row.purpose) == (2, None, "test")


def test_retry_after_ms_is_preferred(claude, fake_api, clock):
    fake_api.enqueue(Error(429, "rate_limit_error", headers={"retry-after-ms": "250", "retry-after": "9"}),
                     Reply("ok"))
    ask(claude)
    assert clock.waits == [0.25]


def test_500_500_200_makes_three_requests(claude, fake_api, clock, caplog):
    fake_api.enqueue(Error(500), Error(500), Reply("ok"))
    with caplog.at_level(logging.WARNING, logger="salesbot.llm"):
        assert ask(claude).text == "ok"
    assert len(fake_api.requests) == 3
    assert len(clock.waits) == 2 and all(2 <= w <= 30 for w in clock.waits)  # backoff with jitter
    assert "Retry 2 after error: 500 api_error" in caplog.text
    assert only_row().attempts == 3


def test_529_three_times_gives_up_with_a_typed_error(claude, fake_api):
    fake_api.enqueue(*[Error(529, "overloaded_error")] * 3, Reply("never"))
    with pytest.raises(LLMUnavailable, match="529 overloaded_error"):
        ask(claude)
    assert len(fake_api.requests) == 3
    row = only_row()
    assert (row.attempts, row.error) == (3, "529 overloaded_error")
    assert row.input_tokens == 0


@pytest.mark.parametrize("status, kind", [(400, "invalid_request_error"), (401, "authentication_error"),
                                          (403, "permission_error"), (404, "not_found_error"),
                                          (413, "request_too_large"), (422, "invalid_request_error")])
def test_client_errors_are_not_retried(claude, fake_api, status, kind):
    fake_api.enqueue(Error(status, kind), Reply("never"))
    with pytest.raises(LLMUnavailable):
        ask(claude)
    assert len(fake_api.requests) == 1
    assert only_row().error == f"{status} {kind}"


@pytest.mark.parametrize("status", [408, 409, 502, 503])
def test_other_transient_statuses_are_retried(claude, fake_api, status):
    fake_api.enqueue(Error(status), Reply("ok"))
    assert ask(claude).text == "ok"
    assert len(fake_api.requests) == 2


def test_a_dropped_connection_is_retried(claude, fake_api):
    fake_api.enqueue(Drop(), Reply("ok"))
    assert ask(claude).text == "ok"
    assert len(fake_api.requests) == 2


def test_a_hanging_server_times_out_and_is_retried(fake_api, clock, db, aio):
    client = make_claude(fake_api, clock, timeout=0.3)
    client.run = aio.run
    fake_api.enqueue(Hang(5), Reply("ok"))
    assert ask(client).text == "ok"
    assert len(fake_api.requests) == 2
    fake_api.enqueue(Hang(5), Hang(5), Hang(5))
    with pytest.raises(LLMUnavailable, match="timeout"):
        ask(client)


@pytest.mark.parametrize("code", ["enforced_spend_limit_reached", "contract_spend_limit_reached",
                                  "linked_organization_spend_limit_reached"])
def test_spend_limit_429_is_not_retried(claude, fake_api, code):
    fake_api.enqueue(Error(429, "rate_limit_error", error_code=code), Reply("never"))
    with pytest.raises(LLMUnavailable, match=code):
        ask(claude)
    assert len(fake_api.requests) == 1


def test_a_ramp_limit_429_is_retried(claude, fake_api):
    fake_api.enqueue(Error(429, "rate_limit_error", error_code="ramp_limit_exceeded"), Reply("ok"))
    assert ask(claude).text == "ok"


def test_x_should_retry_false_is_obeyed(claude, fake_api):
    fake_api.enqueue(Error(500, headers={"x-should-retry": "false"}), Reply("never"))
    with pytest.raises(LLMUnavailable):
        ask(claude)
    assert len(fake_api.requests) == 1


def test_a_retry_after_longer_than_a_minute_gives_up_now(claude, fake_api, clock):
    fake_api.enqueue(Error(429, "rate_limit_error", headers={"retry-after": "120"}), Reply("never"))
    with pytest.raises(LLMUnavailable):
        ask(claude)
    assert len(fake_api.requests) == 1 and clock.waits == []


def test_the_sdk_does_not_retry_on_its_own(claude, fake_api):
    fake_api.enqueue(Error(500), Error(500), Error(500), Reply("would be a 4th request"))
    with pytest.raises(LLMUnavailable):
        ask(claude)
    assert len(fake_api.requests) == 3
    assert claude._sdk.max_retries == 0


def test_the_api_key_never_reaches_logs_or_errors(claude, fake_api, caplog):
    fake_api.enqueue(Error(401, "authentication_error", message=f"invalid x-api-key {TEST_KEY}"))
    with caplog.at_level(logging.DEBUG), pytest.raises(LLMUnavailable) as caught:
        ask(claude)
    assert TEST_KEY in json.dumps(fake_api.requests[0].headers)  # it was sent …
    assert TEST_KEY not in str(caught.value)                       # … and is nowhere else
    assert TEST_KEY not in caplog.text
    assert TEST_KEY not in (only_row().error or "")


SCHEMA = {
    "type": "object",
    "properties": {"reply": {"type": "string"}, "status": {"type": "string", "enum": ["new", "warm", "hot"]}},
    "required": ["reply", "status"],
    "additionalProperties": False,
}


def test_structured_answer_is_validated_and_returned(claude, fake_api):
    fake_api.enqueue(Reply(json.dumps({"reply": "Да", "status": "warm"})))
    result = claude.run(claude.structured(purpose="t", messages=HELLO, schema=SCHEMA))
    assert result.data == {"reply": "Да", "status": "warm"}
    sent = fake_api.bodies[0]["output_config"]
    assert sent == {"format": {"type": "json_schema", "schema": SCHEMA}}


@pytest.mark.parametrize("text, says", [
    ("not json at all", "not JSON"),
    (json.dumps({"reply": "x", "status": "vip"}), "is not one of"),
    (json.dumps({"reply": "x"}), "missing 'status'"),
    (json.dumps({"reply": 5, "status": "new"}), "expected string"),
    (json.dumps({"reply": "x", "status": "new", "extra": 1}), "unexpected 'extra'"),
])
def test_an_answer_off_the_schema_is_a_failed_call(claude, fake_api, text, says):
    fake_api.enqueue(Reply(text))
    with pytest.raises(llm.InvalidAnswer, match=says):
        claude.run(claude.structured(purpose="t", messages=HELLO, schema=SCHEMA))
    row = only_row()
    assert row.error.startswith("invalid answer") and says.split("'")[0] in row.error
    assert row.output_tokens > 0  # what it cost is still counted


def test_a_truncated_structured_answer_is_a_failed_call(claude, fake_api):
    fake_api.enqueue(Reply('{"reply": "Добрый', stop_reason="max_tokens"))
    with pytest.raises(llm.InvalidAnswer, match="max_tokens"):
        claude.run(claude.structured(purpose="t", messages=HELLO, schema=SCHEMA))


def test_ledger_records_usage_with_cache_fields(claude, fake_api):
    fake_api.enqueue(Reply("ok", usage={"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 2000,
                                        "cache_read_input_tokens": 0}))
    ask(claude, purpose="dialogue")
    row = only_row()
    assert (row.purpose, row.model, row.input_tokens, row.output_tokens, row.cache_creation_input_tokens) == (
        "dialogue", "claude-sonnet-5-5", 10, 5, 2000)
    assert row.duration_ms >= 0 and row.created_at is not None


def test_a_failing_ledger_never_costs_the_answer(fake_api, clock, caplog, aio):
    def broken(row):
        raise RuntimeError("disk full")

    client = make_claude(fake_api, clock, ledger=broken)
    client.run = aio.run
    fake_api.enqueue(Reply("ok"))
    assert ask(client).text == "ok"
    assert "could not record" in caplog.text


def test_default_models_are_current_in_the_installed_sdk():
    from anthropic._data import DEPRECATED_MODELS
    from anthropic.types.model_param import ModelParam

    from salesbot.config import DEFAULT_FAST_MODEL, DEFAULT_MODEL

    known = ModelParam.__args__[0].__args__
    for model in (DEFAULT_MODEL, DEFAULT_FAST_MODEL):
        assert model in known and model not in DEPRECATED_MODELS
    assert "sonnet" in DEFAULT_MODEL and "haiku" in DEFAULT_FAST_MODEL
