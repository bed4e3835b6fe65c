from pathlib import Path

import pytest

from salesbot.config import ensure_home, load_settings, parse_env_file
from salesbot.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_env_file_forms(tmp_path):
    env = write(tmp_path / ".env", "# comment\n\nexport A=1\nB = two words  # note\nC='quoted # kept'\nD=\"x\"\nE=\n")
    assert parse_env_file(env) == {"A": "1", "B": "two words", "C": "quoted # kept", "D": "x", "E": ""}


@pytest.mark.parametrize("line, says", [
    ("just some text", "line 2: expected KEY=value"),
    ("1BAD=x", "line 2: expected KEY=value"),
    ("KEY='unclosed", "line 2: unclosed quote in the value of KEY"),
])
def test_malformed_env_line_names_file_and_line(tmp_path, line, says):
    env = write(tmp_path / ".env", f"OK=1\n{line}\n")
    with pytest.raises(ConfigError, match=says) as caught:
        parse_env_file(env)
    assert str(env) in str(caught.value)


def test_malformed_line_does_not_echo_a_pasted_secret(tmp_path):
    env = write(tmp_path / ".env", "123456:AAE-very-secret-bot-token-value\n")
    with pytest.raises(ConfigError) as caught:
        parse_env_file(env)
    assert "very-secret-bot-token" not in str(caught.value)


def test_precedence_environment_then_cwd_then_home(tmp_path):
    home = tmp_path / "home"
    write(home / ".env", "SALESBOT_TZ=Asia/Tokyo\nSALESBOT_MODEL=from-home\nSALESBOT_FAST_MODEL=fast-home\n")
    cwd = tmp_path / "cwd"
    write(cwd / ".env", "SALESBOT_MODEL=from-cwd\n")
    settings = load_settings({"SALESBOT_HOME": str(home), "SALESBOT_FAST_MODEL": "fast-env"}, cwd)
    assert settings.model == "from-cwd"
    assert settings.fast_model == "fast-env"
    assert settings.tz.key == "Asia/Tokyo"
    assert settings.db_path == home / "salesbot.db"


def test_an_empty_value_does_not_hide_one_set_further_down(tmp_path):
    """`cp .env.example .env` leaves `KEY=` lines; an empty variable in a unit file does the same."""
    home = tmp_path / "home"
    write(home / ".env", "TELEGRAM_BOT_TOKEN=123:home-token\nSALESBOT_MODEL=from-home\nSALESBOT_TZ=Asia/Tokyo\n")
    cwd = tmp_path / "cwd"
    write(cwd / ".env", "TELEGRAM_BOT_TOKEN=\nSALESBOT_MODEL=  \n")
    settings = load_settings({"SALESBOT_HOME": str(home), "SALESBOT_TZ": ""}, cwd)
    assert settings.model == "from-home"
    assert settings.tz.key == "Asia/Tokyo"
    assert settings.raw["TELEGRAM_BOT_TOKEN"] == "123:home-token"
    assert settings.sources["TELEGRAM_BOT_TOKEN"] == str(home / ".env")


def test_home_can_come_from_the_cwd_env_file(tmp_path):
    cwd = tmp_path / "cwd"
    write(cwd / ".env", f"SALESBOT_HOME={tmp_path / 'data'}\nSALESBOT_DB={tmp_path / 'x.db'}\n")
    settings = load_settings({}, cwd)
    assert settings.home == tmp_path / "data"
    assert settings.db_path == tmp_path / "x.db"


def test_default_home_is_the_platform_app_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    settings = load_settings({}, tmp_path)
    assert settings.home.name == "salesbot"
    assert str(settings.home).startswith(str(tmp_path))


def test_require_names_every_missing_variable_at_once(tmp_path):
    settings = load_settings({"SALESBOT_HOME": str(tmp_path), "TELEGRAM_API_ID": "12345"}, tmp_path)
    with pytest.raises(ConfigError) as caught:
        settings.require("TELEGRAM_API_ID", "TELEGRAM_API_HASH", "TELEGRAM_BOT_TOKEN", "ANTHROPIC_API_KEY")
    message = str(caught.value)
    for name in ("TELEGRAM_API_HASH", "TELEGRAM_BOT_TOKEN", "ANTHROPIC_API_KEY"):
        assert name in message
    assert "TELEGRAM_API_ID" not in message


@pytest.mark.parametrize("env, value, says", [
    ("SALESBOT_TZ", "Mars/Olympus", "unknown time zone"),
    ("SALESBOT_WORK_HOURS", "19:00-10:00", "must end after it starts"),
    ("SALESBOT_WORK_HOURS", "25:00-26:00", "expected a time like 10:00"),
    ("SALESBOT_WORK_DAYS", "mon-funday", "unknown day"),
    ("SALESBOT_SLOT_MINUTES", "abc", "expected a whole number"),
    ("SALESBOT_MANAGER_IDS", "12,@boss", "numeric Telegram user ids"),
    ("TELEGRAM_API_ID", "abc", "expected a whole number"),
])
def test_malformed_values_are_named(tmp_path, env, value, says):
    settings = load_settings({"SALESBOT_HOME": str(tmp_path), env: value}, tmp_path)
    problems = settings.validate()
    assert len(problems) == 1 and says in problems[0] and env in problems[0]


def test_typed_values(tmp_path):
    settings = load_settings({
        "SALESBOT_HOME": str(tmp_path),
        "SALESBOT_WORK_DAYS": "mon,wed-fri",
        "SALESBOT_MANAGER_IDS": "1, 22 333",
        "SALESBOT_SEND_WINDOW": "09:30-21:00",
    }, tmp_path)
    assert settings.work_days == frozenset({0, 2, 3, 4})
    assert settings.manager_ids == (1, 22, 333)
    start, end = settings.send_window
    assert (start.hour, start.minute, end.hour) == (9, 30, 21)


def test_secrets_stay_out_of_repr(tmp_path):
    settings = load_settings({"SALESBOT_HOME": str(tmp_path), "ANTHROPIC_API_KEY": "sk-ant-secret-value"}, tmp_path)
    assert "sk-ant-secret-value" not in repr(settings)
    assert settings.secrets() == ["sk-ant-secret-value"]


def test_home_under_a_file_is_a_clear_error(tmp_path):
    blocker = write(tmp_path / "file", "x")
    settings = load_settings({"SALESBOT_HOME": str(blocker / "home")}, tmp_path)
    with pytest.raises(ConfigError, match="cannot create SALESBOT_HOME"):
        ensure_home(settings)


def test_the_data_folder_is_private(tmp_path):
    settings = load_settings({"SALESBOT_HOME": str(tmp_path / "new-home")}, tmp_path)
    home = ensure_home(settings)
    assert home.is_dir() and (home.stat().st_mode & 0o777) == 0o700


# --- issue 15: one .env reader, one syntax --------------------------------------------------------


def test_a_quoted_value_may_carry_a_comment_and_crlf_and_a_bom_are_fine(tmp_path):
    env = tmp_path / ".env"
    env.write_bytes("\ufeffA=\"va#lue\" # the comment\r\nB='x y'   # note\r\nC = plain # note\r\nD=#only\r\n"
                    .encode())
    assert parse_env_file(env) == {"A": "va#lue", "B": "x y", "C": "plain", "D": ""}


def test_text_after_a_closing_quote_is_an_error(tmp_path):
    env = write(tmp_path / ".env", 'A="one" two\n')
    with pytest.raises(ConfigError, match="line 1: text after the closing quote in the value of A"):
        parse_env_file(env)


def test_an_env_file_that_is_not_utf8_is_one_clear_error_naming_it(tmp_path):
    env = tmp_path / ".env"
    env.write_bytes("A=1\nSALESBOT_TZ=Европа\n".encode("cp1251"))
    with pytest.raises(ConfigError) as caught:
        parse_env_file(env)
    assert str(env) in str(caught.value) and "not UTF-8" in str(caught.value) and "line 2" in str(caught.value)


@pytest.mark.parametrize("line", ["123456:AAE-very-secret-bot-token-value", "sk-ant-api03-secret=tail-of-it",
                                  "TOKEN='sk-ant-secret-unclosed", "TOKEN='sk-ant-secret' trailing-secret"])
def test_no_error_echoes_any_part_of_the_line(tmp_path, line):
    env = write(tmp_path / ".env", f"{line}\n")
    with pytest.raises(ConfigError) as caught:
        parse_env_file(env)
    message = str(caught.value).replace(str(env), "")
    for piece in ("123456", "AAE", "sk-ant", "secret", "tail", "trailing"):
        assert piece not in message


def test_missing_settings_name_both_env_places(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    settings = load_settings({"SALESBOT_HOME": str(tmp_path / "home")}, cwd)
    with pytest.raises(ConfigError) as caught:
        settings.require("ANTHROPIC_API_KEY")
    assert str(cwd / ".env") in str(caught.value) and str(tmp_path / "home" / ".env") in str(caught.value)


def test_an_unknown_salesbot_name_warns_with_the_closest_known_one(tmp_path, caplog):
    write(tmp_path / ".env", "SALESBOT_WORK_HOUR=10:00-18:00\nOTHER_TOOL=x\n")
    with caplog.at_level("WARNING"):
        load_settings({"SALESBOT_HOME": str(tmp_path), "SALESBOT_TIMEZONE": "UTC"}, tmp_path)
    text = caplog.text
    assert "SALESBOT_WORK_HOUR" in text and "did you mean SALESBOT_WORK_HOURS?" in text
    assert "SALESBOT_TIMEZONE" in text and "OTHER_TOOL" not in text


def test_relative_paths_are_under_salesbot_home_and_a_relative_home_is_refused(tmp_path):
    settings = load_settings({"SALESBOT_HOME": str(tmp_path / "data"), "SALESBOT_DB": "db/sales.db",
                              "SALESBOT_PROMPT_FILE": "prompt.md"}, tmp_path / "elsewhere")
    assert settings.db_path == tmp_path / "data" / "db" / "sales.db"
    assert settings.prompt_file == tmp_path / "data" / "prompt.md"
    with pytest.raises(ConfigError, match="SALESBOT_HOME must be an absolute path"):
        load_settings({"SALESBOT_HOME": "data"}, tmp_path)


def test_the_prompt_must_be_a_regular_file_under_the_cap(tmp_path, monkeypatch):
    import os

    from salesbot import config

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # reading it would hang
    for path, says in ((fifo, "is not a regular file"), (Path("/dev/zero"), "is not a regular file"),
                       (tmp_path, "is not a regular file")):
        settings = load_settings({"SALESBOT_HOME": str(tmp_path), "SALESBOT_PROMPT_FILE": str(path)}, tmp_path)
        with pytest.raises(ConfigError, match=says):
            config.load_prompt(settings)
    big = write(tmp_path / "big.md", "я" * 600_000)  # 1.2 MB in UTF-8
    settings = load_settings({"SALESBOT_HOME": str(tmp_path), "SALESBOT_PROMPT_FILE": str(big)}, tmp_path)
    with pytest.raises(ConfigError, match="more than the 1,000,000 allowed"):
        config.load_prompt(settings)


def test_a_bad_setting_breaks_only_the_commands_that_use_it(run, monkeypatch, db):
    monkeypatch.setenv("SALESBOT_WORK_HOURS", "25:00-99:00")
    run("leads", "list")
    run("meetings", "list")
    run("usage")
    monkeypatch.setenv("SALESBOT_TZ", "Mars/Olympus")
    assert "SALESBOT_TZ: unknown time zone" in run("leads", "list", code=1).stderr


def test_a_home_this_user_may_not_look_into_is_named(tmp_path, monkeypatch):
    from pathlib import Path

    real = Path.is_file

    def guarded(self):
        if self.parent.name == "locked":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "is_file", guarded)
    with pytest.raises(ConfigError, match=r"cannot look for .*locked/\.env: permission denied"):
        load_settings({"SALESBOT_HOME": str(tmp_path / "locked")}, tmp_path)


@pytest.mark.parametrize("name, value, expected", [
    ("SALESBOT_WORK_DAYS", "пн-пт", frozenset(range(5))),
    ("SALESBOT_WORK_DAYS", "Пн–Пт", frozenset(range(5))),  # en dash, capitals
    ("SALESBOT_WORK_DAYS", "понедельник - пятница", frozenset(range(5))),
    ("SALESBOT_WORK_DAYS", "пн, ср, пт", frozenset({0, 2, 4})),
    ("SALESBOT_WORK_HOURS", "10:00–19:00", "10:00-19:00"),  # what a phone or a word processor types
    ("SALESBOT_WORK_HOURS", "10:00 — 19:00", "10:00-19:00"),
    ("SALESBOT_WORK_HOURS", "пн-чт 10:00–19:00; пт 10:00−16:00", "mon-thu 10:00-19:00; fri 10:00-16:00"),
    ("SALESBOT_BREAKS", "13:00–14:00", "13:00-14:00"),
    ("SALESBOT_DAYS_OFF", "2026-01-10–2026-01-18", "2026-01-10..2026-01-18"),
])
def test_russian_day_names_and_typographic_dashes_are_read(tmp_path, name, value, expected):
    settings = load_settings({"SALESBOT_HOME": str(tmp_path), name: value}, tmp_path)
    if isinstance(expected, str):  # the same as the plain ASCII form
        expected = load_settings({"SALESBOT_HOME": str(tmp_path), name: expected}, tmp_path).typed(name)
    assert settings.typed(name) == expected


@pytest.mark.parametrize("value, staff_chat", [("-1001987654321", -1001987654321), ("", None)])
def test_the_staff_chat_is_a_supergroup_id(tmp_path, value, staff_chat):
    settings = load_settings({"SALESBOT_HOME": str(tmp_path), "SALESBOT_STAFF_CHAT": value}, tmp_path)
    assert settings.staff_chat == staff_chat
    assert settings.takeover_hours == 12


@pytest.mark.parametrize("value", ["1987654321", "-1987654321", "@sales_team", "-100"])
def test_a_staff_chat_that_is_not_a_supergroup_id_says_how_to_find_one(tmp_path, value):
    settings = load_settings({"SALESBOT_HOME": str(tmp_path), "SALESBOT_STAFF_CHAT": value}, tmp_path)
    with pytest.raises(ConfigError, match=r"starts with -100.*README"):
        _ = settings.staff_chat
