#!/usr/bin/env python3
"""A small Messages API stand-in on 127.0.0.1, for tests, benchmarks and offline demos.

It speaks enough of `POST /v1/messages` for the real anthropic SDK: scripted answers, errors with
headers (429 + retry-after, 500, 529, 400 …), a hang, a dropped connection; and it bills prompt
caching as documented (exact prefix match up to a `cache_control` breakpoint, a minimum cacheable
length, cache writes and reads reported in `usage`).

As a program it serves canned Russian sales replies, so `salesbot chat` can be tried with no key:

    python scripts/fake_claude.py --port 8765 &
    ANTHROPIC_BASE_URL=http://127.0.0.1:8765 ANTHROPIC_API_KEY=demo salesbot chat
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def count_tokens(text: str) -> int:
    """The stand-in's tokenizer: about 3 characters a token, as salesbot's estimate assumes."""
    return max(1, len(text) // 3)


@dataclass
class Reply:
    text: str
    stop_reason: str = "end_turn"
    delay: float = 0.0
    usage: dict[str, int] | None = None  # None: computed, with cache billing


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
class Seen:
    at: float
    headers: dict[str, str]
    body: dict[str, Any]


Action = Reply | Error | Hang | Drop
Responder = Callable[[dict[str, Any]], Action]


def _flatten(body: dict[str, Any]) -> list[tuple[str, bool]]:
    """The prompt as (canonical block, has breakpoint) in order: system blocks, then message blocks."""
    out: list[tuple[str, bool]] = []
    system = body.get("system") or []
    if isinstance(system, str):
        system = [{"type": "text", "text": system}]
    for block in system:
        out.append(("system:" + block.get("text", ""), "cache_control" in block))
    for message in body.get("messages", []):
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for block in blocks:
            out.append((f"{message['role']}:" + block.get("text", json.dumps(block)), "cache_control" in block))
    return out


class CacheBiller:
    """Prompt caching as documented: a prefix up to a breakpoint, at least `min_tokens` long, is
    written (billed 1.25x by the caller's price table) and later read (0.1x) on an exact match."""

    def __init__(self, min_tokens: int = 1024) -> None:
        self.min_tokens = min_tokens
        self.cached: set[str] = set()
        self.lock = threading.Lock()

    def bill(self, body: dict[str, Any]) -> dict[str, int]:
        blocks = _flatten(body)
        digests, cumulative = [], []
        running, total = hashlib.sha256(), 0
        for text, _ in blocks:
            running.update(text.encode() + b"\x00")
            digests.append(running.copy().hexdigest())
            total += count_tokens(text.split(":", 1)[1])
            cumulative.append(total)
        breakpoints = [i for i, (_, marked) in enumerate(blocks) if marked]
        with self.lock:
            read = 0
            if breakpoints:
                hits = [i for i in range(breakpoints[-1] + 1) if digests[i] in self.cached]
                read = cumulative[hits[-1]] if hits else 0
            written = 0
            for i in breakpoints:
                if cumulative[i] >= self.min_tokens and digests[i] not in self.cached:
                    self.cached.add(digests[i])
                    written = cumulative[i] - read
        return {
            "input_tokens": total - read - written,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
        }


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or go away mid-request are part of what the tests do.
        pass


class FakeClaude:
    """Start with `with FakeClaude() as api:`; point the SDK at `api.url`."""

    def __init__(self, responder: Responder | None = None, *, billing: CacheBiller | None = None,
                 clock: Callable[[], float] = time.monotonic, port: int = 0) -> None:
        self.script: deque[Action] = deque()
        self.responder = responder or (lambda body: Reply("Здравствуйте! Чем могу помочь?"))
        self.billing = billing or CacheBiller()
        self.clock = clock
        self.requests: list[Seen] = []
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
        return [seen.body for seen in self.requests]

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

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(Seen(fake.clock(), {k.lower(): v for k, v in self.headers.items()}, body))
                if self.path.rstrip("/") != "/v1/messages":
                    return self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": "no"}})
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
                    error: dict[str, Any] = {"type": action.type, "message": action.message}
                    if action.error_code:
                        error["details"] = {"error_code": action.error_code}
                    return self._send(action.status, {"type": "error", "error": error}, action.headers)
                if action.delay:
                    time.sleep(action.delay)
                usage = action.usage or {**fake.billing.bill(body), "output_tokens": count_tokens(action.text)}
                usage.setdefault("cache_creation_input_tokens", 0)
                usage.setdefault("cache_read_input_tokens", 0)
                return self._send(200, {
                    "id": f"msg_fake_{len(fake.requests)}",
                    "type": "message",
                    "role": "assistant",
                    "model": body.get("model", "claude-fake"),
                    "content": [{"type": "text", "text": action.text}],
                    "stop_reason": action.stop_reason,
                    "stop_sequence": None,
                    "usage": usage,
                })

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


# --- demo mode: canned sales replies ------------------------------------------------------------

DEMO_REPLIES = [
    ("Здравствуйте! Рад помочь. Расскажите, пожалуйста, для какой задачи вы ищете решение?", "new", False),
    ("Понял вас. Под такую задачу подойдёт корпоративный сайт — от 120 000 ₽. Какие сроки для вас важны?", "warm",
     False),
    ("Отлично, это как раз наш профиль. Предлагаю созвониться на 30 минут: руководитель проектов покажет похожие "
     "работы и назовёт точную цену. Выберите удобное время:", "hot", True),
]


def demo_responder(body: dict[str, Any]) -> Action:
    schema = ((body.get("output_config") or {}).get("format") or {}).get("schema") or {}
    properties = schema.get("properties", {})
    if "reply" in properties:
        turns = sum(1 for m in body.get("messages", []) if m["role"] == "user")
        text, status, offer = DEMO_REPLIES[min(turns, len(DEMO_REPLIES)) - 1]
        return Reply(json.dumps({"reply": text, "status": status, "offer_meeting": offer}, ensure_ascii=False))
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
