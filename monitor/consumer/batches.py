"""One polled batch on its way through the consumer loop, and the run's counters.

Steps of the delivery order in ``monitor.consumer.runner`` that touch one batch only: ``Batch.decode`` (step 1, loop
thread: decoded windows go to ``good``, decode failures to ``dead`` for the dead-letter topic) and
``make_durable`` (steps 2-4, the worker thread with ``run.overlap``: per-sensor order (``monitor.core.ordering``),
scoring, dead letters, one transaction; when the database refuses the output for a data reason, ``isolate``
finds the records behind it). The loop owns the order between batches.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine as DbEngine

from monitor.core.contract import (
    OUT_OF_ORDER,
    STORE_REJECTED,
    DecodeFailure,
    SensorWindow,
    check_key,
    decode_batch,
    format_time,
)
from monitor.core.engine import BatchOutcome, Engine, Record
from monitor.core.ordering import admit
from monitor.errors import StoreRejectedError
from monitor.ingest.faults import FaultInjector
from monitor.ingest.kafka import DeadLetters
from monitor.observe import metrics
from monitor.store import repository

log = logging.getLogger(__name__)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The process's garbage collector off for the block (as it was before, after it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class RunStats:
    """Counters of one ``Runner.run`` (records, batches, retries); ``started`` is ``time.monotonic()`` seconds."""

    consumed: int = 0
    scored: int = 0
    dead_letters: int = 0
    duplicates: int = 0  # windows skipped as re-sends of their sensor's last judged window
    alerts_written: int = 0
    batches: int = 0
    stale_batches: int = 0
    failed_batches: int = 0
    db_retries: int = 0
    consumer_replacements: int = 0
    evicted: int = 0  # sensor states dropped from memory (run.max_sensors_in_memory)
    child_decodes: int = 0  # polls decoded by the decode process (run.decode_process), rewound ones included
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
    sources: dict[tuple[int, int], Any] = field(default_factory=dict)  # (partition, offset) -> raw good record
    # set by make_durable: dead letters found after decoding (out of order, refused by the store), duplicates
    late_dead: list[tuple[Any, DecodeFailure]] = field(default_factory=list)
    duplicates: int = 0

    @classmethod
    def decode(cls, raw_records: Sequence[Any], *, window_len: int, channels: tuple[str, ...],
               max_bytes: int, decode: Callable[..., list[SensorWindow | DecodeFailure]] = decode_batch) -> Batch:
        """Decode the raw Kafka records of one poll as one batch; nothing is sent or scored yet. ``decode``:
        ``decode_batch`` or what has its results (``monitor.consumer.decoder.DecodeProcess.decode``)."""
        batch = cls(len(raw_records), time.perf_counter(), [], [], {}, {})
        with _gc_paused():  # the batch's lists hold no reference cycles: a collection per few hundred is overhead
            results = decode(
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
                batch.sources[(raw.partition, raw.offset)] = raw
        return batch


def load_states(engine: Engine, db: DbEngine, records: list[Record]) -> None:
    """Restore from the database the state of the records' sensors that the engine does not hold yet."""
    missing = engine.missing(records)
    if not missing:
        return
    engine.load(repository.load_sensor_states(db, missing))


def make_durable(batch: Batch, *, engine: Engine, db: DbEngine, dead_letters: DeadLetters,
                 faults: FaultInjector, group_id: str, topic: str) -> BatchOutcome:
    """Steps 2-4: state, order, scoring, dead-letter flush, ONE transaction (alerts + their evidence + sensor
    state + fenced offsets).

    Windows not newer than their sensor's last judged one are skipped (duplicates) or dead letters
    (``out_of_order``, see ``monitor.core.ordering``). When the database refuses the output for a data reason, the
    records behind it are found by bisection (``isolate``), sent to the dead-letter topic (``store_rejected``)
    and the rest is committed. Raises StaleOffsetError when the fence (``batch.expected``) no longer holds,
    StoreError/BrokerError when the database or the dead-letter producer fails; nothing is durable then.
    """
    with metrics.timed("state_load"):
        load_states(engine, db, batch.good)
    admission = admit(batch.good, engine.orders(),
                      lambda r: (r.window.sensor_id, r.window.window_start, r.window.window_end))
    batch.duplicates = len(admission.duplicates)
    records: list[Record] = admission.new
    late = [(batch.sources[(r.partition, r.offset)], DecodeFailure(OUT_OF_ORDER, detail)) for r, detail in admission.late]
    started = time.perf_counter()
    outcome = engine.process(records)
    metrics.add_stage("scoring", engine.last_scoring_s)
    metrics.add_stage("judge", time.perf_counter() - started - engine.last_scoring_s)
    if late and not faults.fence_broken:
        # Lateness is judged from the sensors' state: only a batch whose fence still holds may say so. A member
        # whose partition moved on elsewhere (a zombie, a lost rebalance) read a newer owner's state and would
        # letter windows that owner has applied; the batch is dropped here, before any letter is sent.
        repository.check_fence(db, group_id=group_id, topic=topic, expected=batch.expected,
                               revisions={r.window.sensor_id: engine.revision(r.window.sensor_id)
                                          for r, _ in admission.late})
    with metrics.timed("dead_letters"):
        for raw, failure in late:
            dead_letters.send(raw, failure)
        dead_letters.flush()
    faults.at("before_db_commit")
    try:
        with metrics.timed("store"):
            _commit(batch, outcome, db=db, group_id=group_id, topic=topic, faults=faults)
    except StoreRejectedError as exc:
        log.warning("the database refused the batch's output (%s): bisecting it for the records behind it", exc)
        outcome, refused = isolate(records, engine=engine, db=db)
        rejected = [(batch.sources[(r.partition, r.offset)], DecodeFailure(STORE_REJECTED, why)) for r, why in refused]
        for raw, failure in rejected:
            dead_letters.send(raw, failure)
        dead_letters.flush()
        late += rejected
        log.warning("%d record(s) refused by the database sent to the dead-letter topic", len(refused))
        _commit(batch, outcome, db=db, group_id=group_id, topic=topic, faults=faults)
    batch.late_dead = late
    faults.at("after_db_commit")
    log_alert_events(outcome)
    return outcome


def log_alert_events(outcome: BatchOutcome) -> None:
    """One INFO line per alert opened or closed in a batch, once its output is durable (what the log says
    happened is in the database)."""
    for kind, alert in outcome.events:
        fields = {"event": f"alert_{kind}", "sensor_id": alert.sensor_id, "severity": alert.severity,
                  "peak": alert.peak_score, "threshold": alert.threshold_at_peak, "windows": alert.window_count,
                  "top_channels": alert.top_channels, "model_version": alert.model_version,
                  "opened_at": format_time(alert.opened_at),
                  "closed_at": format_time(alert.closed_at) if alert.closed_at else None}
        if kind == "opened":
            log.info("alert opened: sensor=%s severity=%s peak=%.4g threshold=%.4g top=%s model=%s since=%s",
                     alert.sensor_id, alert.severity, alert.peak_score, alert.threshold_at_peak,
                     ",".join(alert.top_channels), alert.model_version, fields["opened_at"], extra=fields)
        else:
            log.info("alert closed: sensor=%s severity=%s peak=%.4g windows=%d top=%s model=%s since=%s until=%s",
                     alert.sensor_id, alert.severity, alert.peak_score, alert.window_count,
                     ",".join(alert.top_channels), alert.model_version, fields["opened_at"], fields["closed_at"],
                     extra=fields)


def _commit(batch: Batch, outcome: BatchOutcome, *, db: DbEngine, group_id: str, topic: str,
            faults: FaultInjector) -> None:
    expected, rows = batch.expected, Engine.rows(outcome)
    if faults.fence_broken:  # the fault suite's self-test: a stale batch is written instead of refused (both fences)
        stored = repository.load_offsets(db, group_id, topic)
        expected = {p: stored.get(p) for p in batch.next_offsets}
        states = repository.load_sensor_states(db, [r.sensor_id for r in rows])
        rows = [replace(r, revision=states[r.sensor_id].revision if r.sensor_id in states else None) for r in rows]
    repository.commit_batch(
        db, group_id=group_id, topic=topic, alerts=list(outcome.alerts.values()),
        sensors=rows, offsets=batch.next_offsets,
        expected=expected, evidence=outcome.evidence, prunes=list(outcome.prunes.values()),
        fenced=lambda: faults.at("in_db_commit"),
    )
    Engine.stored(outcome)


def isolate(records: list[Record], *, engine: Engine, db: DbEngine) -> tuple[BatchOutcome, list[tuple[Record, str]]]:
    """The records whose output the database refuses, and the outcome of the others (judged from the stored
    state, as if the refused records had never come). Sensors are independent, so the refused sensors are
    found by halving the set of sensors; within one, a sensor's windows depend on each other, so the refused
    record is the first whose prefix is refused (a prefix search), dropped, and the search repeats on the rest.
    Each try judges from the stored state and writes in a transaction that is rolled back
    (``repository.probe_outputs``). Raises StoreError when the database cannot be reached meanwhile."""
    by_sensor: dict[str, list[Record]] = {}
    for record in records:
        by_sensor.setdefault(record.window.sensor_id, []).append(record)

    def refusal(subset: list[Record]) -> str | None:
        engine.drop({r.window.sensor_id for r in subset})  # judged again from the stored state
        load_states(engine, db, subset)
        outcome = engine.process(subset)
        try:
            repository.probe_outputs(db, alerts=list(outcome.alerts.values()), sensors=Engine.rows(outcome),
                                     evidence=outcome.evidence)
        except StoreRejectedError as exc:
            return str(exc)
        return None

    def refused_sensors(ids: list[str]) -> list[str]:
        if refusal([r for s in ids for r in by_sensor[s]]) is None:
            return []
        if len(ids) == 1:
            return ids
        half = len(ids) // 2
        return refused_sensors(ids[:half]) + refused_sensors(ids[half:])

    refused: list[tuple[Record, str]] = []
    for sensor_id in refused_sensors(sorted(by_sensor)):
        kept = by_sensor[sensor_id]
        while kept and (why := refusal(kept)) is not None:
            if (first := refusal(kept[:1])) is not None:
                k, why = 1, first
            else:  # kept[:lo] accepted, kept[:hi] refused: find the shortest refused prefix
                lo, hi = 1, len(kept)
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if (reason := refusal(kept[:mid])) is None:
                        lo = mid
                    else:
                        hi, why = mid, reason
                k = hi
            refused.append((kept[k - 1], why))
            kept = kept[: k - 1] + kept[k:]
        by_sensor[sensor_id] = kept
    engine.forget()  # nothing of the tries stays: the outcome below is judged from the stored state
    keep = {id(r) for rs in by_sensor.values() for r in rs}
    kept_records = [r for r in records if id(r) in keep]
    load_states(engine, db, kept_records)
    return engine.process(kept_records), refused
