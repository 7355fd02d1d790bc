"""Shared steps of integration tests: produce a synthetic fleet, run a consumer to the end, read topics."""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Engine

from monitor.runner import RunStats, build_runner
from monitor.scoring.artifact import ModelBundle
from monitor.settings import AlertSettings, KafkaSettings, RunSettings, ThresholdSettings
from monitor.ingest.kafka import make_producer
from pipelines.produce import send_windows
from pipelines.synthetic import Fleet, fleet_windows


def produce_fleet(cfg: KafkaSettings, fleet: Fleet, window_len: int) -> int:
    producer = make_producer(cfg)
    try:
        return send_windows(producer, cfg.topic, fleet_windows(fleet, window_len), fleet.channels, progress=False)
    finally:
        producer.close()


def run_to_end(cfg: KafkaSettings, bundle: ModelBundle, db: Engine, idle_exit_s: float = 4.0) -> RunStats:
    runner = build_runner(cfg, RunSettings(), ThresholdSettings(), AlertSettings(), bundle, db, idle_exit_s=idle_exit_s)
    return runner.run()


def end_offsets(cfg: KafkaSettings, topic: str | None = None) -> dict[int, int]:
    topic = topic or cfg.topic
    consumer = KafkaConsumer(bootstrap_servers=cfg.bootstrap_servers, group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def read_all(cfg: KafkaSettings, topic: str) -> list[Any]:
    """Every record of a topic, from the beginning to the current end, without a consumer group."""
    ends = end_offsets(cfg, topic)
    consumer = KafkaConsumer(bootstrap_servers=cfg.bootstrap_servers, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in ends]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        out: list[Any] = []
        while any(consumer.position(tp) < ends[tp.partition] for tp in parts):
            for records in consumer.poll(timeout_ms=1000).values():
                out.extend(records)
        return out
    finally:
        consumer.close()
