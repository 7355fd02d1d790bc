"""Shared steps of integration tests: produce a synthetic fleet, run a consumer to the end, read topics."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from monitor.consumer.runner import RunStats, build_runner
from monitor.core.scoring.artifact import ModelBundle
from monitor.ingest.kafka import make_producer
from monitor.settings import AlertSettings, KafkaSettings, RunSettings, ThresholdSettings
from pipelines.produce import read_topic, send_windows, topic_end_offsets
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
    return topic_end_offsets(cfg.bootstrap_servers, topic or cfg.topic)


def read_all(cfg: KafkaSettings, topic: str) -> list[Any]:
    """Every record of a topic, from the beginning to the current end, without a consumer group."""
    return read_topic(cfg.bootstrap_servers, topic)
