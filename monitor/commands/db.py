"""`monitor db`: schema migrations (Alembic). Services refuse an out-of-date schema; this is how to fix it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from monitor.errors import MonitorError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.settings import Settings

db_app = typer.Typer(help="The monitor's database: schema migrations.", no_args_is_help=True)


def _engine(settings: Settings | None = None) -> Engine:
    from monitor.commands.common import load_settings
    from monitor.store.database import make_engine

    settings = settings or load_settings()
    return make_engine(settings.db.url.get_secret_value(), echo=settings.db.echo,
                       connect_timeout_s=settings.db.connect_timeout_s, statement_timeout_s=settings.db.statement_timeout_s)


def fail(exc: MonitorError) -> None:
    from monitor.commands.common import fail

    fail(exc)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the schema migrations (idempotent; safe to run from several replicas at once on PostgreSQL)."""
    from monitor.store.database import schema_status, upgrade

    try:
        engine = _engine()
        before = schema_status(engine).current
        after = upgrade(engine, revision)
    except MonitorError as exc:
        fail(exc)
    if before == after.current:
        typer.echo(f"schema already at {after.current} (head {after.head})")
    else:
        typer.echo(f"schema upgraded {before or 'empty'} -> {after.current} (head {after.head})")


# The walking skeleton's `monitor db init`; kept so existing scripts keep working.
db_app.command("init", help="Alias of `monitor db upgrade head`.", hidden=True)(db_upgrade)


@db_app.command("current")
def db_current() -> None:
    """Print the database's revision and this monitor's head; exit 1 when they differ."""
    from monitor.commands.common import load_settings
    from monitor.store.database import head_revision, schema_status, sqlite_file

    settings = load_settings()
    try:
        path = sqlite_file(settings.db.url.get_secret_value())
        if path is not None and not path.exists():  # report it; opening it would create an empty database
            typer.echo(f"current: none  head: {head_revision()}  (OUT OF DATE: no database file at {path}; run "
                       "`monitor db upgrade` to create it, or set MONITOR_DB__URL)")
            raise typer.Exit(1)
        status = schema_status(_engine(settings))
    except MonitorError as exc:
        fail(exc)
    state = "up to date" if status.up_to_date else "OUT OF DATE: run `monitor db upgrade`"
    typer.echo(f"current: {status.current or 'none'}  head: {status.head}  ({state})")
    if not status.up_to_date:
        raise typer.Exit(1)


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. 0001, -1, or base (drops every table).")],
) -> None:
    """Revert schema migrations (take a backup first)."""
    from monitor.store.database import downgrade

    try:
        status = downgrade(_engine(), revision)
    except MonitorError as exc:
        fail(exc)
    typer.echo(f"schema now at {status.current or 'base'} (head {status.head})")


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the migration changes.")],
    empty: Annotated[bool, typer.Option(help="Write an empty revision (data migrations) instead of autogenerate.")] = False,
) -> None:
    """Developers: write the next migration from the difference between the models and head."""
    from monitor.store.migrate import new_revision

    path = new_revision(message, autogenerate=not empty)
    typer.echo(f"wrote {path}: review it, then run the migration tests")
