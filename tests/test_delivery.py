"""The outbox: sent only when Telegram took it, per chat and in order, failures visible."""

import asyncio
import itertools
import json

from salesbot import delivery, texts
from salesbot.delivery import MAX_UTF16, Outbox, Pacer, split_text, utf16_len
from salesbot.store import Lead
from salesbot.store import Outbox as Row
from salesbot.transport import BotUnauthorized, Button, SendError
from tests.engine_fakes import ManualSleep, RecordingTransport, make_outbox
from tests.factories import make_lead


def states(lead) -> list[tuple[str, str]]:
    return [(row.state, row.text) for row in Row.select().where(Row.lead == lead.id).order_by(Row.id)]


# --- what Telegram accepts --------------------------------------------------------------------------


def test_long_texts_are_cut_where_a_person_would_and_fit_telegrams_limit():
    paragraph = "Слово " * 500  # 3,000 characters
    pieces = split_text(f"{paragraph.strip()}\n\n{paragraph.strip()}")
    assert len(pieces) == 2 and all(utf16_len(p) <= MAX_UTF16 for p in pieces)
    assert pieces[0] == paragraph.strip()  # cut at the paragraph, not mid-word


def test_the_limit_is_counted_in_utf16_units_as_telegram_counts_it():
    emoji = "🙂" * 3000  # 3,000 characters, 6,000 UTF-16 units
    pieces = split_text(emoji)
    assert [utf16_len(p) for p in pieces] == [4096, 1904]
    assert "".join(pieces) == emoji


def test_blank_text_is_never_queued(frozen):
    lead = make_lead()
    assert delivery.queue_to_lead(lead.id, "  \n ", delivery.datetime.now(delivery.UTC)) == []
    assert Row.select().count() == 0


def test_a_long_reply_goes_out_in_pieces_with_the_buttons_on_the_last(frozen, aio):
    lead = make_lead()
    transport = RecordingTransport()
    outbox = make_outbox(transport, managers=())
    keyboard = [[Button("Ср, 24 дек, 10:00", "s:1")]]
    outbox.to_lead(lead.id, ("Абзац. " * 400 + "\n\n") * 3, keyboard)
    aio.run(outbox.deliver(("lead", lead.id)))
    assert len(transport.sent) == 3 and all(utf16_len(s.text) <= MAX_UTF16 for s in transport.sent)
    assert [s.buttons for s in transport.sent] == [None, None, keyboard]


def test_a_manager_notice_quotes_a_long_lead_message_briefly():
    notice = texts.manager_unanswered("Анна", 1, "anna", "очень длинное сообщение " * 500)
    assert len(notice) < 500 and notice.endswith("…")


# --- per chat, in order, transient failures for that chat alone -------------------------------------


def test_a_flood_wait_in_one_chat_does_not_hold_up_another(frozen, aio):
    a, b = make_lead(), make_lead()
    transport = RecordingTransport()
    sleep = ManualSleep()
    outbox = make_outbox(transport, managers=(), sleep=sleep)
    transport.fail = [SendError("flood wait 8 s", retry_after=8.0)]
    outbox.to_lead(a.id, "А: первое")
    outbox.to_lead(a.id, "А: второе")
    outbox.to_lead(b.id, "Б: ответ")

    async def run():
        await outbox.deliver(("lead", a.id))  # flood: A waits 8 s, in the background
        await outbox.deliver(("lead", b.id))  # B goes at once
        assert [s.text for s in transport.sent] == ["Б: ответ"]
        frozen.tick(8)
        await asyncio.sleep(0.01)  # A's retry wakes

    aio.run(run())
    assert [s.text for s in transport.sent] == ["Б: ответ", "А: первое", "А: второе"]  # A's order kept
    assert 8.0 in sleep.waits
    assert [state for state, _ in states(a)] == ["sent", "sent"]
    assert Row.get(Row.text == "А: первое").attempts == 1  # a flood wait is not a failed attempt


def test_a_transient_failure_is_retried_with_the_same_random_id(frozen, aio):
    lead = make_lead()
    transport = RecordingTransport()
    seen = []
    original = transport.send

    async def spy(peer, text, buttons, random_id):
        seen.append(random_id)
        return await original(peer, text, buttons, random_id)

    transport.send = spy
    transport.fail = [SendError("ConnectionError: reset")]
    outbox = make_outbox(transport, managers=())
    outbox.to_lead(lead.id, "Здравствуйте!")

    async def run():
        await outbox.deliver(("lead", lead.id))
        assert states(lead) == [("queued", "Здравствуйте!")]
        frozen.tick(delivery.BACKOFF[0])
        await asyncio.sleep(0.01)

    aio.run(run())
    assert states(lead) == [("sent", "Здравствуйте!")]
    assert len(seen) == 2 and seen[0] == seen[1]  # Telegram dedupes a resend by random_id
    assert Row.get().telegram_message_id == 500


def test_a_message_that_keeps_failing_is_shown_failed_and_managers_are_told(frozen, aio, run):
    lead = make_lead(first_name="Ольга", username="olga")
    transport = RecordingTransport()
    transport.fail = [SendError("ConnectionError: reset")] * delivery.MAX_ATTEMPTS
    outbox = make_outbox(transport, managers=(777,))
    outbox.to_lead(lead.id, "Ответ, который не дойдёт")

    async def attempts():
        for _ in range(delivery.MAX_ATTEMPTS):
            await outbox.deliver(("lead", lead.id), due_by=delivery.datetime(2100, 1, 1, tzinfo=delivery.UTC))
        await outbox.deliver(("chat", 777))

    aio.run(attempts())
    row = Row.get(Row.lead == lead.id)
    assert (row.state, row.attempts, row.error) == ("failed", delivery.MAX_ATTEMPTS, "ConnectionError: reset")
    (notice,) = transport.to(777)
    assert "Ольга (@olga)" in notice.text and "не доставлено" in notice.text
    assert json.loads(run("leads", "list", "--json").stdout)[0]["undelivered"] == 1
    assert "(1 undelivered)" in run("leads", "list").stdout
    assert "(undelivered: ConnectionError: reset)" in run("leads", "show", str(lead.id)).stdout


def test_a_lead_who_blocked_the_bot_fails_at_once_and_is_opted_out(frozen, aio):
    lead = make_lead()
    transport = RecordingTransport()
    transport.fail = [SendError("UserIsBlockedError", unreachable=True)]
    outbox = make_outbox(transport, managers=())
    outbox.to_lead(lead.id, "Ответ")
    aio.run(outbox.deliver(("lead", lead.id)))
    assert states(lead) == [("failed", "Ответ")]
    stored = Lead.get_by_id(lead.id)
    assert (stored.opted_out, stored.opted_out_reason) == (True, "UserIsBlockedError")


def test_when_telegram_refuses_the_bot_itself_nothing_is_blamed_on_the_lead(frozen, aio):
    lead = make_lead()
    transport = RecordingTransport()
    transport.fail = [BotUnauthorized("AuthKeyUnregisteredError")]
    stopped = []
    outbox = Outbox(transport, sleep=ManualSleep(), on_unauthorized=stopped.append)
    outbox.to_lead(lead.id, "Ответ")
    aio.run(outbox.deliver(("lead", lead.id)))
    assert states(lead) == [("queued", "Ответ")]  # sent after the operator fixes the bot
    assert len(stopped) == 1 and not Lead.get_by_id(lead.id).opted_out


def test_what_was_queued_before_a_restart_goes_out_from_the_background_loop(frozen, aio):
    lead = make_lead()
    make_outbox(RecordingTransport()).to_lead(lead.id, "Ответ до перезапуска")  # then the process died
    transport = RecordingTransport()
    outbox = make_outbox(transport)
    beats = []

    async def one_round():
        task = asyncio.get_running_loop().create_task(outbox.run(heartbeat=lambda: beats.append(1)))
        await asyncio.sleep(0.01)
        task.cancel()

    aio.run(one_round())
    assert [s.text for s in transport.sent] == ["Ответ до перезапуска"] and beats


# --- the whole bot's pace -----------------------------------------------------------------------------


def test_the_pacer_keeps_the_rate_and_lets_live_replies_go_first(aio):
    clock = [0.0]

    async def sleep(seconds):  # let the sends released so far run, then let the time pass
        await asyncio.sleep(0)
        clock[0] += seconds

    pacer = Pacer(rate=25.0, clock=lambda: clock[0], sleep=sleep)
    order = []

    async def send(name, priority):
        await pacer.turn(priority)
        order.append((name, round(clock[0], 3)))

    async def run():
        await asyncio.gather(*(send(f"reminder {i}", 1) for i in range(3)), send("reply", 0))

    aio.run(run())
    assert order[0][0] == "reply"  # queued last, sent first
    gaps = [round(b[1] - a[1], 3) for a, b in itertools.pairwise(order)]
    assert gaps == [0.04, 0.04, 0.04]  # 25 a second


def test_a_reply_queued_after_reminders_overtakes_those_still_waiting_for_their_turn(frozen, aio):
    """Through the outbox (the rows' kinds decide the priority): three reminders from the sweep are
    waiting for the pacer when a lead writes; the answer goes out at the next turn, not after them."""
    transport = RecordingTransport()
    outbox = make_outbox(transport)
    clock = [0.0]

    async def sleep(seconds):
        await asyncio.sleep(0)
        clock[0] += seconds

    outbox.pacer = Pacer(rate=25.0, clock=lambda: clock[0], sleep=sleep)
    quiet = [make_lead(last_message_ago=delivery.timedelta(days=2), follow_up_count=1) for _ in range(3)]  # claimed
    for lead in quiet:
        delivery.queue_to_lead(lead.id, f"Напоминание {lead.id}", delivery.datetime.now(delivery.UTC),
                               kind="reminder")
    asker = make_lead()

    async def run():
        reminders = [asyncio.get_running_loop().create_task(outbox.deliver(("lead", lead.id))) for lead in quiet]
        await asyncio.sleep(0)  # every reminder is now waiting for its turn
        outbox.to_lead(asker.id, "Ответ на вопрос")
        await outbox.deliver(("lead", asker.id))
        await asyncio.gather(*reminders)

    aio.run(run())
    sent = [s.text for s in transport.sent]
    # at most the one reminder already let through by the pacer is ahead of it (with one priority for
    # all, the answer is last)
    assert len(sent) == 4 and sent.index("Ответ на вопрос") <= 1
