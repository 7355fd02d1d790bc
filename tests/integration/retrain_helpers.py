"""Shared steps of the retraining tests: timestamped windows to Kafka, tiny model settings, alert rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import cast

import numpy as np
from sqlalchemy import Engine, Table

from monitor.core.contract import encode_values
from monitor.ingest.kafka import make_producer
from monitor.settings import (
    AlertSettings,
    KafkaSettings,
    ModelSettings,
    RegistrySettings,
    RetrainSettings,
    ThresholdSettings,
)
from monitor.store.schema import Alert, utcnow
from monitor.training.retrain import RetrainConfig
from pipelines.synthetic import channel_names, normal_series

WL = 16
TINY = ModelSettings(window_len=WL, stride=4, hidden_size=8, latent_size=4, epochs=4, batch_size=64, seed=0,
                     patience=2)
CHANNELS = channel_names(4)


@dataclass(frozen=True)
class Sent:
    sensor_id: str
    start: datetime
    end: datetime
    timestamp_ms: int
    partition: int
    offset: int


def base_time() -> datetime:
    """A recent, whole-second start (old record timestamps could meet the topic's retention)."""
    return (utcnow() - timedelta(hours=2)).replace(microsecond=0)


def sensor_windows(
    sensor: int, n_windows: int, start: datetime, *, first_window: int = 0, corrupt: bool = False,
    shift_windows: range | None = None,
) -> list[tuple[str, datetime, datetime, np.ndarray]]:
    """Consecutive windows of one synthetic sensor, 1 s per row. ``corrupt``: noise 10x the signal's spread
    (a broken feed); ``shift_windows``: a blatant level shift on those window indices (an anomaly)."""
    rows = normal_series((first_window + n_windows) * WL, len(CHANNELS), seed=500 + sensor)[first_window * WL:]
    if corrupt:
        rng = np.random.default_rng(sensor)
        rows = rows + rng.normal(0, 10 * rows.std(axis=0), size=rows.shape).astype(np.float32)
    out = []
    for i in range(n_windows):
        values = rows[i * WL : (i + 1) * WL].copy()
        if shift_windows is not None and first_window + i in shift_windows:
            values += 25 * rows.std(axis=0)
        ws = start + timedelta(seconds=(first_window + i) * WL)
        out.append((f"sensor-{sensor}", ws, ws + timedelta(seconds=WL - 1), values))
    return out


def produce(cfg: KafkaSettings, windows: list[tuple[str, datetime, datetime, np.ndarray]]) -> list[Sent]:
    """Send with explicit record timestamps = window start; returns where each record landed."""
    producer = make_producer(cfg)
    try:
        futures = []
        for sensor_id, ws, we, values in windows:
            ts = int(ws.timestamp() * 1000)
            futures.append((sensor_id, ws, we, ts, producer.send(
                cfg.topic, key=sensor_id.encode(), value=encode_values(sensor_id, ws, we, CHANNELS, values),
                timestamp_ms=ts)))
        producer.flush()
        out = []
        for sensor_id, ws, we, ts, future in futures:
            meta = future.get(timeout=30)
            out.append(Sent(sensor_id, ws, we, ts, meta.partition, meta.offset))
        return out
    finally:
        producer.close()


def retrain_config(kafka: KafkaSettings, model_path: Path | None = None, **retrain: object) -> RetrainConfig:
    """``model_path``: the file consumers serve (imported into an empty registry first); default: none."""
    settings = RetrainSettings(min_windows=16, min_holdout_windows=8, **retrain)
    model = TINY.model_copy(update={"path": model_path or Path("/nonexistent/serving-model.pt")})
    return RetrainConfig(kafka, model, ThresholdSettings(), AlertSettings(), settings,
                         RegistrySettings(model_name="test", check_interval_s=0.5))


def insert_alert(db: Engine, sensor_id: str, opened_at: datetime, closed_at: datetime, version: str = "x") -> None:
    with db.begin() as conn:
        conn.execute(cast(Table, Alert.__table__).insert().values(
            sensor_id=sensor_id, opened_at=opened_at, closed_at=closed_at, last_window_end=closed_at,
            status="resolved", severity="major", peak_score=10.0, threshold_at_peak=2.0, window_count=3,
            top_channels=["ch0"], model_version=version, partition=0, first_offset=0, last_offset=1,
            created_at=utcnow(), updated_at=utcnow()))


def db_url(db: Engine) -> str:
    return db.url.render_as_string(hide_password=False)


def at(seconds: float, base: datetime) -> datetime:
    return (base + timedelta(seconds=seconds)).astimezone(timezone.utc)
