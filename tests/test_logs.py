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
