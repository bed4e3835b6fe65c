import json
import logging
import time

import pytest

from salesbot.claude import client as llm
from salesbot.errors import LLMUnavailable
from salesbot.store import LlmCall
from scripts.fake_claude import Drop, Error, Hang, Raw, Reply, Trickle
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
    with caplog.at_level(logging.WARNING, logger="salesbot.claude.client"):
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
    with caplog.at_level(logging.WARNING, logger="salesbot.claude.client"):
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
    client = make_claude(fake_api, clock, timeout=0.3, deadline=60)
    client.run = aio.run
    fake_api.enqueue(Hang(5), Reply("ok"))
    assert ask(client).text == "ok"
    assert len(fake_api.requests) == 2
    fake_api.enqueue(Hang(5), Hang(5), Hang(5))
    with pytest.raises(LLMUnavailable, match="timeout"):
        ask(client)


@pytest.mark.parametrize("code", ["enforced_spend_limit_reached", "contract_spend_limit_reached"])
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
    result = claude.run(claude.complete(purpose="t", messages=HELLO, schema=SCHEMA))
    assert result.data == {"reply": "Да", "status": "warm"}
    sent = fake_api.bodies[0]["output_config"]
    assert sent == {"effort": "low", "format": {"type": "json_schema", "schema": SCHEMA}}


@pytest.mark.parametrize("text, says", [
    ("not json at all", "not JSON"),
    (json.dumps({"reply": "x", "status": "vip"}), "is not one of"),
    (json.dumps({"reply": "x"}), "missing 'status'"),
    (json.dumps({"reply": 5, "status": "new"}), "expected string"),
    (json.dumps({"reply": "x", "status": "new", "extra": 1}), "unexpected 'extra'"),
])
def test_an_answer_off_the_schema_is_retried_once_then_a_failed_call(claude, fake_api, text, says):
    fake_api.enqueue(Reply(text), Reply(text), Reply(json.dumps({"reply": "never", "status": "new"})))
    with pytest.raises(llm.InvalidAnswer, match=says):
        claude.run(claude.complete(purpose="t", messages=HELLO, schema=SCHEMA))
    assert len(fake_api.bodies) == 2
    row = only_row()
    assert row.error.startswith("invalid answer") and says.split("'")[0] in row.error
    assert row.attempts == 2 and row.output_tokens > 0  # what both cost is still counted


def test_one_invalid_answer_then_a_good_one_is_an_answer(claude, fake_api):
    fake_api.enqueue(Reply("<html>502 Bad Gateway</html>"), Reply(json.dumps({"reply": "Да", "status": "new"})))
    result = claude.run(claude.complete(purpose="t", messages=HELLO, schema=SCHEMA))
    assert result.data["reply"] == "Да"
    row = only_row()
    assert (row.attempts, row.error) == (2, None)


@pytest.mark.parametrize("raw", [
    Raw("<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
    Raw('{"id": "msg_1", "type": "message", "content": [{"type": "text", "text": "hi"'),
    Raw('{"unexpected": "shape"}'),
    Raw('[1, 2, 3]'),
])
def test_a_malformed_200_is_a_typed_invalid_answer_retried_once(claude, fake_api, raw):
    fake_api.enqueue(raw, raw, Reply("never"))
    with pytest.raises(llm.InvalidAnswer):
        claude.run(claude.complete(purpose="t", messages=HELLO, schema=SCHEMA))
    assert len(fake_api.bodies) == 2
    row = only_row()
    assert row.error.startswith("invalid answer") and row.attempts == 2


def test_a_truncated_structured_answer_is_a_failed_call(claude, fake_api):
    cut = Reply('{"reply": "Добрый', stop_reason="max_tokens")
    fake_api.enqueue(cut, cut, cut, Reply("never"))
    with pytest.raises(llm.InvalidAnswer, match="max_tokens"):
        claude.run(claude.complete(purpose="t", messages=HELLO, schema=SCHEMA))
    assert len(fake_api.bodies) == 3  # once with twice the cap, once more as an invalid answer
    assert only_row().stop_reason == "max_tokens"


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


# --- retries as the SDK means them ----------------------------------------------------------------


def test_retry_after_zero_backs_off_instead_of_hammering(claude, fake_api, clock):
    fake_api.enqueue(Error(429, "rate_limit_error", headers={"retry-after": "0"}), Reply("ok"))
    assert ask(claude).text == "ok"
    assert len(clock.waits) == 1 and 2 <= clock.waits[0] <= 30


def test_x_should_retry_true_is_honoured_even_on_a_status_we_would_not_retry(claude, fake_api):
    fake_api.enqueue(Error(400, "invalid_request_error", headers={"x-should-retry": "true"}), Reply("ok"))
    assert ask(claude).text == "ok"
    assert len(fake_api.bodies) == 2


@pytest.mark.parametrize("status, code", [(429, "enforced_spend_limit_reached"), (402, None),
                                          (402, "linked_organization_spend_limit_reached")])
def test_typed_spend_limits_are_never_retried_even_when_the_header_says_so(claude, fake_api, status, code):
    fake_api.enqueue(Error(status, "billing_error" if status == 402 else "rate_limit_error", error_code=code,
                           headers={"x-should-retry": "true"}), Reply("never"))
    with pytest.raises(LLMUnavailable, match=str(status)):
        ask(claude)
    assert len(fake_api.bodies) == 1


def test_the_request_id_is_logged_with_every_failure_and_stored(claude, fake_api, caplog):
    fake_api.enqueue(Error(500), Error(529, "overloaded_error"), Error(529, "overloaded_error"))
    with caplog.at_level(logging.WARNING, logger="salesbot.claude.client"), pytest.raises(LLMUnavailable):
        ask(claude)
    ids = [f"req_fake_{n:04d}" for n in (1, 2, 3)]
    assert all(rid in caplog.text for rid in ids)
    assert only_row().request_id == ids[-1]


def test_an_answer_stores_its_request_id_stop_reason_and_thinking(claude, fake_api):
    fake_api.enqueue(Reply("Добрый день!"))
    result = ask(claude)
    row = only_row()
    assert (row.request_id, row.stop_reason) == (result.request_id, "end_turn")
    assert row.request_id.startswith("req_fake_")
    assert 0 < row.thinking_tokens < row.output_tokens  # claude-sonnet-5-5 thinks, even at low effort


# --- deadlines in wall time -----------------------------------------------------------------------


@pytest.mark.parametrize("headers", [False, True], ids=["trickled body", "trickled headers"])
def test_a_trickling_server_cannot_stretch_a_call_past_its_deadline(fake_api, clock, db, aio, headers):
    client = make_claude(fake_api, clock, timeout=0.5, sleep=_no_wait)  # the whole call: 1.0 s
    client.run = aio.run
    fake_api.enqueue(*[Trickle(0.05, headers=headers)] * 3)
    began = time.monotonic()
    with pytest.raises(LLMUnavailable, match=r"timeout|deadline"):
        ask(client)
    assert time.monotonic() - began < 1.6  # the SDK's per-read timeout alone would wait ~30 s
    aio.run(client.close())


async def _no_wait(seconds):
    return None


# --- thinking and effort --------------------------------------------------------------------------


def test_default_settings_leave_room_for_thinking_and_send_an_effort_the_model_takes(claude, fake_api):
    fake_api.enqueue(Reply(json.dumps({"reply": "Да", "status": "warm"})))
    claude.run(claude.complete(purpose="t", messages=HELLO, schema=SCHEMA, answer_tokens=800))
    body = fake_api.bodies[0]
    assert body["output_config"]["effort"] == "low" and "thinking" not in body  # disabled is a 400 on Sonnet 5.5
    assert body["max_tokens"] >= 800 + 3000


def test_a_max_tokens_stop_is_retried_once_with_a_larger_cap(claude, fake_api):
    fake_api.enqueue(Reply(json.dumps({"reply": "Да", "status": "warm"}), thinking=100_000),
                     Reply(json.dumps({"reply": "Да", "status": "warm"})))
    result = claude.run(claude.complete(purpose="t", messages=HELLO, schema=SCHEMA))
    first, second = fake_api.bodies
    assert second["max_tokens"] == 2 * first["max_tokens"]
    assert result.data["reply"] == "Да"
    row = only_row()
    assert row.attempts == 2 and row.thinking_tokens >= first["max_tokens"]  # the cut request is billed too


def test_a_model_without_effort_is_not_sent_one(fake_api, clock, db, aio):
    client = make_claude(fake_api, clock, model="claude-haiku-4-5", effort="max")
    client.run = aio.run
    assert ask(client).text
    assert "output_config" not in fake_api.bodies[0]
    aio.run(client.close())


def test_the_stand_in_refuses_what_the_api_refuses(claude, fake_api):
    from salesbot.claude.prompts import cache_control

    def refused(**params):
        with pytest.raises(LLMUnavailable, match="400 invalid_request_error"):
            claude.run(claude.complete(purpose="t", **params))

    blank = [{"role": "user", "content": "Привет"}, {"role": "assistant", "content": [
        {"type": "text", "text": "  ", "cache_control": cache_control("5m")}]}, {"role": "user", "content": "Ну?"}]
    refused(messages=blank)
    many = [{"role": "user", "content": [{"type": "text", "text": f"часть {i}", "cache_control": cache_control("5m")}
                                         for i in range(5)]}]
    refused(messages=many)
    assert len(fake_api.bodies) == 2 and only_row_count() == 2


def only_row_count():
    return LlmCall.select().count()


# --- key hygiene ----------------------------------------------------------------------------------


def test_a_key_with_a_trailing_newline_works_and_is_never_printed(fake_api, clock, db, aio, caplog):
    from salesbot import logs

    client = make_claude(fake_api, clock, api_key=TEST_KEY + "\n")
    client.run = aio.run
    logs.add_secrets([TEST_KEY + "\n"])
    with caplog.at_level(logging.DEBUG):
        assert ask(client).text
    sent = fake_api.requests[0].headers
    assert any(value.endswith(TEST_KEY) for value in sent.values())  # sent, stripped (the SDK picks the header)
    assert TEST_KEY not in caplog.text
    for form in (TEST_KEY + "\\n", repr(TEST_KEY + "\n"), repr((TEST_KEY + "\n").encode())):
        assert TEST_KEY not in logs.redact(f"Illegal header value {form}")
    aio.run(client.close())


def test_each_attempt_has_its_own_bound_inside_a_longer_deadline(fake_api, clock, db, aio):
    client = make_claude(fake_api, clock, timeout=0.5, deadline=60, sleep=_no_wait)
    client.run = aio.run
    fake_api.enqueue(Trickle(0.05), Reply("ok"))
    began = time.monotonic()
    assert ask(client).text == "ok"
    assert time.monotonic() - began < 1.5 and len(fake_api.bodies) == 2
    assert only_row().attempts == 2
    aio.run(client.close())
