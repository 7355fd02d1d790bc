"""Alembic environment: runs on a connection handed in by `monitor.store.database` (never reads alembic.ini).

The caller puts an open SQLAlchemy ``Connection`` into ``config.attributes["connection"]``. Migrations are
rendered in batch mode so that ALTERs also work on SQLite. On PostgreSQL a transaction-scoped advisory lock
serialises concurrent upgrades (several replicas starting at once with auto-migrate on).
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from monitor.store.database import lock_schema
from monitor.store.schema import Base, UTCDateTime


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Migrations must not import model code (models change later): render our column types as plain types."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        render_item=render_item,
        compare_type=True,
    )
    with context.begin_transaction():
        lock_schema(connection)  # held already when monitor.store.database.upgrade runs it (re-entrant)
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `monitor db upgrade` (monitor.store.database), not the alembic CLI")
run_migrations(connection)
