"""Keeping anomalies out of training data: windows that overlap an alert (incident) of their sensor.

An alert covers ``[opened_at, closed_at]`` (an open alert: until now). A window ``[window_start, window_end]``
of the same sensor that overlaps it is excluded. Alerts that an operator marked as false positives are
normal data after all and are not excluded, nor are those marked a new normal (a lasting change of operating
point the next model must learn); ``false_positive_alert_ids`` reads the operators' feedback.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StoreError
from monitor.store.alerts_api import query_alerts
from monitor.store.schema import AlertFeedback
from monitor.training.history import HistoryWindow

log = logging.getLogger(__name__)
NORMAL_VERDICTS = ("false_positive", "new_normal")  # verdicts that say the alert's windows were normal data

@dataclass(frozen=True)
class Interval:
    sensor_id: str
    start: datetime
    end: datetime | None  # None: still open
    alert_id: int


def false_positive_alert_ids(db: Engine) -> set[int]:
    """Ids of alerts an operator marked ``false_positive`` or ``new_normal`` (their windows are normal data: kept in
    training)."""
    fb = AlertFeedback.__table__.c
    try:
        with db.connect() as conn:
            return {int(a) for a in conn.execute(select(fb.alert_id).where(fb.verdict.in_(NORMAL_VERDICTS))).scalars()}
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read operator feedback: {exc.__class__.__name__}") from exc


def alert_intervals(db: Engine, start: datetime, end: datetime) -> list[Interval]:
    """Alerts overlapping ``[start, end)``, minus those operators marked as false positives."""
    rows = query_alerts(db, since=start, until=end, limit=10_000_000)
    readmitted = false_positive_alert_ids(db)
    return [Interval(r["sensor_id"], r["opened_at"], r["closed_at"], int(r["id"]))
            for r in rows if int(r["id"]) not in readmitted]


def exclude(windows: Sequence[HistoryWindow], intervals: Sequence[Interval]) -> tuple[list[HistoryWindow], int]:
    """Windows that overlap no interval of their sensor, and how many were excluded. Pure."""
    by_sensor: dict[str, list[Interval]] = defaultdict(list)
    for interval in intervals:
        by_sensor[interval.sensor_id].append(interval)
    kept: list[HistoryWindow] = []
    for w in windows:
        hit = any(w.window_start <= (i.end or w.window_end) and w.window_end >= i.start
                  for i in by_sensor.get(w.sensor_id, ()))
        if not hit:
            kept.append(w)
    return kept, len(windows) - len(kept)
