"""A bad setting is reported as one line per problem naming the setting and its environment variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from monitor.commands.app import app
from monitor.settings import Settings, settings_problems


def test_problems_name_the_setting_the_variable_and_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_KAFKA__MAX_POLL_RECORDS", "abc")
    monkeypatch.setenv("MONITOR_RUN__WORKERS", "0")
    with pytest.raises(ValidationError) as caught:
        Settings()
    problems = settings_problems(caught.value)
    assert len(problems) == 2, problems
    assert problems[0].startswith("kafka.max_poll_records (MONITOR_KAFKA__MAX_POLL_RECORDS): ")
    assert "valid integer" in problems[0] and problems[0].endswith("(got 'abc')")
    assert problems[1].startswith("run.workers (MONITOR_RUN__WORKERS): ") and "greater than or equal to 1" in problems[1]


def test_a_value_that_fits_no_member_of_a_union_is_one_line_naming_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_RUN__DECODE_PROCESS", "maybe")  # true, false or auto
    with pytest.raises(ValidationError) as caught:
        Settings()
    (problem,) = settings_problems(caught.value)
    assert problem.startswith("run.decode_process (MONITOR_RUN__DECODE_PROCESS): ")
    assert "valid boolean" in problem and "'auto'" in problem and problem.endswith("(got 'maybe')")


def test_a_secret_value_is_not_repeated() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(db={"url": 12345})
    (problem,) = settings_problems(caught.value)
    assert problem.startswith("db.url (MONITOR_DB__URL): ") and "12345" not in problem


@pytest.mark.parametrize(("given", "level"), [("debug", "DEBUG"), ("Warning", "WARNING"), ("ERROR", "ERROR")])
def test_log_level_accepts_any_case(monkeypatch: pytest.MonkeyPatch, given: str, level: str) -> None:
    monkeypatch.setenv("MONITOR_LOG_LEVEL", given)
    assert Settings().log_level == level


def test_an_unknown_log_level_is_a_validation_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_LOG_LEVEL", "verbose")
    with pytest.raises(ValidationError) as caught:
        Settings()
    (problem,) = settings_problems(caught.value)
    assert problem.startswith("log_level (MONITOR_LOG_LEVEL): ") and "'INFO'" in problem and "'verbose'" in problem


@pytest.mark.parametrize("env", [
    {"MONITOR_KAFKA__MAX_POLL_RECORDS": "abc"},
    {"MONITOR_LOG_LEVEL": "verbose"},
    {"MONITOR_RUN__OVERLAP": "sometimes", "MONITOR_RUN__DECODE_PROCESS": "2"},
    {"MONITOR_KAFKA__MAX_POLL_RECORDS": "abc", "MONITOR_KAFKA__AUTO_OFFSET_RESET": "never"},
])
def test_the_cli_prints_one_line_per_problem_and_exits_2(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["config", "show"], env=env)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == len(env) and all(line.startswith("error: ") for line in lines), lines
    assert {name for name in env if any(f"({name})" in line for line in lines)} == set(env)


def test_an_unparsable_list_setting_is_one_line_too() -> None:
    result = CliRunner().invoke(app, ["config", "show"], env={"MONITOR_API__CORS_ORIGINS": "not json"})
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and '"api"' in lines[0]
