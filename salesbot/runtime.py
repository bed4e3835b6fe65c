"""Composition: settings → store → Claude client → engine → transport, and one entry per long-running job.

`serve`, `chat` and `sweep` are the calls the CLI ends in (tests patch them). Everything is built
here and nowhere else, so each setting is read in one place: the engine, the sweep and the Claude
client get plain typed values (DialogueConfig, Calendar, Policy), never the settings object.
telethon and anthropic are imported inside the jobs that need them, so fast commands start fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salesbot.config import CLAUDE_KEYS, TELEGRAM_KEYS, Settings, ensure_home, load_prompt, load_texts
from salesbot.errors import ConfigError, SalesbotError
from salesbot.time.slots import Calendar

if TYPE_CHECKING:
    from salesbot.claude.budget import Budget
    from salesbot.claude.client import ClaudeClient
    from salesbot.dialogue import DialogueConfig
    from salesbot.followups import Policy, SweepResult
    from salesbot.meeting_reminders import Plan as MeetingPlan
    from salesbot.time.busy import BusyTimes

log = logging.getLogger(__name__)


# --- what the settings build ------------------------------------------------------------------------


def open_store(settings: Settings, busy_timeout_ms: int | None = None, path: Path | None = None):
    """The migrated database, the models bound to it (the data folder is created when it holds it)."""
    from salesbot.store import events, open_database

    path = path or settings.db_path
    if path.parent == settings.home and not path.exists():
        ensure_home(settings)  # the database is made here: the folder must be there and writable
    database = open_database(path, busy_timeout_ms=busy_timeout_ms)
    # events only while a receiver is set; its address is checked by serve and doctor, not by every
    # reading command (a bad one must not stop `leads list`)
    events.configure(bool(settings.raw.get("SALESBOT_WEBHOOK_URL")) and path == settings.db_path)
    return database


def webhook_sender(settings: Settings):
    """What delivers the webhook events in `serve`, or None when SALESBOT_WEBHOOK_URL is not set."""
    if not settings.webhook_url:
        return None
    from salesbot.webhooks import WebhookSender

    return WebhookSender(settings.webhook_url, settings.webhook_secret)


CHAT_SANDBOX = "chat-sandbox.db"


def sandbox_path(settings: Settings) -> Path:
    """Where `salesbot chat` rehearses unless --live: its own database in SALESBOT_HOME, so a rehearsal
    never books a real slot or adds a lead to the real list."""
    return settings.home / CHAT_SANDBOX


def reset_sandbox(settings: Settings) -> bool:
    """Empty the chat sandbox (the file and its WAL companions); True when there was one."""
    path = sandbox_path(settings)
    found = False
    for companion in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            companion.unlink()
            found = True
    return found


def calendar(settings: Settings) -> Calendar:
    """The one calendar every booking question goes to: working hours (per day when so written),
    breaks, days off, public holidays, and the owner's busy times as the last refresh left them in
    SALESBOT_HOME (`busy_times` below; `serve` keeps them fresh)."""
    from salesbot.time.calendar import DaysOff, public_holidays

    hours = settings.work_hours
    work_days, day_hours = settings.work_days, hours.by_day()
    if hours.per_day:
        if settings.source("SALESBOT_WORK_DAYS") != "default" and settings.work_days != frozenset(day_hours):
            raise ConfigError("SALESBOT_WORK_HOURS gives hours per day, so it names the working days itself; "
                              "SALESBOT_WORK_DAYS lists other days: leave it unset (or make them agree)")
        work_days = frozenset(day_hours)
        opens, closes = min(span[0] for span in day_hours.values()), max(span[1] for span in day_hours.values())
    else:
        assert hours.every_day is not None
        opens, closes = hours.every_day
    days_off = DaysOff(settings.days_off, public_holidays(settings.holidays))
    return Calendar(tz=settings.tz, work_days=work_days, opens=opens, closes=closes,
                    slot=timedelta(minutes=settings.slot_minutes),
                    min_notice=timedelta(minutes=settings.min_notice_minutes),
                    horizon=timedelta(days=settings.booking_days), day_hours=day_hours,
                    breaks=settings.breaks, days_off=days_off, busy=busy_times(settings))


def busy_times(settings: Settings) -> BusyTimes | None:
    """The owner's busy times from SALESBOT_BUSY_ICS (None when there are no feeds)."""
    from salesbot.time.busy import BusyTimes, feeds_of

    if not settings.busy_sources:
        return None
    return BusyTimes(settings.home, feeds_of(settings.busy_sources), settings.tz)


def dialogue_config(settings: Settings, cal: Calendar | None = None) -> DialogueConfig:
    from salesbot.dialogue import DialogueConfig

    return DialogueConfig(calendar=cal or calendar(settings), manager_ids=settings.manager_ids,
                          max_chars=settings.max_message_chars, history_turns=settings.history_turns)


def policy(settings: Settings) -> Policy:
    from salesbot.followups import Policy

    return Policy(tz=settings.tz, first_after=timedelta(hours=settings.follow_up_1_hours),
                  second_after=timedelta(hours=settings.follow_up_2_hours), window=settings.send_window,
                  days=settings.send_days, calendar=calendar(settings))


def meeting_plan(settings: Settings) -> MeetingPlan:
    from salesbot.meeting_reminders import Plan

    return Plan(lead_times=settings.meeting_reminders, calendar=calendar(settings))


@dataclass
class FreeTimes:
    """`salesbot slots`: the free slot starts from `start` for `days` days, and how each feed fared."""

    start: datetime
    end: datetime
    slots: list[datetime]
    calendar: Calendar
    feeds: list[Any]  # busy.FeedState, one per SALESBOT_BUSY_ICS item


def free_times(settings: Settings, start: datetime | None, days: int, now: datetime | None = None) -> FreeTimes:
    """The free times the bot would offer, the feeds fetched first (a failing one keeps its last copy)."""
    from salesbot.store import leads
    from salesbot.time.slots import free_between

    cal = calendar(settings)
    now = now or datetime.now(UTC)
    feeds = cal.busy.refresh(now, cal.horizon, quiet=True) if cal.busy is not None else []
    open_store(settings)
    start = max(start or now, now)
    end = start + timedelta(days=days)
    slots = free_between(start, end, now, cal, leads.booked_starts(now - cal.slot))
    return FreeTimes(start.astimezone(cal.tz), end.astimezone(cal.tz), slots, cal, feeds)


def claude_client(settings: Settings, **overrides: Any) -> ClaudeClient:
    from salesbot.claude.client import ClaudeClient

    overrides.setdefault("budget", budget(settings))
    return ClaudeClient(api_key=settings.anthropic_api_key, base_url=settings.anthropic_base_url,
                        model=settings.model, fast_model=settings.fast_model, timeout=settings.llm_timeout,
                        effort=settings.effort, **overrides)


def budget(settings: Settings) -> Budget | None:
    """The monthly Claude spend ceiling, or None when SALESBOT_MONTHLY_BUDGET_USD is not set. Its
    alerts go to the managers as notices, claimed once per month and level in the notice's own
    transaction (whichever process gets there first sends it)."""
    limit = settings.monthly_budget_usd
    if limit is None:
        return None
    from salesbot.claude.budget import Budget

    managers = settings.manager_ids

    def alert(month: str, level: int, state) -> None:
        from datetime import UTC

        from salesbot import delivery, texts
        from salesbot.store import budget as alerts
        from salesbot.store import transaction, utcnow

        with transaction():
            if not alerts.claim_alert(month, level, utcnow()):
                return
            text = texts.manager_budget(level, month, state.spent_usd, state.limit_usd)
            for manager in managers:
                delivery.queue_to_chat(manager, text, datetime.now(UTC))
        log.warning("Claude budget for %s: %d%% reached ($%.2f of $%.2f)%s", month, level, state.spent_usd,
                    state.limit_usd, "; no more Claude calls this month" if level >= 100 else "")

    return Budget(limit, settings.tz, alert)


def fallback_client(settings: Settings) -> ClaudeClient | None:
    """The Claude client for the parse-time fallback, or None when no key is configured."""
    if not settings.anthropic_api_key:
        log.debug("ANTHROPIC_API_KEY is not set: parsing with the rules only")
        return None
    return claude_client(settings)


def inbox_config(settings: Settings, cal: Calendar | None = None):
    """The staff inbox's settings: the staff group, the managers, how long a takeover lasts."""
    from salesbot.inbox import InboxConfig

    return InboxConfig(calendar=cal or calendar(settings), staff_chat=settings.staff_chat,
                       manager_ids=settings.manager_ids, takeover=timedelta(hours=settings.takeover_hours))


def use_texts(settings: Settings) -> None:
    """The bot's words for this process: the packaged texts with SALESBOT_TEXTS_FILE's overrides, and
    the consultation's length from SALESBOT_SLOT_MINUTES."""
    from salesbot import texts

    texts.configure(load_texts(settings), settings.slot_minutes)


def check_serve(settings: Settings) -> None:
    """Everything `serve` needs, checked before it reaches Telegram: credentials, the playbook, the
    calendar and the engine's settings (a bad value fails now, not mid-conversation)."""
    settings.require(*TELEGRAM_KEYS, *CLAUDE_KEYS)
    load_prompt(settings)
    dialogue_config(settings)
    inbox_config(settings)
    use_texts(settings)


# --- the long-running jobs -------------------------------------------------------------------------


def serve(settings: Settings) -> None:
    """`salesbot serve`: the Telegram bot until SIGINT/SIGTERM; one per SALESBOT_HOME."""
    from salesbot import telegram
    from salesbot.delivery import Outbox
    from salesbot.store import leads

    prompt = load_prompt(settings)  # read once, before Telegram is reached
    use_texts(settings)
    ensure_home(settings)
    with serve_lock(settings.home):
        open_store(settings, busy_timeout_ms=SERVE_BUSY_TIMEOUT_MS)

        async def main() -> None:
            claude = claude_client(settings)
            cal = calendar(settings)  # one calendar: the feeds' refresher updates the busy times it asks

            def build(transport):
                outbox = Outbox(transport, managers=settings.manager_ids, may_remind=policy(settings).in_window)
                outbox.webhooks = webhook_sender(settings)
                from salesbot.claude.dialogue import ClaudeDialogue
                from salesbot.dialogue import Dialogue
                from salesbot.inbox import Inbox

                inbox = Inbox(outbox, inbox_config(settings, cal))
                return Dialogue(ClaudeDialogue(claude, prompt), transport, dialogue_config(settings, cal),
                                outbox=outbox, inbox=inbox), outbox

            feeds = None
            if cal.busy is not None:  # in the background: a lead never waits for a calendar server
                feeds = asyncio.create_task(cal.busy.keep_fresh(cal.horizon, lambda: datetime.now(UTC)))
            try:
                await claude.check_prompt(prompt)  # the prompt's tokens, and whether it can be cached
                await telegram.serve(settings, build, leads.leads_with_unanswered,
                                     heartbeat=lambda: beat(settings.home))
            finally:
                if feeds is not None:
                    feeds.cancel()
                await claude.close()

        asyncio.run(main())


# --- is serve running? ------------------------------------------------------------------------------
# `serve` holds an flock on serve.lock while it runs, and its delivery loop touches serve.heartbeat
# every few seconds; the sweep (which only queues) refuses to run when no serve will deliver.

SERVE_BUSY_TIMEOUT_MS = 500  # serve's event loop never blocks on a lock for seconds; writes retry instead
HEARTBEAT = "serve.heartbeat"
ALIVE_SECONDS = 180


@contextlib.contextmanager
def serve_lock(home: Path) -> Iterator[None]:
    import fcntl

    handle = open(home / "serve.lock", "a+")  # noqa: SIM115 - held while serve runs
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            raise SalesbotError(f"another salesbot serve is running for {home} (pid {pid}); "
                                "one bot per SALESBOT_HOME") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def beat(home: Path) -> None:
    (home / HEARTBEAT).touch()


def serve_alive(home: Path, now: float | None = None) -> float | None:
    """Seconds since serve's last heartbeat, or None when it has none (never ran here)."""
    try:
        age = (now if now is not None else time.time()) - (home / HEARTBEAT).stat().st_mtime
    except FileNotFoundError:
        return None
    return max(0.0, age)


@dataclass
class ChatSession:
    """What `salesbot chat` shows before the conversation starts."""

    lead_id: int
    lead_name: str
    database: Path | None = None
    live: bool = False
    demo: bool = False


def chat(settings: Settings, transport: Any, lead_name: str | None, lines: Iterable[str],
         on_start: Callable[[ChatSession], None] | None = None, *, live: bool = False, demo: bool = False) -> None:
    """`salesbot chat`: the dialogue engine in the terminal, the operator playing the lead.

    A rehearsal by default: its own database (`sandbox_path`) unless `live`; with `demo`, canned
    answers (salesbot.demo) instead of Claude, so no key is needed. A new conversation opens as in
    Telegram, with the lead's /start and the bot's greeting."""
    from salesbot.terminal import chat_lead, resume, run_chat

    if not demo:
        settings.require(*CLAUDE_KEYS)
    prompt = None if demo else load_prompt(settings)
    config = dialogue_config(settings)
    use_texts(settings)
    path = settings.db_path if live else sandbox_path(settings)
    ledger = None
    if not live and not demo:  # a rehearsal's Claude calls cost real money: the real ledger records them
        from salesbot.store import append_llm_call

        real = open_store(settings)
        ledger = lambda row: append_llm_call(real, {**row, "lead_id": None,  # noqa: E731 - the sandbox's leads
                                                    "purpose": f"rehearsal {row['purpose']}"})
    open_store(settings, path=path)
    talker = chat_lead(lead_name)
    if on_start is not None:
        on_start(ChatSession(talker.id, talker.first_name or "", path, live, demo))

    async def main() -> None:
        from salesbot.claude.dialogue import ClaudeDialogue
        from salesbot.dialogue import Dialogue
        from salesbot.store import leads

        # a rehearsal's models are bound to the sandbox, whose ledger is empty: the ceiling is not checked there
        claude = None if demo else claude_client(settings, **({"ledger": ledger, "budget": None} if ledger else {}))
        try:
            if claude is None:
                from salesbot.demo import DemoDialogue

                # the canned script is the packaged web studio's; another business's playbook gets
                # neutral canned answers (only Claude reads a playbook: `chat` without --demo)
                llm: Any = DemoDialogue(neutral=settings.raw.get("SALESBOT_PROMPT_FILE") is not None)
            else:
                await claude.check_prompt(prompt)  # the key, the prompt's tokens, whether it can be cached
                llm = ClaudeDialogue(claude, prompt)
            engine = Dialogue(llm, transport, config)
            opening = ["/start"] if leads.count_messages(talker.id, 2**62) == 0 else []
            if not opening:
                resume(transport, talker)
            await run_chat(engine, transport, talker, itertools.chain(opening, lines))
        finally:
            if claude is not None:
                await claude.close()

    asyncio.run(main())


async def parse_phrases(settings: Settings, phrases: Iterable[str], now: datetime, zone, use_claude: bool,
                        on_result: Callable[[str, Any], None]) -> bool:
    """`salesbot parse-time`: each phrase through the rules (and the Claude fallback); True when all parsed."""
    from salesbot.claude.timereader import ClaudeTimeReader
    from salesbot.time import parse as timeparse

    claude = fallback_client(settings) if use_claude else None
    reader = ClaudeTimeReader(claude) if claude is not None else None
    if claude is not None:
        open_store(settings)  # the fallback's calls go into the usage ledger
    all_ok = True
    try:
        for phrase in phrases:
            result = await timeparse.parse(phrase, now, zone, reader)
            all_ok &= result.ok
            on_result(phrase, result)
    finally:
        if claude is not None:
            await claude.close()
    return all_ok


class Progress:
    """How a sweep reports progress (the CLI draws a bar at a terminal; cron gets nothing)."""

    def start(self, total: int | None) -> None: ...

    def advance(self, count: int) -> None: ...


def sweep(settings: Settings, *, dry_run: bool, limit: int | None, on_action: Callable | None, keep: int,
          progress: Progress | None = None) -> SweepResult | None:
    """`salesbot follow-ups run`: one sweep, or None when another sweep holds the lock. A real sweep
    queues the reminders for `serve` to deliver, so it refuses to run while no serve is alive."""
    rules = policy(settings)
    use_texts(settings)
    meetings = meeting_plan(settings)
    ensure_home(settings)
    if dry_run:
        return _sweep(settings, rules, meetings, dry_run=True, limit=limit, on_action=on_action, keep=keep,
                      progress=progress)
    try:
        age = serve_alive(settings.home)
        if age is None or age > ALIVE_SECONDS:
            since = "has never run here" if age is None else f"last seen {int(age // 60)} min ago"
            raise SalesbotError(f"salesbot serve is not running ({since}): it delivers the reminders, so none "
                                "were queued; start it (systemctl start salesbot) and the next sweep catches up")
        result = _sweep(settings, rules, meetings, dry_run=False, limit=limit, on_action=on_action, keep=keep,
                        progress=progress)
    except SalesbotError as exc:
        record_sweep(settings.home, "failed", error=str(exc))
        raise
    if result is None:
        record_sweep(settings.home, "skipped", error="another sweep was running")
    else:
        record_sweep(settings.home, "ok", summary=result.summary)
    return result


LAST_SWEEP = "follow-ups.last"


def record_sweep(home: Path, outcome: str, summary: dict | None = None, error: str | None = None) -> None:
    """The last real sweep's time and outcome (`doctor` shows it), written whole or not at all."""
    import json

    from salesbot.store import utcnow

    data = {"at": utcnow().isoformat() + "Z", "outcome": outcome, "summary": summary, "error": error}
    path = home / LAST_SWEEP
    try:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:  # a full disk must not hide the sweep's own outcome
        log.warning("could not record the sweep's outcome in %s: %s", path, exc.strerror)


def last_sweep(home: Path) -> dict | None:
    import json

    try:
        return json.loads((home / LAST_SWEEP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _sweep(settings: Settings, rules: Policy, meetings, *, dry_run: bool, limit: int | None,
           on_action: Callable | None, keep: int, progress: Progress | None) -> SweepResult | None:
    from salesbot import followups, meeting_reminders

    open_store(settings)
    with followups.sweep_lock(settings.home) as mine:
        if not mine:
            return None
        now = datetime.now(UTC)
        if progress is not None:  # a count only for a bar someone watches: cron's log gets the summary only
            total = followups.count_due(now, rules) if rules.in_window(now) else None
            progress.start(min(total, limit) if total is not None and limit else total)
        with reminder_writer(settings, rules, enabled=not dry_run and rules.in_window(now)) as writer:
            result = followups.sweep(now, rules, dry_run=dry_run, limit=limit, on_action=on_action, keep=keep,
                                     progress=progress.advance if progress else None, writer=writer)
        result.meetings = meeting_reminders.sweep(now, meetings, rules.in_window(now), dry_run=dry_run)
        return result


@contextlib.contextmanager
def reminder_writer(settings: Settings, rules: Policy, enabled: bool = True) -> Iterator[Callable | None]:
    """What writes a lead's reminder in a real sweep: Claude, from the conversation (claude/reminders.py),
    one call a lead on an event loop of its own; None (the templates) in a dry run, without a key, or
    when the playbook cannot be read."""
    if not enabled or not settings.anthropic_api_key:
        yield None
        return
    from salesbot import followups
    from salesbot.claude.reminders import ReminderWriter

    try:
        prompt = load_prompt(settings)
    except SalesbotError as exc:
        log.warning("reminders from the templates: %s", exc)
        yield None
        return
    loop = asyncio.new_event_loop()

    async def open_client() -> ClaudeClient:  # its connections belong to this loop
        return claude_client(settings)

    client = loop.run_until_complete(open_client())
    writer = ReminderWriter(client, prompt)

    def write(due: followups.Due) -> str | None:
        silent = rules.first_after if due.step == 1 else rules.second_after
        history = followups.reminder_history(due.lead_id, settings.max_message_chars)
        return loop.run_until_complete(writer.write(history, step=due.step, hours=int(silent.total_seconds() // 3600),
                                                    with_slots=due.hot, first_name=due.first_name,
                                                    lead_id=due.lead_id))

    try:
        yield write
    finally:
        loop.run_until_complete(client.close())
        loop.close()
