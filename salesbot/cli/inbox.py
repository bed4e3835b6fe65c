"""`salesbot leads reply | takeover | release`: a person steps into a conversation from the terminal.

What staff write is stored (role `manager`) and queued in the outbox; the running `serve` delivers it
(and mirrors it into the lead's topic). A reply is also a takeover: the bot stays quiet for that lead
until `leads release`, `/bot` in the topic, or SALESBOT_TAKEOVER_HOURS without a staff message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from salesbot import runtime, texts
from salesbot.cli.common import SQLITE_MAX, settings
from salesbot.cli.records import leads_app
from salesbot.cli.render import err, out
from salesbot.errors import NotFoundError, SalesbotError

LeadId = Annotated[int, typer.Argument(metavar="ID", min=1, max=SQLITE_MAX, help="The lead's id (see `leads list`).")]


def _inbox(lead_id: int):
    from salesbot.inbox import Inbox
    from salesbot.store import leads

    loaded = settings()
    runtime.open_store(loaded)
    lead = leads.by_id(lead_id)
    if lead is None:
        raise NotFoundError(f"no lead {lead_id} (see `salesbot leads list`)")
    return loaded, lead, Inbox(None, runtime.inbox_config(loaded))


def _serve_note(loaded) -> None:
    age = runtime.serve_alive(loaded.home)
    if age is None or age > runtime.ALIVE_SECONDS:
        err.print("[yellow]salesbot serve is not running: this waits in the outbox until it starts.[/yellow]")


@leads_app.command("reply")
def leads_reply(
    lead_id: LeadId,
    text: Annotated[str, typer.Argument(metavar="TEXT", help="What to write to the lead, in Russian (the lead reads "
                                                             "it as a message from the bot's chat).")],
) -> None:
    """Write to a lead through the bot (serve delivers it) and take the conversation over: the bot stays
    quiet for this lead until `leads release`."""
    if not text.strip():
        raise SalesbotError("TEXT is empty: nothing to send")
    loaded, lead, inbox = _inbox(lead_id)
    if lead.telegram_id is None:
        raise SalesbotError(f"lead {lead_id} is a terminal lead (salesbot chat): it has no Telegram chat to write to")
    inbox.reply(lead_id, text.strip(), None)
    out.print(f"Queued for lead {lead_id}; the bot pauses for this lead until `salesbot leads release {lead_id}` "
              f"(or {loaded.takeover_hours:g} h without a staff message).")
    _serve_note(loaded)


@leads_app.command("takeover")
def leads_takeover(lead_id: LeadId) -> None:
    """Pause the bot for one lead: their messages are stored (and shown in the staff group), not answered."""
    loaded, _, inbox = _inbox(lead_id)
    inbox.take_over(lead_id, None, texts.TERMINAL_STAFF)
    out.print(f"The bot pauses for lead {lead_id} until `salesbot leads release {lead_id}` "
              f"(or {loaded.takeover_hours:g} h without a staff message).")


@leads_app.command("release")
def leads_release(lead_id: LeadId) -> None:
    """Give a lead back to the bot; a message of theirs left unanswered is answered by serve within a minute."""
    from salesbot.store import leads

    loaded, _, _ = _inbox(lead_id)
    state = leads.inbox_state(lead_id)
    if state is None or not state.paused(datetime.now(UTC)):
        out.print(f"Lead {lead_id} is not taken over: the bot already answers them.")
        return
    leads.end_takeover(lead_id, datetime.now(UTC))  # serve's periodic check gives the lead back and answers
    out.print(f"Lead {lead_id} goes back to the bot.")
    _serve_note(loaded)
