"""The reminder sweep, with `now` passed in: it decides and queues; `serve` delivers (delivery.py).

A lead is due when all hold: status new or warm; not opted out; a Telegram lead with an access hash
(chat leads never are); no booked meeting ahead; the bot spoke last (the lead is the one who went
quiet); none of the lead's messages is waiting for an answer (when Claude was down, it is we who
owe the lead a reply, not the other way round); our last message to the lead was delivered (not
still queued, not failed: a lead who never got our answer is not reminded of it); and either
- step 1: no reminder yet and the lead's last message is at least FOLLOW_UP_1 hours old, or
- step 2: one reminder and it is at least FOLLOW_UP_2 hours old.
Step 2 makes the lead cold (cold_reason `no_reply`) in the same update that claims it.

Never twice: each lead is claimed (leads.claim_follow_up) by a compare-and-set UPDATE (on
follow_up_count and the lead's last message), in the same transaction that queues the reminder.
Overlapping sweeps cannot both claim a lead. The deliverer checks again just before sending: a
lead who wrote after the reminder was queued is not reminded (delivery.py drops it).

Why the sweep does not send itself: one Telegram session talks to Telegram (`serve`'s). Access
hashes belong to the session that received them (core.telegram.org/api/peers), so a second session
addressing leads with `serve`'s hashes may be refused (PEER_ID_INVALID) — and the old sweep took
that as "unreachable" and opted the lead out for good. One egress also keeps the whole bot under
Telegram's ~30 messages a second, with live replies ahead of reminders.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from salesbot import delivery, leads, store, texts
from salesbot.slots import clock_label
from salesbot.store import db, to_utc_naive

log = logging.getLogger(__name__)

PAGE = 1000


@dataclass(frozen=True)
class Policy:
    tz: ZoneInfo
    first_after: timedelta = timedelta(hours=24)
    second_after: timedelta = timedelta(hours=24)
    window: tuple[time, time] = (time(10), time(20))

    def in_window(self, now: datetime) -> bool:
        local = now.astimezone(self.tz).time()
        start, end = self.window
        return start <= local < end


@dataclass
class Due:
    lead_id: int
    telegram_id: int
    access_hash: int
    first_name: str | None
    step: int
    # Both as stored (text): the claim compares them with what is in the row, byte for byte.
    last_message_at: str
    last_follow_up_at: str | None
    status: str

    @property
    def becomes_cold(self) -> bool:
        return self.step == 2


@dataclass
class Action:
    lead_id: int
    step: int
    becomes_cold: bool
    telegram_id: int
    first_name: str | None
    outcome: str  # would_send (dry run) | queued | claimed_elsewhere (another sweep, or the lead wrote)


@dataclass
class SweepResult:
    """Counts for every lead the sweep touched; the actions themselves only up to `keep` of them
    (a sweep over 100k leads must not hold 100k actions: the CLI streams them instead)."""

    now: datetime
    dry_run: bool
    in_window: bool
    actions: list[Action] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)
    now_cold: int = 0
    due_later: int | None = None  # dry run outside the window: how many are due once it opens
    meetings: list = field(default_factory=list)  # meeting reminders and no-show offers (meeting_reminders.py)

    def count(self, outcome: str) -> int:
        return self.outcomes[outcome]

    def record(self, action: Action, keep: int | None) -> None:
        self.outcomes[action.outcome] += 1
        self.now_cold += action.becomes_cold and action.outcome in ("queued", "would_send")
        if keep is None or len(self.actions) < keep:
            self.actions.append(action)

    @property
    def summary(self) -> dict[str, int]:
        return {
            "queued": self.count("queued"),
            "would_send": self.count("would_send"),
            "now_cold": self.now_cold,
            "skipped": self.count("claimed_elsewhere"),
        }


# Who is due (the module docstring in SQL). Rows stream page by page (keyset on id), so memory stays
# flat however many leads there are, and no read is open while the sweep writes.
_DUE_WHERE = f"""
      {leads.REMINDABLE}
  AND ((l.follow_up_count = 0 AND l.last_message_at <= ?) OR (l.follow_up_count = 1 AND l.last_follow_up_at <= ?))
  AND NOT EXISTS (SELECT 1 FROM meeting AS m WHERE m.lead_id = l.id AND m.status = 'booked' AND m.starts_at >= ?)
  AND (SELECT role FROM message AS x WHERE x.lead_id = l.id ORDER BY x.id DESC LIMIT 1) = 'bot'
  AND NOT EXISTS (SELECT 1 FROM message AS u WHERE u.lead_id = l.id AND u.unanswered = 1)
  AND coalesce((SELECT o.state FROM outbox AS o WHERE o.lead_id = l.id ORDER BY o.id DESC LIMIT 1), 'sent') = 'sent'
"""
_DUE_SQL = f"""
SELECT l.id, l.telegram_id, l.access_hash, l.first_name, l.follow_up_count, l.last_message_at,
       l.last_follow_up_at, l.status
FROM lead AS l
WHERE {_DUE_WHERE} AND l.id > ?
ORDER BY l.id
LIMIT ?
"""
_COUNT_DUE_SQL = f"SELECT count(*) FROM lead AS l WHERE {_DUE_WHERE}"


def _cutoffs(now: datetime, policy: Policy) -> tuple[str, str, str]:
    now_db = to_utc_naive(now)
    return str(now_db - policy.first_after), str(now_db - policy.second_after), str(now_db)


def count_due(now: datetime, policy: Policy) -> int:
    """How many leads are due (for a progress bar; the sweep itself streams)."""
    return db.execute_sql(_COUNT_DUE_SQL, _cutoffs(now, policy)).fetchone()[0]


def due_leads(now: datetime, policy: Policy, limit: int | None = None) -> Iterator[Due]:
    """Leads due for a reminder at `now`, in id order, streamed."""
    cutoffs = _cutoffs(now, policy)
    after, produced = 0, 0
    while limit is None or produced < limit:
        page = PAGE if limit is None else min(PAGE, limit - produced)
        rows = db.execute_sql(_DUE_SQL, (*cutoffs, after, page)).fetchall()
        for row in rows:
            yield Due(lead_id=row[0], telegram_id=row[1], access_hash=row[2], first_name=row[3], step=row[4] + 1,
                      last_message_at=row[5], last_follow_up_at=row[6], status=row[7])
        produced += len(rows)
        if len(rows) < page:
            return
        after = rows[-1][0]


def sweep(
    now: datetime,
    policy: Policy,
    *,
    dry_run: bool = False,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
    on_action: Callable[[Action], None] | None = None,
    keep: int | None = None,
) -> SweepResult:
    """One sweep at `now`: queue a reminder for each lead who is due (with dry_run, only list them).

    Each finished action goes to `on_action`; `keep` bounds how many stay in the result."""
    result = SweepResult(now=now, dry_run=dry_run, in_window=policy.in_window(now))
    if not result.in_window:
        log.debug("outside the send window %s-%s (%s): nothing to do", *map(clock_label, policy.window),
                  policy.tz.key)
        if dry_run:  # tell the operator what the window is holding back
            result.due_later = count_due(now, policy)
        return result
    for due in due_leads(now, policy, limit):
        action = Action(due.lead_id, due.step, due.becomes_cold, due.telegram_id, due.first_name, "would_send")
        if not dry_run:
            action.outcome = "queued" if _claim_and_queue(due, now) else "claimed_elsewhere"
        result.record(action, keep)
        if on_action:
            on_action(action)
        if progress:
            progress(1)
    return result


def _claim_and_queue(due: Due, now: datetime) -> bool:
    """Claim the lead and queue its reminder in one transaction (delivery.py sends it)."""
    with store.transaction():
        if not leads.claim_follow_up(due.lead_id, due.step, due.last_message_at, now):
            return False
        delivery.queue_to_lead(due.lead_id, texts.follow_up(due.step, due.first_name), now, kind="reminder")
    return True


@contextlib.contextmanager
def sweep_lock(home: Path) -> Iterator[bool]:
    """An exclusive flock on $SALESBOT_HOME/follow-ups.lock; yields False when another sweep holds it."""
    import fcntl

    path = home / "follow-ups.lock"
    handle = open(path, "a+")  # noqa: SIM115 - held for the whole sweep
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def utc_now() -> datetime:
    return datetime.now(UTC)
