"""`salesbot follow-ups …`: the reminder sweep cron runs, and how each reminder step does."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from salesbot import logs, runtime
from salesbot.cli import render
from salesbot.cli.common import SQLITE_MAX, JsonOpt, settings, since_report
from salesbot.cli.render import err
from salesbot.config import Settings
from salesbot.errors import SalesbotError

followups_app = typer.Typer(help="Reminders for leads who went quiet (run from cron).", no_args_is_help=True)


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
            from salesbot.followups import SweepResult

            now = datetime.now(UTC)
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
    from salesbot.store import queries

    since_report(since, as_json, queries.follow_up_stats, render.follow_up_stats)


def _sweep_document(result, loaded: Settings, skipped: str | None) -> dict[str, Any]:
    """What `follow-ups run --json` prints after the actions; `now` in SALESBOT_TZ."""
    diagnosis = result.diagnosis
    return {"now": result.now.astimezone(loaded.tz), "dry_run": result.dry_run, "in_window": result.in_window,
            "due_later": result.due_later, "summary": result.summary,
            "not_due": diagnosis.not_due if diagnosis else None,
            "next_due_at": diagnosis.next_due_at.astimezone(loaded.tz) if diagnosis and diagnosis.next_due_at else None,
            "meetings": result.meetings, "skipped": skipped}
