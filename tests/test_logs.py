import logging

import pytest

from salesbot import logs


@pytest.fixture(autouse=True)
def logging_restored():
    """logs.configure changes the root logger for the whole process: put it back after each test."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, set(logs._secrets),
             {name: logging.getLogger(name).level for name in ("salesbot", *logs.QUIET_LIBRARIES)})
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    logs._secrets.clear()
    logs._secrets.update(saved[2])
    for name, level in saved[3].items():
        logging.getLogger(name).setLevel(level)


def test_secrets_are_masked_in_every_log_line(capsys):
    logs.configure(verbose=True)
    logs.add_secrets(["sk-ant-supersecret-123456", "short"])
    log = logging.getLogger("salesbot.test")
    log.warning("calling with key %s", "sk-ant-supersecret-123456")
    try:
        raise RuntimeError("token sk-ant-supersecret-123456 rejected")
    except RuntimeError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert "sk-ant-supersecret-123456" not in err
    assert err.count("***") == 3  # message, exception text, traceback line
    assert "short" not in logs._secrets  # too short to mask safely


def test_logs_go_to_stderr_not_stdout(capsys):
    logs.configure()
    logging.getLogger("salesbot.test").info("hello operator")
    captured = capsys.readouterr()
    assert "hello operator" in captured.err and captured.out == ""


def test_the_first_log_lines_are_dated_in_the_business_zone(salesbot_home):
    """The unknown-setting warning is written while the settings are read, before any command runs:
    on a server in UTC it must still carry SALESBOT_TZ's offset."""
    import os
    import re
    import subprocess
    import sys

    salesbot_home.mkdir(parents=True, exist_ok=True)
    (salesbot_home / ".env").write_text("SALESBOT_TZ=Asia/Tokyo\nSALESBOT_TIMEZONE=Europe/Paris\n")
    result = subprocess.run([sys.executable, "-m", "salesbot", "leads", "list"], capture_output=True, text=True,
                            env={**os.environ, "TZ": "UTC", "SALESBOT_HOME": str(salesbot_home)})
    warning = next(line for line in result.stderr.splitlines() if "unknown setting SALESBOT_TIMEZONE" in line)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+0900 WARNING ", warning), warning
