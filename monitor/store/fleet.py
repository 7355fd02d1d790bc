"""The fleet at a glance (the page's overview, ``GET /fleet``): which sensors alert now and how many alerts
opened per hour. The caller owns the engine; one short read transaction.

Hours are counted in event time (``opened_at``), like everything the monitor decides. Unless the caller names
the end, the counted hours end with the hour of the newest window the monitor has scored: in live operation
that is now, and a replay or a stalled stream shows its last hours rather than an empty chart (the answer
says which: ``until_source``, ``latest_event``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from monitor.core.incidents import ACKNOWLEDGED, OPEN, SEVERITIES
from monitor.errors import StoreError
from monitor.store.schema import Alert, SensorState

HOUR = timedelta(hours=1)


def overview(engine: Engine, hours: int = 24, until: datetime | None = None,
             now: datetime | None = None) -> dict[str, Any]:
    """Alerting sensors (worst severity first, then newest) and per-hour counts of alerts opened in the
    ``hours`` whole hours that end at ``until`` rounded up to the hour (see the module docstring)."""
    a, s = Alert.__table__.c, SensorState.__table__.c
    try:
        with engine.connect() as conn:
            latest = conn.execute(select(func.max(s.last_window_end))).scalar_one_or_none()
            if latest is None:
                latest = conn.execute(select(func.max(a.last_window_end))).scalar_one_or_none()
            sensors = int(conn.execute(select(func.count()).select_from(SensorState.__table__)).scalar_one())
            ongoing = conn.execute(
                select(a.id, a.sensor_id, a.status, a.severity, a.opened_at, a.peak_score)
                .where(a.status.in_([OPEN, ACKNOWLEDGED])).order_by(a.id.desc())
            ).mappings().all()
            source = "given" if until is not None else "latest_event" if latest is not None else "now"
            latest = None if latest is None else _aware(latest)
            end = _ceil_hour(until or latest or now or datetime.now(timezone.utc))
            start = end - hours * HOUR
            opened = conn.execute(
                select(a.opened_at, a.severity).where(a.opened_at >= start, a.opened_at < end)
            ).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the fleet overview: {exc.__class__.__name__}") from exc
    counts = [{"opened": 0, **{sev: 0 for sev in SEVERITIES}} for _ in range(hours)]
    for at, severity in opened:
        slot = counts[int((_aware(at) - start) // HOUR)]
        slot["opened"] += 1
        if severity in SEVERITIES:
            slot[severity] += 1
    per_hour = [{"hour": start + i * HOUR, **slot} for i, slot in enumerate(counts)]
    return {"until": end, "until_source": source, "latest_event": latest, "sensors": sensors,
            "alerting": _alerting(ongoing), "per_hour": per_hour}


def _alerting(ongoing: Any) -> list[dict[str, Any]]:
    """One entry per sensor from its open/acknowledged alerts (newest first): the newest alert, the worst
    severity, the count."""
    rank = {sev: i for i, sev in enumerate(SEVERITIES)}
    by_sensor: dict[str, dict[str, Any]] = {}
    for row in ongoing:
        seen = by_sensor.get(row["sensor_id"])
        if seen is None:
            by_sensor[row["sensor_id"]] = {"sensor_id": row["sensor_id"], "alert_id": row["id"],
                                           "status": row["status"], "severity": row["severity"],
                                           "opened_at": _aware(row["opened_at"]), "peak_score": row["peak_score"],
                                           "open_alerts": 1}
            continue
        seen["open_alerts"] += 1
        if rank.get(row["severity"], -1) > rank.get(seen["severity"], -1):
            seen["severity"] = row["severity"]
    return sorted(by_sensor.values(), key=lambda r: (-rank.get(r["severity"], -1), -r["opened_at"].timestamp()))


def _ceil_hour(at: datetime) -> datetime:
    floor = at.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    return floor if floor == at else floor + HOUR


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at
