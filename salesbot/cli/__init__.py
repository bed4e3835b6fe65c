"""The command line: Typer commands (commands.py, records.py, followups.py), rendering (render.py),
the doctor, the .ics export, and one error boundary (common.py). The top layer: nothing imports it."""

from salesbot.cli.commands import app, main

__all__ = ["app", "main"]
