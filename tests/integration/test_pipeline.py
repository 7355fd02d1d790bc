"""End to end on the real broker and databases: produce -> monitor run -> alerts in SQL."""

from __future__ import annotations

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Engine

from monitor import contract
from monitor.ingest.kafka import make_producer
from monitor.scoring.artifact import ModelBundle
from monitor.settings import KafkaSettings
from monitor.store.repository import load_offsets, query_alerts
from pipelines.synthetic import evaluate, make_fleet
from tests.integration.helpers import end_offsets, produce_fleet, read_all, run_to_end

pytestmark = pytest.mark.integration


def test_injected_anomalies_raise_alerts_and_the_clean_sensor_none(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(4, wl * 150, seed=5, length=4 * wl)
    sent = produce_fleet(kafka_cfg, fleet, wl)

    stats = run_to_end(kafka_cfg, e2e_bundle, db)

    assert stats.consumed == sent and stats.scored == sent and stats.dead_letters == 0
    alerts = query_alerts(db, limit=10_000)
    clean = fleet.sensor_ids[-1]
    assert [a for a in alerts if a["sensor_id"] == clean] == []
    result = evaluate(alerts, fleet.injected, tolerance_s=wl)
    missed = [i for i in fleet.injected if not any(
        a["sensor_id"] == i.sensor_id and a["opened_at"] <= i.end and a["last_window_end"] >= i.start for a in alerts)]
    assert missed == [], f"injected anomalies without an alert: {missed}"
    assert result["precision"] >= 0.75, result
    for alert in alerts:
        assert alert["model_version"] == "e2e-1"
        assert alert["opened_at"].tzinfo is not None
        assert alert["window_count"] >= 1 and alert["peak_score"] > 0
    # Offsets stored with the output reached the end of every partition.
    assert load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) == {
        p: o for p, o in end_offsets(kafka_cfg).items() if o > 0
    }


def test_malformed_record_goes_to_dead_letters_and_later_records_are_processed(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(2, wl * 20, seed=9, anomalous=0)
    producer = make_producer(kafka_cfg)
    from pipelines.synthetic import fleet_windows

    windows = list(fleet_windows(fleet, wl))
    futures = []
    for i, (sid, start, end, values) in enumerate(windows):
        if i == 10:
            futures.append(producer.send(kafka_cfg.topic, key=sid.encode(), value=b'{"sensor_id": "broken"'))
        futures.append(producer.send(kafka_cfg.topic, key=sid.encode(),
                                     value=contract.encode_values(sid, start, end, fleet.channels, values)))
    producer.flush()
    bad = futures[10].get(timeout=10)
    producer.close()

    stats = run_to_end(kafka_cfg, e2e_bundle, db)

    assert stats.dead_letters == 1
    assert stats.scored == len(windows), "records after the malformed one were not all processed"
    dead = read_all(kafka_cfg, kafka_cfg.dlq_topic)
    assert len(dead) == 1
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["dlq.reason"] == contract.BAD_JSON
    assert headers["dlq.topic"] == kafka_cfg.topic
    assert int(headers["dlq.partition"]) == bad.partition
    assert int(headers["dlq.offset"]) == bad.offset
    assert dead[0].value == b'{"sensor_id": "broken"'
    stored = load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic)
    assert stored[bad.partition] == end_offsets(kafka_cfg)[bad.partition]
    # Kafka's group offsets follow the database (committed after it, for lag monitoring).
    consumer = KafkaConsumer(bootstrap_servers=kafka_cfg.bootstrap_servers, group_id=kafka_cfg.group_id,
                             enable_auto_commit=False)
    try:
        committed = consumer.committed(TopicPartition(kafka_cfg.topic, bad.partition))
    finally:
        consumer.close()
    assert committed == stored[bad.partition]


def test_a_second_run_over_the_same_topic_changes_nothing(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(3, wl * 60, seed=11, per_sensor=1, length=4 * wl)
    produce_fleet(kafka_cfg, fleet, wl)
    run_to_end(kafka_cfg, e2e_bundle, db)
    before = query_alerts(db, limit=10_000)
    assert before, "the injected anomalies should have raised alerts"

    again = run_to_end(kafka_cfg, e2e_bundle, db, idle_exit_s=3.0)

    assert again.scored == 0, "a restarted consumer must resume from the offsets stored in the database"
    assert query_alerts(db, limit=10_000) == before
    assert orjson.dumps(before, default=str)  # rows are plain, serialisable values
