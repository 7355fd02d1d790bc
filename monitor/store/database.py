"""Engine creation and schema management (Alembic migrations). No engine is created at import time.

The schema is owned by the migrations in ``monitor/store/migrations/versions``: `upgrade` applies them,
`require_current_schema` is what services call before they touch the database. Policy:

- up to date: go on;
- empty SQLite database (the embedded default, zero-setup demo): upgraded on the spot;
- anything else behind head: refused with "run `monitor db upgrade`", unless ``auto_migrate`` is set
  (``MONITOR_DB__AUTO_MIGRATE=true``);
- ahead of this code (a newer monitor migrated it): always refused.

Read-only commands (`monitor alerts`, `... list`) call `require_existing_database` first: a SQLite URL is a
path relative to the current directory, and opening a missing file would create an empty database there.

A database made by the pre-migration ``create_all`` (tables present, no ``alembic_version``) is stamped at the
first revision by `upgrade`, which then applies the rest.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError as AlembicError
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from monitor.errors import ConfigError, StoreError

log = logging.getLogger(__name__)

SCRIPT_LOCATION = "monitor.store:migrations"
BASELINE_REVISION = "0001"  # the schema of the walking skeleton (alerts, sensor_state, consumer_offsets)
BASELINE_TABLES = frozenset({"alerts", "sensor_state", "consumer_offsets"})
VERSION_TABLE = "alembic_version"
# alembic's `context` is a process-global proxy: one migration command at a time per process
# (across processes, PostgreSQL's advisory lock in env.py serialises them).
_ALEMBIC_LOCK = threading.Lock()


def make_engine(url: str, *, echo: bool = False, connect_timeout_s: float = 10.0,
                statement_timeout_s: float = 30.0) -> Engine:
    """SQLite gets WAL and a busy timeout of ``statement_timeout_s`` (a reader and the consumer at once);
    PostgreSQL gets pre-ping, ``connect_timeout`` (whole seconds, at least 1), ``statement_timeout`` and
    ``idle_in_transaction_session_timeout`` (both ``statement_timeout_s``), so a black-holed or stuck database
    fails a call (an outage, retried) instead of holding it for ever, and a paused client cannot hold its locks
    for ever. Options the URL sets itself (``?connect_timeout=``, ``?options=-c statement_timeout=``) win."""
    try:
        if url.startswith("sqlite"):
            busy_ms = int(statement_timeout_s * 1000)
            engine = create_engine(url, echo=echo, connect_args={"timeout": statement_timeout_s})

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
                cursor.close()

            return engine
        return create_engine(url, echo=echo, pool_pre_ping=True,
                             connect_args=postgres_timeouts(url, connect_timeout_s, statement_timeout_s))
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise ConfigError(f"cannot use database URL ({type(exc).__name__}: {exc})") from exc


def postgres_timeouts(url: str, connect_timeout_s: float, statement_timeout_s: float) -> dict[str, Any]:
    """libpq connection arguments bounding connects and statements, less what ``url`` already sets."""
    query = make_url(url).query
    args: dict[str, Any] = {}
    if "connect_timeout" not in query:
        args["connect_timeout"] = max(1, round(connect_timeout_s))  # libpq: whole seconds; 0 would mean never
    options = query.get("options")
    options_text = " ".join(options) if isinstance(options, tuple) else (options or "")
    extra = []
    bound_ms = max(1, round(statement_timeout_s * 1000))
    if "statement_timeout" not in options_text:
        extra.append(f"-c statement_timeout={bound_ms}")
    if "idle_in_transaction_session_timeout" not in options_text:
        # A process paused inside a transaction (SIGSTOP, a frozen VM: a zombie) would hold its row locks, the
        # consumer offsets among them, for as long as it stays paused, and the partition's new owner could never
        # commit. No transaction of this product waits on its client that long: the server ends such a session.
        extra.append(f"-c idle_in_transaction_session_timeout={bound_ms}")
    if extra:  # connect_args replace the URL's ``options``: carry the URL's along
        args["options"] = " ".join([options_text, *extra]).strip()
    return args


def sqlite_file(url: str) -> Path | None:
    """The absolute path of the SQLite file ``url`` names (relative paths: from the current directory).

    None for other databases and for in-memory SQLite."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"cannot use database URL ({type(exc).__name__}: {exc})") from exc
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if parsed.query.get("uri") == "true" and database.startswith("file:"):  # sqlite:///file:path?mode=ro&uri=true
        if parsed.query.get("mode") == "memory":
            return None
        database = database.removeprefix("file:")
    if database in ("", ":memory:"):
        return None
    return Path(database).resolve()


def require_existing_database(url: str) -> None:
    """Refuse a SQLite file that does not exist (read-only commands must not create an empty database)."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise ConfigError(f"no database at {path} (the SQLite file does not exist): set MONITOR_DB__URL to the "
                          "monitor's database, e.g. sqlite:////absolute/path/monitor.db")


def alembic_config() -> Config:
    """Alembic configuration pointing at the packaged migrations (works from an installed wheel)."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise ConfigError("no migrations found in monitor/store/migrations/versions")
    return head


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None  # revision stored in the database; None when it has no version table
    head: str  # newest revision of this code
    tables: frozenset[str]  # tables present (any, including foreign ones)

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def empty(self) -> bool:
        """No version table and none of the monitor's tables (other tables may share the database)."""
        return self.current is None and not (self.tables & BASELINE_TABLES)

    @property
    def legacy(self) -> bool:
        """Made by the pre-migration create_all: the baseline tables without a version table."""
        return self.current is None and BASELINE_TABLES <= self.tables

    @property
    def known(self) -> bool:
        """The stored revision is one of this code's (False: a newer monitor migrated the database)."""
        if self.current is None:
            return True
        try:
            return ScriptDirectory.from_config(alembic_config()).get_revision(self.current) is not None
        except AlembicError:
            return False


PG_LOCK_KEY = 0x6D6F6E69746F72  # "monitor": one advisory-lock id for schema upgrades (also taken in migrations/env.py)


def lock_schema(conn: Connection) -> None:
    """On PostgreSQL, take the transaction-scoped advisory lock that serialises schema upgrades across processes
    (re-entrant: migrations/env.py takes it again on the same connection); nothing on other databases."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})


def _status(conn: Connection) -> SchemaStatus:
    return SchemaStatus(current=MigrationContext.configure(conn).get_current_revision(), head=head_revision(),
                        tables=frozenset(inspect(conn).get_table_names()))


def schema_status(engine: Engine) -> SchemaStatus:
    """Where the database's schema stands relative to this code's migrations."""
    try:
        with engine.connect() as conn:
            return _status(conn)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the database schema: {exc.__class__.__name__}: {exc}") from exc


def upgrade(engine: Engine, revision: str = "head") -> SchemaStatus:
    """Apply migrations up to ``revision`` (stamping a pre-migration database at the baseline first).

    Where the schema stands is read under the upgrade lock, in the upgrade's own transaction: read before it, a
    concurrent upgrade could commit between the two reads (the version after, the tables before, or the reverse),
    and a database another process had just migrated looked like a pre-migration one, stamped at the baseline and
    migrated again (CI, `test_concurrent_upgrades_are_serialised`: a table created twice)."""
    config = alembic_config()
    try:
        with _ALEMBIC_LOCK, engine.begin() as conn:
            lock_schema(conn)
            status = _status(conn)
            if not status.known:
                raise ConfigError(
                    f"database schema is at revision {status.current}, which this monitor does not know "
                    f"(newest here: {status.head}); upgrade the monitor instead"
                )
            config.attributes["connection"] = conn
            if status.legacy:
                log.info("database predates migrations: stamping revision %s", BASELINE_REVISION)
                command.stamp(config, BASELINE_REVISION)
            command.upgrade(config, revision)
    except AlembicError as exc:
        raise ConfigError(f"cannot migrate the database: {exc}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate the database: {exc.__class__.__name__}: {exc}") from exc
    return schema_status(engine)


def downgrade(engine: Engine, revision: str) -> SchemaStatus:
    """Revert migrations down to ``revision`` ("base" removes every table of the monitor)."""
    config = alembic_config()
    try:
        with _ALEMBIC_LOCK, engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, revision)
    except AlembicError as exc:
        raise ConfigError(f"cannot migrate the database: {exc}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate the database: {exc.__class__.__name__}: {exc}") from exc
    return schema_status(engine)


def init_schema(engine: Engine) -> None:
    """Bring the schema to head (kept for tests and scripts; services use `require_current_schema`)."""
    upgrade(engine)


def require_current_schema(engine: Engine, *, auto_migrate: bool = False) -> SchemaStatus:
    """Refuse to run on a schema other than head; see the module docstring for the policy."""
    status = schema_status(engine)
    if status.up_to_date:
        return status
    if not status.known:
        raise ConfigError(
            f"database schema is at revision {status.current}, newer than this monitor (head {status.head}): "
            "run a monitor version that matches the database"
        )
    sqlite_empty = status.empty and engine.dialect.name == "sqlite"
    if auto_migrate or sqlite_empty:
        log.info("migrating the database schema from %s to %s", status.current or "empty", status.head)
        return upgrade(engine)
    where = "empty" if status.empty else f"at revision {status.current or 'none (pre-migration tables)'}"
    raise ConfigError(
        f"database schema is {where}, this monitor needs revision {status.head}: run `monitor db upgrade` "
        "(or set MONITOR_DB__AUTO_MIGRATE=true to migrate on start)"
    )


def ping(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise StoreError(f"database unreachable: {exc.__class__.__name__}") from exc
