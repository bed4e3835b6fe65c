from salesbot import runtime

TELEGRAM = {"TELEGRAM_API_ID": "12345", "TELEGRAM_API_HASH": "0123456789abcdef0123456789abcdef",
            "TELEGRAM_BOT_TOKEN": "123456:AAE-secret-bot-token-value"}


def test_serve_names_every_missing_setting(run):
    result = run("serve", code=78)
    assert ("missing settings: TELEGRAM_API_ID, TELEGRAM_API_HASH, TELEGRAM_BOT_TOKEN, ANTHROPIC_API_KEY"
            in result.stderr)
    assert "Traceback" not in result.stderr


def test_serve_runs_the_bot_with_complete_settings(run, monkeypatch):
    for key, value in TELEGRAM.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-serve-test-123456")
    started = []
    monkeypatch.setattr(runtime, "serve", lambda settings: started.append(settings.home))
    run("serve")
    assert len(started) == 1


def test_serve_refuses_a_bad_api_id_and_an_empty_prompt(run, monkeypatch, tmp_path):
    for key, value in TELEGRAM.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-serve-test-123456")
    monkeypatch.setenv("TELEGRAM_API_ID", "not-a-number")
    assert "TELEGRAM_API_ID: expected a whole number" in run("serve", code=78).stderr
    monkeypatch.setenv("TELEGRAM_API_ID", "12345")
    empty = tmp_path / "prompt.md"
    empty.write_text("  \n")
    monkeypatch.setenv("SALESBOT_PROMPT_FILE", str(empty))
    result = run("serve", code=78)
    assert "SALESBOT_PROMPT_FILE" in result.stderr and "is empty" in result.stderr
    assert "secret-bot-token" not in result.stderr


def test_an_error_is_one_line_however_long(run, monkeypatch):
    monkeypatch.setenv("SALESBOT_HOME", "/tmp/" + "a-very-long-folder-name-" * 6)
    lines = run("serve", code=78).stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: missing settings")


def test_a_connection_cut_behind_a_proxy_is_one_red_line_naming_telegram(run, monkeypatch):
    import asyncio

    for key, value in TELEGRAM.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-serve-test-123456")

    def cut(settings):
        raise asyncio.IncompleteReadError(b"", 8)

    monkeypatch.setattr(runtime, "serve", cut)
    result = run("serve", code=1)
    assert result.stderr.splitlines()[-1].startswith("Error: the connection was closed unexpectedly")
    assert "Telegram" in result.stderr
    assert "Aborted" not in result.stderr and "Traceback" not in result.stderr
