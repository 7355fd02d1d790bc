"""No single input can mislead or stop the consumer, on the real broker and both databases: per-sensor window
order (duplicates skipped, late windows dead-lettered), records the database refuses isolated into the
dead-letter topic, a batch that keeps failing reported by /healthz, and operator feedback racing a draining
consumer without losing or repeating a window."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, text

from monitor.consumer.runner import build_runner
from monitor.core.scoring.artifact import ModelBundle
from monitor.ingest.kafka import make_producer
from monitor.observe import health
from monitor.settings import AlertSettings, KafkaSettings, RunSettings, ThresholdSettings
from monitor.store import repository
from monitor.store.alerts_api import query_alerts, record_feedback
from monitor.store.feedback import apply_false_positive
from monitor.store.repository import load_offsets, load_sensor_states
from pipelines.produce import send_windows
from pipelines.synthetic import fleet_windows, make_fleet
from tests.integration.helpers import end_offsets, read_all, run_to_end

pytestmark = pytest.mark.integration


def refuse(db: Engine, table: str, sql_condition: str, pg_check: str) -> None:
    """Make the real database refuse rows: a CHECK constraint (PostgreSQL) or a trigger (SQLite)."""
    with db.begin() as conn:
        if db.dialect.name == "postgresql":
            conn.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT test_refusal CHECK ({pg_check})"))
        else:
            conn.execute(text(f"CREATE TRIGGER test_refusal BEFORE INSERT ON {table} WHEN {sql_condition} "
                              "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))


def header(record: Any, name: str) -> str:
    value: bytes = dict(record.headers)[name]
    return value.decode()


def counter(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_duplicates_are_skipped_and_late_or_refused_records_are_dead_letters(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(3, wl * 40, seed=21, anomalous=0)
    windows = list(fleet_windows(fleet, wl))
    per_sensor = Counter(w[0] for w in windows)
    resent = [w for w in windows if w[0] == "sensor-000"][-1]  # the sensor's last window, sent again
    late = [w for w in windows if w[0] == "sensor-001"][3]  # an old window of another sensor
    refuse(db, "sensor_state", "NEW.sensor_id = 'sensor-002'", "sensor_id <> 'sensor-002'")
    producer = make_producer(kafka_cfg)
    try:
        send_windows(producer, kafka_cfg.topic, [*windows, resent, late], fleet.channels, progress=False)
    finally:
        producer.close()
    duplicates_before = counter("monitor_duplicate_windows_total")
    late_before = counter("monitor_decode_failures_total", {"reason": "out_of_order"})

    stats = run_to_end(kafka_cfg, e2e_bundle, db)

    assert stats.duplicates == 1
    assert counter("monitor_duplicate_windows_total") - duplicates_before == 1
    dead = read_all(kafka_cfg, kafka_cfg.dlq_topic)
    reasons = Counter(header(r, "dlq.reason") for r in dead)
    assert reasons == {"out_of_order": 1, "store_rejected": per_sensor["sensor-002"]}, reasons
    (late_letter,) = [r for r in dead if header(r, "dlq.reason") == "out_of_order"]
    assert late_letter.key == b"sensor-001" and json.loads(late_letter.value)["window_start"] == \
        late[1].isoformat().replace("+00:00", "Z")
    refused = [r for r in dead if header(r, "dlq.reason") == "store_rejected"]
    assert {r.key for r in refused} == {b"sensor-002"} and "IntegrityError" in header(refused[0], "dlq.detail")
    assert stats.dead_letters == len(dead)
    assert load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) == {
        p: o for p, o in end_offsets(kafka_cfg).items() if o > 0}
    states = load_sensor_states(db, list(per_sensor))
    assert "sensor-002" not in states
    for sensor_id in ("sensor-000", "sensor-001"):  # every window judged once: not the re-send, not the late one
        assert states[sensor_id].state["order"]["judged"] == per_sensor[sensor_id]
    metric = counter("monitor_decode_failures_total", {"reason": "out_of_order"}) - late_before
    assert metric == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_batch_that_keeps_failing_turns_healthz_to_503_with_the_reason(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(1, wl * 10, seed=3, anomalous=0)
    producer = make_producer(kafka_cfg)
    try:
        send_windows(producer, kafka_cfg.topic, fleet_windows(fleet, wl), fleet.channels, progress=False)
    finally:
        producer.close()
    refuse(db, "consumer_offsets", "1 = 1", "next_offset < 0")  # no batch can be stored, whatever its records
    runner = build_runner(kafka_cfg, RunSettings(), ThresholdSettings(), AlertSettings(), e2e_bundle, db)
    port = _free_port()
    server = health.start(port, 60.0, host="127.0.0.1", failing_limit_s=2.0)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 90
        status, body = _healthz(port)
        while status == 200 and time.monotonic() < deadline:
            time.sleep(0.5)
            status, body = _healthz(port)
        assert status == 503 and body["status"] == "failing", body
        assert "IntegrityError" in body["reason"] and body["seconds_failing"] >= 2.0, body  # 1-decimal rounding
        assert runner.stats.failed_batches >= 1 and runner.stats.batches == 0  # retried, never stored
        time.sleep(1.0)
        status, body = _healthz(port)  # and it stays so while the batch keeps failing
        assert status == 503 and body["seconds_failing"] >= 3.0, body
    finally:
        runner.stop()
        thread.join(30)
        server.shutdown()
        health.batch_durable()
    assert not thread.is_alive()
    assert read_all(kafka_cfg, kafka_cfg.dlq_topic) == []  # a refusal no record causes blames none


def test_feedback_while_a_consumer_drains_applies_every_window_exactly_once(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(3, wl * 120, seed=13, anomalous=0)
    for sensor_id, series in fleet.series.items():  # strong anomalies in the first part, to give feedback on
        for at in (12, 30):
            series[wl * at : wl * (at + 3), :3] += 10 * series.std(axis=0)[:3]
    windows = list(fleet_windows(fleet, wl))
    per_sensor = Counter(w[0] for w in windows)
    half = len(windows) // 2
    producer = make_producer(kafka_cfg)
    try:
        send_windows(producer, kafka_cfg.topic, windows[:half], fleet.channels, progress=False)
        run_to_end(kafka_cfg, e2e_bundle, db)
        alerts = query_alerts(db, limit=1000)
        send_windows(producer, kafka_cfg.topic, windows[half:], fleet.channels, progress=False)
    finally:
        producer.close()
    assert len({a["sensor_id"] for a in alerts}) == 3, alerts
    first_revision = {sid: cast(int, row.revision)  # a stored row has its revision
                      for sid, row in load_sensor_states(db, list(per_sensor)).items()}

    written: Counter[str] = Counter()  # the consumers' durable state writes per sensor (each moves the revision)
    real_commit = repository.commit_batch  # what monitor.consumer.batches calls (its module attribute)

    def counting_commit(*args: Any, **kwargs: Any) -> None:
        real_commit(*args, **kwargs)
        written.update(row.sensor_id for row in kwargs["sensors"])

    monkeypatch.setattr(repository, "commit_batch", counting_commit)
    runner = build_runner(kafka_cfg, RunSettings(), ThresholdSettings(), AlertSettings(), e2e_bundle, db,
                          idle_exit_s=10.0)
    runner.max_poll_records = runner.live_poll_records = 12  # many small batches: feedback lands between them
    applied: Counter[str] = Counter()
    errors: list[BaseException] = []

    def operator() -> None:  # an on-call engineer marking every alert a false positive, from another thread
        try:
            while runner.stats.batches < 2:
                time.sleep(0.01)
            for alert in alerts:
                record_feedback(db, alert["id"], "false_positive", "operator", "not a fault")
                ok, note = apply_false_positive(db, alert["id"], [3.0] * 4, ThresholdSettings(), AlertSettings())
                if ok:
                    applied[alert["sensor_id"]] += 1
                time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=operator)
    thread.start()
    stats = runner.run()
    thread.join(60)
    assert not errors, errors
    assert runner.stats.batches > len(alerts)  # the feedback really ran while the consumer drained
    print(f"stale batches (replayed after feedback): {stats.stale_batches}; applied {dict(applied)}")
    assert sum(applied.values()) == len(alerts)
    assert load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) == {
        p: o for p, o in end_offsets(kafka_cfg).items() if o > 0}
    states = load_sensor_states(db, list(per_sensor))
    for sensor_id, n in per_sensor.items():
        # one revision step per write after the first run's, the consumer's and the operator's: every applied
        # feedback is a write of its own (whether its levels survive is test_feedback_live's check)
        assert states[sensor_id].revision == first_revision[sensor_id] + written[sensor_id] + applied[sensor_id]
        assert states[sensor_id].state["order"]["judged"] == n, sensor_id  # no window lost or judged twice
