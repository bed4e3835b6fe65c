"""The `salesbot` command line: parses options, calls the runtime or a query, renders the result.

One error boundary (`_Boundary`) turns any SalesbotError into one red line on stderr and exit 1.
telethon and anthropic are imported only inside the jobs that need them, so `--help` and
`leads list` start fast.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape

from salesbot import __version__, logs, runtime
from salesbot.cli import inbox as _inbox_commands  # noqa: F401 - registers leads reply/takeover/release
from salesbot.cli import render
from salesbot.cli.common import Boundary, JsonOpt, option, settings, since_report
from salesbot.cli.followups import followups_app
from salesbot.cli.owner import funnel, links
from salesbot.cli.records import leads_app, meetings_app
from salesbot.cli.render import err, out, print_json
from salesbot.errors import ConfigError, SalesbotError, ServeConfigError, quoted

app = typer.Typer(
    cls=Boundary,
    help="salesbot: a Telegram sales assistant. Answers leads through Claude, books meetings, reminds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(leads_app, name="leads")
app.add_typer(meetings_app, name="meetings")
app.add_typer(followups_app, name="follow-ups")
app.command("funnel")(funnel)
app.command("links")(links)


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
    an error (systemd restarts it), 3 when Telegram refuses the bot and 78 when a setting is wrong
    or the Claude key is rejected (it does not: a restart cannot fix either).
    """
    try:
        loaded = settings()
        runtime.check_serve(loaded)
        runtime.open_store(loaded)
        runtime.serve(loaded)
    except ConfigError as exc:
        raise ServeConfigError(str(exc)) from None


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
    answers go to stdout, e.g. printf 'Здравствуйте\\nХочу сайт\\nК весне\\n1\\n' | salesbot chat --demo
    (the demo offers slots at the third message; 1 books the first).
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

    from salesbot import texts
    from salesbot.config import parse_zone
    from salesbot.store import queries

    loaded = settings()
    zone = parse_zone("--tz", tz) if tz else loaded.tz
    moment = option("--now", queries.parse_moment, now, zone) if now else datetime.now(zone)
    batch = text == "-"
    phrases = (line.rstrip("\r\n") for line in sys.stdin) if batch else [text]

    def show(phrase: str, result) -> None:
        if as_json:
            sys.stdout.write(json.dumps(result.as_json(), ensure_ascii=False) + "\n")
        elif result.ok:
            out.print(texts.describe(result.when) + (" [dim](Claude)[/dim]" if result.source == "claude" else ""))
        elif batch:
            out.print(f"? {result.error}")
        else:
            err.print(f"[red]Error:[/red] {result.error}: {escape(quoted(phrase))}", soft_wrap=True)
        sys.stdout.flush()

    if not asyncio.run(runtime.parse_phrases(loaded, phrases, moment, zone, not no_llm, show)) and not batch:
        raise typer.Exit(1)


@app.command()
def slots(
    start: Annotated[str | None, typer.Option("--from", metavar="ISO", help="List from this time (ISO 8601, in "
                                                                             "SALESBOT_TZ unless it has an offset). "
                                                                             "Default: now.")] = None,
    days: Annotated[int, typer.Option(metavar="N", min=1, max=366, help="How many days to list.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help='A JSON list of {"start": ISO, "end": ISO} in '
                                                         "SALESBOT_TZ instead of a table.")] = False,
) -> None:
    """The free times the bot would offer: working hours less breaks, days off, public holidays, booked
    meetings and the owner's busy calendars (fetched first; a feed that fails is named). Exits 1 when
    a feed has never been read, so its busy times are missing from the list."""
    from salesbot.store import queries

    loaded = settings()
    moment = option("--from", queries.parse_moment, start, loaded.tz) if start else None
    listing = runtime.free_times(loaded, moment, days)
    length = listing.calendar.slot
    if as_json:
        print_json([{"start": slot.astimezone(loaded.tz).isoformat(),
                     "end": (slot + length).astimezone(loaded.tz).isoformat()} for slot in listing.slots])
    else:
        render.free_times(listing)
    missing = render.feed_troubles(listing.feeds, datetime.now(loaded.tz))
    if missing:
        raise typer.Exit(1)


# --- reminders and usage --------------------------------------------------------------------------


@app.command()
def doctor(
    online: Annotated[bool, typer.Option("--online", help="Also ask Claude and Telegram whether they accept "
                                                          "the key and the bot token.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check this installation: settings and where each came from (secrets masked), the database, whether
    serve runs, the last sweep, the Telegram session files, the busy calendars. Exits 1 naming what is wrong."""
    from salesbot.cli import doctor as checks

    try:
        loaded = settings()
    except SalesbotError as exc:
        if not as_json:
            raise
        print_json({"ok": False, "findings": [{"area": "settings", "status": "problem", "message": str(exc)}]})
        raise typer.Exit(1) from None
    report = checks.diagnose(loaded, online=online)
    if as_json:
        print_json({**render.plain(report), "ok": not report.problems})
    else:
        render.doctor(report)
    if report.problems:
        raise typer.Exit(1)


@app.command()
def usage(
    since: Annotated[
        str | None, typer.Option(metavar="WHEN", help="Only calls since a date (2025-12-01), a time, "
                                                      "or a span (7d, 24h).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Claude calls per purpose and model: tokens, cache use, estimated cost and what caching saved; and
    where this month stands against SALESBOT_MONTHLY_BUDGET_USD."""
    from salesbot.claude.usage import usage_report

    ceiling = runtime.budget(settings())

    def report(start):
        result = usage_report(start)
        if ceiling is not None:
            state = ceiling.state()
            result.budget = {"month": state.month, "limit_usd": state.limit_usd, "spent_usd": round(state.spent_usd, 6),
                             "left_usd": round(state.left_usd, 6)}
        return result

    since_report(since, as_json, report, render.usage)


def main() -> None:
    app(prog_name="salesbot")
