"""SIGTERM ends a real `python -m monitor run` within 10 s while its PostgreSQL or its Kafka broker is black-holed
(connections accepted, nothing answered: see tests/integration/blackhole.py), with exit status 0, a clear log
line, no Kafka offset past the output stored in the database, and, after a restart on healthy services, every
window applied exactly once (the alerts equal the offline reference run's).

Kafka clients learn broker addresses from metadata, so the Kafka case runs a PRIVATE broker (own ports and
state, through deploy/local/kafka.sh) that advertises the proxy's port: every client connection goes through it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from monitor.core import contract
from monitor.core.scoring.artifact import ModelBundle
from monitor.ingest.kafka import ensure_topics
from monitor.settings import KafkaSettings
from monitor.store.database import init_schema, make_engine
from pipelines.faults import kit
from pipelines.faults.blackhole import BlackholeProxy
from pipelines.synthetic import fleet_windows, make_fleet

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EXIT_BOUND_S = 10.0


def _items(bundle: ModelBundle, sensors: int, per_sensor: int, seed: int) -> list[tuple[bytes, bytes | None]]:
    wl = bundle.meta.window_len
    fleet = make_fleet(sensors, wl * per_sensor, seed=seed, length=4 * wl, per_sensor=2)
    return [(sid.encode(), contract.encode_values(sid, start, end, fleet.channels, values))
            for sid, start, end, values in fleet_windows(fleet, wl)]


def _wait(condition: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def _judge(case: kit.Case, bundle: ModelBundle) -> kit.Verdict:
    ref = kit.reference_run(bundle, kit.read_topic(case.kafka, case.kafka.topic))
    assert ref.alerts, "the reference run has no alerts: the comparison would prove nothing"
    return kit.compare(ref, case.db)


def _stopped_within_bound(live: kit.Consumer) -> None:
    """Still running in the hole (3 s in), SIGTERM ends it with status 0 within the bound, and says so."""
    time.sleep(3.0)
    assert live.proc.poll() is None
    rc, took = live.terminate(timeout_s=EXIT_BOUND_S + 10)
    print(f"{live.label}: exit status {rc} {took:.2f} s after SIGTERM")
    for _, line in live.lines[-8:]:
        print(f"  | {line}")
    assert took < EXIT_BOUND_S
    assert rc == 0
    assert live.first("SIGTERM: stopping") is not None


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_url else "?"
    yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_sigterm_with_postgresql_black_holed(kafka_cfg: KafkaSettings, pg_schema_url: str, e2e_bundle: ModelBundle,
                                             e2e_model_path: Path, tmp_path: Path) -> None:
    direct = make_url(pg_schema_url)
    db = make_engine(pg_schema_url)
    init_schema(db)
    items = _items(e2e_bundle, 6, 60, seed=41)
    half = len(items) // 2
    with BlackholeProxy((direct.host or "127.0.0.1", direct.port or 5432)) as proxy:
        proxied = direct.set(port=proxy.port).render_as_string(hide_password=False)
        case = kit.Case("pghole", kafka_cfg, proxied, db)
        kit.produce(kafka_cfg, items[:half])
        live = kit.Consumer(case, e2e_model_path, tmp_path, "live", max_poll_records=25)
        assert kit.wait_caught_up(case, 120), "the consumer did not store the first half"
        proxy.blackhole()
        durable = kit.db_offsets(case)
        kit.produce(kafka_cfg, items[half:])
        # the consumer polls the second half and blocks in its next database call (no answer, ever)
        _stopped_within_bound(live)
        assert live.first("shutdown deadline of 8.0 s passed") is not None, "no log line says why it exited"
        committed = kit.group_committed(kafka_cfg)
        # nothing became durable during the hole, and Kafka's offsets never passed the database's
        assert kit.db_offsets(case) == durable
        assert all((committed.get(p) or 0) <= o for p, o in durable.items()), (committed, durable)
    # restart on a healthy database: the windows of the hole are read again and applied exactly once
    case = kit.Case("pghole", kafka_cfg, pg_schema_url, db)
    assert kit.Consumer(case, e2e_model_path, tmp_path, "restart", idle_exit_s=4.0, max_poll_records=200).wait(120) == 0
    verdict = _judge(case, e2e_bundle)
    db.dispose()
    assert (verdict.lost, verdict.duplicated) == (0, 0), verdict.notes


# -- Kafka black-holed: a private broker that advertises the proxy's port ---------------------------------------
@pytest.fixture(scope="module")
def holed_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """(broker port, advertised port): start a BlackholeProxy on the advertised port in front of the broker."""
    work = tmp_path_factory.mktemp("holed-kafka")
    kafka_port, controller_port, advertised = kit.free_port(), kit.free_port(), kit.free_port()
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP"}
    env.update(KAFKA_PORT=str(kafka_port), KAFKA_CONTROLLER_PORT=str(controller_port),
               KAFKA_ADVERTISED_PORT=str(advertised), MONITOR_STATE=str(work / "state"), KAFKA_WAIT_S="120")
    script = str(ROOT / "deploy/local/kafka.sh")
    out = subprocess.run([script, "start"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"private broker did not start:\n{out.stdout}\n{out.stderr}"
    try:
        yield kafka_port, advertised
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True)
        shutil.rmtree(work / "state", ignore_errors=True)


def test_sigterm_with_kafka_black_holed(holed_broker: tuple[int, int], e2e_bundle: ModelBundle,
                                        e2e_model_path: Path, tmp_path: Path) -> None:
    kafka_port, advertised = holed_broker
    tag = f"kafkahole-{uuid.uuid4().hex[:6]}"
    cfg = KafkaSettings(bootstrap_servers=f"127.0.0.1:{advertised}", topic=f"{tag}.windows",
                        dlq_topic=f"{tag}.dlq", group_id=f"{tag}-group")
    db_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    db = make_engine(db_url)
    init_schema(db)
    case = kit.Case("kafkahole", cfg, db_url, db)
    items = _items(e2e_bundle, 6, 60, seed=42)
    for i in range(3, len(items), 7):  # undecodable records: batches during the hole have dead letters to send
        items.insert(i, (items[i][0], b'{"sensor_id": "broken"'))
    proxy = BlackholeProxy(("127.0.0.1", kafka_port), port=advertised)
    try:
        ensure_topics(cfg, [cfg.topic, cfg.dlq_topic], partitions=3)
        kit.produce(cfg, items)
        total = len(items)
        live = kit.Consumer(case, e2e_model_path, tmp_path, "live", max_poll_records=10)
        assert _wait(lambda: sum(kit.db_offsets(case).values()) > 0, 120), "the consumer stored nothing"
        proxy.blackhole()  # mid-stream: it still holds fetched records, its Kafka calls get no answer
        _stopped_within_bound(live)
        durable = kit.db_offsets(case)
        print(f"durable before the restart: {sum(durable.values())} of {total} records")
    finally:
        proxy.close()
    with BlackholeProxy(("127.0.0.1", kafka_port), port=advertised):  # the broker reachable again
        committed = kit.group_committed(cfg)
        assert all((committed.get(p) or 0) <= durable.get(p, 0) for p in committed), (committed, durable)
        assert kit.Consumer(case, e2e_model_path, tmp_path, "restart", idle_exit_s=4.0,
                            max_poll_records=200).wait(120) == 0
        ref = kit.reference_run(e2e_bundle, kit.read_topic(cfg, cfg.topic))
        verdict = kit.compare(ref, db)
        dead = {(int(h["dlq.partition"]), int(h["dlq.offset"]))
                for h in ({k: v.decode() for k, v in r.headers} for r in kit.read_topic(cfg, cfg.dlq_topic))}
        assert ref.alerts and ref.bad and dead == set(ref.bad)  # every bad record has its dead letter
        assert kit.db_offsets(case) == {p: o for p, o in kit.end_offsets(cfg).items() if o > 0}
    db.dispose()
    assert (verdict.lost, verdict.duplicated) == (0, 0), verdict.notes
