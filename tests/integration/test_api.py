"""HTTP API on SQLite and PostgreSQL: keys and scopes, validation, filters, cursor pages under concurrent
inserts, operator actions with their audit trail, feedback, sensors, models, health and metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, Table, select

from monitor.store.apikeys import create_key, revoke_key
from monitor.store.feedback import false_positive_ranges
from monitor.store.schema import AlertEvent, AlertFeedback
from tests.integration.api_helpers import T0, alert_row, client, insert_alerts, keys

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_keys_and_scopes(db: Engine) -> None:
    [alert_id] = insert_alerts(db, [alert_row(1)])
    read, write = keys(db)
    api = client(db)
    assert api.get("/healthz").status_code == 200
    assert api.get("/readyz").json() == {"status": "ready"}
    for path in ("/alerts", f"/alerts/{alert_id}?context=false", "/sensors", "/models", "/metrics"):
        r = api.get(path)
        assert r.status_code == 401, path
        assert r.json()["error"] == "unauthorized" and "API key" in r.json()["detail"]
        assert r.headers["www-authenticate"] == "Bearer"
        assert api.get(path, headers=read).status_code == 200, path
    assert api.get("/alerts", headers={"Authorization": "Bearer mk_not-a-real-key"}).status_code == 401
    r = api.post(f"/alerts/{alert_id}/acknowledge", headers=read)
    assert r.status_code == 403
    assert r.json() == {"error": "forbidden", "detail": "this API key (reader) lacks the 'write' scope (it has: read)"}
    assert api.post(f"/alerts/{alert_id}/acknowledge", headers=write).status_code == 200
    assert api.get("/alerts", headers=write).status_code == 200  # write implies read
    info, secret = create_key(db, "temp", ["read"])
    assert api.get("/alerts", headers={"X-API-Key": secret}).status_code == 200
    assert revoke_key(db, info.id) and not revoke_key(db, info.id)
    r = api.get("/alerts", headers={"X-API-Key": secret})
    assert r.status_code == 401 and r.json()["detail"] == "invalid or revoked API key"
    assert "text/plain" in api.get("/metrics", headers=read).headers["content-type"]
    assert "monitor_api_requests_total" in api.get("/metrics", headers=read).text


@pytest.mark.parametrize("query, where", [
    ("status=closed", "query.status.0"),
    ("severity=huge", "query.severity.0"),
    ("limit=0", "query.limit"),
    ("limit=abc", "query.limit"),
    ("since=2026-01-01T00:00:00", "query.since"),  # no zone: ambiguous
    ("since=yesterday", "query.since"),
    ("sort=peak_score", "query.sort"),
])
def test_bad_parameters_give_422_with_the_reason(db: Engine, query: str, where: str) -> None:
    read, _ = keys(db)
    r = client(db).get(f"/alerts?{query}", headers=read)
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_request" and body["detail"][0]["where"] == where and body["detail"][0]["reason"]


def test_bad_cursor_range_and_body_give_422(db: Engine) -> None:
    [alert_id] = insert_alerts(db, [alert_row(1)])
    read, write = keys(db)
    api = client(db)
    assert api.get("/alerts?cursor=garbage", headers=read).json()["detail"].startswith("cursor is malformed")
    page = api.get("/alerts?limit=1", headers=read).json()
    assert page["next_cursor"] is None
    insert_alerts(db, [alert_row(2)])
    cursor = api.get("/alerts?limit=1", headers=read).json()["next_cursor"]
    r = api.get(f"/alerts?limit=1&sort=id&cursor={cursor}", headers=read)
    assert r.status_code == 422 and "sort=-opened_at" in r.json()["detail"]
    r = api.get("/alerts?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", headers=read)
    assert r.status_code == 422 and r.json()["detail"] == "since must be before until"
    r = api.post(f"/alerts/{alert_id}/feedback", headers=write, json={"verdict": "maybe"})
    assert r.status_code == 422 and r.json()["detail"][0]["where"] == "body.verdict"
    assert api.get("/alerts/abc", headers=read).status_code == 422
    assert api.get("/alerts/999999?context=false", headers=read).status_code == 404


def test_filters_match_between_api_and_cli(db: Engine, tmp_path: Path) -> None:
    rows = [alert_row(i, status=["open", "acknowledged", "resolved"][i % 3], severity=["minor", "major", "critical"][i % 2 * 2],
                      model_version="m2" if i >= 6 else "m1") for i in range(10)]
    ids = insert_alerts(db, rows)
    read, _ = keys(db)
    api = client(db)

    def api_ids(query: str) -> list[int]:
        r = api.get(f"/alerts?limit=500&{query}", headers=read)
        assert r.status_code == 200, r.text
        return [a["id"] for a in r.json()["items"]]

    def expect(pred: Callable[[dict[str, Any]], bool]) -> list[int]:  # newest first, like the API's default sort
        return [i for i, r in sorted(zip(ids, rows), key=lambda x: x[1]["opened_at"], reverse=True) if pred(r)]

    assert api_ids("sensor=s-1") == expect(lambda r: r["sensor_id"] == "s-1")
    assert api_ids("sensor=s-1&sensor=s-2") == expect(lambda r: r["sensor_id"] in ("s-1", "s-2"))
    assert api_ids("status=acknowledged") == expect(lambda r: r["status"] == "acknowledged")
    assert api_ids("severity=critical") == expect(lambda r: r["severity"] == "critical")
    assert api_ids("model_version=m2") == expect(lambda r: r["model_version"] == "m2")
    since, until = T0 + timedelta(minutes=7), T0 + timedelta(minutes=8)  # overlap: last_window_end >= since, opened < until
    window = f"since={quote(since.isoformat())}&until={quote(until.isoformat())}"
    assert api_ids(window) == expect(lambda r: r["last_window_end"] >= since and r["opened_at"] < until)
    assert len(api_ids(window)) == 6  # opened 2..7
    assert api_ids("sort=id") == sorted(ids)
    # The CLI answers the same questions with the same filters.
    env = {"MONITOR_DB__URL": db.url.render_as_string(hide_password=False), "PATH": "/usr/bin:/bin"}
    for args, pred in ((["--status", "acknowledged"], lambda r: r["status"] == "acknowledged"),
                       (["--severity", "critical", "--model-version", "m2"],
                        lambda r: r["severity"] == "critical" and r["model_version"] == "m2"),
                       (["--sensor", "s-0", "--since", since.isoformat()],
                        lambda r: r["sensor_id"] == "s-0" and r["last_window_end"] >= since)):
        out = subprocess.run([sys.executable, "-m", "monitor", "alerts", "-f", "json", *args], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True)
        assert [a["id"] for a in json.loads(out.stdout)] == expect(pred), args
    out = subprocess.run([sys.executable, "-m", "monitor", "alerts", "-f", "csv", "--status", "resolved"], cwd=REPO,
                         env=env, capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("id,sensor_id,opened_at") and len(lines) == 1 + len(expect(lambda r: r["status"] == "resolved"))


@pytest.mark.parametrize("sort", ["-opened_at", "opened_at", "-id", "id"])
def test_cursor_pages_have_no_gaps_or_repeats_under_concurrent_inserts(db: Engine, sort: str) -> None:
    before = insert_alerts(db, [alert_row(i, opened_at=T0 + timedelta(minutes=i // 3)) for i in range(60)])  # ties on opened_at
    read, _ = keys(db)
    api = client(db)
    stop = threading.Event()
    inserted: list[int] = []

    def writer() -> None:  # new alerts keep arriving, newer and older than the pages read so far
        k = 1000
        while not stop.is_set() and k < 1060:
            inserted.extend(insert_alerts(db, [alert_row(k, opened_at=T0 + timedelta(minutes=(k % 40) - 5), sensor_id=f"late-{k}")]))
            k += 1

    thread = threading.Thread(target=writer)
    thread.start()
    seen: list[int] = []
    cursor = None
    try:
        while True:
            url = f"/alerts?limit=7&sort={sort}" + (f"&cursor={cursor}" if cursor else "")
            page = api.get(url, headers=read).json()
            seen.extend(a["id"] for a in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
    finally:
        stop.set()
        thread.join()
    assert len(seen) == len(set(seen)), "an alert was returned twice"
    assert set(before) <= set(seen), f"alerts present from the start were skipped: {sorted(set(before) - set(seen))}"
    assert inserted, "the writer inserted nothing while paging"
    # What was read is in the order asked for.
    api_all = api.get(f"/alerts?limit=500&sort={sort}", headers=read).json()["items"]
    order = [a["id"] for a in api_all if a["id"] in set(seen)]
    assert seen == order


def test_acknowledge_resolve_and_feedback_are_audited(db: Engine) -> None:
    [a1, a2] = insert_alerts(db, [alert_row(1, sensor_id="pump-1"), alert_row(2)])
    _, write = keys(db)
    api = client(db)
    r = api.post(f"/alerts/{a1}/acknowledge", headers=write, json={"note": "looking"})
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    r = api.post(f"/alerts/{a1}/acknowledge", headers=write)
    assert r.status_code == 409 and r.json() == {"error": "conflict", "detail": f"cannot acknowledge alert {a1}: it is acknowledged"}
    assert api.post(f"/alerts/{a1}/resolve", headers=write).json()["status"] == "resolved"
    assert api.post(f"/alerts/{a1}/resolve", headers=write).status_code == 409
    assert api.post("/alerts/424242/resolve", headers=write).status_code == 404
    r = api.post(f"/alerts/{a1}/feedback", headers=write, json={"verdict": "false_positive", "note": "valve test"})
    assert r.status_code == 200
    body = r.json()
    assert body["alert"]["feedback"]["verdict"] == "false_positive"
    assert body["threshold_applied"] is False and "no stored threshold state" in body["threshold_note"]
    assert api.post(f"/alerts/{a2}/feedback", headers=write, json={"verdict": "true_positive"}).status_code == 200
    with db.connect() as conn:
        events = conn.execute(select(AlertEvent.alert_id, AlertEvent.action, AlertEvent.actor, AlertEvent.note,
                                     AlertEvent.from_status, AlertEvent.to_status).order_by(AlertEvent.id)).all()
        feedback = conn.execute(select(AlertFeedback.alert_id, AlertFeedback.verdict, AlertFeedback.note)
                                .order_by(AlertFeedback.alert_id)).all()
    actor = events[0].actor
    assert actor.startswith("key:") and actor.endswith(":operator")
    assert [tuple(e) for e in events] == [
        (a1, "acknowledge", actor, "looking", "open", "acknowledged"),
        (a1, "resolve", actor, None, "acknowledged", "resolved"),
        (a1, "feedback:false_positive", actor, "valve test", "resolved", "resolved"),
        (a2, "feedback:true_positive", actor, None, "open", "open"),
    ]
    assert [tuple(f) for f in feedback] == [(a1, "false_positive", "valve test"), (a2, "true_positive", None)]
    detail = api.get(f"/alerts/{a1}?context=false", headers=write).json()
    assert [e["action"] for e in detail["events"]] == ["acknowledge", "resolve", "feedback:false_positive"]
    assert [(s, a, b) for s, a, b in false_positive_ranges(db)] == [
        ("pump-1", T0 + timedelta(minutes=1), T0 + timedelta(minutes=6))]
    # A changed verdict replaces the earlier one; the audit trail keeps both.
    api.post(f"/alerts/{a1}/feedback", headers=write, json={"verdict": "true_positive"})
    assert false_positive_ranges(db) == []


def test_sensors_and_models(db: Engine) -> None:
    from monitor.store.schema import SensorState

    [alert_id] = insert_alerts(db, [alert_row(1, sensor_id="pump-1")])
    insert_alerts(db, [alert_row(2, sensor_id="pump-2", status="resolved")])
    with db.begin() as conn:
        for sid in ("pump-1", "pump-2"):
            conn.execute(cast(Table, SensorState.__table__).insert().values(
                sensor_id=sid, partition=0, state={}, last_score=1.5, last_threshold=4.0,
                last_window_end=T0, model_version="m1", updated_at=T0))
    read, _ = keys(db)
    api = client(db)
    sensors = {s["sensor_id"]: s for s in api.get("/sensors", headers=read).json()}
    assert sensors["pump-1"]["open_alert"]["id"] == alert_id and sensors["pump-2"]["open_alert"] is None
    assert sensors["pump-1"]["last_score"] == 1.5 and sensors["pump-1"]["last_threshold"] == 4.0
    models = api.get("/models", headers=read).json()
    assert models["seen"] == [{"version": "m1", "alerts": 2, "sensors": 2}]
    assert models["serving"] is None and "does not exist" in models["note"]


def test_since_and_until_take_relative_times_and_an_unencoded_plus(db: Engine) -> None:
    now = datetime.now(timezone.utc)
    old, recent = alert_row(1), alert_row(2)
    old.update(opened_at=now - timedelta(days=3), last_window_end=now - timedelta(days=3), closed_at=now - timedelta(days=3))
    recent.update(opened_at=now - timedelta(minutes=20), last_window_end=now - timedelta(minutes=10), closed_at=None)
    old_id, recent_id = insert_alerts(db, [old, recent])
    read, _ = keys(db)
    api = client(db)

    def ids(q: str) -> list[int]:
        return [a["id"] for a in api.get(f"/alerts?{q}", headers=read).json()["items"]]

    assert ids("since=1h") == [recent_id]
    assert ids("since=4d") == [recent_id, old_id]
    assert ids("since=4d&until=1d") == [old_id]
    day = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert ids(f"since={day}+00:00") == [recent_id]  # '+' not encoded: arrives as a space, read as '+'
    r = api.get("/alerts?since=1y", headers=read)
    assert r.status_code == 422 and r.json()["detail"][0]["where"] == "query.since"
