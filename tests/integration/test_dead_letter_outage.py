"""Dead letters that cannot be delivered, on the real broker (which does not auto-create topics): the consumer
keeps running, reports a broker error, commits nothing past the undelivered record, and delivers it once the
dead-letter topic exists."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from kafka import KafkaAdminClient
from sqlalchemy import Engine

from monitor.consumer.runner import build_runner
from monitor.core import contract
from monitor.core.scoring.artifact import ModelBundle
from monitor.ingest.kafka import DeadLetters, ensure_topics, make_producer
from monitor.settings import AlertSettings, KafkaSettings, RunSettings, ThresholdSettings
from monitor.store.repository import load_offsets
from pipelines.synthetic import fleet_windows, make_fleet
from tests.integration.helpers import end_offsets, read_all

pytestmark = pytest.mark.integration


@pytest.fixture
def missing_dlq(kafka_cfg: KafkaSettings) -> Iterator[KafkaSettings]:
    """``kafka_cfg`` with a dead-letter topic that does not exist yet (deleted after the test if created).

    A short stall limit: kafka-python 3.0.12 can sit in the rebalance that the first blocked send provokes
    (monitor/ingest/membership.py); the runner then replaces its consumer after 5 s instead of 60 s."""
    cfg = kafka_cfg.model_copy(update={"dlq_topic": f"{kafka_cfg.topic}.missing-dlq-{uuid.uuid4().hex[:6]}",
                                       "stall_timeout_s": 5.0})
    yield cfg
    admin = KafkaAdminClient(bootstrap_servers=cfg.bootstrap_servers)
    try:
        admin.delete_topics([cfg.dlq_topic])
    except Exception:  # noqa: BLE001 - cleanup only
        pass
    finally:
        admin.close()


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_an_undeliverable_dead_letter_holds_its_offset_and_is_delivered_once_the_topic_exists(
    missing_dlq: KafkaSettings, db: Engine, e2e_bundle: ModelBundle, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = missing_dlq
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(3, wl * 4, seed=5, anomalous=0)
    good = [(s.encode(), contract.encode_values(s, a, b, fleet.channels, v)) for s, a, b, v in fleet_windows(fleet, wl)]
    producer = make_producer(cfg)
    try:
        for key, value in good:
            producer.send(cfg.topic, key=key, value=value)
        bad = producer.send(cfg.topic, key=b"pump-bad", value=b"{not json").get(timeout=30)
        producer.flush()
    finally:
        producer.close()

    runner = build_runner(cfg, RunSettings(), ThresholdSettings(), AlertSettings(), e2e_bundle, db)
    runner.dead_letters.producer.close()
    runner.dead_letters = DeadLetters(make_producer(cfg, max_block_ms=1000), cfg.dlq_topic)  # fail in seconds
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            runner.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    caplog.set_level(logging.ERROR, logger="monitor.consumer.runner")
    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    try:
        _wait_for(lambda: runner.stats.failed_batches >= 2 or bool(errors), 90, "two failed dead-letter sends")
        assert not errors, f"the consumer crashed: {errors[0]!r}"
        assert thread.is_alive()
        reports = [r.getMessage() for r in caplog.records if r.name == "monitor.consumer.runner"]
        assert any("Kafka: dead-letter send to topic" in m and cfg.dlq_topic in m and "KafkaTimeoutError" in m
                   for m in reports), reports
        assert not any("database" in m for m in reports), "a broker problem is not reported as a database outage"
        assert runner.stats.db_retries == 0
        stored = load_offsets(db, cfg.group_id, cfg.topic)
        assert stored.get(bad.partition, 0) <= bad.offset, "no offset past the undelivered dead letter"
        assert read_all(cfg, cfg.topic), "sanity: the records are there"

        ensure_topics(cfg, [cfg.dlq_topic], partitions=1)
        ends = {p: o for p, o in end_offsets(cfg).items() if o}
        _wait_for(lambda: load_offsets(db, cfg.group_id, cfg.topic) == ends or bool(errors), 90,
                  "every partition committed after the dead-letter topic was created")
    finally:
        runner.stop()
        thread.join(30)
    assert not errors, f"the consumer crashed: {errors[0]!r}"
    dead = read_all(cfg, cfg.dlq_topic)
    coordinates = {(int(dict(r.headers)["dlq.partition"]), int(dict(r.headers)["dlq.offset"])) for r in dead}
    assert coordinates == {(bad.partition, bad.offset)}, "delivered (possibly more than once: at-least-once)"
    assert runner.stats.scored >= len(good)
