"""One polled batch on its way through the consumer loop, and the run's counters.

Steps of the delivery order in ``monitor.runner`` that touch one batch only: ``Batch.decode`` (step 1, loop
thread: decoded windows go to ``good``, decode failures to ``dead`` for the dead-letter topic) and
``make_durable`` (steps 2-4, the worker thread with ``run.overlap``). The loop owns the order between batches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine as DbEngine

from monitor.contract import DecodeFailure, check_key, decode_batch
from monitor.engine import BatchOutcome, Engine, Record
from monitor.ingest.faults import FaultInjector
from monitor.ingest.kafka import DeadLetters
from monitor.store import repository
from monitor.store.repository import SensorRow


@dataclass
class RunStats:
    """Counters of one ``Runner.run`` (records, batches, retries); ``started`` is ``time.monotonic()`` seconds."""

    consumed: int = 0
    scored: int = 0
    dead_letters: int = 0
    alerts_written: int = 0
    batches: int = 0
    stale_batches: int = 0
    failed_batches: int = 0
    db_retries: int = 0
    consumer_replacements: int = 0
    # (partition, first offset, next offset) of every batch made durable by this process, in order
    committed: list[tuple[int, int, int]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


@dataclass
class Batch:
    """One polled batch on its way through the loop."""

    size: int
    started: float  # time.perf_counter() seconds when it was polled
    good: list[Record]
    dead: list[tuple[Any, DecodeFailure]]  # (raw record, failure) for the dead-letter topic
    first: dict[int, int]  # partition -> first offset
    next_offsets: dict[int, int]  # partition -> offset after the batch
    expected: dict[int, int | None] = field(default_factory=dict)  # fence: stored offsets it starts from

    @classmethod
    def decode(cls, raw_records: Sequence[Any], *, window_len: int, channels: tuple[str, ...],
               max_bytes: int) -> Batch:
        """Decode the raw Kafka records of one poll as one batch; nothing is sent or scored yet."""
        batch = cls(len(raw_records), time.perf_counter(), [], [], {}, {})
        results = decode_batch(
            [raw.value for raw in raw_records], window_len=window_len, channels=channels, max_bytes=max_bytes,
        )
        for raw, result in zip(raw_records, results):
            batch.first.setdefault(raw.partition, raw.offset)
            batch.next_offsets[raw.partition] = max(batch.next_offsets.get(raw.partition, 0), raw.offset + 1)
            if not isinstance(result, DecodeFailure):
                result = check_key(raw.key, result) or result
            if isinstance(result, DecodeFailure):
                batch.dead.append((raw, result))
            else:
                batch.good.append(Record(raw.partition, raw.offset, result))
        return batch


def load_states(engine: Engine, db: DbEngine, records: list[Record]) -> None:
    """Restore from the database the state of the records' sensors that the engine does not hold yet."""
    missing = engine.missing(records)
    if not missing:
        return
    rows = repository.load_sensor_states(db, missing)
    for sensor_id, row in rows.items():
        engine.sensors[sensor_id] = engine.restore_context(sensor_id, row.partition, row.state, row.model_version,
                                                           row.revision)


def make_durable(batch: Batch, *, engine: Engine, db: DbEngine, dead_letters: DeadLetters,
                 faults: FaultInjector, group_id: str, topic: str) -> BatchOutcome:
    """Steps 2-4: state, scoring, dead-letter flush, ONE transaction (alerts + sensor state + fenced offsets).

    Raises StaleOffsetError when the fence (``batch.expected``) no longer holds, StoreError/BrokerError when
    the database or the dead-letter producer fails; nothing is durable then.
    """
    load_states(engine, db, batch.good)
    outcome = engine.process(batch.good)
    dead_letters.flush()
    faults.at("before_db_commit")
    sensors = [
        SensorRow(c.sensor_id, c.partition, c.snapshot(), c.last_score, c.last_threshold, c.last_window_end,
                  c.model_version, c.revision)
        for c in outcome.touched.values()
    ]
    repository.commit_batch(
        db, group_id=group_id, topic=topic, alerts=list(outcome.alerts.values()),
        sensors=sensors, offsets=batch.next_offsets,
        expected=batch.expected,
    )
    for c in outcome.touched.values():
        if c.revision is None:
            c.revision = 0  # inserted at the column default
    faults.at("after_db_commit")
    return outcome
