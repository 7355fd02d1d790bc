"""Reads and writes of the stream engine: one transaction per batch (alerts + sensor state + offsets).

The caller owns the engine; each function opens its own short transaction. ``commit_batch`` fences the
offsets: it advances a partition only from the offset this consumer last saw, so a consumer that lost a
partition in a rebalance cannot overwrite the new owner's progress (``StaleOffsetError``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError

from monitor.core.engine import SensorRow
from monitor.core.evidence import EvidenceRow, Prune
from monitor.core.incidents import RESOLVED, AlertRecord
from monitor.errors import StaleOffsetError, StaleStateError, StoreError, StoreRejectedError
from monitor.store.evidence import write_evidence
from monitor.store.schema import Alert, ConsumerOffset, SensorState, utcnow


def _insert(engine: Engine, table: Any) -> Any:
    return (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(table)


def load_offsets(engine: Engine, group_id: str, topic: str) -> dict[int, int]:
    """Partition -> next offset stored with the output."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(ConsumerOffset.partition, ConsumerOffset.next_offset).where(
                    ConsumerOffset.group_id == group_id, ConsumerOffset.topic == topic
                )
            )
            return {int(p): int(o) for p, o in rows}
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read stored offsets: {exc.__class__.__name__}") from exc


def record_lost_records(engine: Engine, group_id: str, topic: str, partition: int, stored: int, log_start: int) -> bool:
    """Move a stored offset that fell out of the log (``stored`` < ``log_start``) to ``log_start``, adding the
    gap to ``lost_records`` and setting ``lost_at``. Fenced on ``stored`` like a batch commit: False when the
    stored offset moved meanwhile (nothing written, the caller re-reads it)."""
    now = utcnow()
    try:
        with engine.begin() as conn:
            moved = conn.execute(
                update(ConsumerOffset)
                .where(ConsumerOffset.group_id == group_id, ConsumerOffset.topic == topic,
                       ConsumerOffset.partition == partition, ConsumerOffset.next_offset == stored)
                .values(next_offset=log_start, lost_records=ConsumerOffset.lost_records + (log_start - stored),
                        lost_at=now, updated_at=now)
            )
            return bool(moved.rowcount == 1)
    except SQLAlchemyError as exc:
        raise _store_error("cannot record lost records", exc) from exc


def load_sensor_states(engine: Engine, sensor_ids: Iterable[str]) -> dict[str, SensorRow]:
    ids = list(sensor_ids)
    if not ids:
        return {}
    try:
        table = SensorState.__table__
        fields = [table.c[name] for name in SensorRow.__dataclass_fields__]
        with engine.connect() as conn:
            rows = conn.execute(select(*fields).where(table.c.sensor_id.in_(ids))).mappings()
            return {row["sensor_id"]: SensorRow(**row) for row in rows}
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read sensor state: {exc.__class__.__name__}") from exc


def commit_batch(
    engine: Engine,
    *,
    group_id: str,
    topic: str,
    alerts: Sequence[AlertRecord],
    sensors: Sequence[SensorRow],
    offsets: Mapping[int, int],
    expected: Mapping[int, int | None],
    evidence: Sequence[EvidenceRow] = (),
    prunes: Sequence[Prune] = (),
    fenced: Callable[[], None] | None = None,
) -> None:
    """Write alert upserts, their decision-time evidence (``monitor.store.evidence``), sensor state and next
    offsets in ONE transaction.

    ``offsets``: partition -> next offset after this batch; ``expected``: partition -> the stored offset this
    batch started from (None when the partition had none). Alert upserts are idempotent on
    (sensor_id, opened_at) and skip rows whose content is already stored, so a replay changes nothing; an
    operator's acknowledgement survives later updates until the alert resolves. ``fenced`` is called inside the
    transaction once the offset rows are updated (and, on PostgreSQL, locked): the fault suite's ``in_db_commit``.
    """
    now = utcnow()
    try:
        with engine.begin() as conn:
            for partition, next_offset in offsets.items():
                before = expected.get(partition)
                if before is None:
                    stmt = _insert(engine, ConsumerOffset).values(
                        group_id=group_id, topic=topic, partition=partition, next_offset=next_offset, updated_at=now
                    ).on_conflict_do_nothing().returning(ConsumerOffset.partition)
                    if conn.execute(stmt).first() is None:
                        raise StaleOffsetError(f"partition {partition} was started elsewhere meanwhile")
                    continue
                moved = conn.execute(
                    update(ConsumerOffset)
                    .where(
                        ConsumerOffset.group_id == group_id,
                        ConsumerOffset.topic == topic,
                        ConsumerOffset.partition == partition,
                        ConsumerOffset.next_offset == before,
                    )
                    .values(next_offset=next_offset, updated_at=now)
                )
                if moved.rowcount != 1:
                    raise StaleOffsetError(f"partition {partition} moved on elsewhere (expected offset {before})")
            if fenced is not None:
                fenced()
            _check_revisions(engine, conn, sensors)
            _write_outputs(engine, conn, alerts, sensors, now, evidence, prunes)
    except StaleOffsetError:
        raise
    except SQLAlchemyError as exc:
        raise _store_error("batch commit failed", exc) from exc


def check_fence(engine: Engine, *, group_id: str, topic: str, expected: Mapping[int, int | None],
                revisions: Mapping[str, int | None]) -> None:
    """Raise StaleOffsetError when the fence of a batch no longer holds: a partition's stored offset is not the
    one the batch started from (``expected``, None: no row), or (StaleStateError) a sensor's stored revision is
    not the one its state was read at (``revisions``, None: not stored). Reads only; the batch transaction checks
    the same again. Run before a batch sends dead letters that it judged from the sensors' state
    (``out_of_order``): judged against a state someone else has since moved on, they would be wrong."""
    try:
        with engine.connect() as conn:
            stored = {int(p): int(o) for p, o in conn.execute(
                select(ConsumerOffset.partition, ConsumerOffset.next_offset).where(
                    ConsumerOffset.group_id == group_id, ConsumerOffset.topic == topic,
                    ConsumerOffset.partition.in_(list(expected))))}
            for partition, before in expected.items():
                if stored.get(partition) != before:
                    raise StaleOffsetError(f"partition {partition} moved on elsewhere (expected offset {before}, "
                                           f"stored {stored.get(partition)})")
            _raise_if_moved(conn, revisions, lock=False)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the batch's fence: {exc.__class__.__name__}") from exc


def probe_outputs(engine: Engine, *, alerts: Sequence[AlertRecord], sensors: Sequence[SensorRow],
                  evidence: Sequence[EvidenceRow] = ()) -> None:
    """Write these alert upserts and sensor states in a transaction that is always rolled back: raises
    StoreRejectedError when the database refuses the data, StoreError when it cannot be reached. Used to find
    the records of a refused batch (``monitor.consumer.batches``); nothing is stored, no offset is fenced."""
    try:
        with engine.connect() as conn:
            tx = conn.begin()
            try:
                _write_outputs(engine, conn, alerts, sensors, utcnow(), evidence)
            finally:
                tx.rollback()
    except SQLAlchemyError as exc:
        raise _store_error("output refused", exc) from exc


def is_data_refusal(exc: SQLAlchemyError) -> bool:
    """The database (or the driver binding a value) refused the data itself: a constraint, an invalid value
    (PostgreSQL: NUL in text, NaN in json), a value the column type cannot take. Connection failures,
    timeouts and lock conflicts (OperationalError, InterfaceError) are not: they may pass on a retry."""
    if isinstance(exc, (DataError, IntegrityError)):
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)  # a bind parameter's processor raised


def _store_error(what: str, exc: SQLAlchemyError) -> StoreError:
    detail = f"{what}: {exc.__class__.__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    return StoreRejectedError(detail) if is_data_refusal(exc) else StoreError(detail)


def _write_outputs(engine: Engine, conn: Any, alerts: Sequence[AlertRecord], sensors: Sequence[SensorRow],
                   now: datetime, evidence: Sequence[EvidenceRow] = (), prunes: Sequence[Prune] = ()) -> None:
    """Alert upserts, their evidence and sensor states of a batch on ``conn`` (inside the caller's transaction)."""
    if alerts:
        rows = [_alert_row(a, now) for a in alerts]
        stmt = _insert(engine, Alert)
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[Alert.sensor_id, Alert.opened_at],
            set_={
                "closed_at": excluded.closed_at,
                "last_window_end": excluded.last_window_end,
                # resolved by the engine wins; a cooldown re-open of an engine-closed alert is open
                # again; otherwise an operator's status (acknowledged, resolved) is kept
                "status": case(
                    (excluded.status == RESOLVED, RESOLVED),
                    (and_(Alert.closed_at.is_not(None), excluded.closed_at.is_(None)), excluded.status),
                    else_=Alert.status,
                ),
                "severity": excluded.severity,
                "peak_score": excluded.peak_score,
                "threshold_at_peak": excluded.threshold_at_peak,
                "window_count": excluded.window_count,
                "top_channels": excluded.top_channels,
                "last_offset": excluded.last_offset,
                "updated_at": excluded.updated_at,
            },
            # a replay that carries the stored content changes nothing, not even updated_at
            where=or_(
                Alert.closed_at.is_distinct_from(excluded.closed_at),
                Alert.last_window_end != excluded.last_window_end,
                Alert.window_count != excluded.window_count,
                Alert.last_offset != excluded.last_offset,
                Alert.peak_score != excluded.peak_score,
                Alert.severity != excluded.severity,
            ),
        )
        conn.execute(stmt, rows)  # executemany: the statement compiles once and stays cached
    write_evidence(engine, conn, evidence, prunes)
    if sensors:
        stmt = _insert(engine, SensorState)
        rows = [
            {
                "sensor_id": s.sensor_id, "partition": s.partition, "state": s.state,
                "last_score": s.last_score, "last_threshold": s.last_threshold,
                "last_window_end": s.last_window_end, "model_version": s.model_version,
                "updated_at": now,
            }
            for s in sensors
        ]
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[SensorState.sensor_id],
            set_={**{name: getattr(excluded, name) for name in (
                "partition", "state", "last_score", "last_threshold", "last_window_end", "model_version",
                "updated_at")}, "revision": SensorState.revision + 1},  # every write: one writer per sensor
        )
        conn.execute(stmt, rows)  # executemany (insertmanyvalues batches on PostgreSQL)


def _check_revisions(engine: Engine, conn: Any, sensors: Sequence[SensorRow]) -> None:
    """Raise StaleStateError when a stored sensor state is not the one the consumer's state grew from: written
    since at another revision (operator feedback, or another consumer: each write bumps the revision), or stored
    by someone else while the consumer believed the sensor new (revision None).

    This makes every sensor's state single-writer even when one sensor's windows reach several consumers (keyless
    records, partitions added to the topic): the later writer's batch is dropped and read again from the
    stored state, where windows older than the other writer's become ``out_of_order`` dead letters. Runs after
    the offset fence, inside the batch transaction: on SQLite that transaction already holds the write lock; on
    PostgreSQL the rows are locked (FOR UPDATE) so a concurrent writer waits for it."""
    _raise_if_moved(conn, {s.sensor_id: s.revision for s in sensors}, lock=engine.dialect.name == "postgresql")


def _raise_if_moved(conn: Any, revisions: Mapping[str, int | None], *, lock: bool) -> None:
    """StaleStateError when a sensor's stored revision is not ``revisions[sensor]`` (None: must not be stored);
    ``lock``: read the rows FOR UPDATE (PostgreSQL, inside the batch transaction)."""
    if not revisions:
        return
    query = select(SensorState.sensor_id, SensorState.revision).where(SensorState.sensor_id.in_(list(revisions)))
    if lock:
        query = query.with_for_update()
    stored = {sid: rev for sid, rev in conn.execute(query)}
    moved = sorted(sid for sid, rev in revisions.items() if stored.get(sid) != rev)
    if moved:
        raise StaleStateError(f"state of {len(moved)} sensor(s) changed in the database meanwhile ({', '.join(moved[:3])})")


# The one mapping between the engine's AlertRecord and the alerts table: every field the table has a column for
# (contribution_sums is the engine's running state, kept in the sensor state, not in the row).
ALERT_FIELDS = tuple(f.name for f in dataclasses.fields(AlertRecord) if f.name in Alert.__table__.c)


def _alert_row(alert: AlertRecord, now: datetime) -> dict[str, Any]:
    return {**{name: getattr(alert, name) for name in ALERT_FIELDS}, "created_at": now, "updated_at": now}
