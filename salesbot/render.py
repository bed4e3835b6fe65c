"""How the CLI draws results: rich tables for people, one JSON document for scripts.

Nothing here reads the database or settings; each function takes the query's result and prints it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from dataclasses import fields, is_dataclass
from datetime import date, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from salesbot import logs
from salesbot.slots import clock_label

# Piped output (cron mail, log files, `| less`) gets a wide page instead of rich's 80 columns.
_PIPED_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
out = Console(highlight=False, width=_PIPED_WIDTH)
err = Console(stderr=True, highlight=False)

STATUS_STYLE = {"new": "cyan", "warm": "yellow", "hot": "bold red", "cold": "blue"}
SHOWN_ACTIONS = 200  # the sweep's table; --json streams them all


# Terminal control characters (C0 but newline and tab, DEL, C1, and the bidi overrides that reorder
# what follows) in a lead's name or message are shown as escapes, never sent to the staff's terminal:
# an ESC sequence in a Telegram name could clear the screen or rewrite what is shown.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape_char(match: re.Match) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str | None, lines: bool = False) -> str:
    """`text` safe for a terminal: control characters as `\\x1b`-style escapes; newlines kept only
    when `lines` (a message), else escaped too (a name is one line)."""
    return (_CONTROL if lines else _CONTROL_OR_LINE).sub(_escape_char, text or "")


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


class JsonActions:
    """Writes `{"actions": [...], "key": value, ...}` as the sweep goes, so 100k actions are never held
    at once. Nothing is written before the first action, so a sweep that fails at once leaves stdout
    empty."""

    def __init__(self) -> None:
        self.started = False

    def __call__(self, action) -> None:
        sys.stdout.write((", " if self.started else '{"actions": [') + dumps(action))
        self.started = True

    def close(self, rest: dict[str, Any]) -> None:
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


def leads_table(rows, wanted: str | None, tz, now: datetime) -> None:
    if not rows:
        out.print(f"No leads {f'with status {wanted}' if wanted else 'yet'}.")
        return
    table = Table(title=f"Leads ({len(rows)} shown, times in {tz.key})")
    for column in ("id", "name", "status", "last message", "reminders", "next meeting"):
        table.add_column(column, justify="right" if column in ("id", "reminders") else "left")
    for row in rows:
        status_text = f"[{STATUS_STYLE[row.status]}]{row.status}[/]"
        if row.opted_out:
            status_text += " [dim](stopped)[/]"
        if row.unanswered:
            status_text += f" [bold red]({row.unanswered} unanswered)[/]"
        if row.undelivered:
            status_text += f" [bold red]({row.undelivered} undelivered)[/]"
        table.add_row(str(row.id), escape(visible(row.name)), status_text, relative(row.last_message_at, now),
                      str(row.follow_up_count), fmt_time(row.next_meeting))
    out.print(table)


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
        ("last message", fmt_time(lead.last_message_at)),
        ("reminders sent", f"{lead.follow_up_count} (last {fmt_time(lead.last_follow_up_at)})"),
        ("dialogue state", lead.state or "—"),
        ("opted out", f"yes ({lead.opted_out_reason or 'by staff'})" if lead.opted_out else "no"),
    ]
    if lead.cold_reason:
        facts.append(("cold reason", lead.cold_reason))
    for label, value in facts:
        out.print(f"  [dim]{label}:[/dim] {escape(visible(value))}")
    out.print()
    if not detail.messages:
        out.print("[dim]No messages.[/dim]")
    conversation = Text()  # one Text, printed once: a long conversation stays fast to draw
    for line in detail.messages:
        conversation.append(f"{line.created_at:%d.%m %H:%M} ", style="dim")
        is_lead = line.role == "lead"
        conversation.append("lead " if is_lead else "bot  ", style="green" if is_lead else "magenta")
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


def meetings_table(rows, tz) -> None:
    if not rows:
        out.print("No upcoming meetings.")
        return
    table = Table(title=f"Upcoming meetings ({len(rows)} shown, times in {tz.key})")
    for column in ("id", "when", "lead", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row.id), fmt_time(row.starts_at), f"{row.lead_id} {escape(visible(row.lead_name))}",
                      row.source)
    out.print(table)


# --- the sweep ------------------------------------------------------------------------------------


def sweep(result, policy) -> None:
    start, end = map(clock_label, policy.window)
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
            table.add_row(str(action.lead_id), escape(visible(action.first_name) or "—"), str(action.step),
                          "yes" if action.becomes_cold else "", action.outcome)
        out.print(table)
        total = sum(result.outcomes.values())
        if total > len(result.actions):
            out.print(f"… and {total - len(result.actions)} more (use --json for all).")
    summary = result.summary
    if result.dry_run:
        out.print(f"[bold]{summary['would_send']}[/bold] would be reminded now, "
                  f"{summary['now_cold']} of them for the last time (they become cold).")
    else:
        out.print(f"queued [green]{summary['queued']}[/green] for serve to send, skipped {summary['skipped']} "
                  f"(claimed by another sweep, or the lead wrote), now cold {summary['now_cold']}.")


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


def usage(report, start: datetime | None) -> None:
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
