"""How the CLI draws results: rich tables for people, one JSON document for scripts.

Nothing here reads the database or settings; each function takes the query's result and prints it.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import fields, is_dataclass
from datetime import date, datetime
from typing import Any

from rich import box
from rich.cells import cell_len, set_cell_size
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from salesbot import logs
from salesbot.logs import visible

# Piped output (cron mail, log files, `| less`) gets a wide page instead of rich's 80 columns.
_PIPED_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
class _Stdout(Console):
    def on_broken_pipe(self) -> None:
        """The reader went away (`salesbot leads list | head`): rich would exit 1; the error boundary
        (cli/common.py) ends the command quietly instead."""
        self.quiet = True
        raise BrokenPipeError


out = _Stdout(highlight=False, width=_PIPED_WIDTH)
err = Console(stderr=True, highlight=False)

STATUS_STYLE = {"new": "cyan", "warm": "yellow", "hot": "bold red", "cold": "blue", "lost": "dim"}
SHOWN_ACTIONS = 200  # the sweep's table; --json streams them all


def error_line(message: str) -> None:
    err.print(f"[red]Error:[/red] {escape(logs.redact(message))}", soft_wrap=True)


# --- JSON -----------------------------------------------------------------------------------------


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


def dumps(value: Any) -> str:
    return json.dumps(plain(value), ensure_ascii=False)


def print_json(data: Any) -> None:
    """One JSON document on stdout, nothing else there (scripts parse it)."""
    sys.stdout.write(dumps(data) + "\n")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


JSON_CHUNK = 1000


def stream_json_list(items: Iterable, convert: Callable[[Any], Any]) -> None:
    """A JSON list on stdout, written a chunk of items at a time (memory stays flat for any number).
    Nothing is written before the first chunk is ready, so a query that fails at once leaves stdout empty."""
    items = iter(items)
    opened = False
    while batch := list(itertools.islice(items, JSON_CHUNK)):
        body = json.dumps([convert(item) for item in batch], ensure_ascii=False)[1:-1]
        sys.stdout.write(f", {body}" if opened else f"[{body}")
        opened = True
    sys.stdout.write("]\n" if opened else "[]\n")


class JsonActions:
    """Writes `{"actions": [...], "key": value, ...}` as the sweep goes, so 100k actions are never held
    at once: actions are converted directly (Action.as_json) and written a batch at a time. Nothing is
    written before the first batch, so a sweep that fails at once leaves stdout empty."""

    BATCH = 1000

    def __init__(self) -> None:
        self.started = False
        self.pending: list[dict] = []

    def __call__(self, action) -> None:
        self.pending.append(action.as_json())
        if len(self.pending) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            body = json.dumps(self.pending, ensure_ascii=False)[1:-1]
            sys.stdout.write(f", {body}" if self.started else f'{{"actions": [{body}')
            self.started = True
            self.pending = []

    def close(self, rest: dict[str, Any]) -> None:
        self._flush()
        sys.stdout.write("]" if self.started else '{"actions": []')
        for key, value in rest.items():
            sys.stdout.write(f", {json.dumps(key)}: {dumps(value)}")
        sys.stdout.write("}\n")


# --- times ----------------------------------------------------------------------------------------


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


# --- leads and meetings ---------------------------------------------------------------------------


LEADS_CHUNK = 1000  # rows drawn (and held) at a time: `leads list --limit 0` streams any number
_NAME_WIDTH = 40
_SOURCE_WIDTH = 20


def _status_parts(row) -> list[tuple[str, str]]:
    parts = [(row.status, STATUS_STYLE[row.status])]
    if getattr(row, "taken_over", False):
        parts.append((" (taken over)", "bold magenta"))
    if row.opted_out:
        parts.append((" (stopped)", "dim"))
    if row.unanswered:
        parts.append((f" ({row.unanswered} unanswered)", "bold red"))
    if row.undelivered:
        parts.append((f" ({row.undelivered} undelivered)", "bold red"))
    return parts


def leads_table(rows: Iterable, wanted: str | None, tz, now: datetime) -> None:
    """The leads as a table, written a chunk at a time: the column widths come from the first chunk (a
    longer name later is cut with «…»), so memory stays flat and the first rows show at once. The rows
    are plain lines; only the few distinct styled status cells go through rich (rendered once each):
    drawing every cell through rich took 41 s for 100k leads."""
    rows = iter(rows)
    chunk = list(itertools.islice(rows, LEADS_CHUNK))
    if not chunk:
        out.print(f"No leads {f'with status {wanted}' if wanted else 'yet'}.")
        return
    statuses: dict[tuple, tuple[str, int]] = {}  # (status, stopped, unanswered, undelivered) → (styled, width)

    def status_cell(row) -> tuple[str, int]:
        key = (row.status, row.opted_out, row.unanswered, row.undelivered, getattr(row, "taken_over", False))
        if key not in statuses:
            parts = _status_parts(row)
            with out.capture() as captured:
                out.print(Text.assemble(*parts), end="", soft_wrap=True)
            statuses[key] = (captured.get(), sum(len(part) for part, _ in parts))
        return statuses[key]

    headers = ("id", "name", "status", "source", "last message", "reminders", "next meeting")
    widths = [max(len(headers[0]), *(len(str(r.id)) for r in chunk)),
              min(_NAME_WIDTH, max(len(headers[1]), *(cell_len(visible(r.name)) for r in chunk))),
              max(len(headers[2]), *(status_cell(r)[1] for r in chunk)),
              min(_SOURCE_WIDTH, max(len(headers[3]), *(len(r.source or "—") for r in chunk))),
              max(len(headers[4]), 12), len(headers[5]), len(fmt_time(now))]
    out.print("  ".join(h.rjust(w) if h in ("id", "reminders") else h.ljust(w)
                        for h, w in zip(headers, widths, strict=True)), style="bold", soft_wrap=True)
    out.print("  ".join("─" * w for w in widths), style="dim", soft_wrap=True)
    shown = 0
    while chunk:
        lines = []
        for row in chunk:
            name = visible(row.name)  # a lead's name is theirs to choose: no terminal escapes
            if cell_len(name) > widths[1]:
                name = set_cell_size(name, widths[1] - 1) + "…"
            status, status_width = status_cell(row)
            source = row.source or "—"  # a deep link's parameter: A-Z a-z 0-9 _ - only
            if len(source) > widths[3]:
                source = source[: widths[3] - 1] + "…"
            lines.append(f"{row.id:>{widths[0]}}  {set_cell_size(name, widths[1])}  {status}"
                         f"{' ' * (widths[2] - status_width)}  {source:<{widths[3]}}"
                         f"  {relative(row.last_message_at, now):<{widths[4]}}"
                         f"  {row.follow_up_count:>{widths[5]}}  {fmt_time(row.next_meeting)}\n")
        out.file.write("".join(lines))
        shown += len(chunk)
        chunk = list(itertools.islice(rows, LEADS_CHUNK))
    out.print(f"[dim]{shown} lead{'s' if shown != 1 else ''}{f' with status {wanted}' if wanted else ''}, "
              f"newest activity first; times in {tz.key}[/dim]")


def lead_json(row) -> dict[str, Any]:
    """A leads-list row as JSON-ready values, field by field (render.plain's generic walk was a
    quarter of a long listing's time)."""
    return {"id": row.id, "first_name": row.first_name, "username": row.username, "status": row.status,
            "state": row.state, "telegram_id": row.telegram_id, "created_at": _iso(row.created_at),
            "last_message_at": _iso(row.last_message_at), "follow_up_count": row.follow_up_count,
            "last_follow_up_at": _iso(row.last_follow_up_at), "opted_out": row.opted_out,
            "cold_reason": row.cold_reason, "next_meeting": _iso(row.next_meeting),
            "opted_out_reason": row.opted_out_reason, "unanswered": row.unanswered, "undelivered": row.undelivered,
            "source": row.source, "taken_over": row.taken_over}


# who said a line of `leads show`: the lead, the bot, a person (salesbot/inbox) or staff's internal note
ROLE_LABELS = {"lead": ("lead ", "green"), "bot": ("bot  ", "magenta"), "manager": ("team ", "cyan"),
               "note": ("note ", "yellow")}
LONG_MESSAGE = 3000  # characters of one message `leads show` prints unless --full
_PREFIX = 17  # "24.12 11:00 lead " — continuation lines are indented under the text


def _wrapped(text: str, width: int) -> str:
    """A message's lines wrapped to `width`, every line after the first indented under the text."""
    room = max(20, width - _PREFIX)
    lines = []
    for paragraph in text.split("\n"):
        lines += textwrap.wrap(paragraph, room, replace_whitespace=False, drop_whitespace=True,
                               break_on_hyphens=False) or [""]
    return ("\n" + " " * _PREFIX).join(lines)


def lead_detail(detail, full: bool = False) -> None:
    lead = detail.lead
    out.print(f"[bold]Lead {lead.id}[/bold] {escape(visible(lead.name))}  "
              f"[{STATUS_STYLE[lead.status]}]{lead.status}[/]")
    facts = [
        ("telegram id", str(lead.telegram_id) if lead.telegram_id else "— (terminal chat)"),
        ("created", fmt_time(lead.created_at)),
        ("source", lead.source or "— (no deep link)"),
        ("last message", fmt_time(lead.last_message_at)),
        ("reminders sent", f"{detail.reminders_sent} (last {fmt_time(lead.last_follow_up_at)})"
         + (f"; {detail.reminders_queued} queued for serve to send" if detail.reminders_queued else "")),
        ("dialogue state", lead.state or "—"),
        ("opted out", f"yes ({lead.opted_out_reason or 'by staff'})" if lead.opted_out else "no"),
    ]
    if lead.cold_reason:
        facts.append(("cold reason", lead.cold_reason))
    facts.append(("summary", detail.summary or "— (nothing learned yet)"))
    for label, value in facts:
        out.print(f"  [dim]{label}:[/dim] {escape(visible(value))}")
    out.print()
    if not detail.messages:
        out.print("[dim]No messages.[/dim]")
    conversation = Text()  # one Text, printed once: a long conversation stays fast to draw
    for line in detail.messages:
        conversation.append(f"{line.created_at:%d.%m %H:%M} ", style="dim")
        label, style = ROLE_LABELS.get(line.role, ROLE_LABELS["bot"])
        conversation.append(label, style=style)
        text = visible(line.text, lines=True).replace("\t", "    ")
        cut = not full and len(text) > LONG_MESSAGE
        conversation.append(_wrapped(text[:LONG_MESSAGE] if cut else text, out.width))
        if cut:
            conversation.append(f"\n{' ' * _PREFIX}… cut: {len(text) - LONG_MESSAGE:,} more characters "
                                "(--full prints all)", style="dim")
        if line.buttons:
            conversation.append(f"\n{' ' * _PREFIX}" + " ".join(f"[{visible(label)}]" for label in line.buttons),
                                style="cyan")
        if line.delivery == "failed":
            conversation.append(f"  (undelivered: {line.delivery_error})", style="bold red")
        elif line.delivery == "queued":
            conversation.append("  (not sent yet)", style="yellow")
        conversation.append("  (unanswered)\n" if line.unanswered else "\n", style="bold red")
    out.print(conversation, end="", soft_wrap=True)
    if detail.meetings:
        out.print()
        for meeting in detail.meetings:
            out.print(f"  meeting {meeting.id}: {fmt_time(meeting.starts_at)} {meeting.status} ({meeting.source})")


MEETING_STYLE = {"booked": "green", "cancelled": "dim", "done": "bold green", "no_show": "bold red"}


def meetings_table(rows, tz, past: bool = False, status: str | None = None) -> None:
    what = f"{'past' if past else 'upcoming'} meetings" + (f" with status {status}" if status else "")
    if not rows:
        out.print(f"No {what}.")
        return
    table = Table(title=f"{what[0].upper()}{what[1:]} ({len(rows)} shown, times in {tz.key})")
    for column in ("id", "when", "lead", "telegram", "confirmed", "status", "source"):
        table.add_column(column)
    for row in rows:
        status_text = f"[{MEETING_STYLE[row.status]}]{row.status.replace('_', '-')}[/]"
        if row.moved_to:
            status_text += f" → {row.moved_to}"
        elif row.cancelled_by:
            status_text += f" ({row.cancelled_by})"
        confirmed = row.confirmed_at.strftime("%d.%m %H:%M") if row.confirmed_at else "—"
        table.add_row(str(row.id), fmt_time(row.starts_at), f"{row.lead_id} {escape(visible(row.lead_name))}",
                      escape(row.telegram_link or "— (terminal chat)"), confirmed, status_text, row.source)
    out.print(table)


def meeting_change(change) -> None:
    """What `meetings cancel/move/done/no-show` did, in one line."""
    who = f"lead {change.lead_id} {escape(visible(change.lead_name))}"
    if change.new_meeting_id is not None:
        line = (f"Meeting {change.meeting_id} ({who}) moved from {fmt_time(change.starts_at)} to "
                f"{fmt_time(change.new_starts_at)}: it is now meeting {change.new_meeting_id}.")
    elif change.status == "cancelled":
        line = f"Meeting {change.meeting_id} ({who}, {fmt_time(change.starts_at)}) cancelled."
    else:
        line = f"Meeting {change.meeting_id} ({who}, {fmt_time(change.starts_at)}) marked {change.status}."
    if change.lead_told:
        line += " The lead is told through the bot (queued; serve sends it)."
    elif change.status == "cancelled":
        line += " The lead has no Telegram (a terminal chat lead): not told."
    out.print(line)


# --- the sweep ------------------------------------------------------------------------------------


def _step_label(action) -> str:
    label = f"{'hot ' if action.nudge == 'hot' else ''}{action.step}"
    return f"{label} (last)" if action.becomes_cold else label


def sweep(result, policy) -> None:
    if not result.in_window:
        out.print(f"Outside the send window ({policy.describe()}); nothing sent. A later sweep catches up.")
        if result.due_later:
            out.print(f"{result.due_later} lead(s) are due and will be reminded once the window opens.")
        _not_due(result.diagnosis)
        return
    if result.actions:
        table = Table(title="Would remind now" if result.dry_run else "Reminders")
        table.add_column("lead", justify="right")
        table.add_column("name")
        table.add_column("step")
        table.add_column("reminder", no_wrap=True, overflow="ellipsis", max_width=70)
        table.add_column("outcome")
        for action in result.actions:
            name = visible(action.first_name) or (f"@{visible(action.username)}" if action.username else "—")
            table.add_row(str(action.lead_id), escape(name), _step_label(action),
                          escape(visible(action.text.replace("\n", " "))), action.outcome)
        out.print(table)
        total = sum(result.outcomes.values())
        if total > len(result.actions):
            out.print(f"… and {total - len(result.actions)} more (use --json for all).")
    if result.meetings:
        meetings_sweep(result.meetings, result.dry_run)
    summary = result.summary
    if result.dry_run:
        out.print(f"[bold]{summary['would_send']}[/bold] would be reminded now, "
                  f"{summary['last_reminders']} of them for the last time (they become cold once it is sent).")
    else:
        last = summary["last_reminders"]
        out.print(f"queued [green]{summary['queued']}[/green] for serve to send"
                  + (f" ({last} of them the last: a lead goes cold once it is sent)" if last else "")
                  + f", skipped {summary['skipped']} (claimed by another sweep, or the lead wrote).")
    _not_due(result.diagnosis)


def _not_due(diagnosis) -> None:
    """Why the others are not due (a dry run), and when the next one is."""
    if diagnosis is None:
        return
    from salesbot.followups import NOT_DUE

    if diagnosis.not_due:
        out.print("Not due now:")
        for reason, count in diagnosis.not_due.items():
            out.print(f"  {count:>8,}  {NOT_DUE[reason]} [dim]({reason})[/dim]")
    if diagnosis.next_due_at:
        out.print(f"Next due after these: {fmt_time(diagnosis.next_due_at)}")
    else:
        out.print("Next due after these: nobody yet (no other lead is waiting for a reminder)")


def meetings_sweep(actions, dry_run: bool) -> None:
    table = Table(title="Meeting messages that would go now" if dry_run else "Meeting messages")
    for column in ("meeting", "lead", "name", "what", "meeting time", "outcome"):
        table.add_column(column)
    for action in actions:
        what = "offer new slots (no-show)" if action.kind == "no_show" else f"reminder {action.kind} before"
        table.add_row(str(action.meeting_id), str(action.lead_id), escape(action.first_name or "—"), what,
                      fmt_time(action.starts_at), action.outcome)
    out.print(table)


class SweepBar:
    """A progress bar on stderr while an operator watches; nothing for cron."""

    def __init__(self, label: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=err, transient=True)
        self.label = label
        self.task = None

    def __enter__(self) -> SweepBar:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def start(self, total: int | None) -> None:
        self.task = self.bar.add_task(self.label, total=total)

    def advance(self, count: int) -> None:
        self.bar.advance(self.task, count)


# --- usage ----------------------------------------------------------------------------------------


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


def _budget_line(budget: dict | None) -> None:
    if budget is None:
        return
    spent, limit = budget["spent_usd"], budget["limit_usd"]
    style = "red" if spent >= limit else "yellow" if spent >= 0.8 * limit else "green"
    note = ": no Claude calls until the month ends" if spent >= limit else ""
    out.print(f"[{style}]Budget {budget['month']}: ${spent:,.2f} of ${limit:,.2f} spent "
              f"({spent / limit:.0%}), ${budget['left_usd']:,.2f} left{note}[/{style}]")


def usage(report, start: datetime | None) -> None:
    if not report.rows:
        out.print("No Claude calls recorded" + (f" since {fmt_time(start)}." if start else "."))
        _budget_line(report.budget)
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
    out.print("[dim]Cost at Anthropic's list prices (salesbot/claude/pricing.py, see README); thinking is part of "
              "output; '?' marks a model without a known price.[/dim]")
    _budget_line(report.budget)


# --- follow-ups stats -----------------------------------------------------------------------------

STEP_NAMES = {"follow_up_1": "reminder 1", "follow_up_2": "reminder 2 (last)", "hot_1": "hot lead: 1",
              "hot_2": "hot lead: 2 (last)"}


def _with_rate(count: int, rate: float | None) -> str:
    return f"{count:,}" if rate is None else f"{count:,} ({rate:.0%})"


def follow_up_stats(stats, start: datetime | None) -> None:
    title = "Reminders" + (f" sent since {fmt_time(start)}" if start else "")
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for header in ("step", "sent", "replied ≤24 h", "replied ≤72 h", "booked after", "went cold"):
        table.add_column(header, justify="left" if header == "step" else "right")
    for step in stats.steps:
        table.add_row(STEP_NAMES.get(step.step, step.step), f"{step.sent:,}",
                      _with_rate(step.replied_24h, step.reply_rate_24h),
                      _with_rate(step.replied_72h, step.reply_rate_72h),
                      _with_rate(step.booked, step.booking_rate), f"{step.went_cold:,}")
    out.print(table)
    maturing = sum(step.maturing for step in stats.steps)
    if maturing:
        out.print(f"[dim]{maturing:,} of these went out less than 72 h ago: their replies may still come.[/dim]")
    out.print("[dim]Replied: the lead wrote (or pressed a button) after the reminder. Booked: a meeting within "
              "7 days, before any next reminder. Went cold: cold after the last reminder and silent since.[/dim]")


# --- doctor ---------------------------------------------------------------------------------------

_MARK = {"ok": "[green]ok     [/green]", "note": "[yellow]note   [/yellow]", "problem": "[bold red]PROBLEM[/bold red]"}


def doctor(report) -> None:
    out.print(f"[bold]salesbot {report.version}[/bold], data folder {escape(report.home)}; .env read from "
              + " then ".join(escape(p) for p in report.env_files))
    table = Table(title="Settings (environment first, then the .env files; secrets masked)", box=box.SIMPLE_HEAD)
    for column in ("name", "value", "from"):
        table.add_column(column, overflow="fold")
    for row in report.settings:
        value = escape(visible(row.value)) if row.value is not None else "[dim]—[/dim]"
        table.add_row(row.name, f"[red]{value}[/red]" if row.problem else value,
                      "[dim]default[/dim]" if row.source == "default" else escape(row.source))
    out.print(table)
    db = report.database
    if db.exists:
        counts = ", ".join(f"{'?' if n is None else n} {what}" for n, what in
                           ((db.leads, "leads"), (db.messages, "messages"), (db.meetings, "meetings")))
        out.print(f"database {escape(db.path)}: {db.size_bytes:,} bytes, schema {db.schema_version or '?'}, {counts}")
    for session in report.sessions:
        state = "logged in" if session["logged_in"] else ("damaged" if session["problem"] else "not logged in")
        out.print(f"Telegram session {escape(session['path'])}: {session['size_bytes']:,} bytes, {state}")
    out.print()
    for finding in report.findings:
        out.print(f"{_MARK[finding.status]} {finding.area:<9} {escape(logs.redact(finding.message))}",
                  soft_wrap=True)
    problems = len(report.problems)
    out.print("\n" + ("[green]Nothing wrong found.[/green]" if not problems else
                      f"[bold red]{problems} problem(s)[/bold red] found (exit 1)."))


def free_times(listing) -> None:
    """`salesbot slots`: one line a day, its free times, or why there are none."""
    from salesbot.time.slots import closed_because

    cal = listing.calendar
    by_day = {day: list(group) for day, group in itertools.groupby(listing.slots, key=lambda s: s.date())}
    out.print(f"Free {int(cal.slot.total_seconds() // 60)}-minute slots from {listing.start:%Y-%m-%d %H:%M} "
              f"to {listing.end:%Y-%m-%d %H:%M} ({listing.start.tzname()}):")
    day = listing.start.date()
    while day < listing.end.date() or (day == listing.end.date() and listing.end.time() != datetime.min.time()):
        starts = by_day.get(day)
        label = f"{day:%a %Y-%m-%d}"
        if starts:
            out.print(f"  {label}  " + " ".join(f"{s:%H:%M}" for s in starts))
        else:
            why = closed_because(day, cal) or "nothing free (booked, busy or past)"
            out.print(f"  {label}  [dim]{escape(why)}[/dim]")
        day = date.fromordinal(day.toordinal() + 1)
    if not listing.slots:
        out.print("[yellow]No free time in these days.[/yellow]")


def feed_troubles(feeds, now: datetime) -> bool:
    """A line on stderr for each busy feed that failed; True when one has no copy at all."""
    missing = False
    for state in feeds:
        if state.error is None:
            continue
        if state.has_copy:
            age = relative(datetime.fromtimestamp(state.fetched_at, now.tzinfo), now) if state.fetched_at else "?"
            err.print(f"[yellow]Warning:[/yellow] {escape(logs.redact(state.label))}: {escape(state.error)}; its copy "
                      f"from {age} is used", soft_wrap=True)
        else:
            missing = True
            err.print(f"[red]Error:[/red] {escape(logs.redact(state.label))}: {escape(state.error)}; never read, so "
                      "its busy times are not in this list", soft_wrap=True)
    return missing
