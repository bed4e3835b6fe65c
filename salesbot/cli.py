"""The `salesbot` command line: thin. It parses options, calls the core and draws the result.

Any SalesbotError becomes one red line on stderr and exit code 1. telethon and anthropic are
imported only inside the commands that need them, so `--help` and `leads list` start fast.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from dataclasses import fields, is_dataclass
from datetime import date, datetime
from typing import Annotated, Any

import peewee
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from salesbot import logs
from salesbot.config import Settings, ensure_home, load_settings
from salesbot.errors import SalesbotError

log = logging.getLogger(__name__)

app = typer.Typer(
    help="salesbot: a Telegram sales assistant. Answers leads through Claude, books meetings, reminds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
leads_app = typer.Typer(help="Look at leads and their conversations.", no_args_is_help=True)
meetings_app = typer.Typer(help="Look at booked meetings.", no_args_is_help=True)
followups_app = typer.Typer(help="Reminders for leads who went quiet (run from cron).", no_args_is_help=True)
app.add_typer(leads_app, name="leads")
app.add_typer(meetings_app, name="meetings")
app.add_typer(followups_app, name="follow-ups")

# Piped output (cron mail, log files, `| less`) gets a wide page instead of rich's 80 columns.
_PIPED_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
out = Console(highlight=False, width=_PIPED_WIDTH)
err = Console(stderr=True, highlight=False)

STATUS_STYLE = {"new": "cyan", "warm": "yellow", "hot": "bold red", "cold": "blue"}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of a table.")]


def fail(message: str) -> None:
    err.print(f"[red]Error:[/red] {escape(logs.redact(message))}", soft_wrap=True)
    raise typer.Exit(1) from None


def guarded(fn):
    """Turn SalesbotError into one red line and exit 1; Ctrl-C into a quiet exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SalesbotError as exc:
            fail(str(exc))
        except peewee.OperationalError as exc:  # locked past the busy timeout, disk full, read-only file
            fail(f"the database failed: {exc}" + (" (another salesbot process holds a long write; try again)"
                                                  if "locked" in str(exc) else ""))
        except OSError as exc:
            fail(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        except KeyboardInterrupt:
            err.print("[yellow]Interrupted.[/yellow]")
            raise typer.Exit(130) from None

    return wrapper


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging on stderr.")] = False,
) -> None:
    logs.configure(verbose)


def settings() -> Settings:
    loaded = load_settings()
    logs.add_secrets(loaded.secrets())
    loaded.validate()
    return loaded


def open_store(loaded: Settings):
    from salesbot.store import open_database

    if loaded.db_path.parent == loaded.home:
        ensure_home(loaded)
    return open_database(loaded.db_path)


def plain(value: Any) -> Any:
    """Dataclasses, lists and datetimes as JSON-ready values (a shallow, fast `asdict`)."""
    if is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def print_json(data: Any) -> None:
    """One JSON document on stdout, nothing else there (scripts parse it)."""
    sys.stdout.write(json.dumps(plain(data), ensure_ascii=False) + "\n")


def relative(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "—"
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return moment.strftime("%d.%m %H:%M")
    for size, unit in ((86400 * 7, None), (86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            if unit is None:
                return moment.strftime("%d.%m.%Y")
            return f"{int(seconds // size)}{unit} ago"
    return "just now"


def fmt_time(moment: datetime | None) -> str:
    return moment.strftime("%a %d.%m.%Y %H:%M") if moment else "—"


# --- leads ------------------------------------------------------------------------------------


@leads_app.command("list")
@guarded
def leads_list(
    status: Annotated[str | None, typer.Option(help="Only leads with this status: new, warm, hot or cold.")] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most this many leads (0: all).")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Leads, newest activity first: status, last message, reminders sent, next meeting."""
    from salesbot import queries

    wanted = queries.check_status(status)
    loaded = settings()
    open_store(loaded)
    rows = queries.list_leads(loaded.tz, status=wanted, limit=limit or None)
    if as_json:
        print_json(rows)
        return
    if not rows:
        what = f"with status {wanted}" if wanted else "yet"
        out.print(f"No leads {what}.")
        return
    now = datetime.now(loaded.tz)
    table = Table(title=f"Leads ({len(rows)} shown, times in {loaded.tz.key})")
    for column in ("id", "name", "status", "last message", "reminders", "next meeting"):
        table.add_column(column, justify="right" if column in ("id", "reminders") else "left")
    for row in rows:
        status_text = f"[{STATUS_STYLE[row.status]}]{row.status}[/]"
        if row.opted_out:
            status_text += " [dim](stopped)[/]"
        if row.unanswered:
            status_text += f" [bold red]({row.unanswered} unanswered)[/]"
        table.add_row(
            str(row.id),
            escape(row.name),
            status_text,
            relative(row.last_message_at, now),
            str(row.follow_up_count),
            fmt_time(row.next_meeting),
        )
    out.print(table)


@leads_app.command("show")
@guarded
def leads_show(
    lead_id: Annotated[int, typer.Argument(metavar="ID", help="The lead's id (see `leads list`).")],
    as_json: JsonOpt = False,
) -> None:
    """One lead: its details, the whole conversation and its meetings."""
    from salesbot import queries

    loaded = settings()
    open_store(loaded)
    detail = queries.lead_detail(lead_id, loaded.tz)
    if as_json:
        print_json(detail)
        return
    lead = detail.lead
    out.print(f"[bold]Lead {lead.id}[/bold] {escape(lead.name)}  [{STATUS_STYLE[lead.status]}]{lead.status}[/]")
    facts = [
        ("telegram id", str(lead.telegram_id) if lead.telegram_id else "— (terminal chat)"),
        ("created", fmt_time(lead.created_at)),
        ("last message", fmt_time(lead.last_message_at)),
        ("reminders sent", f"{lead.follow_up_count} (last {fmt_time(lead.last_follow_up_at)})"),
        ("dialogue state", lead.state or "—"),
        ("opted out", f"yes ({lead.opted_out_reason or 'by staff'})" if lead.opted_out else "no"),
    ]
    if lead.cold_reason:
        facts.append(("cold reason", lead.cold_reason))
    for label, value in facts:
        out.print(f"  [dim]{label}:[/dim] {escape(value)}")
    out.print()
    if not detail.messages:
        out.print("[dim]No messages.[/dim]")
    conversation = Text()  # one Text, printed once: a long conversation stays fast to draw
    for line in detail.messages:
        conversation.append(f"{line.created_at:%d.%m %H:%M} ", style="dim")
        is_lead = line.role == "lead"
        conversation.append("lead " if is_lead else "bot  ", style="green" if is_lead else "magenta")
        conversation.append(line.text)
        conversation.append("  (unanswered)\n" if line.unanswered else "\n", style="bold red")
    out.print(conversation, end="", soft_wrap=True)
    if detail.meetings:
        out.print()
        for meeting in detail.meetings:
            out.print(f"  meeting {meeting.id}: {fmt_time(meeting.starts_at)} {meeting.status} ({meeting.source})")


# --- meetings ---------------------------------------------------------------------------------


@meetings_app.command("list")
@guarded
def meetings_list(
    limit: Annotated[int, typer.Option(min=0, help="At most this many meetings (0: all).")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Upcoming booked meetings, soonest first, in the business time zone."""
    from salesbot import queries

    loaded = settings()
    open_store(loaded)
    rows = queries.upcoming_meetings(loaded.tz, limit=limit or None)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("No upcoming meetings.")
        return
    table = Table(title=f"Upcoming meetings ({len(rows)} shown, times in {loaded.tz.key})")
    for column in ("id", "when", "lead", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row.id), fmt_time(row.starts_at), f"{row.lead_id} {escape(row.lead_name)}", row.source)
    out.print(table)


# --- commands of later milestones -----------------------------------------------------------------


def _not_yet(name: str) -> None:
    raise SalesbotError(f"`salesbot {name}` is not yet available in this version")


TELEGRAM_KEYS = ("TELEGRAM_API_ID", "TELEGRAM_API_HASH", "TELEGRAM_BOT_TOKEN")


@app.command()
@guarded
def serve() -> None:
    """Run the Telegram bot until SIGINT/SIGTERM (Ctrl-C), then shut down cleanly."""
    loaded = settings()
    loaded.require(*TELEGRAM_KEYS, "ANTHROPIC_API_KEY")
    open_store(loaded)
    run_bot(loaded)


def run_bot(loaded: Settings) -> None:
    """The one long-running call of `serve` (tests patch it)."""
    import asyncio

    from salesbot import telegram
    from salesbot.conversation import Dialogue, load_prompt
    from salesbot.llm import ClaudeClient

    async def main() -> None:  # the engine (and its playbook) is built before Telegram is reached
        claude = ClaudeClient.from_settings(loaded)
        try:
            await claude.check_prompt(load_prompt(loaded))  # the prompt's tokens, and whether it can cache
            await telegram.serve(loaded, lambda transport: Dialogue.from_settings(loaded, transport, claude))
        finally:
            await claude.close()

    asyncio.run(main())


@app.command()
@guarded
def chat(
    lead: Annotated[str | None, typer.Option(help="Talk as this terminal lead (continues its conversation); "
                                                  "default: a new lead.")] = None,
) -> None:
    """Talk to the bot in the terminal as a lead: the same dialogue engine and prompt as `serve`."""
    import asyncio

    from salesbot.conversation import Dialogue
    from salesbot.llm import ClaudeClient
    from salesbot.terminal import TerminalTransport, chat_lead, prompt_lines, run_chat

    loaded = settings()
    loaded.require("ANTHROPIC_API_KEY")
    open_store(loaded)
    interactive = sys.stdin.isatty()
    transport = TerminalTransport(out, err, interactive)
    talker = chat_lead(lead)
    if interactive:
        out.print(f"[bold]salesbot chat[/bold] — you are lead {talker.id} ({escape(talker.first_name or '')}). "
                  "Type as the lead; a number or a button's text presses it; /start, /stop, «отмена»; "
                  "Ctrl-D to quit.")

    async def main() -> None:
        claude = ClaudeClient.from_settings(loaded)
        try:
            engine = Dialogue.from_settings(loaded, transport, claude)
            await claude.check_prompt(engine.llm.prompt)  # the prompt's tokens, and whether it can cache
            await run_chat(engine, transport, talker, prompt_lines(out) if interactive else sys.stdin)
        finally:
            await claude.close()

    asyncio.run(main())


@app.command("parse-time")
@guarded
def parse_time(
    text: Annotated[str, typer.Argument(help="The lead's phrase, e.g. 'в среду в 11:00'; - reads one per line.")],
    now: Annotated[str | None, typer.Option(help="Parse as if it were this time (ISO 8601). Default: now.")] = None,
    tz: Annotated[str | None, typer.Option(help="Time zone of the business. Default: SALESBOT_TZ.")] = None,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Rules only; never ask Claude.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON (JSON Lines with -) instead of text.")] = False,
) -> None:
    """Print the meeting time a lead's phrase means (rules first, Claude only as a fallback)."""
    import asyncio

    from salesbot import timeparse
    from salesbot.config import parse_zone

    loaded = settings()
    zone = parse_zone("--tz", tz) if tz else loaded.tz
    moment = _parse_now(now, zone)
    batch = text == "-"
    phrases = (line.rstrip("\r\n") for line in sys.stdin) if batch else [text]

    async def run() -> bool:
        claude = None if no_llm else _fallback_client(loaded)
        all_ok = True
        try:
            for phrase in phrases:
                result = await timeparse.parse(phrase, moment, zone, claude)
                all_ok &= result.ok
                if as_json:
                    sys.stdout.write(json.dumps(result.as_json(), ensure_ascii=False) + "\n")
                elif result.ok:
                    out.print(timeparse.describe(result.when) + (" [dim](Claude)[/dim]" if result.source == "claude"
                                                                 else ""))
                elif batch:
                    out.print(f"? {result.error}")
                else:
                    err.print(f"[red]Error:[/red] {result.error}: {escape(phrase)!r}")
                sys.stdout.flush()
        finally:
            if claude is not None:
                await claude.close()
        return all_ok

    if not asyncio.run(run()) and not batch:
        raise typer.Exit(1)


def _usage_cells(row, total: bool = False) -> list[str]:
    return [
        "total" if total else row.purpose, "" if total else row.model, f"{row.calls:,}", f"{row.failures:,}",
        f"{row.input_tokens:,}", f"{row.output_tokens:,}", f"{row.thinking_tokens:,}",
        f"{row.cache_creation_input_tokens - row.cache_creation_1h_input_tokens:,}",  # unsplit writes are 5m
        f"{row.cache_creation_1h_input_tokens:,}", f"{row.cache_read_input_tokens:,}",
        "—" if row.cache_hit_ratio is None else f"{row.cache_hit_ratio:.0%}",
        "?" if row.cost_usd is None else f"{row.cost_usd:.4f}",
        "?" if row.saved_usd is None else f"{row.saved_usd:.4f}",
    ]


def _parse_now(value: str | None, zone) -> datetime:
    if value is None:
        return datetime.now(zone)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise SalesbotError(f"--now: expected an ISO 8601 time like 2025-12-23T14:05, got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _fallback_client(loaded: Settings):
    """The Claude client for the parse-time fallback, or None when no key is configured."""
    if not loaded.get("ANTHROPIC_API_KEY"):
        log.debug("ANTHROPIC_API_KEY is not set: parsing with the rules only")
        return None
    from salesbot.llm import ClaudeClient

    open_store(loaded)  # the fallback's call goes into the usage ledger
    return ClaudeClient.from_settings(loaded)


@followups_app.command("run")
@guarded
def followups_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list who would get which reminder now; "
                                                            "change nothing (needs no Telegram settings).")] = False,
    as_json: JsonOpt = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Remind at most this many leads in this sweep.")] = None,
) -> None:
    """One reminder sweep for cron: send the reminders that are due, mark cold, exit.

    Exits 1 when a send failed (so cron mails the operator); 0 when another sweep is running.
    """
    import asyncio

    from salesbot import followups

    loaded = settings()
    policy = followups.Policy.from_settings(loaded)
    if not dry_run:
        loaded.require(*TELEGRAM_KEYS)  # before anyone is claimed
    ensure_home(loaded)
    open_store(loaded)
    with followups.sweep_lock(loaded.home) as mine:
        if not mine:
            if as_json:
                print_json({"skipped": "another sweep is running", "actions": []})
            else:
                err.print("Another follow-up sweep is running; this one has nothing to do.")
            return
        stream = _JsonActions() if as_json else None
        result = asyncio.run(_sweep(loaded, policy, dry_run, limit, stream))
    if stream is not None:
        stream.close({"now": result.now, "dry_run": result.dry_run, "in_window": result.in_window,
                      "due_later": result.due_later, "stopped_early": result.stopped_early,
                      "summary": result.summary})
    else:
        _print_sweep(result, policy)
    if result.count("failed"):
        raise typer.Exit(1)


class _JsonActions:
    """Writes `{"actions": [...], ...}` as the sweep goes, so 100k actions are never held at once.
    Nothing is written before the first action, so a sweep that fails at once leaves stdout empty."""

    def __init__(self) -> None:
        self.started = False

    def __call__(self, action) -> None:
        sys.stdout.write((", " if self.started else '{"actions": [') + json.dumps(plain(action), ensure_ascii=False))
        self.started = True

    def close(self, rest: dict) -> None:
        tail = json.dumps(plain(rest), ensure_ascii=False)
        sys.stdout.write(("], " if self.started else '{"actions": [], ') + tail[1:] + "\n")


SHOWN_ACTIONS = 200


async def _sweep(loaded: Settings, policy, dry_run: bool, limit: int | None, on_action):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

    from salesbot import followups

    now = followups.utc_now()
    # A bar for an operator at a terminal; cron's log gets the summary only (and no extra count).
    total = followups.count_due(now, policy) if err.is_terminal and policy.in_window(now) else None
    if total is not None and limit:
        total = min(total, limit)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("reminders" if not dry_run else "due leads", total=total)
        advance = lambda n: bar.advance(task, n)  # noqa: E731
        common = {"limit": limit, "progress": advance, "on_action": on_action,
                  "keep": 0 if on_action else SHOWN_ACTIONS}
        if dry_run:
            return await followups.sweep(now, policy, None, dry_run=True, **common)
        from salesbot.telegram import sweep_transport

        if not policy.in_window(now):  # nothing to send: do not even log in
            return await followups.sweep(now, policy, None, **common)
        async with sweep_transport(loaded) as transport:
            return await followups.sweep(now, policy, transport, **common)


def _print_sweep(result, policy) -> None:
    start, end = (f"{t:%H:%M}" for t in policy.window)
    if not result.in_window:
        out.print(f"Outside the send window ({start}–{end} {policy.tz.key}); nothing sent. "
                  "A later sweep catches up.")
        if result.due_later:
            out.print(f"{result.due_later} lead(s) are due and will be reminded once the window opens.")
        return
    if result.actions:
        table = Table(title="Would remind now" if result.dry_run else "Reminders")
        for column in ("lead", "name", "step", "becomes cold", "outcome"):
            table.add_column(column)
        for action in result.actions:
            table.add_row(str(action.lead_id), escape(action.first_name or "—"), str(action.step),
                          "yes" if action.becomes_cold else "", action.outcome + (f" ({action.error})"
                                                                                 if action.error else ""))
        out.print(table)
        total = sum(result.outcomes.values())
        if total > len(result.actions):
            out.print(f"… and {total - len(result.actions)} more (use --json for all).")
    summary = result.summary
    if result.dry_run:
        out.print(f"[bold]{summary['would_send']}[/bold] would be reminded now, "
                  f"{summary['now_cold']} of them for the last time (they become cold).")
    else:
        out.print(f"sent [green]{summary['sent']}[/green], skipped {summary['skipped']}, "
                  f"failed [red]{summary['failed']}[/red], unreachable {summary['unreachable']}, "
                  f"now cold {summary['now_cold']}.")
    if result.stopped_early:
        out.print(f"[yellow]Stopped early: {escape(result.stopped_early)}; the next sweep carries on.[/yellow]")


@app.command()
@guarded
def usage(
    since: Annotated[
        str | None, typer.Option(help="Only calls since a date (2025-12-01), a time, or a span (7d, 24h).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Claude calls per purpose and model: tokens, cache use, estimated cost and what caching saved."""
    from salesbot import queries

    loaded = settings()
    start = queries.parse_since(since, loaded.tz) if since else None
    open_store(loaded)
    report = queries.usage_report(start)
    if as_json:
        print_json(report)
        return
    if not report.rows:
        out.print("No Claude calls recorded" + (f" since {fmt_time(start)}." if start else "."))
        return
    title = "Claude usage" + (f" since {fmt_time(start)}" if start else "")
    cells = [_usage_cells(row) for row in report.rows] + [_usage_cells(report.total, total=True)]
    headers = ("purpose", "model", "calls", "failed", "input", "output", "thinking", "write 5m", "write 1h",
               "cache read", "hit", "cost $", "saved $")
    if out.width >= 140:
        table = Table(title=title, box=box.SIMPLE_HEAD)
        for header in headers:
            table.add_column(header, justify="left" if header in ("purpose", "model") else "right",
                             no_wrap=header in ("purpose", "model"))
        for i, row in enumerate(cells):
            table.add_row(*row, style="bold" if i == len(cells) - 1 else None, end_section=i == len(cells) - 2)
        out.print(table)
    else:  # a narrow terminal: one block per purpose and model rather than a crushed table
        out.print(f"[bold]{title}[/bold]")
        for row in cells:
            out.print(f"\n[bold]{row[0]}[/bold] {row[1]}")
            for header, value in zip(headers[2:], row[2:], strict=True):
                out.print(f"  {header:<12} {value:>12}")
    out.print("[dim]Cost at Anthropic's list prices (salesbot/pricing.py, see README); thinking is part of output; "
              "'?' marks a model without a known price.[/dim]")


def main() -> None:
    app(prog_name="salesbot")
