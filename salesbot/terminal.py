"""`salesbot chat`: the dialogue engine in a terminal, the operator playing the lead.

Bot messages are printed; buttons become numbered choices, and typing a choice's number or its
text presses it. With stdin not a terminal, each line is one lead message or choice and the bot's
answers go to stdout (notes for managers go to stderr), so a script can run a whole conversation.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Iterator
from typing import IO

from rich.console import Console
from rich.markup import escape

from salesbot import texts
from salesbot.dialogue import Dialogue, Incoming, Sender
from salesbot.logs import visible
from salesbot.store import leads, outbox
from salesbot.store.leads import LeadState
from salesbot.transport import Button, Keyboard, Peer


class TerminalTransport:
    def __init__(self, out: Console, notes: Console, interactive: bool) -> None:
        self.out = out
        self.notes = notes
        self.interactive = interactive
        self.choices: list[Button] = []

    async def send(self, peer: Peer, text: str, buttons: Keyboard | None, random_id: int) -> None:
        if peer.lead_id is None:  # a manager: in the terminal there is nobody to tell
            self.notes.print(f"[dim](to manager {peer.user_id})\n{escape(text)}[/dim]")
            return
        self.show(text, buttons)

    def show(self, text: str, buttons: Keyboard | None) -> None:
        """A bot message and its buttons as numbered choices (the last ones shown are what a number presses)."""
        self._print(text)
        self.choices = [button for row in buttons or [] for button in row]
        for number, button in enumerate(self.choices, start=1):
            if self.interactive:
                self.out.print(f"  [cyan]{number})[/cyan] {escape(button.label)}")
            else:
                self.out.print(f"  {number}) {button.label}", markup=False, highlight=False, soft_wrap=True)

    async def remove_buttons(self, peer: Peer, message_id: int) -> None:
        pass  # the numbered choices are printed once; only the last ones can be typed

    def _print(self, text: str) -> None:
        text = visible(text, lines=True)  # a lead's name is in the greeting: no terminal escapes from it
        if self.interactive:
            self.out.print(f"[bold magenta]бот ›[/bold magenta] {escape(text)}")
        else:
            self.out.print(text, markup=False, highlight=False, soft_wrap=True)

    def press(self, line: str) -> Button | None:
        """The choice a line names: its number, or its label (case and spaces aside)."""
        wanted = " ".join(line.split()).casefold()
        if wanted.isdigit() and 1 <= int(wanted) <= len(self.choices):
            return self.choices[int(wanted) - 1]
        return next((b for b in self.choices if " ".join(b.label.split()).casefold() == wanted), None)


def chat_lead(name: str | None) -> LeadState:
    """The terminal lead called `name` (continuing its conversation), or a new one."""
    existing = leads.chat_lead_named(name) if name else None
    return existing or leads.create_chat_lead(name or texts.CHAT_GUEST)


def resume(transport: TerminalTransport, lead: LeadState) -> bool:
    """A continued conversation: the bot's last message with buttons the lead has not pressed yet is
    shown again, so its numbers press them as they would have. True when there was one."""
    shown = outbox.last_keyboard(lead.id)
    if shown is not None:
        transport.show(*shown)
    return shown is not None


async def run_chat(engine: Dialogue, transport: TerminalTransport, lead: LeadState, lines: Iterable[str]) -> int:
    """Feed lines to the engine as the lead; return how many were handled."""
    handled = 0
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        button = transport.press(line)
        incoming = Incoming(Sender(lead_id=lead.id), button=button.data) if button else \
            Incoming(Sender(lead_id=lead.id), text=line)
        if button is not None and engine.press(incoming) != "new":
            continue  # the same choice again: already acted on
        await engine.handle(incoming)
        handled += 1
    return handled


def prompt_lines(console: Console):
    """Lines typed at a rich prompt until Ctrl-D or Ctrl-C. Ctrl-C quits at once: while the prompt
    waits, SIGINT raises here (asyncio's own handler would only cancel the task after the read)."""
    while True:
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            line = console.input("[bold green]вы ›[/bold green] ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        finally:
            signal.signal(signal.SIGINT, previous)
        yield line


def decoded_lines(stream: IO[str]) -> Iterator[str]:
    """Piped lines, bytes that are not UTF-8 read with replacement (U+FFFD) rather than a traceback:
    the message is kept and answered."""
    raw = getattr(stream, "buffer", None)
    if raw is None:
        yield from stream
        return
    for line in raw:
        yield line.decode("utf-8", errors="replace")
