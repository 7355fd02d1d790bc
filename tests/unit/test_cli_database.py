"""How CLI commands open the database: the schema policy (`db.auto_migrate`) and missing SQLite files.

Every command that uses the database goes through `require_current_schema`: an outdated schema is refused
unless MONITOR_DB__AUTO_MIGRATE=true, an empty/new SQLite database is initialised. Read-only commands refuse
a SQLite file that does not exist instead of creating an empty database in the current directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.commands.app import app
from monitor.store.database import BASELINE_REVISION, head_revision, make_engine, schema_status, sqlite_file, upgrade

READ_ONLY = [["alerts"], ["apikey", "list"], ["models", "list"], ["models", "show"]]
# Commands that write (or serve): they create a new SQLite database but refuse an outdated schema.
WRITERS = [["serve", "--port", "9"], ["apikey", "create", "ops"], ["apikey", "revoke", "1"], ["retrain"],
           ["scheduler", "--max-ticks", "1"], ["models", "promote", "v1"], ["models", "rollback"],
           ["models", "import", "missing.pt"]]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty directory with the default (relative) database URL and an unreachable broker."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MONITOR_DB__URL", raising=False)
    monkeypatch.delenv("MONITOR_DB__AUTO_MIGRATE", raising=False)
    monkeypatch.setenv("MONITOR_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9")
    return tmp_path


def _outdated(path: Path) -> None:
    engine = make_engine(f"sqlite:///{path}")
    assert upgrade(engine, BASELINE_REVISION).current == BASELINE_REVISION != head_revision()
    engine.dispose()


def _revision(path: Path) -> str | None:
    engine = make_engine(f"sqlite:///{path}")
    try:
        return schema_status(engine).current
    finally:
        engine.dispose()


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_refuse_a_missing_sqlite_file(in_tmp: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""  # nothing that looks like an answer ("no alerts")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no database at ")
    assert str((in_tmp / "monitor.db").resolve()) in lines[0] and "MONITOR_DB__URL" in lines[0]
    assert not (in_tmp / "monitor.db").exists()


def test_db_current_reports_a_missing_sqlite_file_without_creating_it(in_tmp: Path) -> None:
    result = CliRunner().invoke(app, ["db", "current"])
    assert result.exit_code == 1, result.output
    assert "current: none" in result.stdout and str((in_tmp / "monitor.db").resolve()) in result.stdout
    assert not (in_tmp / "monitor.db").exists()


def test_read_only_commands_work_on_an_existing_database(in_tmp: Path) -> None:
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    result = CliRunner().invoke(app, ["alerts"])
    assert result.exit_code == 0 and "no alerts" in result.stdout, result.output
    result = CliRunner().invoke(app, ["apikey", "list"])
    assert result.exit_code == 0 and "no API keys" in result.stdout, result.output


def test_a_new_sqlite_database_is_initialised_by_a_writing_command(in_tmp: Path) -> None:
    result = CliRunner().invoke(app, ["apikey", "create", "ops"])
    assert result.exit_code == 0 and "key 1 (ops, scopes read)" in result.stdout, result.output
    assert _revision(in_tmp / "monitor.db") == head_revision()


@pytest.mark.parametrize("args", WRITERS + READ_ONLY, ids=" ".join)
def test_an_outdated_schema_is_refused_and_left_alone(in_tmp: Path, args: list[str]) -> None:
    _outdated(in_tmp / "monitor.db")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "run `monitor db upgrade`" in result.stderr and "Traceback" not in result.output
    assert _revision(in_tmp / "monitor.db") == BASELINE_REVISION


def test_auto_migrate_lets_a_command_migrate_an_outdated_schema(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _outdated(in_tmp / "monitor.db")
    monkeypatch.setenv("MONITOR_DB__AUTO_MIGRATE", "true")
    result = CliRunner().invoke(app, ["apikey", "list"])
    assert result.exit_code == 0 and "no API keys" in result.stdout, result.output
    assert _revision(in_tmp / "monitor.db") == head_revision()


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:///monitor.db", "monitor.db"),
    ("sqlite+pysqlite:///a/b.db", "a/b.db"),
    ("sqlite:///file:c.db?mode=ro&uri=true", "c.db"),
    ("sqlite://", None),
    ("sqlite:///:memory:", None),
    ("sqlite:///file:mem?mode=memory&uri=true", None),
    ("postgresql+psycopg://u:p@host/db", None),
])
def test_sqlite_file_resolves_relative_paths_from_the_current_directory(
    in_tmp: Path, url: str, expected: str | None
) -> None:
    assert sqlite_file(url) == (None if expected is None else (in_tmp / expected).resolve())
    assert sqlite_file(f"sqlite:///{in_tmp / 'x.db'}") == (in_tmp / "x.db").resolve()


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "yesterday"])
@pytest.mark.parametrize("option", ["--since", "--until"])
def test_alerts_with_a_time_outside_the_datetime_range_is_a_usage_error(in_tmp: Path, option: str, when: str) -> None:
    result = CliRunner().invoke(app, ["alerts", option, when], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    text = " ".join(result.output.replace("│", " ").split())  # the message as one line, without its box
    assert "is not ISO-8601 with a zone" in text and "(90s, 30m, 1h, 2d, 1w)" in text and option in text
    assert "Traceback" not in text
    assert not (in_tmp / "monitor.db").exists(), "arguments are checked before the database is opened"
