"""Feedback closes the loop in the store: false-positive windows go back into the threshold statistics
and are marked for retraining.

* ``apply_false_positive``: in ONE transaction, read the sensor's stored state, admit the alert windows'
  levels (``monitor.feedback.forgive_state``), write it back and mark the feedback applied. Skipped (with a
  reason kept in ``alert_feedback.threshold_note``) when the sensor's state belongs to another model version
  than the alert (another score scale) or when there is no state.
* ``false_positive_ranges``: (sensor_id, start, end) of every alert whose current verdict is false
  positive; a retraining job admits the windows in these ranges to its training set instead of excluding
  them with the other alert windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StoreError
from monitor.feedback import forgive_state
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
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                # pysqlite begins a transaction only at the first write, so the read would see a snapshot a
                # consumer's commit can overtake; IMMEDIATE takes the write lock now (waits up to busy_timeout)
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            fb_query = (
                select(AlertFeedback.verdict, AlertFeedback.threshold_applied, Alert.sensor_id, Alert.model_version)
                .join(Alert, Alert.id == AlertFeedback.alert_id)
                .where(AlertFeedback.alert_id == alert_id)
            )
            if engine.dialect.name == "postgresql":
                # two concurrent verdicts (a double click) must not both read "not applied"
                fb_query = fb_query.with_for_update(of=AlertFeedback)
            fb = conn.execute(fb_query).first()
            if fb is None or fb.verdict != "false_positive":
                return False, "no false-positive feedback on this alert"
            if fb.threshold_applied:
                return True, "already applied"
            query = select(SensorState.state, SensorState.model_version).where(SensorState.sensor_id == fb.sensor_id)
            if engine.dialect.name == "postgresql":
                query = query.with_for_update()  # the runner's upsert waits; on SQLite the transaction holds the lock
            row = conn.execute(query).first()
            if row is None:
                note = f"sensor {fb.sensor_id} has no stored threshold state"
            elif row.model_version != fb.model_version:
                note = (f"sensor state is on model {row.model_version}, the alert on {fb.model_version}: "
                        "scores are on different scales, threshold left as is")
            elif not levels:
                note = "no window scores available (source records expired?)"
            else:
                new_state = forgive_state(row.state, levels, threshold_cfg, alert_cfg)
                conn.execute(update(SensorState).where(SensorState.sensor_id == fb.sensor_id)
                             .values(state=new_state, updated_at=utcnow(), revision=SensorState.revision + 1))
                note = f"{len(levels)} window levels admitted to the threshold statistics"
                conn.execute(update(AlertFeedback).where(AlertFeedback.alert_id == alert_id)
                             .values(threshold_applied=True, threshold_note=note))
                return True, note
            conn.execute(update(AlertFeedback).where(AlertFeedback.alert_id == alert_id)
                         .values(threshold_note=note))
            return False, note
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot apply feedback to the threshold: {exc.__class__.__name__}") from exc


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
