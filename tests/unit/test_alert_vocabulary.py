"""One alert vocabulary: the Status and Severity enums of the core, one mapping between the engine's AlertRecord and
the alerts table, the API's schema over the same columns, and one filter for the CLI, the API and every reader."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import cast

from sqlalchemy import Engine, Table

from monitor.api.schemas import AlertOut
from monitor.core.incidents import SEVERITIES, STATUSES, AlertRecord, Severity, Status, severity_of
from monitor.store.alerts_api import AlertFilter, page_alerts, query_alerts
from monitor.store.repository import ALERT_FIELDS, _alert_row
from monitor.store.schema import Alert, utcnow

PACKAGE = Path(__file__).resolve().parents[2] / "monitor"


def test_the_words_are_spelled_once_in_the_core() -> None:
    assert STATUSES == ("open", "acknowledged", "resolved") and SEVERITIES == ("minor", "major", "critical")
    assert [severity_of(x, 0.0, 1.0) for x in (0.5, 2.0, 6.0)] == [Severity.MINOR, Severity.MAJOR, Severity.CRITICAL]
    spelled = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts
               and any(f'"{w}"' in p.read_text() for w in ("acknowledged", "critical"))]
    assert spelled == ["core/incidents.py"]


def test_one_mapping_between_the_record_and_the_row() -> None:
    columns = set(Alert.__table__.c.keys())
    record = {f.name for f in dataclasses.fields(AlertRecord)}
    assert set(ALERT_FIELDS) == record - {"contribution_sums"}  # every stored field of the record has its column
    assert columns - set(ALERT_FIELDS) == {"id", "created_at", "updated_at"}
    assert set(AlertOut.model_fields) == columns | {"acknowledged_by", "resolved_by"}
    now = utcnow()
    alert = AlertRecord("s1", now, None, now, Status.OPEN, Severity.MAJOR, 3.0, 1.0, 2, ["a"], "v1", 0, 1, 2, [0.5])
    assert _alert_row(alert, now) == {**{k: getattr(alert, k) for k in ALERT_FIELDS}, "created_at": now,
                                       "updated_at": now}


def test_the_cli_short_form_and_the_api_filter_select_the_same_alerts(sqlite_db: Engine) -> None:
    now = utcnow().replace(microsecond=0)
    rows: list[dict[str, object]]
    rows = [dict(sensor_id=f"s{i % 3}", opened_at=now - timedelta(minutes=i), closed_at=None,
                 last_window_end=now - timedelta(minutes=i) + timedelta(seconds=30), status=STATUSES[i % 3],
                 severity=SEVERITIES[i % 2], peak_score=1.0, threshold_at_peak=1.0, window_count=1, top_channels=[],
                 model_version=f"v{i % 2}", partition=0, first_offset=i, last_offset=i, created_at=now, updated_at=now)
            for i in range(30)]
    with sqlite_db.begin() as conn:
        conn.execute(cast(Table, Alert.__table__).insert(), rows)
    since, until = now - timedelta(minutes=20), now - timedelta(minutes=5)
    short = query_alerts(sqlite_db, sensor_id="s1", status="acknowledged", since=since, until=until)
    flt = AlertFilter(sensor_ids=["s1"], statuses=[Status.ACKNOWLEDGED], since=since, until=until)
    page, _ = page_alerts(sqlite_db, flt, limit=100)
    assert short and [r["id"] for r in short] == [r["id"] for r in page] == [r["id"] for r in query_alerts(sqlite_db, flt)]
    assert all(r["sensor_id"] == "s1" and r["status"] == "acknowledged" for r in short)
