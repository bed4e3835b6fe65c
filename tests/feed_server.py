"""A real HTTP server on 127.0.0.1 that serves iCalendar feeds the way Google and Yandex calendars do.

What the bot relies on, and where each rule comes from:
- a `text/calendar` body with an `ETag` and a `Last-Modified` header; a request with a matching
  `If-None-Match` (or, without one, an `If-Modified-Since` not older than the content) is answered
  `304 Not Modified` with no body (RFC 9110 §13.1.1-13.1.3: If-None-Match takes precedence);
- a server error is a 5xx status with no calendar in it; a stopped server refuses the connection.
`fail` makes every answer that status; `hold` makes answers wait until it is set (a slow server).
"""

from __future__ import annotations

import hashlib
import threading
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FeedServer:
    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, float]] = {}  # path -> (body, modified at, epoch seconds)
        self.fail: int | None = None
        self.hold: threading.Event | None = None
        self.log: list[tuple[str, dict[str, str], int]] = []  # (path, request headers, status)
        self.answered = threading.Event()  # set at each answer (a test in another thread waits on it)
        handler = type("Handler", (_Handler,), {"feeds": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def put(self, path: str, body: bytes, modified: float = 1_770_000_000.0) -> None:
        self.files[path] = (body, modified)

    def statuses(self) -> list[int]:
        return [status for _, _, status in self.log]

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    feeds: FeedServer

    def log_message(self, *args) -> None:  # quiet: the test reads `log`
        pass

    def do_GET(self) -> None:
        feeds = self.feeds
        if feeds.hold is not None:
            feeds.hold.wait(10)
        headers = {k: v for k, v in self.headers.items()}
        if feeds.fail is not None:
            self._answer(headers, feeds.fail, b"<html>Internal Server Error</html>", {"Content-Type": "text/html"})
            return
        if self.path not in feeds.files:
            self._answer(headers, 404, b"not found", {"Content-Type": "text/plain"})
            return
        body, modified = feeds.files[self.path]
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        stamp = formatdate(modified, usegmt=True)
        fresh_headers = {"ETag": etag, "Last-Modified": stamp}
        match = self.headers.get("If-None-Match")
        since = self.headers.get("If-Modified-Since")
        if match is not None:
            unchanged = etag in [tag.strip() for tag in match.split(",")] or match.strip() == "*"
        elif since is not None:
            try:
                unchanged = parsedate_to_datetime(since).timestamp() >= int(modified)
            except (TypeError, ValueError):
                unchanged = False
        else:
            unchanged = False
        if unchanged:
            self._answer(headers, 304, b"", fresh_headers)
        else:
            self._answer(headers, 200, body, {**fresh_headers, "Content-Type": "text/calendar; charset=utf-8"})

    def _answer(self, headers: dict[str, str], status: int, body: bytes, extra: dict[str, str]) -> None:
        self.feeds.log.append((self.path, headers, status))
        self.feeds.answered.set()
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)
