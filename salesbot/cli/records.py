"""`salesbot leads …` and `salesbot meetings …`: the records staff look at and change."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape

from salesbot import runtime
from salesbot.cli import render
from salesbot.cli.common import SQLITE_MAX, JsonOpt, LimitOpt, option, settings
from salesbot.cli.render import err, out, print_json
from salesbot.config import Settings

leads_app = typer.Typer(help="Look at leads and their conversations.", no_args_is_help=True)
meetings_app = typer.Typer(help="Meetings: list them, cancel or move one (the lead is told), record the outcome, "
                                "export a calendar.", no_args_is_help=True)

# --- leads and meetings ---------------------------------------------------------------------------


@leads_app.command("list")
def leads_list(
    status: Annotated[str | None, typer.Option(metavar="STATUS",
                                               help="Only leads with this status: new, warm, hot or cold.")] = None,
    source: Annotated[str | None, typer.Option(metavar="SOURCE", help="Only leads who came through this deep link "
                                                                      "(see `salesbot links`).")] = None,
    limit: LimitOpt = 50,
    as_json: JsonOpt = False,
) -> None:
    """Leads, newest activity first: status, source, last message, reminders sent, next meeting."""
    from salesbot import links
    from salesbot.store import queries

    wanted = queries.check_status(status)
    if source is not None:
        option("--source", links.check_source, source)
    loaded = settings()
    runtime.open_store(loaded)
    rows = queries.iter_leads(loaded.tz, status=wanted, limit=limit or None, source=source)  # streamed
    if as_json:
        render.stream_json_list(rows, render.lead_json)
    else:
        render.leads_table(rows, wanted, loaded.tz, datetime.now(loaded.tz))


@leads_app.command("export")
def leads_export(
    csv_file: Annotated[str, typer.Option("--csv", metavar="FILE", help="Write a CSV file here (- for stdout).")],
) -> None:
    """Every lead as a spreadsheet: name, username, Telegram id, source, status, summary, created, last message,
    next meeting (UTF-8 with a BOM, so Excel opens it in Cyrillic)."""
    from salesbot.cli import export

    loaded = settings()
    runtime.open_store(loaded)
    count = export.write_csv(csv_file, loaded.tz)
    if csv_file != "-":
        out.print(f"Wrote {count} lead(s) to {escape(csv_file)} (times in {loaded.tz.key}).")


@leads_app.command("delete")
def leads_delete(
    lead_id: Annotated[int, typer.Argument(metavar="ID", min=1, max=SQLITE_MAX,
                                           help="The lead's id (see `leads list`).")],
    yes: Annotated[bool, typer.Option("--yes", help="Really delete: it cannot be undone.")] = False,
) -> None:
    """Forget a lead everywhere (152-ФЗ): its messages, name, username and Telegram id leave every table and every
    database file; the funnel keeps an anonymous count. Safe while serve runs."""
    from salesbot import erasure

    erasure.check_confirmed(yes, lead_id)
    loaded = settings()
    runtime.open_store(loaded)
    done = erasure.forget(lead_id, datetime.now(loaded.tz), sessions=sorted(loaded.home.glob("*.session")))
    out.print(f"Lead {lead_id} deleted: its messages, name, username and Telegram id are gone "
              f"({done.outbox_rows} outbox row(s) and {done.webhook_events} webhook event(s) with it).")
    if not done.wal_cleared:
        err.print("[yellow]The database's WAL could not be truncated now (another process kept reading); "
                  "SQLite empties it at its next checkpoint. Run this again to retry.[/yellow]")


@leads_app.command("show")
def leads_show(
    lead_id: Annotated[int, typer.Argument(metavar="ID", min=1, max=SQLITE_MAX,
                                           help="The lead's id (see `leads list`).")],
    as_json: JsonOpt = False,
    full: Annotated[bool, typer.Option("--full", help="Print very long messages whole (they are cut at "
                                                      f"{render.LONG_MESSAGE:,} characters).")] = False,
) -> None:
    """One lead: its details, the whole conversation (with the buttons offered) and its meetings."""
    from salesbot.store import queries

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
                                                    "no_show (default: booked; with --past: all). done and no_show "
                                                    "are outcomes: they imply --past.")] = None,
    limit: LimitOpt = 50,
    as_json: JsonOpt = False,
) -> None:
    """Upcoming booked meetings, soonest first, in the business time zone: the lead (name, @username, a
    tg:// link), whether the lead confirmed, the outcome."""
    from salesbot.store import queries

    wanted = queries.check_meeting_status(status)
    past = past or wanted in queries.OUTCOMES  # only a meeting that has started has an outcome
    loaded = settings()
    runtime.open_store(loaded)
    rows = queries.list_meetings(loaded.tz, past=past, status=wanted, limit=limit or None)
    if as_json:
        print_json(rows)
    else:
        render.meetings_table(rows, loaded.tz, past=past, status=wanted)


MeetingId = Annotated[int, typer.Argument(metavar="ID", min=1, max=SQLITE_MAX, help="The meeting's id (see "
                                                                                   "`meetings list`).")]


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

    from salesbot.cli import ics as ics_file
    from salesbot.store import queries

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
