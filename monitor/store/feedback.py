"""Feedback closes the loop in the store: false-positive windows go back into the threshold statistics
and are marked for retraining.

* ``apply_false_positive``: in ONE transaction, read the sensor's stored state, admit the alert windows'
  levels (``monitor.core.feedback.forgive_state``), write it back and mark the feedback applied. Skipped (with a
  reason kept in ``alert_feedback.threshold_note``) when the sensor's state belongs to another model version
  than the alert (another score scale) or when there is no state.
* ``apply_new_normal``: the same locked read-modify-write for the verdict ``new_normal``: the sensor's current
  level becomes its centre (``monitor.core.feedback.adopt_state``).
* ``false_positive_ranges``: (sensor_id, start, end) of every alert whose current verdict is false
  positive; a retraining job admits the windows in these ranges to its training set instead of excluding
  them with the other alert windows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from monitor.core.feedback import adopt_state, forgive_state
from monitor.errors import StoreError
from monitor.settings import AlertSettings, ThresholdSettings
from monitor.store.schema import Alert, AlertFeedback, SensorState, utcnow


def apply_false_positive(
    engine: Engine,
    alert_id: int,
    levels: Sequence[float],
    threshold_cfg: ThresholdSettings,
    alert_cfg: AlertSettings,
) -> tuple[bool, str]:
    """Admit a false-positive alert's window levels into its sensor's threshold state. Returns (applied, note).

    Once per alert: a feedback row already applied (by this or an earlier false-positive verdict; rewrites of
    the verdict keep the flag) is not applied again and returns (True, "already applied").

    A locked read-modify-write: the state is read under the lock its write needs (PostgreSQL: SELECT ... FOR
    UPDATE; SQLite: BEGIN IMMEDIATE, the database's write lock, taken before the first read), so a consumer's
    batch committed in between cannot be overwritten by a state read before it; the revision bump then makes
    the consumer re-read the state and replay its later windows (``repository.commit_batch``).
    """
    def admit(state: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        if not levels:
            return None, "no window scores available (source records expired?)"
        return (forgive_state(state, levels, threshold_cfg, alert_cfg),
                f"{len(levels)} window levels admitted to the threshold statistics")

    return _apply(engine, alert_id, "false_positive", admit,
                  "scores are on different scales, threshold left as is")


def apply_new_normal(engine: Engine, alert_id: int) -> tuple[bool, str]:
    """The verdict ``new_normal``: the alert's sensor adopts its current level as the centre its windows are
    judged against (``monitor.core.feedback.adopt_state``), in one locked read-modify-write like
    ``apply_false_positive`` (the revision bump makes a consumer re-read the state). Once per verdict; skipped,
    with the reason in ``threshold_note``, when the sensor's state is on another model version than the alert's
    or holds no judged window. Returns (applied, note)."""
    def adopt(state: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        new_state, moved = adopt_state(state)
        if not moved:
            return None, "no judged window in the sensor's state: nothing to adopt"
        return new_state, "the sensor's current level is its new normal (input centres moved)"

    return _apply(engine, alert_id, "new_normal", adopt, "its levels are measured on another scale, nothing adopted")


def _apply(engine: Engine, alert_id: int, verdict: str,
           change: Callable[[dict[str, Any]], tuple[dict[str, Any] | None, str]], other_model: str) -> tuple[bool, str]:
    """The locked read-modify-write of a verdict: ``change(state)`` -> (new state or None to leave it, note).
    Once per alert: a verdict already applied returns (True, "already applied")."""
    try:
        with engine.begin() as conn:
            fb = _locked_feedback(conn, alert_id)
            if fb is None or fb.verdict != verdict:
                return False, f"no {verdict.replace('_', '-')} feedback on this alert"
            if fb.threshold_applied:
                return True, "already applied"
            row = _locked_state(conn, fb.sensor_id)
            new_state: dict[str, Any] | None = None
            if row is None:
                note = f"sensor {fb.sensor_id} has no stored threshold state"
            elif row.model_version != fb.model_version:
                note = f"sensor state is on model {row.model_version}, the alert on {fb.model_version}: {other_model}"
            else:
                new_state, note = change(row.state)
            if new_state is not None:
                conn.execute(update(SensorState).where(SensorState.sensor_id == fb.sensor_id)
                             .values(state=new_state, updated_at=utcnow(), revision=SensorState.revision + 1))
            conn.execute(update(AlertFeedback).where(AlertFeedback.alert_id == alert_id)
                         .values(threshold_applied=new_state is not None, threshold_note=note))
            return new_state is not None, note
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot apply the {verdict} verdict: {exc.__class__.__name__}") from exc


def _locked_feedback(conn: Connection, alert_id: int) -> Any:
    """The alert's feedback row, read under the lock its write needs (PostgreSQL: SELECT ... FOR UPDATE, so
    two concurrent verdicts (a double click) cannot both read "not applied"; SQLite: BEGIN IMMEDIATE, the
    database's write lock, taken before the first read: pysqlite begins a transaction only at the first write,
    so the read would otherwise see a snapshot a consumer's commit can overtake)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # waits up to busy_timeout
    query = (
        select(AlertFeedback.verdict, AlertFeedback.threshold_applied, Alert.sensor_id, Alert.model_version)
        .join(Alert, Alert.id == AlertFeedback.alert_id)
        .where(AlertFeedback.alert_id == alert_id)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=AlertFeedback)
    return conn.execute(query).first()


def _locked_state(conn: Connection, sensor_id: str) -> Any:
    """The sensor's stored state and model version; on PostgreSQL locked (the runner's upsert waits), on SQLite
    the transaction holds the write lock already."""
    query = select(SensorState.state, SensorState.model_version).where(SensorState.sensor_id == sensor_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def false_positive_ranges(engine: Engine) -> list[tuple[str, datetime, datetime]]:
    """(sensor_id, first window start, last window end) of alerts currently marked false positive."""
    fb, a = AlertFeedback.__table__.c, Alert.__table__.c
    try:
        with engine.connect() as conn:
            rows = conn.execute(  # the alert's current range: it may have grown since the feedback
                select(a.sensor_id, a.opened_at.label("window_start"), a.last_window_end.label("window_end"))
                .join(AlertFeedback.__table__, fb.alert_id == a.id)
                .where(fb.verdict == "false_positive")
                .order_by(a.sensor_id, a.opened_at)
            ).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read false-positive feedback: {exc.__class__.__name__}") from exc
    return [(r.sensor_id, r.window_start, r.window_end) for r in rows]
