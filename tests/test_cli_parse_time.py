import json

from scripts.fake_claude import Error, Reply

NOW = ["--now", "2025-12-23T14:05"]


def test_human_output(run):
    result = run("parse-time", "в среду в 11:00", *NOW)
    assert result.stdout.strip() == "среда, 24 декабря 2025, 11:00 (Europe/Moscow)"


def test_json_output(run):
    data = json.loads(run("parse-time", "завтра в 15:00", *NOW, "--json").stdout)
    assert data == {"text": "завтра в 15:00", "datetime": "2025-12-24T15:00:00+03:00", "error": None,
                    "source": "rules"}


def test_not_understood_exits_1_with_the_reason(run):
    result = run("parse-time", "завтра", *NOW, code=1)
    assert "no time given" in result.stderr and result.stdout == ""
    data = json.loads(run("parse-time", "абракадабра", *NOW, "--json", "--no-llm", code=1).stdout)
    assert data == {"text": "абракадабра", "datetime": None, "error": "not understood", "source": None}


def test_part_of_the_day_is_no_time_given_in_the_same_json_shape(run):
    result = run("parse-time", "завтра утром", *NOW, code=1)
    assert "no time given" in result.stderr and result.stdout == ""
    lines = "в пятницу после обеда\nвечером\nв выходные в 11\n"
    output = run("parse-time", "-", *NOW, "--json", "--no-llm", input=lines).stdout
    answers = [json.loads(line) for line in output.splitlines()]
    assert [sorted(a) for a in answers] == [["datetime", "error", "source", "text"]] * 3
    assert [(a["datetime"], a["error"]) for a in answers] == [
        (None, "no time given"), (None, "no time given"), (None, "not understood")]


def test_batch_from_stdin_answers_each_line_in_order(run):
    lines = "завтра в 15:00\nабракадабра\nвчера в 10\nв пт в 9 утра\n"
    result = run("parse-time", "-", *NOW, "--json", "--no-llm", input=lines)
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["text"] for a in answers] == lines.splitlines()
    assert [a["datetime"] for a in answers] == ["2025-12-24T15:00:00+03:00", None, None, "2025-12-26T09:00:00+03:00"]
    assert answers[2]["error"] == "that time has passed"
    human = run("parse-time", "-", *NOW, "--no-llm", input=lines).stdout.splitlines()
    assert human[0].startswith("среда, 24 декабря 2025, 15:00") and human[1] == "? not understood"


def test_time_zone_option(run):
    data = json.loads(run("parse-time", "в 15", "--now", "2025-12-23T11:05:00+00:00", "--tz",
                          "America/New_York", "--json").stdout)
    assert data["datetime"] == "2025-12-23T15:00:00-05:00"


def test_bad_now_and_zone_are_clear_errors(run):
    assert "--now: expected an ISO 8601 time" in run("parse-time", "в 15", "--now", "вчера", code=1).stderr
    assert "--tz: unknown time zone 'Moscow'" in run("parse-time", "в 15", "--tz", "Moscow", code=1).stderr


def test_claude_fallback_through_the_cli(run, fake_api, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-cli-test-key-123456")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_api.url)
    fake_api.enqueue(Reply(json.dumps({"kind": "datetime", "date": "2026-01-12", "time": "11:00"})))
    data = json.loads(run("parse-time", "в первый понедельник после праздников в 11", *NOW, "--json").stdout)
    assert data["datetime"] == "2026-01-12T11:00:00+03:00" and data["source"] == "claude"
    usage = json.loads(run("usage", "--json").stdout)
    assert usage["rows"][0]["purpose"] == "parse_time" and usage["rows"][0]["model"] == "claude-haiku-5-5"

    fake_api.enqueue(Error(400, "invalid_request_error"))
    result = run("parse-time", "в первый понедельник после праздников в 11", *NOW, "--json", code=1)
    assert json.loads(result.stdout)["error"] == "not understood"
    assert "sk-ant-cli-test-key-123456" not in result.stdout + result.stderr

    result = run("parse-time", "когда-нибудь потом", *NOW, "--no-llm", code=1)
    assert "not understood" in result.stderr and result.stdout == ""
    assert len(fake_api.requests) == 2  # --no-llm never asks
