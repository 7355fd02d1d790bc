"""Engine creation and schema setup. No engine is created at import time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import ConfigError, StoreError
from monitor.store.schema import Base


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """SQLite gets WAL and a busy timeout (a reader and the consumer at once); PostgreSQL gets pre-ping."""
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, echo=echo, connect_args={"timeout": 30})

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

            return engine
        return create_engine(url, echo=echo, pool_pre_ping=True)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise ConfigError(f"cannot use database URL ({type(exc).__name__}: {exc})") from exc


def init_schema(engine: Engine) -> None:
    """Create missing tables."""
    try:
        Base.metadata.create_all(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot create the schema: {exc.__class__.__name__}: {exc}") from exc


def ping(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise StoreError(f"database unreachable: {exc.__class__.__name__}") from exc
