"""Issue 22: signed webhook events, delivered by serve at least once, in order per lead, to a real HTTP
receiver on 127.0.0.1."""

import asyncio
import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from freezegun import freeze_time

from salesbot import webhooks
from salesbot.store import WebhookEvent, events, leads
from tests.engine_fakes import NOW, FakeLLM, make_engine
from tests.fake_telegram import serving, settle, until

SECRET = "whsec-test-0123456789"


class Receiver:
    """A webhook receiver: answers each POST with the next status of `statuses` (then 200), and keeps
    every request; like a real one, it processes an id once."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.requests: list[tuple[dict, bytes]] = []
        self.processed: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    event_id = json.loads(body)["id"]
                    if event_id not in receiver.processed:
                        receiver.processed.append(event_id)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/salesbot?token=abc"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(statuses=()):
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture(autouse=True)
def webhooks_on():
    events.configure(True)
    yield
    events.configure(False)


def signed(headers: dict, body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Salesbot-Signature"], expected)


def test_an_event_refused_twice_is_sent_again_with_the_same_id_and_signature_and_accepted_once(
        telegram_server, bot_settings, receiver):
    hook = receiver([500, 503])

    def engine(transport):
        made = make_engine(llm=FakeLLM(), transport=transport, managers=())[0]
        made.outbox.webhooks = webhooks.WebhookSender(hook.url, SECRET)
        return made

    async def main(frozen):
        anna = telegram_server.add_user(101)
        async with serving(telegram_server, bot_settings, engine):
            telegram_server.write(anna, "/start vk_ads")
            await until(lambda: telegram_server.texts_to(anna))
            for attempt in range(1, 4):  # serve's delivery loop polls every 5 s; the backoff is 10 s, then 30 s
                await telegram_server.clock.advance(6)
                await until(lambda n=attempt: len(hook.requests) == n, timeout=10)  # a real thread, a real POST
                frozen.tick(timedelta(seconds=31))
            await telegram_server.clock.advance(6)
            await settle()

    with freeze_time(NOW, real_asyncio=True) as frozen:
        asyncio.run(main(frozen))
    assert len(hook.requests) == 3
    bodies = {body for _, body in hook.requests}
    assert len(bodies) == 1  # the same bytes every time: the same id
    body = json.loads(bodies.pop())
    assert body["type"] == "lead.created" and body["lead"]["source"] == "vk_ads"
    assert body["lead"]["telegram_id"] == 101 and body["lead"]["first_name"] == "Анна"
    assert all(signed(headers, raw) for headers, raw in hook.requests)
    assert all(headers["X-Salesbot-Event-Id"] == body["id"] for headers, _ in hook.requests)
    assert hook.processed == [body["id"]]
    row = WebhookEvent.get()
    assert (row.state, row.attempts) == ("sent", 3)
    assert SECRET not in row.body


def test_events_go_in_order_per_lead_and_a_4xx_is_failed_and_shown_by_doctor(db, receiver, run):
    hook = receiver([410])
    with freeze_time(NOW):
        anna = leads.upsert_telegram_lead(101, 1, "anna", "Анна")
        leads.mark_answered(anna.id, 0, "warm")
        boris = leads.upsert_telegram_lead(202, 2, "boris", "Борис")
        sender = webhooks.WebhookSender(hook.url, SECRET)
        asyncio.run(sender.deliver_due())
    sent = [(json.loads(body)["type"], json.loads(body)["lead"]["id"]) for _, body in hook.requests]
    assert sent == [("lead.created", anna.id), ("lead.created", boris.id), ("lead.status_changed", anna.id)]
    states = [(e.type, e.state) for e in WebhookEvent.select().order_by(WebhookEvent.id)]
    assert states == [("lead.created", "failed"), ("lead.status_changed", "sent"), ("lead.created", "sent")]
    status_change = json.loads(hook.requests[2][1])
    assert status_change["change"] == {"from": "new", "to": "warm"}
    report = run("doctor", "--json", code=None)
    assert "1 webhook event(s) failed" in report.output


def test_a_queued_event_waits_while_the_one_before_it_is_retried(db, receiver):
    hook = receiver([500])
    with freeze_time(NOW) as frozen:
        anna = leads.upsert_telegram_lead(101, 1, "anna", "Анна")
        leads.mark_answered(anna.id, 0, "hot")
        sender = webhooks.WebhookSender(hook.url, SECRET)
        asyncio.run(sender.deliver_due())
        assert [json.loads(body)["type"] for _, body in hook.requests] == ["lead.created"]  # the next one waits
        frozen.tick(timedelta(seconds=11))
        asyncio.run(sender.deliver_due())
    assert [json.loads(body)["type"] for _, body in hook.requests] == ["lead.created", "lead.created",
                                                                        "lead.status_changed"]


def test_a_receiver_down_for_a_day_fails_the_event(db, receiver):
    with freeze_time(NOW) as frozen:
        leads.upsert_telegram_lead(101, 1, "anna", "Анна")
        sender = webhooks.WebhookSender("http://127.0.0.1:9/nothing-listens-here", SECRET, timeout=1)
        for _ in range(40):
            asyncio.run(sender.deliver_due())
            frozen.tick(timedelta(hours=1))
    row = WebhookEvent.get()
    assert row.state == "failed" and "a day" in row.error


def test_without_a_webhook_url_no_events_are_written(db):
    events.configure(False)
    leads.upsert_telegram_lead(101, 1, "anna", "Анна")
    assert WebhookEvent.select().count() == 0


def test_meeting_changes_are_events_with_the_meeting_and_the_lead(db):
    from tests.engine_fakes import CALENDAR, MSK

    with freeze_time(NOW) as frozen:
        from datetime import datetime  # the frozen class

        now = datetime.now(MSK)
        anna = leads.upsert_telegram_lead(101, 1, "anna", "Анна", source="site")
        first = datetime(2025, 12, 24, 11, 0, tzinfo=MSK)
        second = datetime(2025, 12, 24, 15, 0, tzinfo=MSK)
        assert leads.book(anna.id, first, "slot", now, CALENDAR) == (None, None)
        leads.book(anna.id, second, "custom", now, CALENDAR)  # a move
        moved_to = leads.booked_meeting(anna.id, now)
        frozen.move_to("2025-12-24 13:00:00")  # 16:00 in Moscow: the meeting has started
        assert leads.set_outcome(moved_to.id, "no_show", datetime.now(MSK))
    bodies = [json.loads(e.body) for e in WebhookEvent.select().order_by(WebhookEvent.id)]
    assert [b["type"] for b in bodies] == ["lead.created", "lead.status_changed", "meeting.booked", "meeting.moved",
                                           "meeting.no_show"]
    booked, moved, outcome = bodies[2], bodies[3], bodies[4]
    assert booked["meeting"]["starts_at"] == "2025-12-24T08:00:00Z" and booked["lead"]["status"] == "hot"
    assert moved["previous_meeting"]["id"] == booked["meeting"]["id"]
    assert moved["previous_meeting"]["status"] == "cancelled"
    assert moved["meeting"]["starts_at"] == "2025-12-24T12:00:00Z"
    assert outcome["meeting"]["status"] == "no_show" and outcome["lead"]["source"] == "site"
    assert len({b["id"] for b in bodies}) == 5
