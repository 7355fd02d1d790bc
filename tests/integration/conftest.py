"""Fixtures for integration tests: the real Kafka broker and PostgreSQL (and SQLite files).

Services come from the project's scripts (`make test` runs `deploy/local/services.sh up`), from the
environment (MONITOR_TEST_KAFKA=host:port, MONITOR_TEST_PG_URL=postgresql+psycopg://...), or, with
MONITOR_TEST_CONTAINERS=1 on a machine with a Docker engine, from testcontainers. A missing service fails
the tests (never a silent skip).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from kafka import KafkaAdminClient
from sqlalchemy import Engine, text

from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.train import train
from monitor.ingest.kafka import ensure_topics
from monitor.settings import KafkaSettings, ModelSettings
from monitor.store.database import init_schema, make_engine
from pipelines.synthetic import history_frame

pytestmark = pytest.mark.integration

E2E_MODEL = ModelSettings(window_len=32, stride=4, hidden_size=32, latent_size=16, epochs=25, batch_size=64, seed=1,
                          learning_rate=3e-3)


def _reachable(host_port: str) -> bool:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    if os.environ.get("MONITOR_TEST_CONTAINERS") == "1":
        from testcontainers.kafka import KafkaContainer  # optional path: needs a Docker engine

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    bootstrap = os.environ.get("MONITOR_TEST_KAFKA", "127.0.0.1:9092")
    if not _reachable(bootstrap.split(",")[0]):
        pytest.fail(f"no Kafka broker at {bootstrap}: run `deploy/local/services.sh up` (or `make test`)")
    yield bootstrap


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    if os.environ.get("MONITOR_TEST_CONTAINERS") == "1":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver="psycopg") as container:
            yield container.get_connection_url()
        return
    url = os.environ.get("MONITOR_TEST_PG_URL", "postgresql+psycopg://monitor:monitor@127.0.0.1:5433/monitor_test")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means the service is missing
        pytest.fail(f"no PostgreSQL at {url.split('@')[-1]}: {exc.__class__.__name__}; run `deploy/local/services.sh up`")
    finally:
        engine.dispose()
    yield url


@pytest.fixture
def kafka_cfg(kafka_bootstrap: str) -> Iterator[KafkaSettings]:
    """A fresh topic, dead-letter topic and consumer group per test."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    cfg = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=f"{name}.windows", dlq_topic=f"{name}.dlq",
                        group_id=f"{name}-group", poll_timeout_ms=200, session_timeout_ms=6000)
    ensure_topics(cfg, [cfg.topic, cfg.dlq_topic], partitions=3)
    yield cfg
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.delete_topics([cfg.topic, cfg.dlq_topic])
    except Exception:  # noqa: BLE001 - cleanup only
        pass
    finally:
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh, empty database per test: a SQLite file, or a new schema in the PostgreSQL test database."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
        init_schema(engine)
        yield engine
        engine.dispose()
        return
    url = request.getfixturevalue("pg_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    engine = make_engine(f"{url}{sep}options=-csearch_path%3D{schema}")
    init_schema(engine)
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def history() -> pd.DataFrame:
    return history_frame(12_000, sensors=12)


@pytest.fixture(scope="session")
def e2e_bundle(history: pd.DataFrame) -> ModelBundle:
    return train(history, E2E_MODEL, version="e2e-1", sensors=12)


@pytest.fixture(scope="session")
def e2e_model_path(tmp_path_factory: pytest.TempPathFactory, e2e_bundle: ModelBundle) -> Path:
    from monitor.registry import model_files
    return model_files.save(e2e_bundle, tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(autouse=True)
def no_kafka_client_left_running() -> Iterator[None]:
    """A test must not leave a Kafka client's network thread running (kafka-python 3.x names them ``kafka-io-*``).

    One did: a replaced (wedged) consumer whose close failed kept its I/O thread, which went on fetching metadata
    for a deleted topic for the rest of the CI run; the product now stops it (``membership.close_consumer``)."""
    import threading

    before = {t.ident for t in threading.enumerate() if t.name.startswith("kafka-io")}
    yield
    deadline = time.monotonic() + 10.0  # a client closed in the background may still be finishing
    while True:
        left = [t.name for t in threading.enumerate() if t.name.startswith("kafka-io") and t.ident not in before]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, f"Kafka client network thread(s) still running after the test: {left}"
