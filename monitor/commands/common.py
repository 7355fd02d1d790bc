"""What every `monitor` sub-command shares: the settings (one line per bad value, exit 2), logging, the error
exit, the database a command opens, time options. Sub-commands import this module, never the app (no import circle).
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from typing import TYPE_CHECKING

import typer
from pythonjsonlogger.json import JsonFormatter

from monitor.errors import MonitorError, exit_code
from monitor.settings import Settings, settings_problems

if TYPE_CHECKING:
    from sqlalchemy import Engine


def load_settings(worker: int | None = None) -> Settings:
    """The settings from the environment; a bad value is one line per problem and exit code 2."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        settings = Settings()
    except ValidationError as exc:
        for problem in settings_problems(exc):
            typer.secho(f"error: {problem}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    except SettingsError as exc:  # a list/JSON value that does not parse, e.g. MONITOR_API__CORS_ORIGINS
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        typer.secho(f"error: {exc}{cause}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    configure_logging(settings, worker)
    return settings


def configure_logging(settings: Settings, worker: int | None = None) -> None:
    """Log lines to stderr at ``log_level``, as text or (``log.format`` json) one JSON object per line; the Kafka
    client's repeated lines at most once per 30 s (``monitor.observe.client_logs``)."""
    from monitor.observe.client_logs import RepeatLimit

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter(settings, worker))
    handler.addFilter(RepeatLimit())  # the Kafka client's lines that repeat at its retry rate
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # monitor.store.database logs what it migrates


def log_formatter(settings: Settings, worker: int | None = None) -> logging.Formatter:
    """Text: one readable line; json (``log.format``): one object per line with time, level, name, message and
    the event's own fields (``extra``), plus ``worker`` under ``monitor run --workers N``."""
    if settings.log.format == "json":
        return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                             rename_fields={"asctime": "time", "levelname": "level"},
                             static_fields={} if worker is None else {"worker": worker})
    tag = f"worker {worker} " if worker is not None else ""  # `monitor run --workers N`: which child logs
    return logging.Formatter(f"%(asctime)s {tag}%(levelname)s %(name)s: %(message)s")


def fail(exc: MonitorError) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(exit_code(exc))


def open_db(settings: Settings, *, read_only: bool = False) -> Engine:
    """The database of a command, its schema checked (`require_current_schema`, honouring ``db.auto_migrate``).

    ``read_only``: refuse a SQLite file that does not exist rather than create an empty database (a relative
    URL run from the wrong directory). Raises MonitorError."""
    from monitor.store.database import make_engine, require_current_schema, require_existing_database

    url = settings.db.url.get_secret_value()
    if read_only:
        require_existing_database(url)
    db = make_engine(url, echo=settings.db.echo, connect_timeout_s=settings.db.connect_timeout_s,
                     statement_timeout_s=settings.db.statement_timeout_s)
    require_current_schema(db, auto_migrate=settings.db.auto_migrate)
    return db


def parse_time_option(text: str | None, name: str) -> datetime | None:
    from monitor.core.when import HELP, parse_when

    if text is None:
        return None
    value = parse_when(text)
    if value is None:
        raise typer.BadParameter(f"{text[:80]!r} is not {HELP}, within years 1..9999 in UTC", param_hint=name)
    return value


def apply_threads(settings: Settings) -> None:
    """``model.threads`` torch threads for this process's training and scoring (0: torch's default)."""
    if settings.model.threads:
        import torch

        torch.set_num_threads(settings.model.threads)


def screened_line(training: dict[str, object]) -> str:
    """What a model's history screen left out of its fit (``model.history_screen``), as `monitor train` and
    `monitor backtest` print it: the count, then up to five rows with their channels."""
    rows = training.get("screened")
    rows = rows if isinstance(rows, list) else []
    count = training.get("screened_rows")
    count = count if isinstance(count, int) else len(rows)
    shown = "; ".join(f"{row['at']} {', '.join(row['channels'])}" for row in rows[:5])
    more = count - min(len(rows), 5)
    line = (f"rows left out of the fit as anomalies of the history (spikes, bursts; model.history_screen): {count}"
            + (f": {shown}" if shown else "") + (f" and {more} more" if more > 0 else ""))
    incidents = training.get("incidents")
    incidents = incidents if isinstance(incidents, list) else []
    described = "; ".join(f"{i['channel']} {i['from']} .. {i['to']} ({i['lift']:+.4g})" for i in incidents)
    return (line + "\nlasting incidents of the history left out of the fit (a level entered and left once that no "
            f"other channel explains; model.history_screen): {len(incidents)}"
            + (f": {described}" if described else ""))
