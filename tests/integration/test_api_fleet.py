"""HTTP API on SQLite and PostgreSQL: who acknowledged / resolved an alert (the page's status chips) and the
fleet overview (GET /fleet: sensors alerting now, alerts opened per hour)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import cast

import pytest
from sqlalchemy import Engine, Table

from monitor.store.schema import SensorState
from tests.integration.api_helpers import T0, alert_row, client, insert_alerts, keys

pytestmark = pytest.mark.integration


def test_alerts_name_who_acknowledged_and_who_resolved(db: Engine) -> None:
    closed = T0 + timedelta(minutes=30)
    ids = insert_alerts(db, [
        alert_row(1),  # open
        alert_row(2),  # acknowledged, then resolved by a person
        alert_row(3, status="resolved", closed_at=closed),  # closed by the detector
        alert_row(4),  # acknowledged by a person, closed later by the detector (below)
    ])
    read, write = keys(db)
    api = client(db)
    assert api.post(f"/alerts/{ids[1]}/acknowledge", headers=write).status_code == 200
    resolved = api.post(f"/alerts/{ids[1]}/resolve", headers=write).json()
    assert (resolved["acknowledged_by"], resolved["resolved_by"]) == ("operator", "operator")
    assert api.post(f"/alerts/{ids[3]}/acknowledge", headers=write).status_code == 200
    from monitor.store.schema import Alert

    with db.begin() as conn:  # the detector closes it: status resolved, closed_at set, no audit event
        conn.execute(cast(Table, Alert.__table__).update().where(Alert.id == ids[3])
                     .values(status="resolved", closed_at=closed))
    listed = {a["id"]: a for a in api.get("/alerts?limit=500", headers=read).json()["items"]}
    who = {i: (listed[i]["status"], listed[i]["acknowledged_by"], listed[i]["resolved_by"], listed[i]["closed_at"])
           for i in ids}
    assert who == {
        ids[0]: ("open", None, None, None),
        ids[1]: ("resolved", "operator", "operator", None),
        ids[2]: ("resolved", None, None, "2026-01-01T00:30:00Z"),
        ids[3]: ("resolved", "operator", None, "2026-01-01T00:30:00Z"),
    }
    for i in ids:  # the detail says the same as the list
        detail = api.get(f"/alerts/{i}?context=false", headers=read).json()
        assert (detail["acknowledged_by"], detail["resolved_by"]) == who[i][1:3], i


def test_fleet_overview_counts_hours_and_names_the_alerting_sensors(db: Engine) -> None:
    latest = T0 + timedelta(hours=30, minutes=20)  # event time of the newest scored window
    with db.begin() as conn:
        for sid in ("pump-1", "pump-2", "pump-3"):
            conn.execute(cast(Table, SensorState.__table__).insert().values(
                sensor_id=sid, partition=0, state={}, last_score=1.0, last_threshold=4.0,
                last_window_end=latest if sid == "pump-1" else T0, model_version="m1", updated_at=T0))

    def at(h: int, m: int = 0) -> datetime:
        return T0 + timedelta(hours=h, minutes=m)

    ids = insert_alerts(db, [
        alert_row(1, sensor_id="pump-1", opened_at=at(29, 10), severity="minor", status="acknowledged"),
        alert_row(2, sensor_id="pump-1", opened_at=at(30, 5), severity="critical"),
        alert_row(3, sensor_id="pump-2", opened_at=at(30, 15), severity="major"),
        alert_row(4, sensor_id="pump-3", opened_at=at(29, 40), severity="critical", status="resolved"),
        alert_row(5, sensor_id="pump-3", opened_at=at(7), severity="major", status="resolved"),  # the first hour
        alert_row(6, sensor_id="pump-3", opened_at=at(6, 59), severity="minor", status="resolved"),  # too old
    ])
    read, _ = keys(db)
    api = client(db)
    assert api.get("/fleet").status_code == 401
    assert api.get("/fleet?hours=0", headers=read).status_code == 422
    body = api.get("/fleet", headers=read).json()
    assert body["until"] == "2026-01-02T07:00:00Z" and body["until_source"] == "latest_event"
    assert body["latest_event"] == "2026-01-02T06:20:00Z" and body["sensors"] == 3
    assert [(s["sensor_id"], s["alert_id"], s["severity"], s["status"], s["open_alerts"]) for s in body["alerting"]] == [
        ("pump-1", ids[1], "critical", "open", 2), ("pump-2", ids[2], "major", "open", 1)]
    hours = body["per_hour"]
    assert len(hours) == 24 and hours[0]["hour"] == "2026-01-01T07:00:00Z" and hours[-1]["hour"] == "2026-01-02T06:00:00Z"
    counted = {h["hour"]: (h["opened"], h["minor"], h["major"], h["critical"]) for h in hours if h["opened"]}
    assert counted == {"2026-01-01T07:00:00Z": (1, 0, 1, 0),  # opened 06:59 is before the first hour: not counted
                       "2026-01-02T05:00:00Z": (2, 1, 0, 1), "2026-01-02T06:00:00Z": (2, 0, 1, 1)}
    # A named end and a shorter span; relative times as in GET /alerts.
    body = api.get("/fleet?hours=2&until=2026-01-02T05:30:00Z", headers=read).json()
    assert body["until_source"] == "given" and body["until"] == "2026-01-02T06:00:00Z"
    assert [(h["hour"], h["opened"]) for h in body["per_hour"]] == [("2026-01-02T04:00:00Z", 0),
                                                                    ("2026-01-02T05:00:00Z", 2)]
    now = datetime.now(timezone.utc)
    body = api.get("/fleet?hours=1&until=1h", headers=read).json()
    assert abs(datetime.fromisoformat(body["until"]) - (now - timedelta(hours=1))) < timedelta(hours=1, minutes=1)


def test_fleet_overview_of_an_empty_store_ends_now(db: Engine) -> None:
    read, _ = keys(db)
    body = client(db).get("/fleet?hours=3", headers=read).json()
    assert body["until_source"] == "now" and body["latest_event"] is None and body["alerting"] == []
    assert [h["opened"] for h in body["per_hour"]] == [0, 0, 0]
    assert datetime.fromisoformat(body["until"]) - datetime.now(timezone.utc) <= timedelta(hours=1)
