"""`salesbot follow-ups stats`: each reminder step's outcome, on a history built by the real sweep,
the real outbox and the real engine under a frozen clock."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from salesbot import followups
from salesbot.followups import Policy
from salesbot.store import Lead, leads, queries, to_utc_naive
from tests.engine_fakes import CALENDAR, MSK, make_engine, tg

T0 = datetime(2025, 12, 23, 8, 0, tzinfo=UTC)  # Tuesday 11:00 in Moscow
POLICY = Policy(tz=MSK, calendar=CALENDAR)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def asked(telegram_id: int, when: datetime, status: str = "warm", name: str = "Анна") -> int:
    """A lead who asked at `when` and got an answer a minute later, then went quiet."""
    lead = Lead.create(telegram_id=telegram_id, access_hash=555, first_name=name, created_at=to_utc_naive(when))
    leads.record_lead_message(lead.id, "Сколько стоит?", to_utc_naive(when), False)
    leads.record_bot_message(lead.id, "От 120 000 ₽.", to_utc_naive(when + timedelta(minutes=1)))
    Lead.update(status=status).where(Lead.id == lead.id).execute()
    return lead.id


def writes(lead_id: int, when: datetime) -> None:
    leads.record_lead_message(lead_id, "Да, актуально", to_utc_naive(when), False)
    leads.record_bot_message(lead_id, "Отлично!", to_utc_naive(when + timedelta(minutes=1)))


@pytest.fixture
def history(db, aio):
    """Five leads over four days:
    A  reminder 1 (Wed 12:00), writes 2 h later, books a meeting 5 h after the reminder;
    B  reminder 1 (Wed), reminder 2 (Thu 12:00), writes 6 h after the second (30 h after the first)
       and books an hour later (the booking counts for reminder 2, the last one before it);
    C  reminder 1, reminder 2, silent: cold;
    D  hot: the hot nudge with slots (Wed 12:00), presses a slot half an hour later;
    E  asks on Thursday, reminder 1 on Friday 13:00, silent (no further sweep)."""
    dialogue, _, transport = make_engine(managers=())

    def sweep_and_send():
        followups.sweep(datetime.now(UTC), POLICY)
        aio.run(dialogue.outbox.drain())

    with freeze_time(T0, real_asyncio=True) as clock:
        ids = {"A": asked(1, T0), "B": asked(2, T0), "C": asked(3, T0), "D": asked(4, T0, status="hot")}
        clock.move_to(at(25))
        sweep_and_send()  # reminder 1 to A, B, C; the hot nudge to D
        clock.move_to(at(25.5))
        press = tg(4, button=transport.to(4)[-1].data_of("Ср, 24 дек, 16:00"), first_name="Анна")
        assert dialogue.press(press) == "new"
        aio.run(dialogue.handle(press))
        writes(ids["A"], at(27))
        clock.move_to(at(30))
        problem, _ = leads.book(ids["A"], at(72 + 6), "slot", datetime.now(UTC), CALENDAR)  # Fri 17:00
        assert problem is None
        clock.move_to(at(49))
        sweep_and_send()  # reminder 2 to B and C (A and D have meetings ahead)
        ids["E"] = asked(5, at(50))
        writes(ids["B"], at(55))
        clock.move_to(at(56))
        problem, _ = leads.book(ids["B"], at(72 + 7), "slot", datetime.now(UTC), CALENDAR)  # Fri 18:00
        assert problem is None
        clock.move_to(at(74))
        sweep_and_send()  # reminder 1 to E
    return ids


def by_step(stats) -> dict[str, tuple]:
    return {s.step: (s.sent, s.replied_24h, s.replied_72h, s.booked, s.went_cold) for s in stats.steps}


def test_each_steps_outcome(history, run):
    assert Lead.get_by_id(history["C"]).status == "cold"
    with freeze_time(at(24 * 8)):
        data = json.loads(run("follow-ups", "stats", "--json").stdout)
    steps = {s["step"]: s for s in data["steps"]}
    assert list(steps) == ["follow_up_1", "follow_up_2", "hot_1", "hot_2"]
    #              sent  ≤24 h  ≤72 h  booked  cold
    assert {step: (s["sent"], s["replied_24h"], s["replied_72h"], s["booked"], s["went_cold"])
            for step, s in steps.items()} == {
        "follow_up_1": (4, 1, 2, 1, 1),  # A and B replied (B after 30 h), A booked, C went cold
        "follow_up_2": (2, 1, 1, 1, 1),  # B replied 6 h after it and booked, C went cold
        "hot_1": (1, 1, 1, 1, 0),        # D pressed a slot: a reply and a booking
        "hot_2": (0, 0, 0, 0, 0),
    }
    assert steps["follow_up_1"]["reply_rate_24h"] == 0.25 and steps["follow_up_1"]["reply_rate_72h"] == 0.5
    assert steps["hot_2"]["reply_rate_24h"] is None and steps["follow_up_1"]["maturing"] == 0
    assert data["since"] is None


def test_since_counts_only_the_reminders_sent_since(history, run):
    with freeze_time(at(24 * 8)):
        data = json.loads(run("follow-ups", "stats", "--since", "2025-12-25T00:00", "--json").stdout)
    assert {s["step"]: s["sent"] for s in data["steps"]} == {"follow_up_1": 1, "follow_up_2": 2, "hot_1": 0,
                                                             "hot_2": 0}
    assert data["since"] == "2025-12-25T00:00:00+03:00"


def test_recent_reminders_are_marked_as_maturing(history):
    stats = queries.follow_up_stats(now=at(80))  # Friday 19:00: every reminder is under 72 h old
    assert {s.step: s.maturing for s in stats.steps} == {"follow_up_1": 4, "follow_up_2": 2, "hot_1": 1, "hot_2": 0}
    assert by_step(stats)["follow_up_1"] == (4, 1, 2, 1, 1)


def test_a_lead_who_wrote_after_a_reminder_did_not_go_cold_from_it(history, aio):
    """C writes days later (not a reply within 72 h), then goes quiet again and cold after a second
    round; only the second round's reminders count as going cold for C. E gets its reminder 2
    meanwhile and goes cold."""
    outbox = make_engine(managers=())[0].outbox
    with freeze_time(at(24 * 7), real_asyncio=True) as clock:
        writes(history["C"], at(24 * 7))
        assert Lead.get_by_id(history["C"]).status == "warm"
        for hours in (24 * 8 + 1, 24 * 9 + 1):  # Wednesday and Thursday 12:00
            clock.move_to(at(hours))
            followups.sweep(datetime.now(UTC), POLICY)
            aio.run(outbox.drain())
        clock.move_to(at(24 * 12))
        stats = by_step(queries.follow_up_stats())
    #                                 sent  ≤24 h  ≤72 h  booked  cold
    assert stats["follow_up_1"] == (5, 1, 2, 1, 2)  # C's second reminder 1 and E's went cold, not C's first
    assert stats["follow_up_2"] == (4, 1, 1, 1, 2)  # B booked; E and C's second round went cold


def test_the_table(history, run):
    with freeze_time(at(24 * 8)):
        table = run("follow-ups", "stats").stdout
    assert "reminder 1" in table and "hot lead: 1" in table
    assert "1 (25%)" in table and "2 (50%)" in table  # replied within 24 h and 72 h of reminder 1
    with freeze_time(at(80)):
        assert "went out less than 72 h ago" in run("follow-ups", "stats").stdout


def test_no_reminders_yet(db, run):
    data = json.loads(run("follow-ups", "stats", "--json").stdout)
    assert all(s["sent"] == 0 and s["reply_rate_24h"] is None for s in data["steps"])
    assert "--since: expected a date" in run("follow-ups", "stats", "--since", "yesterday", code=1).stderr
