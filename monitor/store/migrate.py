"""Writing new migrations (developer tool behind `monitor db revision`).

Autogenerate compares the models in ``monitor/store/schema.py`` with a scratch SQLite database upgraded to
head, and writes the difference as the next numbered revision into the package's ``versions/`` folder.
Review the file: autogenerate does not see renames, and data migrations are written by hand.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from monitor.store.database import _ALEMBIC_LOCK, alembic_config, make_engine, upgrade


def next_revision_id() -> str:
    """Revisions are numbered 0001, 0002, ...; two branches that both add 0002 give two heads (a test fails)."""
    script = ScriptDirectory.from_config(alembic_config())
    numbers = [int(rev.revision) for rev in script.walk_revisions() if rev.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def new_revision(message: str, *, autogenerate: bool = True) -> Path:
    """Write the next revision file and return its path."""
    config = alembic_config()
    rev_id = next_revision_id()
    with tempfile.TemporaryDirectory(prefix="monitor-revision-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'head.db'}")
        try:
            upgrade(engine)
            with _ALEMBIC_LOCK, engine.begin() as conn:
                config.attributes["connection"] = conn
                script = command.revision(config, message=message, autogenerate=autogenerate, rev_id=rev_id)
        finally:
            engine.dispose()
    if script is None or isinstance(script, list):  # pragma: no cover - one head, one script
        raise RuntimeError("alembic wrote no single revision")
    return Path(script.path)
