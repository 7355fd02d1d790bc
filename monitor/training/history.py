"""Training history read from the window topic by record time, without a consumer group.

A group-less consumer (``group_id=None``) is ``assign``-ed every partition, ``seek``-s to
``offsets_for_times(start)`` (the earliest offset whose timestamp is >= start, so nothing in range lies before
it) and reads up to the ``end_offsets`` snapshot taken first. It does not stop at ``offsets_for_times(end)``:
several producers (or a replay) interleave timestamps within a partition, so records in range can follow a
later one. With ``end`` in the past a partition is skipped when ``offsets_for_times(start)`` finds nothing.
It never joins a group and never commits, so the live group's offsets are untouched. Records are kept when
``start <= timestamp < end`` (record timestamps: the producer's CreateTime unless the topic uses
LogAppendTime).

A read that makes no progress (no record of a pending partition arrives, e.g. its leader is down) for
``stall_timeout_s`` raises ``BrokerError`` naming the incomplete partitions; ``cancel`` stops it between polls.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from tqdm import tqdm

from monitor.core.contract import DecodeFailure, decode
from monitor.errors import BrokerError, CancelledRunError, DataError
from monitor.ingest.kafka import make_consumer
from monitor.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HistoryWindow:
    """One decoded window of the history with its record coordinates. ``values``: (window_len, n_channels)."""

    sensor_id: str
    window_start: datetime
    window_end: datetime
    values: np.ndarray
    timestamp_ms: int
    partition: int
    offset: int


@dataclass
class History:
    """The windows read (all of one channel set and window length) and what was dropped, with counts."""

    windows: list[HistoryWindow]
    channels: tuple[str, ...]
    window_len: int
    start: datetime
    end: datetime
    topic: str
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition -> [first, stop)
    records_read: int = 0  # scanned between the start offsets and the end snapshot
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def records_in_range(self) -> int:
        return self.records_read - self.dropped["out_of_range"]


def _ms(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("naive datetime: all times are timezone-aware UTC")
    return int(when.timestamp() * 1000)


def read_history(
    cfg: KafkaSettings,
    start: datetime,
    end: datetime,
    *,
    max_record_bytes: int = 1_000_000,
    progress: bool = True,
    poll_timeout_ms: int = 1000,
    on_progress: Callable[[str], None] | None = None,
    stall_timeout_s: float = 120.0,
    report_every_s: float = 10.0,
    cancel: threading.Event | None = None,
) -> History:
    """Every decodable window of ``cfg.topic`` whose record timestamp is in ``[start, end)``.

    Windows whose channels or length differ from the most common ones are dropped (counted in ``dropped``).
    Without a progress bar (``progress=False``) ``on_progress`` also gets a line with the records read every
    ``report_every_s`` seconds. Raises ``DataError`` when the range holds no decodable window, ``BrokerError``
    when Kafka fails or no record arrives for ``stall_timeout_s`` seconds while partitions are incomplete,
    ``CancelledRunError`` when ``cancel`` is set.
    """
    if end <= start:
        raise DataError(f"empty time range: end {end.isoformat()} is not after start {start.isoformat()}")
    start_ms, end_ms = _ms(start), _ms(end)
    consumer = make_consumer(cfg, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        return _read(consumer, cfg.topic, start, end, start_ms, end_ms, max_record_bytes, progress, poll_timeout_ms,
                     on_progress, stall_timeout_s, report_every_s, cancel)
    except KafkaError as exc:
        raise BrokerError(f"reading history of {cfg.topic} failed: {exc}") from exc
    finally:
        consumer.close(autocommit=False)


def _read(
    consumer: KafkaConsumer, topic: str, start: datetime, end: datetime, start_ms: int, end_ms: int,
    max_record_bytes: int, progress: bool, poll_timeout_ms: int, on_progress: Callable[[str], None] | None,
    stall_timeout_s: float, report_every_s: float, cancel: threading.Event | None,
) -> History:
    partitions = sorted(consumer.partitions_for_topic(topic) or [])
    if not partitions:
        raise DataError(f"topic {topic!r} does not exist or has no partitions")
    tps = [TopicPartition(topic, p) for p in partitions]
    consumer.assign(tps)
    snapshot = consumer.end_offsets(tps)
    firsts = consumer.offsets_for_times({tp: start_ms for tp in tps})
    bounds: dict[TopicPartition, tuple[int, int]] = {}
    for tp in tps:
        first = firsts.get(tp)
        if first is None:  # no record at or after start in this partition
            continue
        stop = int(snapshot[tp])
        if stop > first.offset:
            bounds[tp] = (first.offset, stop)
    consumer.pause(*[tp for tp in tps if tp not in bounds])
    for tp, (first, _) in bounds.items():
        consumer.seek(tp, first)
    total = sum(stop - first for first, stop in bounds.values())
    if on_progress:
        on_progress(f"reading {total} records of {topic} in [{start.isoformat()}, {end.isoformat()}) "
                    f"from {len(bounds)} of {len(tps)} partitions (group-less consumer)")
    decoded: list[tuple[HistoryWindow, tuple[str, ...]]] = []
    dropped: Counter[str] = Counter()
    read = 0
    pending = dict(bounds)
    bar = tqdm(total=total, desc="history", unit="rec", file=sys.stderr, disable=not progress)
    last_progress = last_report = time.monotonic()
    while pending:
        if cancel is not None and cancel.is_set():
            bar.close()
            raise CancelledRunError(f"history read of {topic} cancelled after {read} of {total} records")
        batch = consumer.poll(timeout_ms=poll_timeout_ms, max_records=5000)
        now = time.monotonic()
        if any(tp in pending and records for tp, records in batch.items()):
            last_progress = now
        elif now - last_progress > stall_timeout_s:
            bar.close()
            incomplete = ", ".join(f"{tp.partition} (at {consumer.position(tp)} of [{first}, {stop}))"
                                   for tp, (first, stop) in sorted(pending.items()))
            raise BrokerError(f"reading history of {topic} stalled: no record for {stall_timeout_s:g} s; "
                              f"incomplete partitions: {incomplete} (partition leader down?)")
        for tp, records in batch.items():
            if tp not in pending:
                continue
            stop = pending[tp][1]
            for rec in records:
                if rec.offset >= stop:
                    break
                read += 1
                if not start_ms <= rec.timestamp < end_ms:
                    dropped["out_of_range"] += 1
                    continue
                result = decode(rec.value, max_bytes=max_record_bytes)
                if isinstance(result, DecodeFailure):
                    dropped[f"decode_{result.reason}"] += 1
                    continue
                decoded.append((HistoryWindow(result.sensor_id, result.window_start, result.window_end,
                                              result.values, rec.timestamp, rec.partition, rec.offset),
                                result.channels))
            bar.update(sum(1 for r in records if r.offset < stop))
        for tp in list(pending):
            if consumer.position(tp) >= pending[tp][1]:
                consumer.pause(tp)
                del pending[tp]
        if on_progress and not progress and now - last_report >= report_every_s:
            last_report = now
            on_progress(f"history: read {read} of {total} records ({len(pending)} partitions pending)")
    bar.close()
    if not decoded:
        raise DataError(f"no decodable windows in {topic} between {start.isoformat()} and {end.isoformat()}")
    shapes = Counter((channels, w.values.shape[0]) for w, channels in decoded)
    (channels, window_len), _ = shapes.most_common(1)[0]
    windows = []
    for w, ch in decoded:
        if ch == channels and w.values.shape[0] == window_len:
            windows.append(w)
        else:
            dropped["other_shape"] += 1
    return History(windows, channels, window_len, start, end, topic,
                   {tp.partition: b for tp, b in bounds.items()}, read, dropped)
