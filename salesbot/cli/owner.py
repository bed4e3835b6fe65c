"""The owner's commands (issue 22): `salesbot funnel` and `salesbot links`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from salesbot import runtime
from salesbot.cli.common import JsonOpt, option, settings
from salesbot.cli.render import fmt_time, out, print_json
from salesbot.errors import SalesbotError

BAR_WIDTH = 40
STEP_NAMES = {"leads": "leads", "answered": "answered", "warm": "warm (ever)", "hot": "hot (ever)",
              "booked": "booked", "came": "came"}


def funnel(
    since: Annotated[str | None, typer.Option(metavar="WHEN", help="Only leads first seen since a date (2025-12-01), "
                                                                   "a time, or a span (30d, 2w).")] = None,
    by: Annotated[str, typer.Option(metavar="source|week", help="One row per deep-link source, or per week of "
                                                                "first contact.")] = "source",
    as_json: JsonOpt = False,
) -> None:
    """Leads → answered → warm → hot → booked → came, per source or week: conversions, the time to the bot's
    first answer, and what Claude cost (per lead and per booked meeting)."""
    from salesbot import funnel as report
    from salesbot.store import queries

    if by not in report.BY:
        raise SalesbotError(f"--by: use source or week, not {by!r}")
    loaded = settings()
    start = option("--since", queries.parse_since, since, loaded.tz) if since else None
    runtime.open_store(loaded)
    result = report.funnel(loaded.tz, by=by, since=start)
    if as_json:
        print_json(report.as_json(result))
    else:
        draw_funnel(result)


def _money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}" if value >= 1 else f"{value:.4f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.0%}"


def draw_funnel(result) -> None:
    since = f" since {fmt_time(result.since)}" if result.since else ""
    total = result.total
    if not total.leads:
        out.print(f"No leads{since}.")
        return
    out.print(f"[bold]Funnel{since}[/bold]: {total.leads:,} lead{'s' if total.leads != 1 else ''}")
    conversion = total.conversion
    for step in ("leads", "answered", "warm", "hot", "booked", "came"):
        count = getattr(total, step)
        filled = round(BAR_WIDTH * count / total.leads)
        share = "" if step == "leads" else f"{_percent(conversion[step]):>5} of the step before"
        out.print(f"  {STEP_NAMES[step]:<12} {count:>8,}  [cyan]{'█' * filled}[/cyan]{'·' * (BAR_WIDTH - filled)}"
                  f"  {share}")
    out.print(f"  [dim]no-show {total.no_show:,} · lost or cold now {total.lost:,} · median first answer "
              f"{_duration(total.median_first_answer_seconds)} · Claude ${_money(total.cost_usd)} "
              f"(${_money(total.cost_per_lead_usd)} a lead, ${_money(total.cost_per_booked_usd)} a booked "
              "meeting)[/dim]\n")
    table = Table(box=box.SIMPLE_HEAD, title=f"per {result.by}", pad_edge=False)
    headers = (result.by, "leads", "answered", "warm", "hot", "booked", "came", "no-show", "lost/cold",
               "answer in", "cost $", "$/lead", "$/booked")
    for header in headers:
        table.add_column(header, justify="left" if header == result.by else "right", no_wrap=header == result.by)
    for i, row in enumerate([*result.rows, total]):
        rates = row.conversion
        cells = [escape(row.key), f"{row.leads:,}"]
        cells += [f"{getattr(row, step):,} [dim]{_percent(rates[step])}[/dim]" for step in ("answered", "warm", "hot",
                                                                                            "booked", "came")]
        cells += [f"{row.no_show:,}", f"{row.lost:,}", _duration(row.median_first_answer_seconds),
                  _money(row.cost_usd), _money(row.cost_per_lead_usd), _money(row.cost_per_booked_usd)]
        table.add_row(*cells, style="bold" if i == len(result.rows) else None, end_section=i == len(result.rows) - 1)
    out.print(table)
    unpriced = total.unpriced_calls
    out.print("[dim]Beside each step: its share of the step before. Cost at Anthropic's list prices"
              + (f"; {unpriced:,} call(s) of a model without a known price are not in it" if unpriced else "")
              + ".[/dim]")


def links(
    sources: Annotated[list[str], typer.Argument(metavar="SOURCE...", help="Names for where the link is placed "
                                                                          "(vk_ads, site, avito): up to 64 of "
                                                                          "A-Z a-z 0-9 _ -.")],
) -> None:
    """Telegram deep links that tag the leads who come through them with SOURCE (see `leads list --source`)."""
    from salesbot import links as deep_links

    for source in sources:
        option("SOURCE", deep_links.check_source, source)
    loaded = settings()
    username = deep_links.bot_username(loaded.home)
    if username is None:
        raise SalesbotError("the bot's username is not known yet: `salesbot serve` learns it from Telegram when it "
                            f"logs in (it has never run with SALESBOT_HOME {loaded.home}); start it once, then "
                            "run this again")
    for source in sources:
        print(deep_links.deep_link(username, source))
