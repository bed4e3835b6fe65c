"""The Claude client: deadlines, retries, effort, structured answers and the usage ledger.

The only module that imports anthropic. The retry policy is ours and the SDK's retries are off
(stacked, the SDK's two retries under our three attempts would be nine requests). A call has two
bounds in wall time: each request (`timeout`, asyncio.timeout, so a server trickling bytes cannot
stretch it the way the SDK's per-read timeout lets it) and the whole call with its retries and
waits (`deadline`, twice the request's by default): the lead hears back within the deadline,
answer or fallback. Every call, answered or failed, becomes one `llm_call` row with what all its
requests cost.

Sources (read 2026-10-08): errors and request ids, https://platform.claude.com/docs/en/api/errors;
retries as the SDK does them, anthropic/_base_client.py `_should_retry` (x-should-retry first) and
`_calculate_retry_timeout` (a retry-after <= 0 falls back to backoff); typed errors,
anthropic/_error_classes.py (spend limits: 429 EnforcedSpendLimitReachedError /
ContractSpendLimitReachedError, 402 PaymentRequiredError and its subclasses); thinking and effort,
salesbot/claude/pricing.py SOURCES.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import anthropic
from tenacity import wait_random_exponential

from salesbot.claude import prompts
from salesbot.claude.budget import Budget
from salesbot.claude.pricing import EFFORTS, effort_for, min_cacheable_tokens, thinking_of
from salesbot.errors import ConfigError, LLMUnavailable
from salesbot.store.ledger import record_call

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
MAX_RETRY_AFTER = 60.0  # a server asking us to wait longer than this: give up now, don't hold the lead
RETRYABLE_STATUS = {408, 409, 429}
NEVER_RETRY_STATUS = {400, 401, 402, 403, 404, 413, 422}
# Spend and billing limits: waiting does not lift them (errors page: a tier's monthly spend cap is
# a 429 with no retry-after; billing problems are 402).
SPEND_LIMIT_ERRORS: tuple[type[BaseException], ...] = (
    anthropic.EnforcedSpendLimitReachedError,
    anthropic.ContractSpendLimitReachedError,
    anthropic.PaymentRequiredError,
)
# Output room for thinking, per effort, on models that think by default (thinking tokens count
# toward max_tokens). Generous: an unused cap costs nothing, a cut answer costs a retry.
THINKING_HEADROOM = {"low": 3000, "medium": 6000, "high": 12000, "xhigh": 24000, "max": 32000}


class AttemptTimeout(Exception):
    """One request took longer than its wall-clock bound."""


class InvalidAnswer(LLMUnavailable):
    """Claude answered, but not with something usable: not the schema, cut short, or malformed."""


# --- retry policy --------------------------------------------------------------------------------


def retry_after_seconds(exc: BaseException) -> float | None:
    """The wait a 429/503 asks for: `retry-after-ms`, then `retry-after` in seconds or as an HTTP date.
    Returned as given (may be <= 0); the wait treats <= 0 as "no advice", as the SDK does."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        return float(headers["retry-after-ms"]) / 1000
    except (KeyError, TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        return email.utils.mktime_tz(parsed) - time.time() if parsed else None


def is_spend_limit(exc: BaseException) -> bool:
    return isinstance(exc, SPEND_LIMIT_ERRORS)


def should_retry(exc: BaseException) -> bool:
    if isinstance(exc, AttemptTimeout | anthropic.APIConnectionError):  # incl. dropped connections
        return True
    if not isinstance(exc, anthropic.APIStatusError) or is_spend_limit(exc):
        return False
    header = exc.response.headers.get("x-should-retry")
    if header == "false":
        return False
    if header != "true":
        status = exc.status_code
        if status in NEVER_RETRY_STATUS or not (status in RETRYABLE_STATUS or status >= 500):
            return False
    wait = retry_after_seconds(exc)
    return wait is None or wait <= MAX_RETRY_AFTER


def request_id_of(exc: BaseException) -> str | None:
    return getattr(exc, "request_id", None)


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description: status and type, never the request or headers."""
    if isinstance(exc, anthropic.APIStatusError):
        kind = exc.type or type(exc).__name__
        code = f", {exc.error_code}" if getattr(exc, "error_code", None) else ""
        return f"{exc.status_code} {kind}{code}"
    if isinstance(exc, AttemptTimeout):
        return f"timeout ({exc})"
    if isinstance(exc, anthropic.APITimeoutError):
        return "timeout (APITimeoutError)"
    if isinstance(exc, anthropic.APIConnectionError):
        return "connection error (APIConnectionError)"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


_backoff = wait_random_exponential(multiplier=2, min=2, max=30)


def wait_before(attempt: int, exc: BaseException) -> float:
    """The server's retry-after when it gives a positive one; otherwise backoff with jitter, 2-30 s."""
    asked = retry_after_seconds(exc)
    if asked is not None and asked > 0:
        return asked

    class _State:  # tenacity's wait functions read only the attempt number
        attempt_number = attempt

    return _backoff(_State())  # type: ignore[arg-type]


# --- results -------------------------------------------------------------------------------------


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_5m_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0
    thinking_tokens: int = 0

    def add(self, other: Usage) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class Completion:
    text: str
    usage: Usage
    model: str
    stop_reason: str | None = None
    request_id: str | None = None
    data: Any = None  # the validated JSON of a structured call


def _usage_of(response: Any) -> Usage:
    u = response.usage
    created = u.cache_creation_input_tokens or 0
    split = getattr(u, "cache_creation", None)
    five = (split.ephemeral_5m_input_tokens or 0) if split else created  # no split: the default TTL, 5m
    hour = (split.ephemeral_1h_input_tokens or 0) if split else 0
    details = getattr(u, "output_tokens_details", None)
    return Usage(
        input_tokens=u.input_tokens or 0,
        output_tokens=u.output_tokens or 0,
        cache_creation_input_tokens=created,
        cache_read_input_tokens=u.cache_read_input_tokens or 0,
        cache_creation_5m_input_tokens=five,
        cache_creation_1h_input_tokens=hour,
        thinking_tokens=(details.thinking_tokens or 0) if details else 0,
    )


# --- JSON schema: the small subset the structured calls use --------------------------------------


def validate(value: Any, schema: dict[str, Any], path: str = "$") -> None:
    """Check `value` against a JSON schema subset (type, enum, properties, required, items).

    The API's structured output should already guarantee this; checking costs nothing and means a
    model, proxy or stand-in that answers off-schema can never set a status outside the schema.
    """
    types = schema.get("type")
    if types is not None:
        allowed = types if isinstance(types, list) else [types]
        checks = {
            "object": lambda v: isinstance(v, dict),
            "array": lambda v: isinstance(v, list),
            "string": lambda v: isinstance(v, str),
            "boolean": lambda v: isinstance(v, bool),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "null": lambda v: v is None,
        }
        if not any(checks[t](value) for t in allowed):
            raise InvalidAnswer(f"{path}: expected {'/'.join(allowed)}, got {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise InvalidAnswer(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                raise InvalidAnswer(f"{path}: missing {key!r}")
        for key, item in value.items():
            if key in properties:
                validate(item, properties[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                raise InvalidAnswer(f"{path}: unexpected {key!r}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            validate(item, schema["items"], f"{path}[{i}]")


# --- the client ----------------------------------------------------------------------------------

Ledger = Callable[[dict[str, Any]], None]
Check = Callable[[Any], str | None]


class KeptRows:
    """The usage ledger's rows, written in order: one the database refuses (locked, disk full) is kept
    and written with the next call's, so `usage` misses nothing that was paid for. A failure never
    costs a lead its answer."""

    def __init__(self, write: Ledger | None = None) -> None:
        self.write = write
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.flush()

    def flush(self) -> None:
        while self.rows and self.write is not None:
            try:
                self.write(self.rows[0])
            except Exception as exc:
                log.warning("could not record a Claude call in the ledger yet (%d kept): %s", len(self.rows), exc)
                return
            self.rows.pop(0)

    def close(self) -> None:
        self.flush()
        if self.rows:
            log.error("%d Claude call(s) could not be recorded in the usage ledger (the database refused)",
                      len(self.rows))


@dataclass
class ClaudeClient:
    """Async Claude client with salesbot's deadline, retry, effort and ledger policy.

    `sleep` is the wait between attempts and `clock` the monotonic time the deadline is counted on
    (tests and the cache benchmark replace both; nothing else sleeps).
    """

    api_key: str | None
    model: str
    fast_model: str
    base_url: str | None = None
    timeout: float = 30.0  # one request, wall time
    deadline: float | None = None  # the whole call; default 2 x timeout
    effort: str = "low"
    max_attempts: int = MAX_ATTEMPTS
    ledger: Ledger | None = record_call
    budget: Budget | None = None  # the monthly spend ceiling: checked before every call
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    _warned: set[str] = field(default_factory=set, repr=False)
    _counted: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # A key read from a secret file often ends in a newline: sent as is, every request fails
        # as a "connection error" (an illegal header value) and debug logs print it escaped.
        self.api_key = self.api_key.strip() if self.api_key else self.api_key
        self._kept = KeptRows(lambda row: self.ledger(row))
        if self.deadline is None:
            self.deadline = 2 * self.timeout
        if self.effort not in EFFORTS:
            raise ValueError(f"effort must be one of {', '.join(EFFORTS)}")
        # One client per event loop: its pooled connections belong to the loop that opened them.
        self._sdk = anthropic.AsyncAnthropic(
            api_key=self.api_key,
            base_url=self.base_url,
            max_retries=0,
            timeout=anthropic.Timeout(self.timeout, connect=min(10.0, self.timeout)),
        )

    async def close(self) -> None:
        self._kept.close()
        await self._sdk.close()

    # -- the prompt's size, from the API --

    async def check_prompt(self, prompt: str, model: str | None = None) -> int | None:
        """Count the system prompt's tokens with `messages.count_tokens` (once per prompt and model)
        and warn when it is below the model's documented minimum cacheable length. It is also the
        start-up check of the key: a key the API refuses (401/403) is an error now, rather than every
        lead getting the fallback later."""
        model = model or self.model
        key = (model, hashlib.sha256(prompt.encode()).hexdigest())
        if key in self._counted:
            return self._counted[key]
        try:
            counted = await asyncio.wait_for(self._sdk.messages.count_tokens(
                model=model, system=prompts.system_blocks(prompt, None),
                messages=[{"role": "user", "content": "."}]), self.timeout)
        except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
            raise ConfigError(f"ANTHROPIC_API_KEY: key rejected by the Claude API ({describe_error(exc)}); "
                              "check the key at console.anthropic.com") from None
        except (anthropic.AnthropicError, TimeoutError) as exc:
            log.warning("could not count the system prompt's tokens: %s (request %s)", describe_error(exc),
                        request_id_of(exc) or "-")
            return None
        tokens = self._counted[key] = counted.input_tokens
        minimum = min_cacheable_tokens(model)
        if tokens < minimum:
            log.warning("The system prompt is %d tokens, below the %d-token minimum %s caches: prompt caching "
                        "will do nothing until it is longer", tokens, minimum, model)
        else:
            log.info("system prompt: %d tokens (%s caches from %d)", tokens, model, minimum)
        return tokens

    def _warn_if_cache_idle(self, result: Completion) -> None:
        usage = result.usage
        key = f"idle:{result.model}"
        if usage.cache_creation_input_tokens or usage.cache_read_input_tokens or key in self._warned:
            return
        self._warned.add(key)
        log.warning(
            "Claude neither wrote nor read the prompt cache (%d input tokens): the cached prefix is "
            "probably below the %d-token minimum of %s", usage.input_tokens, min_cacheable_tokens(result.model),
            result.model,
        )

    # -- requests --

    def request_params(self, model: str, messages: Sequence[dict[str, Any]], system: Any, answer_tokens: int,
                       schema: dict[str, Any] | None) -> dict[str, Any]:
        """The request: an effort the model takes (or none), and max_tokens with room for thinking."""
        params: dict[str, Any] = {"model": model, "messages": list(messages)}
        output_config: dict[str, Any] = {}
        effort = effort_for(model, self.effort)
        if effort:
            output_config["effort"] = effort
            if effort != self.effort and f"effort:{model}" not in self._warned:
                self._warned.add(f"effort:{model}")
                log.warning("%s does not take effort %r; using %r", model, self.effort, effort)
        thinking = thinking_of(model)
        headroom = THINKING_HEADROOM[effort or thinking.default_effort or "high"] if thinking.on_by_default else 0
        params["max_tokens"] = answer_tokens + headroom
        if system is not None:
            params["system"] = system
        if schema is not None:
            output_config["format"] = {"type": "json_schema", "schema": schema}
        if output_config:
            params["output_config"] = output_config
        return params

    async def complete(
        self,
        *,
        purpose: str,
        messages: Sequence[dict[str, Any]],
        system: str | list[dict[str, Any]] | None = None,
        model: str | None = None,
        answer_tokens: int = 1024,
        schema: dict[str, Any] | None = None,
        check: Check | None = None,
        lead_id: int | None = None,
    ) -> Completion:
        """One logical call: up to `max_attempts` requests within the deadline, one ledger row, a
        Completion or LLMUnavailable (InvalidAnswer when Claude answered unusably)."""
        model = model or self.model
        if self.budget is not None:
            self.budget.check()  # BudgetExhausted (an LLMUnavailable): no request, no ledger row
        params = self.request_params(model, messages, system, answer_tokens, schema)
        began = self.clock()
        state = _Call(row={"purpose": purpose, "model": model, "lead_id": lead_id})
        try:
            async with asyncio.timeout(self.deadline):
                return await self._attempts(params, schema, check, state, began)
        except TimeoutError:
            state.row["error"] = f"deadline: no answer within {self.deadline:g} s"
            log.warning("Claude call %s gave up: %s after %d attempt(s) (request %s)", purpose, state.row["error"],
                        state.attempts, state.row.get("request_id") or "-")
            raise LLMUnavailable(f"Claude is unavailable ({state.row['error']})") from None
        finally:
            state.row.update(vars(state.usage))
            state.row["attempts"] = state.attempts
            state.row["duration_ms"] = int((self.clock() - began) * 1000)
            self._record(state.row)
            if self.budget is not None:
                self.budget.after_call()

    async def _attempts(self, params: dict[str, Any], schema: dict[str, Any] | None, check: Check | None,
                        state: _Call, began: float) -> Completion:
        grown = retried_invalid = False
        while True:
            state.attempts += 1
            remaining = self.deadline - (self.clock() - began)
            try:
                try:
                    async with asyncio.timeout(max(0.001, min(self.timeout, remaining))):
                        response = await self._sdk.messages.create(**params)
                except TimeoutError:
                    raise AttemptTimeout(f"no answer within {min(self.timeout, remaining):g} s") from None
                except (ValueError, TypeError) as exc:  # a 200 whose body is not the JSON it claims
                    raise InvalidAnswer(f"malformed response ({type(exc).__name__})") from None
                result = self._read(response, state)
                if result.stop_reason == "max_tokens" and not grown and state.attempts < self.max_attempts:
                    grown = True  # thinking took the room: once more with twice the cap
                    params = {**params, "max_tokens": params["max_tokens"] * 2}
                    log.warning("Claude stopped at max_tokens (request %s); retrying with max_tokens %d",
                                result.request_id or "-", params["max_tokens"])
                    continue
                if schema is not None:
                    result.data = self._parse_structured(result, schema, check)
                if _asks_for_cache(params):
                    self._warn_if_cache_idle(result)
                state.row.pop("error", None)  # answered: earlier failed attempts are in the log and `attempts`
                return result
            except InvalidAnswer as exc:
                state.row["error"] = f"invalid answer: {exc}"
                if retried_invalid or state.attempts >= self.max_attempts:
                    log.warning("Claude answered unusably after %d attempt(s): %s (request %s)", state.attempts, exc,
                                state.row.get("request_id") or "-")
                    raise
                retried_invalid = True
                log.warning("Retry %d after an invalid answer: %s (request %s)", state.attempts, exc,
                            state.row.get("request_id") or "-")
            except (anthropic.AnthropicError, AttemptTimeout) as exc:
                state.row["error"] = describe_error(exc)
                state.row["request_id"] = request_id_of(exc) or state.row.get("request_id")
                self._after_failure(exc, state, began)
                await self.sleep(state.wait)

    def _after_failure(self, exc: BaseException, state: _Call, began: float) -> None:
        """Decide whether another attempt is worth it (and fits the deadline); raise if not."""
        rid = request_id_of(exc) or "-"
        if not should_retry(exc) or state.attempts >= self.max_attempts:
            log.warning("Claude call failed: %s after %d attempt(s) (request %s)", state.row["error"], state.attempts,
                        rid)
            raise LLMUnavailable(f"Claude is unavailable ({state.row['error']}) after {state.attempts} attempt(s)") \
                from exc
        state.wait = wait_before(state.attempts, exc)
        if self.clock() - began + state.wait >= self.deadline:
            log.warning("Claude call failed: %s; no time left to retry within the %g s deadline (request %s)",
                        state.row["error"], self.deadline, rid)
            raise LLMUnavailable(f"Claude is unavailable ({state.row['error']}) after {state.attempts} attempt(s)") \
                from exc
        log.warning("Retry %d after error: %s (waiting %.1f s, request %s)", state.attempts, state.row["error"],
                    state.wait, rid)

    def _read(self, response: Any, state: _Call) -> Completion:
        """A 200 as a Completion; its cost counted; anything malformed is an InvalidAnswer."""
        if not isinstance(response, anthropic.types.Message):
            raise InvalidAnswer(f"not a message ({type(response).__name__})")
        rid = getattr(response, "_request_id", None)
        state.row["request_id"] = rid or state.row.get("request_id")
        try:
            usage = _usage_of(response)
            text = "".join(block.text for block in response.content if getattr(block, "type", None) == "text")
            stop = response.stop_reason
            model = response.model
        except (AttributeError, TypeError) as exc:
            raise InvalidAnswer(f"malformed message ({type(exc).__name__})") from None
        state.usage.add(usage)
        state.row["stop_reason"] = stop
        return Completion(text=text, usage=usage, model=model or state.row["model"],
                          stop_reason=stop, request_id=rid)

    @staticmethod
    def _parse_structured(result: Completion, schema: dict[str, Any], check: Check | None) -> Any:
        if result.stop_reason in ("max_tokens", "refusal"):
            raise InvalidAnswer(f"the answer stopped early ({result.stop_reason})")
        try:
            data = json.loads(result.text)
        except json.JSONDecodeError as exc:
            raise InvalidAnswer(f"not JSON ({exc.msg} at {exc.pos})") from None
        validate(data, schema)
        problem = check(data) if check else None
        if problem:
            raise InvalidAnswer(problem)
        return data

    def _record(self, row: dict[str, Any]) -> None:
        if self.ledger is not None:
            self._kept.add(row)


@dataclass
class _Call:
    row: dict[str, Any]
    attempts: int = 0
    wait: float = 0.0
    usage: Usage = field(default_factory=Usage)


def _asks_for_cache(params: dict[str, Any]) -> bool:
    system = params.get("system")
    return isinstance(system, list) and any("cache_control" in block for block in system)
