"""Shared fixtures: every test gets its own SALESBOT_HOME and a clean environment."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import freezegun
import pytest
from typer.testing import CliRunner

from salesbot import cli
from salesbot.config import OPTIONS

# freezegun would also freeze pytest's own timer (`--durations` then reports 1.7e9 s).
freezegun.configure(extend_ignore_list=["_pytest"])


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


@pytest.fixture(autouse=True)
def packaged_texts():
    """`serve`, `chat` and the sweep set the process's texts (SALESBOT_TEXTS_FILE); each test starts
    from the packaged ones."""
    from salesbot import texts

    texts.configure()
    yield
    texts.configure()


@pytest.fixture
def frozen(db):
    """The clock frozen at NOW (tests/engine_fakes.py); asyncio keeps its real time."""
    from freezegun import freeze_time

    from tests.engine_fakes import NOW

    with freeze_time(NOW, real_asyncio=True) as clock:
        yield clock


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


@pytest.fixture(autouse=True, scope="session")
def _pydantic_models_built_before_any_freeze():
    """freezegun swaps datetime.datetime; anthropic's pydantic models must be built before that."""
    from anthropic.types import Message

    Message.model_validate({"id": "m", "type": "message", "role": "assistant", "model": "x", "content": [],
                            "stop_reason": "end_turn", "stop_sequence": None,
                            "usage": {"input_tokens": 1, "output_tokens": 1}})


class FakeClock:
    """Stands in for time: the wait between attempts (recorded, not slept), the client's deadline
    clock, and the clock the stand-in API stamps requests with and ages its cache on, so 'requests
    a second apart' and 'the cache expired after 5 minutes' are measurable without sleeping."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake_api(clock):
    from scripts.fake_claude import FakeClaude

    with FakeClaude(clock=clock) as api:
        yield api


TEST_KEY = "sk-ant-test-0123456789abcdef"


class Loop:
    """One event loop for the whole test, as in the real program (pooled connections belong to it)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro):
        return self.loop.run_until_complete(coro)


@pytest.fixture
def aio():
    loop = Loop()
    yield loop
    pending = asyncio.all_tasks(loop.loop)  # retries the outbox scheduled, and the like
    if pending:
        for task in pending:
            task.cancel()

        async def settle():
            await asyncio.gather(*pending, return_exceptions=True)

        loop.loop.run_until_complete(settle())
    loop.loop.run_until_complete(loop.loop.shutdown_asyncgens())
    loop.loop.close()


def make_claude(api, clock, **overrides):
    from salesbot.claude.client import ClaudeClient

    params = {"api_key": TEST_KEY, "base_url": api.url, "model": "claude-sonnet-5-5",
              "fast_model": "claude-haiku-5-5", "timeout": 5, "sleep": clock.sleep, "clock": clock, **overrides}
    return ClaudeClient(**params)


@pytest.fixture
def claude(fake_api, clock, db, aio):
    """The real client (real SDK, real HTTP) against the stand-in; waits recorded, not slept."""
    client = make_claude(fake_api, clock)
    client.run = aio.run  # tests drive coroutines on the test's loop: claude.run(claude.complete(...))
    yield client
    aio.run(client.close())


@pytest.fixture
def telegram_server(monkeypatch):
    """The in-process Telegram (tests/fake_telegram.py), wired in: salesbot's and any test's
    TelegramClient talk to it; Telethon's sleeps run on `telegram_server.clock`."""
    from salesbot import telegram
    from tests.fake_telegram import FakeTelegram

    monkeypatch.setattr(telegram, "DRAIN_SECONDS", 0.2)  # serve's 20 s of a real shutdown, in real time
    server = FakeTelegram()
    server.install(monkeypatch)
    yield server
    assert server.unmodelled == [], f"requests the fake Telegram does not model: {server.unmodelled}"


@pytest.fixture
def bot_settings(salesbot_home, monkeypatch, db):
    """Real settings for `serve` against the fake Telegram (its api id, hash and bot token)."""
    from salesbot.config import load_settings
    from tests.fake_telegram import API_HASH, API_ID, BOT_TOKEN

    monkeypatch.setenv("TELEGRAM_API_ID", str(API_ID))
    monkeypatch.setenv("TELEGRAM_API_HASH", API_HASH)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_KEY)
    return load_settings()
