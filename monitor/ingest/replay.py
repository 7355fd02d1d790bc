"""Reading a sensor's windows back from the topic around an alert (its context), without touching the group:
a group-less consumer assigned to one partition, bounded in time and in offsets scanned."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from kafka import TopicPartition
from kafka.errors import KafkaError

from monitor.core.contract import SensorWindow, decode
from monitor.errors import BrokerError
from monitor.ingest.kafka import make_consumer
from monitor.settings import KafkaSettings


@dataclass
class ContextWindows:
    """The sensor's windows read from one partition, in offset order."""

    available: bool
    note: str
    windows: list[tuple[int, SensorWindow]] = field(default_factory=list)  # (offset, window)


def read_windows(
    cfg: KafkaSettings,
    *,
    sensor_id: str,
    partition: int,
    first_offset: int,
    last_offset: int,
    around: int,
    spread: int,
    max_scan: int = 50_000,
    max_inside: int = 400,
    timeout_s: float = 10.0,
) -> ContextWindows:
    """Windows of ``sensor_id`` from ``partition``: ``around`` before ``first_offset``, those in the alert
    (at most ``max_inside``, evenly thinned), and ``around`` after ``last_offset``.

    ``spread``: about how many records of the partition lie between two windows of this sensor (the number
    of sensors sharing the partition); the scan reaches ``around * spread * 2`` offsets beyond each end.
    ``timeout_s`` bounds every step, connecting included (kafka-python waits 30 s for a broker by default).
    """
    deadline = time.monotonic() + timeout_s

    def left_ms() -> int:
        return max(1, int((deadline - time.monotonic()) * 1000))

    try:
        consumer = make_consumer(cfg, group_id=None, enable_auto_commit=False, max_poll_records=5000,
                                 request_timeout_ms=int(timeout_s * 1000) + 1000,
                                 bootstrap_timeout_ms=int(timeout_s * 1000))
    except BrokerError as exc:
        return ContextWindows(False, f"Kafka unreachable, context unavailable: {exc}")
    try:
        tp = TopicPartition(cfg.topic, partition)
        consumer.assign([tp])
        begin = consumer.beginning_offsets([tp], timeout_ms=left_ms())[tp]
        end = consumer.end_offsets([tp], timeout_ms=left_ms())[tp]
        if last_offset < begin or first_offset >= end:
            return ContextWindows(False, f"the alert's records (partition {partition}, offsets {first_offset}.."
                                         f"{last_offset}) are no longer in {cfg.topic}: retention removed them")
        margin = max(1, around) * max(1, spread) * 2
        start = max(begin, first_offset - margin)
        stop = min(end, last_offset + 1 + margin, start + max_scan)
        consumer.seek(tp, start)
        key = sensor_id.encode()
        found: list[tuple[int, SensorWindow]] = []
        while time.monotonic() < deadline and consumer.position(tp, timeout_ms=left_ms()) < stop:
            for records in consumer.poll(timeout_ms=min(500, left_ms())).values():
                for rec in records:
                    if rec.offset >= stop or rec.key != key:
                        continue
                    window = decode(rec.value)
                    if isinstance(window, SensorWindow) and window.sensor_id == sensor_id:
                        found.append((rec.offset, window))
    except (KafkaError, AssertionError, ValueError) as exc:
        return ContextWindows(False, f"cannot read the alert's records from Kafka: {exc.__class__.__name__}: {exc}")
    finally:
        consumer.close(timeout_ms=min(2000, left_ms()))
    before = [w for w in found if w[0] < first_offset][-around:] if around else []
    inside = [w for w in found if first_offset <= w[0] <= last_offset]
    after = [w for w in found if w[0] > last_offset][:around]
    note = "ok"
    if len(inside) > max_inside:
        keep = np.linspace(0, len(inside) - 1, max_inside).round().astype(int)
        inside = [inside[i] for i in sorted(set(keep.tolist()))]
        note = f"the alert spans many windows: {len(inside)} of them shown"
    if first_offset < begin:
        note = "the alert's first records are no longer in the topic: partial context"
    if not inside:
        return ContextWindows(False, "none of the alert's windows were found in the topic", before + after)
    return ContextWindows(True, note, before + inside + after)
