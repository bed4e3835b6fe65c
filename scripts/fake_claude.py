#!/usr/bin/env python3
"""A Messages API stand-in on 127.0.0.1, as strict as the real API where salesbot can trip.

It speaks enough of `POST /v1/messages` and `POST /v1/messages/count_tokens` for the real anthropic
SDK: scripted answers, errors with headers (429 + retry-after, 402, 500, 529 …), a hang, a dropped
connection, a server trickling its headers or body, malformed 200s. And it refuses and bills what
the real API refuses and bills; each rule names its source (pages read 2026-10-08):

- CACHING https://platform.claude.com/docs/en/build-with-claude/prompt-caching : an exact prefix up
  to a `cache_control` breakpoint is cached for its TTL (`5m` default, or `1h`), refreshed by every
  hit; nothing shorter than the model's minimum is cached; at most 4 breakpoints; 1h entries before
  5m ones; writes reported per TTL in `usage.cache_creation`.
- THINKING https://platform.claude.com/docs/en/models/sonnet-5-5/migration-guide and
  .../prompting-claude-haiku-5-5 : Sonnet 5.5 and Haiku 5.5 think unless told otherwise (default
  effort high / medium); thinking tokens are output tokens and count toward `max_tokens`, so a cap
  thinking fills ends the answer with `stop_reason: max_tokens`; `thinking: {type: disabled}` is a
  400 on Sonnet 5.5 and above effort `high` on Haiku 5.5; `budget_tokens` (type enabled) is a 400.
  How many tokens each effort thinks is this stand-in's model (THINKING_SPEND), not a documented figure.
- BLOCKS https://github.com/anthropics/claude-code/issues/23440 and
  https://github.com/LibreChat-AI/agents/pull/124 (API replies quoted there): an empty text block is
  "text content blocks must be non-empty"; a message whose text blocks are all whitespace is "text
  content blocks must contain non-whitespace text"; cache_control on an empty block is refused.
- ERRORS https://platform.claude.com/docs/en/api/errors : every response carries a `request-id`
  header and error bodies a `request_id`; billing problems and linked-organisation spend limits are
  402 (anthropic/_error_classes.py); a missing or unknown key (`x-api-key`, or the
  `Authorization: Bearer` the SDK 2 sends: anthropic/_client.py) is 401 `authentication_error`
  ("invalid x-api-key"), on every endpoint, count_tokens included (when `api_keys` is given).

As a program it serves canned Russian sales replies (the script of `salesbot chat --demo`, which
needs no second process), for trying a client against it:

    python3 scripts/fake_claude.py --port 8765 &
    ANTHROPIC_BASE_URL=http://127.0.0.1:8765 ANTHROPIC_API_KEY=demo salesbot chat
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")


def count_tokens(text: str) -> int:
    """The stand-in's tokenizer: Russian at about 2 characters a token, other text at about 3.5
    (the 5.x tokenizer counts ~30% more than the 4.x one: Haiku 5.5 overview)."""
    if not text:
        return 0
    cyrillic = len(_CYRILLIC.findall(text))
    return max(1, math.ceil(cyrillic / 2 + (len(text) - cyrillic) / 3.5))


@dataclass(frozen=True)
class ModelRules:
    min_cacheable: int = 1024
    efforts: tuple[str, ...] = ()
    default_effort: str | None = None
    thinks_by_default: bool = False
    thinking_types: tuple[str, ...] = ("enabled", "disabled")
    disable_upto: str | None = None  # "disabled" is a 400 above this effort


EFFORTS = ("low", "medium", "high", "xhigh", "max")
MODELS: dict[str, ModelRules] = {
    "claude-sonnet-5-5": ModelRules(512, EFFORTS, "high", True, ("adaptive", "between_tools")),
    "claude-haiku-5-5": ModelRules(512, EFFORTS, "medium", True, ("adaptive", "disabled"), "high"),
    "claude-opus-5-5": ModelRules(512, EFFORTS, "medium", True, ("adaptive",)),
    "claude-haiku-4-5": ModelRules(4096),
}
OTHER_MODEL = ModelRules()
THINKING_SPEND = {"low": 150, "medium": 1200, "high": 3000, "xhigh": 8000, "max": 16000}
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


def rules_for(model: str) -> ModelRules:
    return MODELS.get(model, OTHER_MODEL)


@dataclass
class Reply:
    text: str
    stop_reason: str = "end_turn"
    delay: float = 0.0
    usage: dict[str, Any] | None = None  # None: computed, with cache billing and thinking
    thinking: int | None = None  # thinking tokens; None: what the model's effort spends


@dataclass
class Error:
    status: int
    type: str = "api_error"
    message: str = "stand-in error"
    headers: dict[str, str] = field(default_factory=dict)
    error_code: str | None = None


@dataclass
class Hang:
    seconds: float = 30.0


@dataclass
class Drop:
    """Close the connection without answering."""


@dataclass
class Trickle:
    """Answer one byte every `interval` seconds: the headers (`headers=True`) or the body."""

    interval: float = 0.2
    headers: bool = False


@dataclass
class Raw:
    """A response exactly as given (a proxy's HTML page, a truncated or wrong-shaped body)."""

    body: str
    status: int = 200
    content_type: str = "application/json"


@dataclass
class Seen:
    at: float
    headers: dict[str, str]
    body: dict[str, Any]
    path: str = "/v1/messages"


Action = Reply | Error | Hang | Drop | Trickle | Raw
Responder = Callable[[dict[str, Any]], Action]


class Invalid(Exception):
    """A request the API answers with 400 invalid_request_error."""


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def check_request(body: dict[str, Any], *, count_only: bool = False) -> None:
    """Raise Invalid for what the API refuses (see the module docstring for the sources)."""
    model = body.get("model") or ""
    rules = rules_for(model)
    if not count_only and (not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1):
        raise Invalid("max_tokens: Field required")
    system = body.get("system") or []
    groups = [("system", _blocks(system))] + [(f"messages.{i}", _blocks(m["content"]))
                                               for i, m in enumerate(body.get("messages") or [])]
    if len(groups) == 1:
        raise Invalid("messages: Field required")
    marks: list[str] = []
    for where, blocks in groups:
        texts = [b.get("text", "") for b in blocks if b.get("type") == "text"]
        for j, block in enumerate(blocks):
            if block.get("type") != "text":
                continue
            if block.get("text", "") == "":
                if "cache_control" in block:
                    raise Invalid(f"{where}.content.{j}.text: cache_control cannot be set for empty text blocks")
                raise Invalid(f"{where.split('.')[0]}: text content blocks must be non-empty")
            if "cache_control" in block:
                ttl = block["cache_control"].get("ttl", "5m")
                if ttl not in TTL_SECONDS:
                    raise Invalid(f"{where}.content.{j}.cache_control.ttl: Input should be '5m' or '1h'")
                marks.append(ttl)
        if texts and len(texts) == len(blocks) and all(not t.strip() for t in texts):
            raise Invalid(f"{where.split('.')[0]}: text content blocks must contain non-whitespace text")
    if len(marks) > 4:
        raise Invalid(f"A maximum of 4 blocks with cache_control may be provided. Found {len(marks)}.")
    if "1h" in marks and "5m" in marks[: len(marks) - marks[::-1].index("1h") - 1]:
        raise Invalid("a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block")
    effort = ((body.get("output_config") or {}).get("effort"))
    if effort is not None and effort not in rules.efforts:
        raise Invalid(f"output_config.effort: {effort!r} is not supported by {model}")
    thinking = (body.get("thinking") or {}).get("type")
    if thinking is not None and thinking not in rules.thinking_types:
        raise Invalid(f'"thinking.type.{thinking}" is not supported for this model. Use "thinking.type.adaptive" '
                      'and "output_config.effort" to control thinking behavior.')
    if thinking == "disabled" and rules.disable_upto and effort and \
            EFFORTS.index(effort) > EFFORTS.index(rules.disable_upto):
        raise Invalid(f"output_config.effort {effort!r} is not supported when thinking is disabled on this model")


class Cache:
    """Prompt caching as documented, on the stand-in's clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.entries: dict[str, tuple[float, str]] = {}  # prefix digest -> (expires at, ttl)
        self.lock = threading.Lock()

    def bill(self, body: dict[str, Any], min_tokens: int | None = None) -> dict[str, Any]:
        minimum = rules_for(body.get("model") or "").min_cacheable if min_tokens is None else min_tokens
        flat: list[tuple[str, dict[str, Any] | None]] = []
        for block in _blocks(body.get("system") or []):
            flat.append(("system:" + block.get("text", ""), block.get("cache_control")))
        for message in body.get("messages", []):
            for block in _blocks(message["content"]):
                flat.append((f"{message['role']}:" + block.get("text", json.dumps(block)), block.get("cache_control")))
        digests, cumulative = [], []
        running, total = hashlib.sha256(), 0
        for text, _ in flat:
            running.update(text.encode() + b"\x00")
            digests.append(running.copy().hexdigest())
            total += count_tokens(text.split(":", 1)[1])
            cumulative.append(total)
        marks = [(i, mark.get("ttl", "5m")) for i, (_, mark) in enumerate(flat) if mark]
        written = {"5m": 0, "1h": 0}
        with self.lock:
            now = self.clock()
            self.entries = {d: e for d, e in self.entries.items() if e[0] > now}
            read_at = -1
            if marks:
                hits = [i for i in range(marks[-1][0] + 1) if digests[i] in self.entries]
                if hits:
                    read_at = hits[-1]
                    ttl = self.entries[digests[read_at]][1]
                    self.entries[digests[read_at]] = (now + TTL_SECONDS[ttl], ttl)  # a hit refreshes
            read = cumulative[read_at] if read_at >= 0 else 0
            covered = read
            for i, ttl in marks:
                if cumulative[i] >= minimum and cumulative[i] > covered and digests[i] not in self.entries:
                    self.entries[digests[i]] = (now + TTL_SECONDS[ttl], ttl)
                    written[ttl] += cumulative[i] - covered
                    covered = cumulative[i]
        return {
            "input_tokens": total - read - written["5m"] - written["1h"],
            "cache_creation_input_tokens": written["5m"] + written["1h"],
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": written["5m"], "ephemeral_1h_input_tokens": written["1h"]},
        }


def prompt_tokens(body: dict[str, Any]) -> int:
    total = sum(count_tokens(b.get("text", "")) for b in _blocks(body.get("system") or []))
    for message in body.get("messages", []):
        total += sum(count_tokens(b.get("text", "")) for b in _blocks(message["content"]))
    return total


def answer(body: dict[str, Any], action: Reply, cache: Cache, min_tokens: int | None) -> dict[str, Any]:
    """The message the API would return: thinking first (it spends max_tokens), then the text."""
    rules = rules_for(body.get("model") or "")
    thinking_type = (body.get("thinking") or {}).get("type", "adaptive" if rules.thinks_by_default else None)
    effort = (body.get("output_config") or {}).get("effort") or rules.default_effort
    thinks = rules.thinks_by_default and thinking_type == "adaptive"
    thought = action.thinking if action.thinking is not None else (THINKING_SPEND.get(effort or "", 0) if thinks else 0)
    cap = body["max_tokens"]
    content: list[dict[str, Any]] = []
    stop = action.stop_reason
    if thought:
        thought = min(thought, cap)
        content.append({"type": "thinking", "thinking": "", "signature": "sig_fake"})  # display "omitted"
    room = cap - thought
    text = action.text
    if count_tokens(text) > room:  # cut where the cap runs out
        text = text[: max(0, int(len(text) * room / max(1, count_tokens(text))))]
        stop = "max_tokens"
    if text:
        content.append({"type": "text", "text": text})
    usage = dict(action.usage) if action.usage else {**cache.bill(body, min_tokens),
                                                      "output_tokens": thought + count_tokens(text)}
    usage.setdefault("cache_creation_input_tokens", 0)
    usage.setdefault("cache_read_input_tokens", 0)
    usage["output_tokens_details"] = {"thinking_tokens": thought}
    return {"type": "message", "role": "assistant", "model": body.get("model", "claude-fake"), "content": content,
            "stop_reason": stop, "stop_sequence": None, "usage": usage}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or go away mid-request are part of what the tests do.
        pass


class FakeClaude:
    """Start with `with FakeClaude() as api:`; point the SDK at `api.url`.

    `clock` stamps requests and ages cache entries (tests move it instead of sleeping);
    `min_cacheable` overrides the model's documented minimum.
    """

    def __init__(self, responder: Responder | None = None, *, clock: Callable[[], float] = time.monotonic,
                 min_cacheable: int | None = None, port: int = 0, api_keys: set[str] | None = None) -> None:
        self.script: deque[Action] = deque()
        self.responder = responder or (lambda body: Reply("Здравствуйте! Чем могу помочь?"))
        self.clock = clock
        self.cache = Cache(clock)
        self.min_cacheable = min_cacheable
        self.api_keys = api_keys  # None: any key is accepted
        self.requests: list[Seen] = []
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server = _QuietServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def enqueue(self, *actions: Action) -> FakeClaude:
        self.script.extend(actions)
        return self

    def start(self) -> FakeClaude:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeClaude:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [seen.body for seen in self.requests if seen.path == "/v1/messages"]

    @property
    def messages_requests(self) -> list[Seen]:
        return [seen for seen in self.requests if seen.path == "/v1/messages"]

    def _next_action(self, body: dict[str, Any]) -> Action:
        try:
            return self.script.popleft()
        except IndexError:
            return self.responder(body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle and delayed ACKs add ~40 ms
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                path = self.path.split("?")[0].rstrip("/")
                fake.requests.append(Seen(fake.clock(), {k.lower(): v for k, v in self.headers.items()}, body, path))
                self.request_id = f"req_fake_{next(fake._ids):04d}"
                bearer = (self.headers.get("authorization") or "").removeprefix("Bearer ")
                if fake.api_keys is not None and (self.headers.get("x-api-key") or bearer) not in fake.api_keys:
                    return self._error(401, "authentication_error", "invalid x-api-key")
                if path not in ("/v1/messages", "/v1/messages/count_tokens"):
                    return self._error(404, "not_found_error", "not found")
                try:
                    check_request(body, count_only=path.endswith("count_tokens"))
                except Invalid as exc:
                    return self._error(400, "invalid_request_error", str(exc))
                if path.endswith("count_tokens"):
                    return self._send(200, {"input_tokens": prompt_tokens(body)})
                action = fake._next_action(body)
                if isinstance(action, Drop):
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if isinstance(action, Hang):
                    fake._stopping.wait(action.seconds)
                    self.close_connection = True
                    return None
                if isinstance(action, Error):
                    return self._error(action.status, action.type, action.message, action.headers, action.error_code)
                if isinstance(action, Raw):
                    return self._send_bytes(action.status, action.body.encode(), action.content_type)
                if isinstance(action, Trickle):
                    return self._trickle(action)
                if action.delay:
                    time.sleep(action.delay)
                message = {"id": f"msg_fake_{len(fake.requests)}",
                           **answer(body, action, fake.cache, fake.min_cacheable)}
                return self._send(200, message)

            def _error(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None,
                       error_code: str | None = None) -> None:
                error: dict[str, Any] = {"type": kind, "message": message}
                if error_code:
                    error["details"] = {"error_code": error_code}
                self._send(status, {"type": "error", "error": error, "request_id": self.request_id}, headers)

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                self._send_bytes(status, json.dumps(payload, ensure_ascii=False).encode(), "application/json", headers)

            def _send_bytes(self, status: int, data: bytes, content_type: str,
                            headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", self.request_id)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _trickle(self, action: Trickle) -> None:
                data = json.dumps({"id": "msg_slow", **answer({"model": "x", "max_tokens": 100, "messages": []},
                                                            Reply("медленно"), fake.cache, 0)}).encode()
                head = (f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n"
                        f"request-id: {self.request_id}\r\n\r\n").encode()
                to_trickle, rest = (head + data, b"") if action.headers else (data, head)
                try:
                    if rest:
                        self.wfile.write(rest)
                        self.wfile.flush()
                    for byte in to_trickle:
                        if fake._stopping.wait(action.interval):
                            break
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except OSError:
                    pass  # the client gave up: what a deadline is for
                self.close_connection = True

        return Handler


# --- demo mode: canned sales replies ------------------------------------------------------------

def demo_responder(body: dict[str, Any]) -> Action:
    schema = ((body.get("output_config") or {}).get("format") or {}).get("schema") or {}
    properties = schema.get("properties", {})
    if "reply" in properties:
        from salesbot.demo import demo_reply  # the same script as `salesbot chat --demo`

        text, status, offer = demo_reply(sum(1 for m in body.get("messages", []) if m["role"] == "user"))
        return Reply(json.dumps({"status": status, "offer_meeting": offer, "meeting_action": "none", "summary": "",
                                 "proposed_time": "", "handoff": False, "reply": text}, ensure_ascii=False))
    if "kind" in properties or "date" in properties:
        return Reply(json.dumps({"kind": "none", "date": "", "time": ""}))
    return Reply("Здравствуйте! Чем могу помочь?")


def main() -> None:
    parser = argparse.ArgumentParser(description="A local Messages API stand-in with canned Russian replies.")
    parser.add_argument("--port", type=int, default=8765)
    opts = parser.parse_args()
    api = FakeClaude(demo_responder, port=opts.port).start()
    print(f"Messages API stand-in on {api.url} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
