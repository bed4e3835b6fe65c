"""The Claude client: retries, prompt caching, structured answers and the usage ledger.

The only module that imports anthropic. Tenacity owns the retry policy and the SDK's own retries
are off: stacked, the SDK's two retries under three tenacity attempts would be nine requests.
Every call, answered or failed, becomes an `llm_call` row.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anthropic
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from salesbot.errors import LLMUnavailable
from salesbot.pricing import estimate_tokens, min_cacheable_tokens
from salesbot.store import LlmCall

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
MAX_RETRY_AFTER = 60.0  # a server asking us to wait longer than this: give up now, don't hold the lead
RETRYABLE_STATUS = {408, 409, 429}
NEVER_RETRY_STATUS = {400, 401, 403, 404, 413, 422}
CACHE = {"type": "ephemeral"}


# --- retry policy --------------------------------------------------------------------------------


def retry_after_seconds(exc: BaseException) -> float | None:
    """The wait a 429/503 asks for: `retry-after-ms`, then `retry-after` in seconds or as an HTTP date."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        return max(0.0, float(headers["retry-after-ms"]) / 1000)
    except (KeyError, TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        return max(0.0, email.utils.mktime_tz(parsed) - time.time()) if parsed else None


def is_spend_limit(exc: anthropic.APIStatusError) -> bool:
    """A 429 that waiting will not fix: a spend, billing or quota limit (read from `error_code`)."""
    code = (getattr(exc, "error_code", None) or "").lower()
    return any(word in code for word in ("spend_limit", "quota", "billing", "credit"))


def should_retry(exc: BaseException) -> bool:
    if isinstance(exc, anthropic.APIConnectionError):  # includes timeouts and dropped connections
        return True
    if not isinstance(exc, anthropic.APIStatusError):
        return False
    if exc.response.headers.get("x-should-retry") == "false":
        return False
    status = exc.status_code
    if status in NEVER_RETRY_STATUS or (status == 429 and is_spend_limit(exc)):
        return False
    if not (status in RETRYABLE_STATUS or status >= 500):
        return False
    wait = retry_after_seconds(exc)
    return wait is None or wait <= MAX_RETRY_AFTER


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description: status and type, never the request or headers."""
    if isinstance(exc, anthropic.APIStatusError):
        kind = exc.type or type(exc).__name__
        code = f", {exc.error_code}" if getattr(exc, "error_code", None) else ""
        return f"{exc.status_code} {kind}{code}"
    if isinstance(exc, anthropic.APITimeoutError):
        return "timeout (APITimeoutError)"
    if isinstance(exc, anthropic.APIConnectionError):
        return "connection error (APIConnectionError)"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


class _WaitRetryAfter:
    """Honour the server's retry-after; otherwise exponential backoff with jitter, 2 s to 30 s."""

    def __init__(self) -> None:
        self.backoff = wait_random_exponential(multiplier=2, min=2, max=30)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = retry_after_seconds(exc) if exc else None
        return asked if asked is not None else self.backoff(state)


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0
    log.warning("Retry %d after error: %s (waiting %.1f s)", state.attempt_number, describe_error(exc), wait)


# --- results -------------------------------------------------------------------------------------


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


@dataclass
class Completion:
    text: str
    usage: Usage
    attempts: int
    model: str
    stop_reason: str | None = None
    data: Any = None  # the validated JSON of a structured call


class InvalidAnswer(LLMUnavailable):
    """Claude answered, but not with what the schema asked for."""


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
    if isinstance(value, str) and "maxLength" in schema and len(value) > schema["maxLength"]:
        raise InvalidAnswer(f"{path}: longer than {schema['maxLength']} characters")


# --- the client ----------------------------------------------------------------------------------

Ledger = Callable[[dict[str, Any]], None]


def store_ledger(row: dict[str, Any]) -> None:
    LlmCall.create(**row)


@dataclass
class ClaudeClient:
    """Async Claude client with salesbot's retry, caching and ledger policy.

    `sleep` is the wait between attempts (tests replace it; nothing else sleeps).
    """

    api_key: str | None
    model: str
    fast_model: str
    base_url: str | None = None
    timeout: float = 60.0
    max_attempts: int = MAX_ATTEMPTS
    ledger: Ledger | None = store_ledger
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _warned: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        # One client per event loop: its pooled connections belong to the loop that opened them.
        self._sdk = anthropic.AsyncAnthropic(
            api_key=self.api_key,
            base_url=self.base_url,
            max_retries=0,
            timeout=anthropic.Timeout(self.timeout, connect=min(10.0, self.timeout)),
        )

    @classmethod
    def from_settings(cls, settings, **overrides) -> ClaudeClient:
        return cls(
            api_key=settings.get("ANTHROPIC_API_KEY"),
            base_url=settings.get("ANTHROPIC_BASE_URL") or None,
            model=settings.get("SALESBOT_MODEL"),
            fast_model=settings.get("SALESBOT_FAST_MODEL"),
            timeout=settings.get("SALESBOT_LLM_TIMEOUT"),
            **overrides,
        )

    async def close(self) -> None:
        await self._sdk.close()

    # -- requests --

    def cached_system(self, prompt: str, model: str) -> list[dict[str, Any]]:
        """The system prompt as one cached text block, byte-for-byte the same on every call."""
        self._warn_if_too_short(prompt, model)
        return [{"type": "text", "text": prompt, "cache_control": CACHE}]

    def _warn_if_too_short(self, prompt: str, model: str) -> None:
        key = f"{model}:{len(prompt)}"
        if key in self._warned:
            return
        self._warned.add(key)
        minimum = min_cacheable_tokens(model)
        if estimate_tokens(prompt) < minimum:
            log.warning(
                "The system prompt is about %d tokens, below the %d-token minimum %s caches: prompt "
                "caching will do nothing until it is longer", estimate_tokens(prompt), minimum, model,
            )

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

    async def complete(
        self,
        *,
        purpose: str,
        messages: Sequence[dict[str, Any]],
        system: str | list[dict[str, Any]] | None = None,
        model: str | None = None,
        max_tokens: int = 1024,
        schema: dict[str, Any] | None = None,
        lead_id: int | None = None,
    ) -> Completion:
        """One logical call: up to `max_attempts` requests, one ledger row, a Completion or LLMUnavailable."""
        model = model or self.model
        params: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": list(messages)}
        if system is not None:
            params["system"] = system
        if schema is not None:
            params["output_config"] = {"format": {"type": "json_schema", "schema": schema}}

        began = time.monotonic()
        attempts = 0
        row: dict[str, Any] = {"purpose": purpose, "model": model, "lead_id": lead_id}
        try:
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self.max_attempts),
                wait=_WaitRetryAfter(),
                retry=retry_if_exception(should_retry),
                before_sleep=_log_retry,
                sleep=self.sleep,
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    response = await self._sdk.messages.create(**params)
            result = self._completion(response, attempts, model)
            row.update(vars(result.usage))
            if _asks_for_cache(params):
                self._warn_if_cache_idle(result)
            if schema is not None:
                result.data = self._parse_structured(result, schema)
            return result
        except InvalidAnswer as exc:
            row["error"] = f"invalid answer: {exc}"
            raise
        except anthropic.AnthropicError as exc:
            row["error"] = describe_error(exc)
            raise LLMUnavailable(f"Claude is unavailable ({row['error']}) after {attempts} attempt(s)") from exc
        finally:
            row["attempts"] = attempts
            row["duration_ms"] = int((time.monotonic() - began) * 1000)
            self._record(row)

    def _completion(self, response: Any, attempts: int, model: str) -> Completion:
        usage = response.usage
        text = "".join(block.text for block in response.content if getattr(block, "type", None) == "text")
        return Completion(
            text=text,
            usage=Usage(
                input_tokens=usage.input_tokens or 0,
                output_tokens=usage.output_tokens or 0,
                cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
                cache_read_input_tokens=usage.cache_read_input_tokens or 0,
            ),
            attempts=attempts,
            model=response.model or model,
            stop_reason=response.stop_reason,
        )

    @staticmethod
    def _parse_structured(result: Completion, schema: dict[str, Any]) -> Any:
        if result.stop_reason in ("max_tokens", "refusal"):
            raise InvalidAnswer(f"the answer stopped early ({result.stop_reason})")
        try:
            data = json.loads(result.text)
        except json.JSONDecodeError as exc:
            raise InvalidAnswer(f"not JSON ({exc.msg} at {exc.pos})") from None
        validate(data, schema)
        return data

    def _record(self, row: dict[str, Any]) -> None:
        if self.ledger is None:
            return
        try:
            self.ledger(row)
        except Exception:  # the ledger must never cost a lead its answer
            log.exception("could not record the Claude call in the ledger")

    async def structured(self, *, schema: dict[str, Any], **kwargs: Any) -> Completion:
        """A call that must return JSON matching `schema`; an answer that does not is a failed call."""
        return await self.complete(schema=schema, **kwargs)


def _asks_for_cache(params: dict[str, Any]) -> bool:
    system = params.get("system")
    return isinstance(system, list) and any("cache_control" in block for block in system)


def with_history_breakpoint(messages: list[dict[str, Any]], upto: int) -> list[dict[str, Any]]:
    """Mark `messages[upto]` (its last block) as a cache breakpoint, leaving the input untouched.

    The conversation so far is then read from cache on the next turn. Content given as a plain
    string becomes a single text block so it can carry cache_control.
    """
    marked = [dict(m) for m in messages]
    target = marked[upto]
    content = target["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else [dict(b) for b in content]
    blocks[-1] = {**blocks[-1], "cache_control": CACHE}
    target["content"] = blocks
    return marked


def conversation_messages(history: Sequence[tuple[str, str]], context: str | None) -> list[dict[str, Any]]:
    """Messages API turns for a dialogue, laid out for prompt caching.

    `history` is (role, text) with role `user` or `assistant`, oldest first, ending with the
    lead's newest message (the caller picks how much: conversation.window_start). Consecutive
    messages of one role become one turn with a block each (deterministic, so the same history
    always gives the same bytes). The cache breakpoint sits on the last assistant turn before the
    newest user turn; per-turn context (date, the lead's status) rides after it, as the final block
    of the newest user turn, where it never disturbs what is cached.
    """
    items = list(history)
    while items and items[0][0] != "user":
        items.pop(0)  # the API wants the conversation to open with the user
    turns: list[dict[str, Any]] = []
    for role, text in items:
        block = {"type": "text", "text": text}
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].append(block)
        else:
            turns.append({"role": role, "content": [block]})
    if not turns or turns[-1]["role"] != "user":
        raise ValueError("the conversation must end with the lead's message")
    if context:
        turns[-1]["content"].append({"type": "text", "text": context})
    if len(turns) >= 2:
        turns = with_history_breakpoint(turns, len(turns) - 2)
    return turns
