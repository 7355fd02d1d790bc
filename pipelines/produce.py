"""Producing sensor windows to Kafka (shared by the CSV replay, the synthetic stream, demo and benchmarks)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from tqdm import tqdm

from monitor.core.contract import encode_values


def send_windows(
    producer: KafkaProducer,
    topic: str,
    windows: Iterable[tuple[str, datetime, datetime, np.ndarray]],
    channels: Sequence[str],
    *,
    total: int | None = None,
    rate_per_s: float | None = None,
    progress: bool = True,
) -> int:
    """Send (sensor_id, start, end, values) windows keyed by sensor id; flush and check every ack.

    ``rate_per_s`` paces the stream (None = as fast as possible). Returns the number of windows sent.
    """
    futures = []
    sent = 0
    names = list(channels)
    started = time.monotonic()
    bar = tqdm(windows, total=total, desc="produce", unit="win", file=sys.stderr, disable=not progress)
    for sensor_id, start, end, values in bar:
        futures.append(
            producer.send(topic, key=sensor_id.encode(), value=encode_values(sensor_id, start, end, names, values))
        )
        sent += 1
        if rate_per_s:
            ahead = sent / rate_per_s - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        if len(futures) >= 10_000:
            _settle(producer, futures)
    _settle(producer, futures)
    bar.close()
    return sent


def _settle(producer: KafkaProducer, futures: list) -> None:  # type: ignore[type-arg]
    producer.flush()
    for future in futures:
        future.get(timeout=60)  # raises the broker's error for a record that was not acknowledged
    futures.clear()


def topic_end_offsets(bootstrap_servers: str, topic: str) -> dict[int, int]:
    """Partition -> end offset of a topic, read by a group-less consumer (touches no group's offsets)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers.split(","), group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        return {tp.partition: int(off) for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def read_topic(bootstrap_servers: str, topic: str) -> list[Any]:
    """Every record of a topic up to its current end, in (partition, offset) order, without a consumer group."""
    ends = topic_end_offsets(bootstrap_servers, topic)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers.split(","), group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in ends]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        out: list[Any] = []
        while any(consumer.position(tp) < ends[tp.partition] for tp in parts):
            for records in consumer.poll(timeout_ms=1000).values():
                out.extend(r for r in records if r.offset < ends[r.partition])
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()
