"""The `salesbot` command line: parses options, calls the runtime or a query, renders the result.

One error boundary (`_Boundary`) turns any SalesbotError into one red line on stderr and exit 1.
telethon and anthropic are imported only inside the jobs that need them, so `--help` and
`leads list` start fast.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from typer.core import TyperGroup

from salesbot import logs, render, runtime
from salesbot.config import Settings, load_settings
from salesbot.errors import SalesbotError
from salesbot.render import err, out, print_json

T = TypeVar("T")


class _Boundary(TyperGroup):
    """The one place errors become what the operator sees: a red line and exit 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SalesbotError as exc:
            render.error_line(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # a file the operator named: unreadable, a folder, no space
            render.error_line(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        except EOFError as exc:  # asyncio.IncompleteReadError too: a connection cut mid-read
            render.error_line(f"the connection was closed unexpectedly ({type(exc).__name__}): Telegram or "
                              "Claude unreachable? (a proxy or firewall in the way?)")
        except KeyboardInterrupt:
            err.print("[yellow]Interrupted.[/yellow]")
            raise typer.Exit(130) from None
        raise typer.Exit(1)


app = typer.Typer(
    cls=_Boundary,
    help="salesbot: a Telegram sales assistant. Answers leads through Claude, books meetings, reminds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
leads_app = typer.Typer(help="Look at leads and their conversations.", no_args_is_help=True)
meetings_app = typer.Typer(help="Meetings: list them, cancel or move one (the lead is told), record the outcome, "
                                "export a calendar.", no_args_is_help=True)
followups_app = typer.Typer(help="Reminders for leads who went quiet (run from cron).", no_args_is_help=True)
app.add_typer(leads_app, name="leads")
app.add_typer(meetings_app, name="meetings")
app.add_typer(followups_app, name="follow-ups")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of a table.")]


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


def option(flag: str, parse: Callable[..., T], *args: Any) -> T:
    """Parse an option's value with a core parser; its error gains the flag's name."""
    try:
        return parse(*args)
    except SalesbotError as exc:
        raise SalesbotError(f"{flag}: {exc}") from None


# --- leads and meetings ---------------------------------------------------------------------------


@leads_app.command("list")
def leads_list(
    status: Annotated[str | None, typer.Option(help="Only leads with this status: new, warm, hot or cold.")] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most this many leads (0: all).")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Leads, newest activity first: status, last message, reminders sent, next meeting."""
    from salesbot import queries

    wanted = queries.check_status(status)
    loaded = settings()
    runtime.open_store(loaded)
    rows = queries.iter_leads(loaded.tz, status=wanted, limit=limit or None)  # streamed: any number of leads
    if as_json:
        render.stream_json_list(rows, render.lead_json)
    else:
        render.leads_table(rows, wanted, loaded.tz, datetime.now(loaded.tz))


@leads_app.command("show")
def leads_show(
    lead_id: Annotated[int, typer.Argument(metavar="ID", help="The lead's id (see `leads list`).")],
    as_json: JsonOpt = False,
) -> None:
    """One lead: its details, the whole conversation and its meetings."""
    from salesbot import queries

    loaded = settings()
    runtime.open_store(loaded)
    detail = queries.lead_detail(lead_id, loaded.tz)
    if as_json:
        print_json(detail)
    else:
        render.lead_detail(detail)


@meetings_app.command("list")
def meetings_list(
    past: Annotated[bool, typer.Option("--past", help="Meetings that have started, latest first, with their "
                                                       "outcome.")] = False,
    status: Annotated[str | None, typer.Option(help="Only meetings with this status: booked, cancelled, done or "
                                                    "no_show (default: booked; with --past: all).")] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most this many meetings (0: all).")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Upcoming booked meetings, soonest first, in the business time zone: the lead (name, @username, a
    tg:// link), whether the lead confirmed, the outcome."""
    from salesbot import queries

    wanted = queries.check_meeting_status(status)
    loaded = settings()
    runtime.open_store(loaded)
    rows = queries.list_meetings(loaded.tz, past=past, status=wanted, limit=limit or None)
    if as_json:
        print_json(rows)
    else:
        render.meetings_table(rows, loaded.tz, past=past, status=wanted)


MeetingId = Annotated[int, typer.Argument(metavar="ID", help="The meeting's id (see `meetings list`).")]


def _meeting_change(loaded: Settings, change) -> None:
    """After a change the lead must hear of: say that serve delivers it, and whether it runs."""
    render.meeting_change(change)
    if change.lead_told:
        age = runtime.serve_alive(loaded.home)
        if age is None or age > runtime.ALIVE_SECONDS:
            err.print("[yellow]salesbot serve is not running: the message waits in the outbox until it "
                      "starts.[/yellow]")


@meetings_app.command("cancel")
def meetings_cancel(
    meeting_id: MeetingId,
    reason: Annotated[str | None, typer.Option(help="Why, in Russian: the lead reads it.")] = None,
) -> None:
    """Cancel a booked meeting; the lead is told through the bot and offered other times."""
    from salesbot import meeting_changes

    loaded = settings()
    calendar = runtime.calendar(loaded)
    runtime.open_store(loaded)
    change = meeting_changes.cancel(meeting_id, reason, datetime.now(loaded.tz), calendar, loaded.manager_ids)
    _meeting_change(loaded, change)


@meetings_app.command("move")
def meetings_move(
    meeting_id: MeetingId,
    when: Annotated[str, typer.Argument(metavar="WHEN", help="The new time: as parse-time reads it ('завтра в 11') "
                                                             "or ISO 8601 (2025-12-24T11:00).")],
) -> None:
    """Move a booked meeting to another time; the lead is told through the bot. A time taken, past or
    outside working hours is refused."""
    from salesbot import meeting_changes

    loaded = settings()
    calendar = runtime.calendar(loaded)
    now = datetime.now(loaded.tz)
    start = option("WHEN", meeting_changes.parse_when, when, now, calendar)
    runtime.open_store(loaded)
    _meeting_change(loaded, meeting_changes.move(meeting_id, start, now, calendar, loaded.manager_ids))


@meetings_app.command("done")
def meetings_done(meeting_id: MeetingId) -> None:
    """Record that the meeting took place."""
    from salesbot import meeting_changes

    loaded = settings()
    runtime.open_store(loaded)
    render.meeting_change(meeting_changes.mark(meeting_id, "done", datetime.now(loaded.tz), runtime.calendar(loaded)))


@meetings_app.command("no-show")
def meetings_no_show(meeting_id: MeetingId) -> None:
    """Record that the lead did not come; the next follow-up sweep offers the lead new slots, once."""
    from salesbot import meeting_changes

    loaded = settings()
    runtime.open_store(loaded)
    render.meeting_change(meeting_changes.mark(meeting_id, "no_show", datetime.now(loaded.tz),
                                               runtime.calendar(loaded)))


@meetings_app.command("export")
def meetings_export(
    ics: Annotated[str, typer.Option("--ics", metavar="FILE", help="Write an iCalendar file here (- for stdout).")],
) -> None:
    """Every meeting as an iCalendar (.ics) file: re-importing a newer export updates the events."""
    from datetime import timedelta
    from pathlib import Path

    from salesbot import ics as ics_file
    from salesbot import queries

    loaded = settings()
    length = timedelta(minutes=loaded.slot_minutes)
    runtime.open_store(loaded)
    rows = queries.all_meetings(loaded.tz)
    data = ics_file.calendar_bytes(rows, length)
    if ics == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    Path(ics).write_bytes(data)
    out.print(f"Wrote {len(rows)} meeting(s) to {escape(ics)} (times in {loaded.tz.key}).")


# --- the bot --------------------------------------------------------------------------------------


@app.command()
def serve() -> None:
    """Run the Telegram bot until SIGINT/SIGTERM (Ctrl-C), then shut down cleanly."""
    loaded = settings()
    runtime.check_serve(loaded)
    runtime.open_store(loaded)
    runtime.serve(loaded)


@app.command()
def chat(
    lead: Annotated[str | None, typer.Option(help="Talk as this terminal lead (continues its conversation); "
                                                  "default: a new lead.")] = None,
) -> None:
    """Talk to the bot in the terminal as a lead: the same dialogue engine and prompt as `serve`."""
    from salesbot.terminal import TerminalTransport, prompt_lines

    loaded = settings()
    interactive = sys.stdin.isatty()

    def welcome(session: runtime.ChatSession) -> None:
        if interactive:
            out.print(f"[bold]salesbot chat[/bold] — you are lead {session.lead_id} ({escape(session.lead_name)}). "
                      "Type as the lead; a number or a button's text presses it; /start, /stop, «отмена»; "
                      "Ctrl-D to quit.")

    runtime.chat(loaded, TerminalTransport(out, err, interactive), lead,
                 prompt_lines(out) if interactive else sys.stdin, on_start=welcome)


@app.command("parse-time")
def parse_time(
    text: Annotated[str, typer.Argument(help="The lead's phrase, e.g. 'в среду в 11:00'; - reads one per line.")],
    now: Annotated[str | None, typer.Option(help="Parse as if it were this time (ISO 8601). Default: now.")] = None,
    tz: Annotated[str | None, typer.Option(help="Time zone of the business. Default: SALESBOT_TZ.")] = None,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Rules only; never ask Claude.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON (JSON Lines with -) instead of text.")] = False,
) -> None:
    """Print the meeting time a lead's phrase means (rules first, Claude only as a fallback)."""
    import asyncio

    from salesbot import queries, timeparse
    from salesbot.config import parse_zone

    loaded = settings()
    zone = parse_zone("--tz", tz) if tz else loaded.tz
    moment = option("--now", queries.parse_moment, now, zone) if now else datetime.now(zone)
    batch = text == "-"
    phrases = (line.rstrip("\r\n") for line in sys.stdin) if batch else [text]

    def show(phrase: str, result) -> None:
        if as_json:
            sys.stdout.write(json.dumps(result.as_json(), ensure_ascii=False) + "\n")
        elif result.ok:
            out.print(timeparse.describe(result.when) + (" [dim](Claude)[/dim]" if result.source == "claude" else ""))
        elif batch:
            out.print(f"? {result.error}")
        else:
            err.print(f"[red]Error:[/red] {result.error}: {escape(phrase)!r}")
        sys.stdout.flush()

    if not asyncio.run(runtime.parse_phrases(loaded, phrases, moment, zone, not no_llm, show)) and not batch:
        raise typer.Exit(1)


# --- reminders and usage --------------------------------------------------------------------------


@followups_app.command("run")
def followups_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list who would get which reminder now; "
                                                            "change nothing (needs no Telegram settings).")] = False,
    as_json: JsonOpt = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Remind at most this many leads in this sweep.")] = None,
) -> None:
    """One reminder sweep for cron: queue the reminders that are due (serve sends them), mark cold, exit.

    Exits 1 when serve is not running (so cron mails the operator); 0 when another sweep is running.
    """
    loaded = settings()
    stream = render.JsonActions() if as_json else None
    bar = render.SweepBar("due leads" if dry_run else "reminders") if err.is_terminal else None
    with bar or contextlib.nullcontext():
        result = runtime.sweep(loaded, dry_run=dry_run, limit=limit, on_action=stream,
                               keep=0 if stream else render.SHOWN_ACTIONS, progress=bar)
    if result is None:
        if as_json:
            print_json({"skipped": "another sweep is running", "actions": []})
        else:
            err.print("Another follow-up sweep is running; this one has nothing to do.")
        return
    if stream is not None:
        diagnosis = result.diagnosis
        stream.close({"now": result.now, "dry_run": result.dry_run, "in_window": result.in_window,
                      "due_later": result.due_later, "summary": result.summary,
                      "not_due": diagnosis.not_due if diagnosis else None,
                      "next_due_at": diagnosis.next_due_at if diagnosis else None, "meetings": result.meetings})
    else:
        render.sweep(result, runtime.policy(loaded))


@followups_app.command("stats")
def followups_stats(
    since: Annotated[
        str | None, typer.Option(help="Only reminders sent since a date (2025-12-01), a time, or a span (7d, 24h).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Per reminder step: sent, replied within 24 h / 72 h, booked afterwards, went cold."""
    from salesbot import queries

    loaded = settings()
    start = option("--since", queries.parse_since, since, loaded.tz) if since else None
    runtime.open_store(loaded)
    stats = queries.follow_up_stats(start)
    if as_json:
        print_json(stats)
    else:
        render.follow_up_stats(stats, start)


@app.command()
def usage(
    since: Annotated[
        str | None, typer.Option(help="Only calls since a date (2025-12-01), a time, or a span (7d, 24h).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Claude calls per purpose and model: tokens, cache use, estimated cost and what caching saved."""
    from salesbot import queries

    loaded = settings()
    start = option("--since", queries.parse_since, since, loaded.tz) if since else None
    runtime.open_store(loaded)
    report = queries.usage_report(start)
    if as_json:
        print_json(report)
    else:
        render.usage(report, start)


def main() -> None:
    app(prog_name="salesbot")
