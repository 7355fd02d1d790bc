"""Keeping anomalies out of training data: windows that overlap an alert (incident) of their sensor.

An alert covers ``[opened_at, closed_at]`` (an open alert: until now). A window ``[window_start, window_end]``
of the same sensor that overlaps it is excluded. Alerts that an operator marked as false positives are
normal data after all and are not excluded: ``false_positive_alert_ids`` is that hook (it reads operator
feedback when the feedback table exists; until then it returns nothing).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from monitor.store.repository import query_alerts
from monitor.training.history import HistoryWindow

log = logging.getLogger(__name__)

#: Operator feedback (issue 5 owns the table). Expected columns: alert_id, label ('false_positive', ...).
FEEDBACK_TABLE = "alert_feedback"


@dataclass(frozen=True)
class Interval:
    sensor_id: str
    start: datetime
    end: datetime | None  # None: still open
    alert_id: int


def false_positive_alert_ids(db: Engine) -> set[int]:
    """Ids of alerts whose latest operator feedback is ``false_positive`` (their windows stay in training).

    Hook for the feedback feature: returns an empty set while the feedback table does not exist.
    """
    try:
        if not inspect(db).has_table(FEEDBACK_TABLE):
            return set()
        with db.connect() as conn:
            rows = conn.execute(text(f"SELECT alert_id, label FROM {FEEDBACK_TABLE} ORDER BY id"))
            latest = {int(a): str(lbl) for a, lbl in rows}
    except SQLAlchemyError as exc:
        log.warning("operator feedback unreadable (%s): every alert is excluded from training", exc.__class__.__name__)
        return set()
    return {a for a, lbl in latest.items() if lbl == "false_positive"}


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
