"""Shared steps of the API tests: alert rows, keys, an in-process client."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from monitor.api.app import create_app
from monitor.settings import KafkaSettings, Settings
from monitor.store.apikeys import create_key
from monitor.store.schema import Alert

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def alert_row(i: int, **overrides: Any) -> dict[str, Any]:
    opened = T0 + timedelta(minutes=i)
    row = {"sensor_id": f"s-{i % 3}", "opened_at": opened, "closed_at": None,
           "last_window_end": opened + timedelta(minutes=5), "status": "open", "severity": "minor",
           "peak_score": 10.0 + i, "threshold_at_peak": 5.0, "window_count": 3, "top_channels": ["ch0", "ch1"],
           "model_version": "m1", "partition": 0, "first_offset": 10 * i, "last_offset": 10 * i + 5,
           "created_at": opened, "updated_at": opened}
    row.update(overrides)
    return row


def insert_alerts(db: Engine, rows: list[dict[str, Any]]) -> list[int]:
    with db.begin() as conn:
        return [conn.execute(Alert.__table__.insert().values(r).returning(Alert.id)).scalar_one() for r in rows]


def client(db: Engine, model_path: Path | None = None, kafka: KafkaSettings | None = None) -> TestClient:
    settings = Settings()
    if model_path is not None:
        settings.model.path = model_path
    if kafka is not None:
        settings.kafka = kafka
    return TestClient(create_app(settings, db))


def keys(db: Engine) -> tuple[dict[str, str], dict[str, str]]:
    """(read headers, write headers)."""
    _, read = create_key(db, "reader", ["read"])
    _, write = create_key(db, "operator", ["write"])
    return {"Authorization": f"Bearer {read}"}, {"X-API-Key": write}
