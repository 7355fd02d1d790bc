"""Schema migrations on SQLite and PostgreSQL: upgrade from empty and from the baseline, models == migrations,
the start-up policy (refuse out-of-date, auto-upgrade empty SQLite), and the `monitor db` commands."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import cast

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Table, insert, select, text
from sqlalchemy.exc import IntegrityError

from monitor.errors import ConfigError
from monitor.store.database import (
    BASELINE_REVISION,
    alembic_config,
    downgrade,
    head_revision,
    make_engine,
    require_current_schema,
    schema_status,
    upgrade,
)
from monitor.store.schema import Alert, Base

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, str]]:
    """A fresh, EMPTY database (no tables) and its URL: a SQLite file or a new PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'monitor.db'}"
        engine = make_engine(url)
        yield engine, url
        engine.dispose()
        return
    base = request.getfixturevalue("pg_url")
    schema = f"m_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    yield engine, url
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _model_diff(engine: Engine) -> list[object]:
    """What autogenerate would write: differences between the SQLAlchemy models and the database."""
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata))


def _sample_alert() -> dict[str, object]:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return dict(sensor_id="s-1", opened_at=t0, closed_at=None, last_window_end=t0, status="open", severity="major",
                peak_score=3.5, threshold_at_peak=1.2, window_count=2, top_channels=["c0", "c1"], model_version="m1",
                partition=0, first_offset=10, last_offset=11, created_at=t0, updated_at=t0)


def test_one_linear_history_of_numbered_revisions() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    heads = script.get_heads()
    assert len(heads) == 1, f"migrations have several heads {heads}: renumber your revision after merging"
    revisions = list(script.walk_revisions())
    assert revisions[-1].revision == BASELINE_REVISION
    assert all(r.revision.isdigit() and len(r.revision) == 4 for r in revisions), "revision ids are 0001, 0002, ..."


def test_upgrade_from_empty_matches_the_models(empty_db: tuple[Engine, str]) -> None:
    engine, _ = empty_db
    assert schema_status(engine).empty
    status = upgrade(engine)
    assert status.current == head_revision() and status.up_to_date
    diff = _model_diff(engine)
    assert diff == [], (
        "the models in monitor/store/schema.py and the migrations disagree; write a migration with "
        f"`python -m monitor db revision -m '...'`: {diff}"
    )
    assert upgrade(engine).current == head_revision()  # idempotent


def test_upgrade_from_baseline_to_head_keeps_data(empty_db: tuple[Engine, str]) -> None:
    engine, _ = empty_db
    assert upgrade(engine, BASELINE_REVISION).current == BASELINE_REVISION
    with engine.begin() as conn:  # a row written by a monitor of the baseline era
        conn.execute(insert(cast(Table, Alert.__table__)).values(**_sample_alert()))
    if head_revision() != BASELINE_REVISION:  # behind head: services refuse until the upgrade
        with pytest.raises(ConfigError, match="run `monitor db upgrade`"):
            require_current_schema(engine)
    assert upgrade(engine).current == head_revision()
    assert _model_diff(engine) == []
    with engine.connect() as conn:
        rows = conn.execute(select(Alert.__table__.c.sensor_id, Alert.__table__.c.top_channels)).all()
    assert [(r.sensor_id, r.top_channels) for r in rows] == [("s-1", ["c0", "c1"])]
    # head constrains status and severity to their values; on PostgreSQL the channels are jsonb (queryable)
    for bad in ({"severity": "high"}, {"status": "closed"}):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(cast(Table, Alert.__table__)).values(**{**_sample_alert(), "sensor_id": "s-2", **bad}))
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alerts WHERE top_channels ? 'c1'")).scalar_one() == 1


def test_downgrade_to_base_and_back(empty_db: tuple[Engine, str]) -> None:
    engine, _ = empty_db
    upgrade(engine)
    status = downgrade(engine, "base")
    assert status.current is None and not (status.tables & {"alerts", "sensor_state", "consumer_offsets"})
    assert upgrade(engine).up_to_date


def test_pre_migration_database_is_stamped_and_upgraded(empty_db: tuple[Engine, str]) -> None:
    """A database made by the walking skeleton's create_all (no version table) is adopted, not recreated."""
    engine, _ = empty_db
    upgrade(engine, BASELINE_REVISION)
    with engine.begin() as conn:
        conn.execute(insert(cast(Table, Alert.__table__)).values(**_sample_alert()))
        conn.execute(text("DROP TABLE alembic_version"))
    status = schema_status(engine)
    assert status.legacy and status.current is None
    with pytest.raises(ConfigError, match="monitor db upgrade"):
        require_current_schema(engine)
    assert upgrade(engine).up_to_date
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alerts")).scalar_one() == 1


def test_services_refuse_an_out_of_date_schema(empty_db: tuple[Engine, str]) -> None:
    engine, _ = empty_db
    upgrade(engine)
    with engine.begin() as conn:  # pretend the database is one revision behind (or from another history)
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(ConfigError, match="newer than this monitor"):
        require_current_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
        conn.execute(text("DROP TABLE consumer_offsets"))
    # tables but no version and not the full baseline: refused, even with auto_migrate off
    with pytest.raises(ConfigError, match="run `monitor db upgrade`"):
        require_current_schema(engine)


def test_empty_database_policy(empty_db: tuple[Engine, str]) -> None:
    """Empty SQLite (zero-setup default) is initialised on start; an empty PostgreSQL needs the upgrade step."""
    engine, _ = empty_db
    if engine.dialect.name == "sqlite":
        assert require_current_schema(engine).up_to_date
    else:
        with pytest.raises(ConfigError, match="run `monitor db upgrade`"):
            require_current_schema(engine)
        assert schema_status(engine).empty  # refused means untouched
        assert require_current_schema(engine, auto_migrate=True).up_to_date


def _monitor(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "MONITOR_DB__URL": url, **(env or {})}
    return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from monitor.core.scoring.train import train
    from monitor.registry import model_files
    from monitor.settings import ModelSettings
    from pipelines.synthetic import history_frame

    cfg = ModelSettings(window_len=8, hidden_size=4, latent_size=2, epochs=1, batch_size=32, seed=1)
    return model_files.save(train(history_frame(600, sensors=2), cfg, version="tiny", sensors=2),
                         tmp_path_factory.mktemp("tiny") / "model.pt")


def test_db_commands(empty_db: tuple[Engine, str], tiny_model: Path) -> None:
    engine, url = empty_db
    out = _monitor(url, "db", "current")
    assert out.returncode == 1 and "OUT OF DATE" in out.stdout, out.stdout + out.stderr
    if engine.dialect.name == "postgresql":  # services refuse to start before the upgrade step
        for service in (["alerts"], ["run", "--model", str(tiny_model), "--idle-exit-s", "1"]):
            refused = _monitor(url, *service, env={"MONITOR_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9"})
            assert refused.returncode == 2 and "run `monitor db upgrade`" in refused.stderr, refused.stderr
        assert schema_status(engine).empty
    out = _monitor(url, "db", "upgrade")
    assert out.returncode == 0 and f"-> {head_revision()}" in out.stdout, out.stdout + out.stderr
    out = _monitor(url, "db", "current")
    assert out.returncode == 0 and f"current: {head_revision()}" in out.stdout and "up to date" in out.stdout
    out = _monitor(url, "db", "init")  # the skeleton's command, kept as an alias
    assert out.returncode == 0 and "already at" in out.stdout, out.stdout + out.stderr
    out = _monitor(url, "alerts")
    assert out.returncode == 0 and "no alerts" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("empty_db", ["postgresql"], indirect=True)  # SQLite: one host, one writer
def test_concurrent_upgrades_are_serialised(empty_db: tuple[Engine, str]) -> None:
    """Several replicas running `monitor db upgrade` at once (init containers): all succeed, one schema."""
    engine, url = empty_db
    env = {**os.environ, "MONITOR_DB__URL": url}
    procs = [subprocess.Popen([sys.executable, "-m", "monitor", "db", "upgrade"], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-1000:] for _, err in outputs]
    assert schema_status(engine).current == head_revision()
    assert _model_diff(engine) == []
