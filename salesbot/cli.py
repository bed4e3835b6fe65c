"""The `salesbot` command line: parses options, calls the runtime or a query, renders the result.

One error boundary (`_Boundary`) turns any SalesbotError into one red line on stderr and exit 1.
telethon and anthropic are imported only inside the jobs that need them, so `--help` and
`leads list` start fast.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from typer import core as typer_core
from typer.core import TyperGroup

from salesbot import __version__, logs, render, runtime
from salesbot.config import Settings, load_settings
from salesbot.errors import QUOTE_LIMIT, SalesbotError, quoted
from salesbot.render import err, out, print_json

T = TypeVar("T")


VERBOSE_FLAGS = ("-v", "--verbose")
_LONG_QUOTE = re.compile("'([^']{" + str(QUOTE_LIMIT + 1) + ",})'")


def _usage_error(exc: typer_core._click.ClickException) -> typer.Exit:
    """A command line the parser refused, as one red line (the input quoted short), and exit 1."""
    message = _LONG_QUOTE.sub(lambda m: repr(m[1][:QUOTE_LIMIT]) + "…", exc.format_message())
    ctx = getattr(exc, "ctx", None)
    hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    render.error_line(message + hint)
    return typer.Exit(1)


class _Boundary(TyperGroup):
    """The one place errors become what the operator sees: a red line and exit 1, never a traceback."""

    def make_context(self, info_name, args, parent=None, **extra):
        # -v works after the subcommand too (`salesbot leads list -v`): moved before it
        args = list(args)
        cut = args.index("--") if "--" in args else len(args)
        flags = [a for a in args[:cut] if a in VERBOSE_FLAGS]
        if flags and args[:1] != flags[:1]:
            args = flags[:1] + [a for a in args[:cut] if a not in VERBOSE_FLAGS] + args[cut:]
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except typer_core._click.exceptions.NoArgsIsHelpError:
            raise
        except typer_core._click.ClickException as exc:
            raise _usage_error(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except typer_core._click.exceptions.NoArgsIsHelpError:
            raise
        except typer_core._click.ClickException as exc:
            raise _usage_error(exc) from None
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
SQLITE_MAX = 2**63 - 1  # the largest integer SQLite stores: a larger id or limit is refused, not a traceback
LimitOpt = Annotated[int, typer.Option(min=0, max=SQLITE_MAX, metavar="N", help="At most this many (0: all).")]


def _show_version(value: bool) -> None:
    if value:
        print(f"salesbot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging on stderr (also after the "
                                                                  "command: `salesbot leads list -v`).")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    logs.configure(verbose)


# typer prints `<bool>` beside every flag and `<str>`/`<int>` beside values; the operator reads a
# plain placeholder (the option's metavar, or the type in capitals) and nothing beside a flag.
def _option_type(self, ctx):
    if self.is_flag or self.count:
        return None
    return self.metavar or self.bare_type().upper().replace("STR", "TEXT")


typer_core.TyperOption.display_type_rich = _option_type
typer_core.TyperArgument.display_type_rich = lambda self, ctx: None  # its name is the placeholder


def settings() -> Settings:
    loaded = load_settings()
    logs.add_secrets(loaded.secrets())
    with contextlib.suppress(SalesbotError):  # a bad SALESBOT_TZ is reported by the commands that use it
        logs.use_zone(loaded.tz)
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
    status: Annotated[str | None, typer.Option(metavar="STATUS",
                                               help="Only leads with this status: new, warm, hot or cold.")] = None,
    limit: LimitOpt = 50,
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
    lead_id: Annotated[int, typer.Argument(metavar="ID", min=1, max=SQLITE_MAX,
                                           help="The lead's id (see `leads list`).")],
    as_json: JsonOpt = False,
    full: Annotated[bool, typer.Option("--full", help="Print very long messages whole (they are cut at "
                                                      f"{render.LONG_MESSAGE:,} characters).")] = False,
) -> None:
    """One lead: its details, the whole conversation (with the buttons offered) and its meetings."""
    from salesbot import queries

    loaded = settings()
    runtime.open_store(loaded)
    detail = queries.lead_detail(lead_id, loaded.tz)
    if as_json:
        print_json(detail)
    else:
        render.lead_detail(detail, full=full)


@meetings_app.command("list")
def meetings_list(
    past: Annotated[bool, typer.Option("--past", help="Meetings that have started, latest first, with their "
                                                       "outcome.")] = False,
    status: Annotated[str | None, typer.Option(help="Only meetings with this status: booked, cancelled, done or "
                                                    "no_show (default: booked; with --past: all).")] = None,
    limit: LimitOpt = 50,
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
    """Run the Telegram bot until SIGINT/SIGTERM (Ctrl-C), then shut down cleanly.

    Needs TELEGRAM_API_ID, TELEGRAM_API_HASH, TELEGRAM_BOT_TOKEN and ANTHROPIC_API_KEY (the key is
    checked with one call to Claude at start: «key rejected» exits 1). Optional: SALESBOT_HOME,
    SALESBOT_TZ, SALESBOT_MANAGER_IDS, SALESBOT_PROMPT_FILE, SALESBOT_TEXTS_FILE, the calendar
    (SALESBOT_WORK_DAYS, SALESBOT_WORK_HOURS, SALESBOT_SLOT_MINUTES) and the rest in the README.

    Settings come from the environment, then ./.env, then $SALESBOT_HOME/.env (KEY=value lines).
    `salesbot doctor` shows each with where it came from. Exit codes: 0 after a clean stop, 1 on
    an error (systemd restarts it), 3 when Telegram refuses the bot (it does not).
    """
    loaded = settings()
    runtime.check_serve(loaded)
    runtime.open_store(loaded)
    runtime.serve(loaded)


@app.command()
def chat(
    lead: Annotated[str | None, typer.Option(metavar="NAME", help="Talk as this terminal lead (continues its "
                                                                  "conversation); default: a new lead.")] = None,
    live: Annotated[bool, typer.Option("--live", help="Use the real database (SALESBOT_DB): bookings block real "
                                                      "slots. Default: the sandbox, $SALESBOT_HOME/chat-sandbox.db.")]
    = False,
    reset: Annotated[bool, typer.Option("--reset", help="Empty the sandbox first.")] = False,
    demo: Annotated[bool, typer.Option("--demo", help="Canned answers instead of Claude: no API key needed.")]
    = False,
) -> None:
    """Talk to the bot in the terminal as a lead: the same dialogue engine and prompt as `serve`.

    A rehearsal: it runs in a sandbox database unless --live, so real leads and slots are never
    touched. The bot speaks first, as after /start. Typing a choice's number or its text presses a
    button; /start, /stop, «отмена» work as in Telegram; Ctrl-D or Ctrl-C quits.

    Piped mode: with stdin not a terminal, each line is one lead message or choice and the bot's
    answers go to stdout, e.g. printf 'Здравствуйте\\n1\\n' | salesbot chat --demo.
    """
    from salesbot.terminal import TerminalTransport, decoded_lines, prompt_lines

    if live and reset:
        raise SalesbotError("--reset empties the sandbox; it cannot be combined with --live")
    logs.quiet_unless_verbose()  # log lines would interleave with the dialogue
    loaded = settings()
    if reset and runtime.reset_sandbox(loaded):
        err.print(f"Emptied the sandbox {runtime.sandbox_path(loaded)}.")
    interactive = sys.stdin.isatty()

    def welcome(session: runtime.ChatSession) -> None:
        if interactive:
            where = (f"[bold red]LIVE[/bold red] database {escape(str(session.database))}" if session.live
                     else f"sandbox {escape(str(session.database))} (--reset empties it, --live uses the real one)")
            out.print(f"[bold]salesbot chat[/bold]{' [dim](demo answers)[/dim]' if session.demo else ''} — "
                      f"you are lead {session.lead_id} ({escape(render.visible(session.lead_name))}), {where}. "
                      "Type as the lead; a number or a button's text presses it; /start, /stop, «отмена»; "
                      "Ctrl-D or Ctrl-C to quit.")

    runtime.chat(loaded, TerminalTransport(out, err, interactive), lead,
                 prompt_lines(out) if interactive else decoded_lines(sys.stdin), on_start=welcome, live=live,
                 demo=demo)


@app.command("parse-time")
def parse_time(
    text: Annotated[str, typer.Argument(metavar="TEXT",
                                        help="The lead's phrase, e.g. 'в среду в 11:00'; - reads one per line.")],
    now: Annotated[str | None, typer.Option(metavar="ISO", help="Parse as if it were this time (ISO 8601). "
                                                                 "Default: now.")] = None,
    tz: Annotated[str | None, typer.Option(metavar="ZONE", help="Time zone of the business. "
                                                                "Default: SALESBOT_TZ.")] = None,
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
            err.print(f"[red]Error:[/red] {result.error}: {escape(quoted(phrase))}")
        sys.stdout.flush()

    if not asyncio.run(runtime.parse_phrases(loaded, phrases, moment, zone, not no_llm, show)) and not batch:
        raise typer.Exit(1)


# --- reminders and usage --------------------------------------------------------------------------


@followups_app.command("run")
def followups_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list who would get which reminder now; "
                                                            "change nothing (needs no Telegram settings).")] = False,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(min=0, max=SQLITE_MAX, metavar="N",
                                       help="Remind at most this many leads in this sweep (0: all).")] = 0,
    log_file: Annotated[Path | None, typer.Option("--log", metavar="FILE", help="For cron: append this run's "
                                                  "output to FILE, every line dated, and print nothing unless the "
                                                  "run fails (then cron mails it).")] = None,
) -> None:
    """One reminder sweep for cron: queue the reminders that are due (serve sends them), mark cold, exit.

    Exits 1 when serve is not running (so cron mails the operator); 0 when another sweep is running.
    """
    loaded = settings()
    if log_file is None:
        _sweep_run(loaded, dry_run, as_json, limit)
        return
    buffer = io.StringIO()
    failure: BaseException | None = None
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            try:
                _sweep_run(loaded, dry_run, as_json, limit)
            except SalesbotError as exc:
                render.error_line(str(exc))  # into the log too
                raise
    except BaseException as exc:
        failure = exc
    _append_log(log_file, buffer.getvalue(), loaded)
    if failure is not None:
        sys.stderr.write(buffer.getvalue())  # cron mails what a failed run printed (the error line included)
        raise typer.Exit(getattr(failure, "exit_code", 1)) from None


_DATED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def _append_log(path: Path, text: str, loaded: Settings) -> None:
    """Append a run's output to the cron log, each line dated in SALESBOT_TZ (log records already are)."""
    try:
        now = datetime.now(loaded.tz)
    except SalesbotError:  # a bad SALESBOT_TZ: the error itself is what the log gets
        now = datetime.now().astimezone()
    stamp = now.strftime(logs.TIME_FORMAT)
    lines = [line if _DATED.match(line) else f"{stamp} {line}" for line in text.splitlines() if line.strip()]
    with path.open("a", encoding="utf-8") as handle:  # an unwritable log is the boundary's OSError: one red line
        handle.write("".join(f"{line}\n" for line in lines or [f"{stamp} (no output)"]))


def _sweep_run(loaded: Settings, dry_run: bool, as_json: bool, limit: int) -> None:
    stream = render.JsonActions() if as_json else None
    bar = render.SweepBar("due leads" if dry_run else "reminders") if err.is_terminal else None
    with bar or contextlib.nullcontext():
        result = runtime.sweep(loaded, dry_run=dry_run, limit=limit or None, on_action=stream,
                               keep=0 if stream else render.SHOWN_ACTIONS, progress=bar)
    if result is None:
        if as_json:  # the same document as a sweep's, with nothing done and why
            from salesbot.followups import SweepResult, utc_now

            now = utc_now()
            idle = SweepResult(now=now, dry_run=dry_run, in_window=runtime.policy(loaded).in_window(now))
            stream.close(_sweep_document(idle, loaded, "another sweep is running"))
        else:
            err.print("Another follow-up sweep is running; this one has nothing to do.")
        return
    if stream is not None:
        stream.close(_sweep_document(result, loaded, None))
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
def doctor(
    online: Annotated[bool, typer.Option("--online", help="Also ask Claude and Telegram whether they accept "
                                                          "the key and the bot token.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check this installation: settings and where each came from (secrets masked), the database, whether
    serve runs, the last sweep, the Telegram session files. Exits 1 naming what is wrong."""
    from salesbot import doctor as checks

    loaded = settings()
    report = checks.diagnose(loaded, online=online)
    if as_json:
        print_json({**render.plain(report), "ok": not report.problems})
    else:
        render.doctor(report)
    if report.problems:
        raise typer.Exit(1)


def _sweep_document(result, loaded: Settings, skipped: str | None) -> dict[str, Any]:
    """What `follow-ups run --json` prints after the actions; `now` in SALESBOT_TZ."""
    diagnosis = result.diagnosis
    return {"now": result.now.astimezone(loaded.tz), "dry_run": result.dry_run, "in_window": result.in_window,
            "due_later": result.due_later, "summary": result.summary,
            "not_due": diagnosis.not_due if diagnosis else None,
            "next_due_at": diagnosis.next_due_at.astimezone(loaded.tz) if diagnosis and diagnosis.next_due_at else None,
            "meetings": result.meetings, "skipped": skipped}


@app.command()
def usage(
    since: Annotated[
        str | None, typer.Option(metavar="WHEN", help="Only calls since a date (2025-12-01), a time, "
                                                      "or a span (7d, 24h).")
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
