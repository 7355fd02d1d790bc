"""Reads and writes of decision-time evidence (``monitor.core.evidence``; table ``alert_evidence``).

``write_evidence`` runs on the caller's connection, inside the batch transaction that upserts the alerts
(``repository.commit_batch``): evidence is durable exactly when its alerts are, before the offsets move.
Upserts on (sensor_id, opened_at, window_end), so a replayed batch writes the same rows again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from monitor.core.evidence import EvidenceRow, Mark, Prune, finite_list, finite_or_none
from monitor.errors import StoreError
from monitor.store.schema import AlertEvidence


def write_evidence(engine: Engine, conn: Any, rows: Sequence[EvidenceRow], prunes: Sequence[Prune]) -> None:
    """Upsert ``rows`` then apply ``prunes`` on ``conn`` (inside the caller's transaction)."""
    if rows:
        latest = {(r.sensor_id, r.opened_at, r.mark.window_end): r for r in rows}  # one row per key and statement
        insert = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(AlertEvidence)
        excluded = insert.excluded
        stmt = insert.on_conflict_do_update(
            index_elements=[AlertEvidence.sensor_id, AlertEvidence.opened_at, AlertEvidence.window_end],
            set_={name: getattr(excluded, name) for name in (
                "window_start", "record_offset", "seq", "score", "threshold", "contributions", "model_version")},
        )
        conn.execute(stmt, [_row(r) for r in latest.values()])
    t = AlertEvidence
    for p in prunes:
        conn.execute(delete(t).where(t.sensor_id == p.sensor_id, t.opened_at == p.opened_at, t.seq > p.head,
                                     t.seq <= p.through, t.score != p.peak))


def load_evidence(engine: Engine, sensor_id: str, opened_at: datetime) -> list[EvidenceRow]:
    """The evidence of the alert ``(sensor_id, opened_at)`` in window order ([] for an alert without any)."""
    t = AlertEvidence
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(t).where(t.sensor_id == sensor_id, t.opened_at == opened_at)
                                .order_by(t.window_end)).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read alert evidence: {exc.__class__.__name__}") from exc
    return [
        EvidenceRow(r.sensor_id, r.opened_at, Mark(
            r.window_start, r.window_end, int(r.record_offset), _float(r.score), _float(r.threshold),
            np.array([math.nan if c is None else c for c in r.contributions], dtype=float), r.model_version,
            r.seq > 0, int(r.seq),
        ))
        for r in rows
    ]


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _row(r: EvidenceRow) -> dict[str, Any]:
    m = r.mark
    return {"sensor_id": r.sensor_id, "opened_at": r.opened_at, "window_end": m.window_end,
            "window_start": m.window_start, "record_offset": m.offset, "seq": m.seq,
            "score": finite_or_none(m.score), "threshold": finite_or_none(m.threshold),
            "contributions": finite_list(m.contributions), "model_version": m.model_version}
