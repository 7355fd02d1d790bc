"""Records that expired from the log before the consumer read them: data loss, found and recorded.

The consumer resumes each partition from the offset stored with its output. When retention has deleted the
records at that offset (the stored offset is below the partition's log start), Kafka would silently move the
consumer to the log start (``auto_offset_reset``). Instead, on every assignment and rewind the runner calls
``skip_expired``: each such gap is logged as data loss (ERROR), counted in ``monitor_records_lost_total`` and
recorded in ``consumer_offsets.lost_records`` / ``lost_at`` by the same fenced update that moves the stored
offset to the log start, so each gap is counted once, even across restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from sqlalchemy import Engine as DbEngine

from monitor.observe import metrics
from monitor.store import repository

log = logging.getLogger(__name__)

LOG_START_TIMEOUT_MS = 10_000  # bound of asking the broker for the log start offsets

T = TypeVar("T")


class Retry(Protocol):
    """Runs a store call, retrying while the database is unreachable (``Runner._with_db_retry``)."""

    def __call__(self, action: Callable[[], T]) -> T: ...


def skip_expired(consumer: KafkaConsumer, db: DbEngine, *, group_id: str, topic: str, stored: dict[int, int],
                 partitions: set[int], retry: Retry) -> dict[int, int]:
    """``stored`` (partition -> stored offset) with the offsets of ``partitions`` that fell out of the log moved
    to the log start, each gap recorded as data loss. ``retry`` runs a store call (with the runner's backoff).
    When the broker cannot tell the log start now, nothing is changed and a warning says so."""
    known = {p: stored[p] for p in partitions if p in stored}
    if not known:
        return stored
    try:
        starts: dict[Any, int | None] = consumer.beginning_offsets(
            [TopicPartition(topic, p) for p in sorted(known)], timeout_ms=LOG_START_TIMEOUT_MS)
    except (KafkaError, RuntimeError) as exc:
        log.warning("cannot read the log start of partitions %s (%s): expired offsets are not checked this time",
                    sorted(known), exc)
        return stored
    out = dict(stored)
    for tp, start in starts.items():
        offset = known.get(tp.partition)
        if offset is None or start is None or offset >= start:
            continue
        lost = start - offset
        partition = tp.partition
        if retry(lambda: repository.record_lost_records(db, group_id, topic, partition, offset, start)):
            metrics.RECORDS_LOST.inc(lost)
            log.error("DATA LOSS: partition %d of %s: the stored offset %d is below the log start %d (retention "
                      "deleted them): %d record(s) were never judged; resuming at %d (recorded in consumer_offsets)",
                      partition, topic, offset, start, lost, start)
            out[partition] = start
        else:  # the stored offset moved meanwhile: take the database's word
            fresh = retry(lambda: repository.load_offsets(db, group_id, topic))
            if partition in fresh:
                out[partition] = fresh[partition]
    return out
