"""The cron line and the systemd unit as shipped: one .env reader, and cron mails only a failing sweep.

`run_cron_line` does what cron does with a crontab line (cronie, src/do_command.c and
src/env.c): the job runs as `$SHELL -c command` with HOME, LOGNAME, SHELL and PATH
(/usr/bin:/bin) plus the crontab's own NAME=value lines; everything it writes to stdout and stderr
is collected, and when there is any and MAILTO is not empty it is piped to `sendmail` with MAILTO as
the recipient. A fake `sendmail` on PATH records what would have been mailed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CRONTAB = ROOT / "crontab.example"
UNIT = ROOT / "scripts" / "salesbot.service"


def parse_crontab(text: str) -> tuple[dict[str, str], list[str]]:
    env, jobs = {}, []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            name, value = line.split("=", 1)
            env[name.strip()] = value.strip()
        else:
            jobs.append(line.split(None, 5)[5])  # five time fields, then the command
    return env, jobs


@pytest.fixture
def cron(tmp_path):
    """The shipped crontab with its paths moved into the test's folders, and a fake sendmail."""
    home = tmp_path / "data"
    home.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mail = tmp_path / "mail.txt"
    sendmail = bin_dir / "sendmail"
    sendmail.write_text(f"#!/bin/sh\n{{ echo \"To: $*\"; cat; }} >> {mail}\n")
    salesbot = bin_dir / "salesbot"
    salesbot.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m salesbot \"$@\"\n")
    for script in (sendmail, salesbot):
        script.chmod(0o755)
    env, jobs = parse_crontab(CRONTAB.read_text())
    assert len(jobs) == 1 and env["MAILTO"] and env["SALESBOT_HOME"] == "/home/salesbot/data"
    command = jobs[0].replace("/home/salesbot/.venv/bin/salesbot", str(salesbot)).replace(
        "/home/salesbot/data", str(home))
    env["SALESBOT_HOME"] = str(home)

    def run_cron_line() -> str | None:
        job_env = {"HOME": str(tmp_path), "LOGNAME": "salesbot", "PATH": f"{bin_dir}:/usr/bin:/bin",
                   "SHELL": "/bin/sh", **env}
        done = subprocess.run([job_env["SHELL"], "-c", command], env=job_env, cwd=tmp_path, capture_output=True,
                              timeout=60)
        output = done.stdout + done.stderr
        if output and job_env.get("MAILTO"):
            subprocess.run(["sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", job_env["MAILTO"]],
                           input=output, env=job_env, check=True, timeout=10)
        return mail.read_text() if mail.exists() else None

    return home, run_cron_line


def test_a_quiet_sweep_sends_no_mail_and_logs_dated_lines(cron):
    home, run_cron_line = cron
    (home / ".env").write_text("SALESBOT_TZ=Asia/Yekaterinburg  # the business's zone\n", encoding="utf-8")
    (home / "serve.heartbeat").touch()  # serve runs
    assert run_cron_line() is None
    log = (home / "follow-ups.log").read_text()
    assert log.strip(), "the run wrote nothing to its log"
    for line in log.splitlines():
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+0500 ", line), line


def test_a_failing_sweep_reaches_mailto(cron):
    home, run_cron_line = cron
    mail = run_cron_line()  # no serve: the sweep refuses and exits 1
    assert mail is not None and "operator@example.com" in mail
    assert "salesbot serve is not running" in mail
    assert "salesbot serve is not running" in (home / "follow-ups.log").read_text()
    assert "Traceback" not in mail


def test_a_bad_setting_in_the_env_file_is_mailed_too(cron):
    home, run_cron_line = cron
    (home / ".env").write_text("SALESBOT_SEND_WINDOW=20:00-10:00\n", encoding="utf-8")
    (home / "serve.heartbeat").touch()
    mail = run_cron_line()
    assert mail is not None and "SALESBOT_SEND_WINDOW: the range must end after it starts" in mail


def test_the_unit_and_the_cron_line_only_say_where_the_settings_are():
    unit = UNIT.read_text()
    crontab = CRONTAB.read_text()
    active = [line for line in unit.splitlines() if line and not line.startswith("#")]
    assert not any(line.startswith("EnvironmentFile") for line in active)
    assert "Environment=SALESBOT_HOME=/home/salesbot/data" in active
    assert "ExecStart=/home/salesbot/.venv/bin/salesbot serve" in active
    assert "RestartPreventExitStatus=3 78" in active  # Telegram refusing the bot; a wrong setting
    _, jobs = parse_crontab(crontab)
    assert all(not re.search(r"(^|[;&|]\s*)(\.|source|set -a)\s", job) for job in jobs)  # no shell sourcing
    assert shlex.split(jobs[0])[1:4] == ["follow-ups", "run", "--log"]


@pytest.mark.skipif(not os.path.exists("/bin/sh"), reason="needs a POSIX shell")
def test_the_crontab_parses_like_cron():
    env, jobs = parse_crontab(CRONTAB.read_text())
    assert env["SHELL"] == "/bin/sh" and len(jobs) == 1
