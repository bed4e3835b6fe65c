"""Shared fixtures: every test gets its own SALESBOT_HOME and a clean environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from salesbot import cli
from salesbot.config import OPTIONS


@pytest.fixture(autouse=True)
def salesbot_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data folder and working directory; no real credentials leak into tests."""
    for name in list(os.environ):
        if name.startswith(("SALESBOT_", "TELEGRAM_", "ANTHROPIC_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("SALESBOT_HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("COLUMNS", "160")
    return home


@pytest.fixture
def db(salesbot_home: Path):
    """The migrated store in the test's home, models bound to it."""
    from salesbot.store import open_database

    database = open_database(salesbot_home / "salesbot.db")
    yield database
    database.close()


class Cli:
    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, code: int | None = 0):
        result = self.runner.invoke(cli.app, list(args), input=input, prog_name="salesbot")
        if code is not None:
            assert result.exit_code == code, (
                f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{result.exception!r}"
            )
        return result


@pytest.fixture
def run() -> Cli:
    return Cli()


@pytest.fixture
def option_names() -> list[str]:
    return [o.env for o in OPTIONS]
