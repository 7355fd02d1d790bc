"""Reads and operator actions behind the HTTP API: filtered alert pages with keyset cursors, one alert
with its audit trail, acknowledge / resolve / feedback (each with an audit event in the same transaction),
and the per-sensor view. The caller owns the engine; every function runs its own short transaction.

Every alert row read here carries ``acknowledged_by`` and ``resolved_by``: the key name of the latest
acknowledge / resolve audit event (None when no person did it). A resolved alert without ``resolved_by`` was
closed by the detector (its ``closed_at`` is set); one with both was resolved by a person and closed later.

Pagination is keyset on an immutable key, (opened_at, id) or id, never OFFSET: rows inserted while a client
pages never shift the rows it has not seen yet, so pages have no gaps and no repeats. Sorting by a mutable
column (peak score, status) is deliberately not offered, because a cursor on it could skip or repeat rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from monitor.core.incidents import ACKNOWLEDGED, OPEN, RESOLVED, Status
from monitor.errors import ConflictError, NotFoundError, StoreError
from monitor.store.apikeys import actor_name
from monitor.store.schema import Alert, AlertEvent, AlertFeedback, SensorState, utcnow

VERDICTS = ("true_positive", "false_positive", "new_normal")
SORTS = ("-opened_at", "opened_at", "-id", "id")
BY_ACTION = {"acknowledge": "acknowledged_by", "resolve": "resolved_by"}  # audit action -> field naming who


@dataclass(frozen=True)
class AlertFilter:
    """Filters shared by the API and the CLI. Times select alerts overlapping [since, until)."""

    sensor_ids: Sequence[str] = ()
    statuses: Sequence[str] = ()
    severities: Sequence[str] = ()
    model_versions: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None

    def clauses(self) -> list[Any]:
        t = Alert.__table__.c
        out: list[Any] = []
        if self.sensor_ids:
            out.append(t.sensor_id.in_(list(self.sensor_ids)))
        if self.statuses:
            out.append(t.status.in_(list(self.statuses)))
        if self.severities:
            out.append(t.severity.in_(list(self.severities)))
        if self.model_versions:
            out.append(t.model_version.in_(list(self.model_versions)))
        if self.since is not None:
            out.append(t.last_window_end >= self.since)
        if self.until is not None:
            out.append(t.opened_at < self.until)
        return out


def query_alerts(
    engine: Engine,
    flt: AlertFilter | None = None,
    *,
    sensor_id: str | None = None,
    status: str | None = None,
    severity: str | None = None,
    model_version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Alerts the filter selects, newest first, at most ``limit``, as plain dicts of the table's columns; the
    keywords are a short form of the filter's fields (one value each). The CLI's `monitor alerts`, retraining's
    exclusion and the demo read alerts through it; the API pages them with the same filter."""
    flt = flt or AlertFilter()
    flt = dataclasses.replace(
        flt, sensor_ids=[sensor_id] if sensor_id else flt.sensor_ids, statuses=[status] if status else flt.statuses,
        severities=[severity] if severity else flt.severities,
        model_versions=[model_version] if model_version else flt.model_versions,
        since=since if since is not None else flt.since, until=until if until is not None else flt.until)
    t = Alert.__table__
    stmt = select(t).where(*flt.clauses()).order_by(t.c.opened_at.desc(), t.c.id.desc()).limit(limit)
    try:
        with engine.connect() as conn:
            return [dict(row) for row in conn.execute(stmt).mappings()]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot query alerts: {exc.__class__.__name__}") from exc


def page_alerts(
    engine: Engine, flt: AlertFilter, *, sort: str = "-opened_at", limit: int = 50, after: tuple[Any, ...] | None = None
) -> tuple[list[dict[str, Any]], tuple[Any, ...] | None]:
    """One page of alerts and the key of its last row (None when this is the last page).

    ``after``: the key returned with the previous page: (opened_at, id) for the opened_at sorts, (id,) for id.
    """
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {SORTS}")
    t = Alert.__table__.c
    desc = sort.startswith("-")
    by_time = sort.lstrip("-") == "opened_at"
    stmt = select(Alert.__table__).where(*flt.clauses())
    if by_time:
        order = [t.opened_at.desc(), t.id.desc()] if desc else [t.opened_at.asc(), t.id.asc()]
    else:
        order = [t.id.desc()] if desc else [t.id.asc()]
    if after is not None:
        if by_time:
            at, last_id = after
            beyond = (t.opened_at < at) if desc else (t.opened_at > at)
            tie = (t.id < last_id) if desc else (t.id > last_id)
            stmt = stmt.where(or_(beyond, and_(t.opened_at == at, tie)))
        else:
            stmt = stmt.where(t.id < after[0] if desc else t.id > after[0])
    stmt = stmt.order_by(*order).limit(limit + 1)
    try:
        with engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(stmt).mappings()]
            more = len(rows) > limit
            rows = rows[:limit]
            people = _people(conn, [r["id"] for r in rows])
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot query alerts: {exc.__class__.__name__}") from exc
    rows = [{**r, **people[r["id"]]} for r in rows]
    if not more or not rows:
        return rows, None
    last = rows[-1]
    return rows, ((last["opened_at"], last["id"]) if by_time else (last["id"],))


def get_alert(engine: Engine, alert_id: int) -> dict[str, Any]:
    """The alert row with its audit events (oldest first) and its feedback (or None)."""
    try:
        with engine.connect() as conn:
            row = conn.execute(select(Alert.__table__).where(Alert.id == alert_id)).mappings().first()
            if row is None:
                raise NotFoundError(f"no alert with id {alert_id}")
            events = conn.execute(
                select(AlertEvent.__table__).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id)
            ).mappings().all()
            feedback = conn.execute(
                select(AlertFeedback.__table__).where(AlertFeedback.alert_id == alert_id)
            ).mappings().first()
            people = _people(conn, [alert_id])[alert_id]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read alert {alert_id}: {exc.__class__.__name__}") from exc
    return {**dict(row), **people, "events": [dict(e) for e in events],
            "feedback": dict(feedback) if feedback else None}


def _people(conn: Any, alert_ids: list[int]) -> dict[int, dict[str, str | None]]:
    """Per alert id: who acknowledged it and who resolved it (key names of the latest such audit events)."""
    out: dict[int, dict[str, str | None]] = {i: {field: None for field in BY_ACTION.values()} for i in alert_ids}
    if not alert_ids:
        return out
    e = AlertEvent.__table__.c
    found = conn.execute(select(e.alert_id, e.action, e.actor)
                         .where(e.alert_id.in_(alert_ids), e.action.in_(list(BY_ACTION))).order_by(e.id))
    for alert_id, action, actor in found:
        out[alert_id][BY_ACTION[action]] = actor_name(actor)
    return out


def change_status(engine: Engine, alert_id: int, to_status: Status, actor: str, note: str | None) -> dict[str, Any]:
    """Acknowledge (open -> acknowledged) or resolve (open/acknowledged -> resolved), with an audit event.

    The update is conditional on the status read, so two operators racing cannot both win.
    """
    allowed_from = {ACKNOWLEDGED: (OPEN,), RESOLVED: (OPEN, ACKNOWLEDGED)}[to_status]
    action = {ACKNOWLEDGED: "acknowledge", RESOLVED: "resolve"}[to_status]
    now = utcnow()
    try:
        with engine.begin() as conn:
            current = conn.execute(select(Alert.status).where(Alert.id == alert_id)).scalar_one_or_none()
            if current is None:
                raise NotFoundError(f"no alert with id {alert_id}")
            if current not in allowed_from:
                raise ConflictError(f"cannot {action} alert {alert_id}: it is {current}")
            values: dict[str, Any] = {"status": to_status, "updated_at": now}
            done = conn.execute(update(Alert).where(Alert.id == alert_id, Alert.status == current).values(values))
            if done.rowcount != 1:
                raise ConflictError(f"alert {alert_id} changed meanwhile; reload and retry")
            conn.execute(insert(AlertEvent).values(
                alert_id=alert_id, action=action, actor=actor, at=now, from_status=current, to_status=to_status,
                note=note,
            ))
    except (ConflictError, NotFoundError):
        raise
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot {action} alert {alert_id}: {exc.__class__.__name__}") from exc
    return get_alert(engine, alert_id)


def record_feedback(engine: Engine, alert_id: int, verdict: str, actor: str, note: str | None) -> dict[str, Any]:
    """Store the verdict (replacing an earlier one) and its audit event in one transaction.

    A rewrite keeps ``threshold_applied`` / ``threshold_note``: they record what the sensor's threshold
    statistics already took in, which a later verdict does not undo, and ``apply_false_positive`` reads them
    to apply an alert's levels at most once (a repeated or re-given false positive changes nothing).
    """
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}")
    now = utcnow()
    table = AlertFeedback.__table__
    try:
        with engine.begin() as conn:
            alert = conn.execute(select(Alert.__table__).where(Alert.id == alert_id)).mappings().first()
            if alert is None:
                raise NotFoundError(f"no alert with id {alert_id}")
            row = {"verdict": verdict, "note": note, "actor": actor, "sensor_id": alert["sensor_id"],
                   "window_start": alert["opened_at"], "window_end": alert["last_window_end"],
                   "updated_at": now}
            exists = conn.execute(select(table.c.alert_id).where(table.c.alert_id == alert_id)).first()
            if exists:
                conn.execute(update(AlertFeedback).where(AlertFeedback.alert_id == alert_id).values(row))
            else:
                conn.execute(insert(AlertFeedback).values(
                    alert_id=alert_id, threshold_applied=False, threshold_note=None, **row))
            conn.execute(insert(AlertEvent).values(
                alert_id=alert_id, action=f"feedback:{verdict}", actor=actor, at=now, from_status=alert["status"],
                to_status=alert["status"], note=note,
            ))
    except NotFoundError:
        raise
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot store feedback on alert {alert_id}: {exc.__class__.__name__}") from exc
    return get_alert(engine, alert_id)


def list_sensors(engine: Engine) -> list[dict[str, Any]]:
    """Per sensor: last score, current threshold, model version and its newest unresolved alert (or None)."""
    s, a = SensorState.__table__.c, Alert.__table__.c
    newest = (
        select(a.sensor_id, func.max(a.id).label("alert_id"))
        .where(a.status.in_([OPEN, ACKNOWLEDGED]))
        .group_by(a.sensor_id)
        .subquery()
    )
    stmt = (
        select(s.sensor_id, s.partition, s.last_score, s.last_threshold, s.last_window_end, s.model_version,
               s.updated_at, a.id.label("open_alert_id"), a.opened_at.label("open_alert_opened_at"),
               a.status.label("open_alert_status"), a.severity.label("open_alert_severity"))
        .select_from(SensorState.__table__)
        .outerjoin(newest, newest.c.sensor_id == s.sensor_id)
        .outerjoin(Alert.__table__, a.id == newest.c.alert_id)
        .order_by(s.sensor_id)
    )
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read sensors: {exc.__class__.__name__}") from exc


def alert_model_versions(engine: Engine) -> list[dict[str, Any]]:
    """Model versions seen in alerts and sensor state, with counts."""
    a, s = Alert.__table__.c, SensorState.__table__.c
    try:
        with engine.connect() as conn:
            alerts = {str(v): int(n) for v, n in conn.execute(
                select(a.model_version, func.count()).group_by(a.model_version))}
            sensors = {str(v): int(n) for v, n in conn.execute(
                select(s.model_version, func.count()).group_by(s.model_version))}
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read model versions: {exc.__class__.__name__}") from exc
    return [{"version": v, "alerts": int(alerts.get(v, 0)), "sensors": int(sensors.get(v, 0))}
            for v in sorted(set(alerts) | set(sensors))]
