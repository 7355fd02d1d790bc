"""A stored offset that fell out of the log (retention deleted records never read) is data loss: logged,
counted and recorded in consumer_offsets, then the consumer resumes at the log start. Real broker, both databases."""

from __future__ import annotations

import logging

import pytest
from kafka import KafkaAdminClient, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select

from monitor.core.scoring.artifact import ModelBundle
from monitor.ingest.kafka import make_producer
from monitor.settings import KafkaSettings
from monitor.store.repository import load_offsets, load_sensor_states
from monitor.store.schema import ConsumerOffset
from pipelines.produce import send_windows
from pipelines.synthetic import fleet_windows, make_fleet
from tests.integration.helpers import end_offsets, run_to_end

pytestmark = pytest.mark.integration


def test_records_expired_before_they_were_read_are_recorded_as_data_loss(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle, caplog: pytest.LogCaptureFixture
) -> None:
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(1, wl * 30, seed=8, anomalous=0)
    windows = list(fleet_windows(fleet, wl))
    producer = make_producer(kafka_cfg)
    try:
        send_windows(producer, kafka_cfg.topic, windows[:10], fleet.channels, progress=False)
        run_to_end(kafka_cfg, e2e_bundle, db)
        (partition,) = [p for p, o in end_offsets(kafka_cfg).items() if o > 0]
        assert load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) == {partition: 10}
        send_windows(producer, kafka_cfg.topic, windows[10:], fleet.channels, progress=False)
    finally:
        producer.close()
    admin = KafkaAdminClient(bootstrap_servers=kafka_cfg.bootstrap_servers)
    try:  # what retention does: the log now starts at 15, five records after the stored offset
        admin.delete_records({TopicPartition(kafka_cfg.topic, partition): 15})
    finally:
        admin.close()
    lost_before = REGISTRY.get_sample_value("monitor_records_lost_total") or 0.0

    with caplog.at_level(logging.ERROR, logger="monitor.store.retention"):
        stats = run_to_end(kafka_cfg, e2e_bundle, db)

    assert (REGISTRY.get_sample_value("monitor_records_lost_total") or 0.0) - lost_before == 5
    assert any("DATA LOSS" in r.getMessage() and "5 record(s)" in r.getMessage() for r in caplog.records)
    with db.connect() as conn:
        row = conn.execute(select(ConsumerOffset.next_offset, ConsumerOffset.lost_records, ConsumerOffset.lost_at)
                           .where(ConsumerOffset.group_id == kafka_cfg.group_id)).one()
    assert row.next_offset == len(windows) and row.lost_records == 5 and row.lost_at is not None
    assert stats.scored == len(windows) - 15  # the records after the log start, each once
    state = load_sensor_states(db, ["sensor-000"])["sensor-000"].state
    assert state["order"]["judged"] == len(windows) - 5
