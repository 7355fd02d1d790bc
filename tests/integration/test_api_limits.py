"""Hostile query input and damaged models on SQLite and PostgreSQL: ids and cursors out of the BIGINT range are
4xx (they reached the database and came back as 500), and a damaged stored model makes ``/models`` report the
problem instead of failing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from monitor.api.app import create_app
from monitor.registry import model_files, versions
from monitor.registry.versions import _T as MODEL_VERSIONS
from monitor.settings import RegistrySettings, Settings
from tests.integration.api_helpers import alert_row, client, insert_alerts, keys
from tests.unit.artifacts import crafted, small_bundle

pytestmark = pytest.mark.integration

OUT_OF_RANGE = [2**63, 2**64, 10**30, -(2**63) - 1]


def _cursor(sort: str, key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps({"s": sort, "k": key}).encode()).decode().rstrip("=")


def test_alert_ids_beyond_bigint_are_4xx_not_500(db: Engine) -> None:
    [alert_id] = insert_alerts(db, [alert_row(1)])
    read, write = keys(db)
    api = client(db)
    assert api.get(f"/alerts/{alert_id}?context=false", headers=read).status_code == 200
    assert api.get(f"/alerts/{2**63 - 1}?context=false", headers=read).status_code == 404  # in range, absent
    for bad in OUT_OF_RANGE:
        got = api.get(f"/alerts/{bad}?context=false", headers=read)
        assert got.status_code == 422, (bad, got.status_code, got.text)
        assert got.json()["error"] == "invalid_request"
        for action, body in (("acknowledge", None), ("resolve", None), ("feedback", {"verdict": "true_positive"})):
            got = api.post(f"/alerts/{bad}/{action}", headers=write, json=body)
            assert got.status_code == 422, (bad, action, got.status_code, got.text)


T = "2026-01-01T00:00:00+00:00"


@pytest.mark.parametrize(("sort", "bad", "good"), [
    ("id", [2**63], [2**63 - 1]), ("-id", [2**64], [5]), ("id", [-(2**63) - 1], [-(2**63)]), ("id", [True], [1]),
    ("-opened_at", [T, 2**63], [T, 5]),
    ("opened_at", [T, 10**30], [T, 5]),
    ("-opened_at", ["0001-01-01T00:30:00+01:00", 1], ["0001-01-01T00:30:00+00:00", 1]),  # UTC: before year 1
])
def test_cursors_beyond_bigint_or_datetime_are_422(db: Engine, sort: str, bad: list[Any], good: list[Any]) -> None:
    insert_alerts(db, [alert_row(1)])
    read, _ = keys(db)
    api = client(db)
    got = api.get("/alerts", headers=read, params={"sort": sort, "cursor": _cursor(sort, bad)})
    assert got.status_code == 422, got.text
    assert "cursor is malformed" in got.json()["detail"]
    ok = api.get("/alerts", headers=read, params={"sort": sort, "cursor": _cursor(sort, good)})
    assert ok.status_code == 200, ok.text  # the nearest cursor in range is served


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_query_times_that_leave_the_datetime_range_in_utc_are_422_not_a_database_outage(db: Engine, when: str) -> None:
    insert_alerts(db, [alert_row(1)])
    read, _ = keys(db)
    api = client(db)
    for name in ("since", "until"):
        got = api.get("/alerts", headers=read, params={name: when})
        assert got.status_code == 422, got.text  # was 503 database_unavailable: a monitoring false alarm
        [problem] = got.json()["detail"]
        assert problem["where"] == f"query.{name}" and "within years 1..9999 in UTC" in problem["reason"], problem
    utc = when[:19] + "Z"  # the same wall time in UTC is in range
    assert api.get("/alerts", headers=read, params={"since": utc}).status_code == 200


def _store_damaged(db: Engine, name: str, version: str, data: bytes) -> None:
    """A registry row whose bytes match their recorded SHA-256 but hold a damaged artifact (as a crafted import
    or a bug in an older writer would leave it)."""
    good = small_bundle(version)
    versions.register(db, name, good)
    with db.begin() as conn:
        conn.execute(MODEL_VERSIONS.update().where(MODEL_VERSIONS.c.name == name, MODEL_VERSIONS.c.version == version)
                     .values(artifact=data, sha256=hashlib.sha256(data).hexdigest()))


def _no_digest(meta: dict[str, Any]) -> None:
    del meta["weights_sha256"]


def _registry_client(db: Engine, tmp_path: Path) -> TestClient:
    settings = Settings()
    settings.model.path = tmp_path / "absent.pt"
    settings.registry = RegistrySettings(model_name="monitor", check_interval_s=0.001)
    return TestClient(create_app(settings, db))


def test_models_reports_a_damaged_registry_model_instead_of_failing(db: Engine, tmp_path: Path) -> None:
    read, _ = keys(db)
    broken = crafted(small_bundle("v2"), meta=lambda m: m["calibration"].pop("channel_error") and None)
    _store_damaged(db, "monitor", "v2", broken)
    versions.promote(db, "monitor", "v2", by="test", reason="damaged")
    api = _registry_client(db, tmp_path)

    got = api.get("/models", headers=read)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["serving"] is None
    assert "registry:monitor/v2" in body["problem"] and "channel_error" in body["problem"]


def test_models_keeps_the_serving_model_and_reports_a_damaged_promotion(db: Engine, tmp_path: Path) -> None:
    read, _ = keys(db)
    versions.register(db, "monitor", small_bundle("v1"))
    versions.promote(db, "monitor", "v1", by="test", reason="first")
    api = _registry_client(db, tmp_path)
    first = api.get("/models", headers=read).json()
    assert first["serving"]["version"] == "v1" and first["problem"] is None
    assert first["registry"] == {"name": "monitor", "active": "v1", "shadow": None, "retrains": []}

    _store_damaged(db, "monitor", "v2", crafted(small_bundle("v2"), meta=_no_digest))
    versions.promote(db, "monitor", "v2", by="test", reason="damaged")
    time.sleep(0.01)  # past check_interval_s
    body = api.get("/models", headers=read).json()
    assert body["serving"]["version"] == "v1", "the loaded model keeps serving"
    assert "v2" in body["problem"] and "no weights_sha256" in body["problem"]


def test_models_keeps_a_loaded_file_model_when_the_file_is_rewritten_damaged(db: Engine, tmp_path: Path) -> None:
    read, _ = keys(db)
    path = model_files.save(small_bundle("file-1"), tmp_path / "model.pt")
    api = client(db, model_path=path)
    assert api.get("/models", headers=read).json()["serving"]["version"] == "file-1"

    path.write_bytes(crafted(small_bundle("file-2"), meta=lambda m: m.update(window_len=0)))
    _touch_later(path)
    body = api.get("/models", headers=read).json()
    assert body["serving"]["version"] == "file-1"
    assert str(path) in body["problem"] and "window_len must be a positive integer" in body["problem"]
    model_files.save(small_bundle("file-3"), path)
    _touch_later(path, 20)
    body = api.get("/models", headers=read).json()
    assert body["serving"]["version"] == "file-3" and body["problem"] is None


def _touch_later(path: Path, seconds: float = 10) -> None:
    """A new modification time, so the rewrite is seen whatever the file system's time resolution."""
    now = time.time() + seconds
    os.utime(path, (now, now))
