"""Webhook delivery (issue 22): `serve` POSTs the queued events to SALESBOT_WEBHOOK_URL.

Each event is a row of `webhook_event` (written by salesbot/store/events.py in the transaction of
the change it reports). Delivery is at least once and in order per lead: a lead's next event waits
until the one before it is delivered or has failed for good. Every attempt sends the same bytes, so
the same `id`; a receiver drops an id it has seen. The raw body is signed with HMAC-SHA256 under
SALESBOT_WEBHOOK_SECRET, as Stripe, GitHub and Cal.com sign theirs:

    X-Salesbot-Signature: sha256=<hex of HMAC-SHA256(secret, raw body)>

Outcomes: a 2xx is delivered; a timeout, a connection failure, a 5xx, a 408 or a 429 is tried again
with growing pauses (10 s … 1 h) for a day, then `failed`; any other 4xx means the receiver refuses
this event (a wrong URL, a rejected signature), so it is `failed` at once. `doctor` shows failed
events. The secret is never logged, and neither is the body (it carries the lead's name).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import logging
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from salesbot.store import events

log = logging.getLogger(__name__)

TIMEOUT = 10.0  # seconds for one POST, connect included
GIVE_UP_AFTER = timedelta(days=1)
BACKOFF = (10, 30, 60, 300, 900, 1800, 3600)  # seconds before attempt 2, 3, …; the last repeats
RETRY_STATUS = {408, 425, 429}
USER_AGENT = "salesbot-webhooks/1"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class WebhookSender:
    """Delivers due events: `deliver_due()` is one round; serve's outbox loop starts one every few
    seconds (delivery.Outbox.webhooks), so a change reaches the receiver within about five seconds."""

    def __init__(self, url: str, secret: str | None, *, now: Callable[[], datetime] = _utcnow,
                 timeout: float = TIMEOUT) -> None:
        self.url = url
        self.secret = secret or ""
        self.now = now
        self.timeout = timeout

    async def deliver_due(self) -> int:
        """Send every due event (each lead's oldest first) until none is due; returns how many were sent."""
        delivered = 0
        while batch := events.due(self.now()):
            progressed = False
            for event in batch:
                outcome = await self._send(event)
                delivered += outcome == "sent"
                progressed |= outcome in ("sent", "failed")
            if not progressed:
                break  # every due event was put off: the next round takes them
        return delivered

    async def _send(self, event: events.Event) -> str:
        body = event.body.encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Salesbot-Event": event.type,
                   "X-Salesbot-Event-Id": event.event_id}
        if self.secret:
            headers["X-Salesbot-Signature"] = signature(self.secret, body)
        try:
            status = await asyncio.to_thread(post, self.url, body, headers, self.timeout)
        except TimeoutError:
            return self._retry(event, "timeout")
        except (OSError, http.client.HTTPException) as exc:
            return self._retry(event, f"connection error ({type(exc).__name__})")
        if 200 <= status < 300:
            events.sent(event.id, self.now())
            log.info("webhook %s %s delivered (%d)", event.type, event.event_id, status)
            return "sent"
        if status >= 500 or status in RETRY_STATUS:
            return self._retry(event, f"HTTP {status}")
        events.failed(event.id, f"HTTP {status}: the receiver refused the event")
        log.error("webhook %s %s refused by the receiver (HTTP %d): marked failed", event.type, event.event_id, status)
        return "failed"

    def _retry(self, event: events.Event, error: str) -> str:
        now = self.now()
        if now - event.created_at >= GIVE_UP_AFTER:
            events.failed(event.id, f"{error}; gave up after a day of retries")
            log.error("webhook %s %s failed for a day (%s): marked failed", event.type, event.event_id, error)
            return "failed"
        wait = BACKOFF[min(event.attempts, len(BACKOFF) - 1)]
        events.later(event.id, error, now + timedelta(seconds=wait))
        log.warning("webhook %s %s not delivered (%s); next try in %d s", event.type, event.event_id, error, wait)
        return "later"


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST `body` and return the status (no redirects followed: a receiver answers where it is)."""
    parts = urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    extra = {"context": ssl.create_default_context()} if parts.scheme == "https" else {}
    connection = connection_class(parts.hostname, parts.port, timeout=timeout, **extra)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers={**headers, "User-Agent": USER_AGENT})
        response = connection.getresponse()
        response.read()
        return response.status  # a timeout is TimeoutError (socket.timeout's name since Python 3.10)
    finally:
        connection.close()
