"""What every `salesbot` command shares: the error boundary, the common options, settings loading.

The one place errors become what the operator sees (`Boundary`): a SalesbotError is one red line and
its exit code, a command line the parser refused is one red line and exit 1, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from typer import core as typer_core
from typer.core import TyperGroup

from salesbot import logs
from salesbot.cli import render
from salesbot.cli.render import err
from salesbot.config import Settings, load_settings
from salesbot.errors import QUOTE_LIMIT, SalesbotError

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


class Boundary(TyperGroup):
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
        except BrokenPipeError:
            # `salesbot leads list | head`: the reader has what it wanted. Nothing to report; stdout is
            # pointed at /dev/null so the interpreter's last flush does not complain either.
            _silence_stdout()
            raise typer.Exit(0) from None
        except OSError as exc:  # a file the operator named: unreadable, a folder, no space
            render.error_line(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        except EOFError as exc:  # asyncio.IncompleteReadError too: a connection cut mid-read
            render.error_line(f"the connection was closed unexpectedly ({type(exc).__name__}): Telegram or "
                              "Claude unreachable? (a proxy or firewall in the way?)")
        except KeyboardInterrupt:
            err.print("[yellow]Interrupted.[/yellow]")
            raise typer.Exit(130) from None
        raise typer.Exit(1)


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of a table.")]
SQLITE_MAX = 2**63 - 1  # the largest integer SQLite stores: a larger id or limit is refused, not a traceback
LimitOpt = Annotated[int, typer.Option(min=0, max=SQLITE_MAX, metavar="N", help="At most this many (0: all).")]


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


def since_report(since: str | None, as_json: bool, query: Callable[[Any], Any],
                 draw: Callable[[Any, Any], None]) -> None:
    """A report over a period (`usage`, `follow-ups stats`): `--since` read in SALESBOT_TZ, the query,
    then one JSON document or the drawing."""
    from salesbot import runtime
    from salesbot.store import queries

    loaded = settings()
    start = option("--since", queries.parse_since, since, loaded.tz) if since else None
    runtime.open_store(loaded)
    result = query(start)
    if as_json:
        render.print_json(result)
    else:
        draw(result, start)
