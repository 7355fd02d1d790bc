"""Synthetic multi-sensor data with injected anomalies at known positions (demo, tests, benchmarks).

Each sensor has ``n_channels`` correlated channels: periodic components, two shared slow latent factors and
noise, all from one generative family (a fleet of similar machines), with per-sensor phases. Anomaly kinds:
``spike`` (a burst on some channels), ``level_shift`` (an offset on some channels), ``variance`` (noise
multiplied), ``freeze`` (channels stuck at a value) and ``decorrelation`` (a channel leaves its factors).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

KINDS = ("spike", "level_shift", "variance", "freeze", "decorrelation")
DEFAULT_KINDS = ("spike", "level_shift", "variance")
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Injected:
    sensor_id: str
    kind: str
    start: datetime
    end: datetime  # time of the last anomalous row
    start_row: int
    end_row: int  # exclusive

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["start"], data["end"] = self.start.isoformat(), self.end.isoformat()
        return data


def channel_names(n_channels: int) -> list[str]:
    return [f"ch{i}" for i in range(n_channels)]


def normal_series(n_rows: int, n_channels: int = 8, seed: int = 0, row_offset: int = 0) -> np.ndarray:
    """(n_rows, n_channels) float32 normal behaviour. ``seed`` picks the sensor; rows are 1 s apart."""
    family = np.random.default_rng(12345)  # shared by all sensors: same kind of machine
    periods = family.uniform(40, 400, size=(n_channels, 2))
    amplitudes = family.uniform(0.3, 1.5, size=(n_channels, 2))
    loadings = family.normal(0, 1, size=(2, n_channels))
    offsets = family.uniform(-5, 20, size=n_channels)
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * np.pi, size=(n_channels, 2))
    t = np.arange(row_offset, row_offset + n_rows, dtype=np.float64)[:, None]
    periodic = sum(amplitudes[:, k] * np.sin(2 * np.pi * t / periods[:, k] + phases[:, k]) for k in range(2))
    steps = rng.normal(0, 0.05, size=(n_rows + 200, 2))
    latent = pd.DataFrame(np.cumsum(steps, axis=0)).ewm(span=60).mean().to_numpy()[200:]
    latent = np.tanh(latent)
    noise = rng.normal(0, 0.1, size=(n_rows, n_channels))
    out: np.ndarray = (offsets + periodic + latent @ loadings + noise).astype(np.float32)
    return out


def inject(values: np.ndarray, kind: str, start: int, length: int, rng: np.random.Generator) -> None:
    """Inject one anomaly in place on rows [start, start + length)."""
    n_channels = values.shape[1]
    chosen = rng.choice(n_channels, size=max(1, n_channels // 3), replace=False)
    rows = slice(start, start + length)
    scale = values.std(axis=0)
    if kind == "spike":
        burst = slice(start + length // 2, start + length // 2 + 6)
        values[burst, chosen] += rng.choice([-1, 1], size=len(chosen)) * 8 * scale[chosen]
    elif kind == "level_shift":
        values[rows, chosen] += rng.choice([-1, 1], size=len(chosen)) * 5 * scale[chosen]
    elif kind == "variance":
        values[rows, chosen] += rng.normal(0, 2.5, size=(length, len(chosen))) * scale[chosen]
    elif kind == "freeze":
        values[rows, chosen] = values[start, chosen]
    elif kind == "decorrelation":
        values[rows, chosen] = values[rows, chosen][::-1] * -1 + 2 * values[rows, chosen].mean(axis=0)
    else:
        raise ValueError(f"unknown anomaly kind {kind!r}; one of {KINDS}")


@dataclass
class Fleet:
    """Series of several sensors with their injected anomalies."""

    sensor_ids: list[str]
    channels: list[str]
    series: dict[str, np.ndarray]
    injected: list[Injected]
    start: datetime = EPOCH

    def times(self, n_rows: int) -> list[datetime]:
        return [self.start + timedelta(seconds=i) for i in range(n_rows)]


def make_fleet(
    n_sensors: int,
    n_rows: int,
    *,
    n_channels: int = 8,
    anomalous: int | None = None,
    per_sensor: int = 2,
    length: int = 120,
    seed: int = 1,
    start: datetime = EPOCH,
    kinds: tuple[str, ...] = DEFAULT_KINDS,
) -> Fleet:
    """``anomalous`` sensors (default: all but one) get ``per_sensor`` anomalies each, spread out in time."""
    rng = np.random.default_rng(seed)
    ids = [f"sensor-{i:03d}" for i in range(n_sensors)]
    n_bad = n_sensors - 1 if anomalous is None else anomalous
    series: dict[str, np.ndarray] = {}
    injected: list[Injected] = []
    for i, sensor_id in enumerate(ids):
        values = normal_series(n_rows, n_channels, seed=seed * 1000 + i)
        if i < n_bad:
            # Leave the first fifth clean (thresholds settle), then one anomaly per equal slot.
            first = n_rows // 5
            slot = (n_rows - first) // per_sensor
            for k in range(per_sensor):
                lo = first + k * slot + length
                hi = first + (k + 1) * slot - 2 * length
                begin = int(rng.integers(lo, max(lo + 1, hi)))
                kind = kinds[(i + k) % len(kinds)]
                inject(values, kind, begin, length, rng)
                injected.append(Injected(sensor_id, kind, start + timedelta(seconds=begin),
                                         start + timedelta(seconds=begin + length - 1), begin, begin + length))
        series[sensor_id] = values
    return Fleet(ids, channel_names(n_channels), series, injected, start)


def fleet_windows(fleet: Fleet, window_len: int) -> Iterator[tuple[str, datetime, datetime, np.ndarray]]:
    """Consecutive non-overlapping windows, interleaved across sensors in time order."""
    n_rows = min(len(v) for v in fleet.series.values())
    for begin in range(0, n_rows - window_len + 1, window_len):
        for sensor_id in fleet.sensor_ids:
            start = fleet.start + timedelta(seconds=begin)
            end = fleet.start + timedelta(seconds=begin + window_len - 1)
            yield sensor_id, start, end, fleet.series[sensor_id][begin : begin + window_len]


def history_frame(n_rows: int, n_channels: int = 8, seed: int = 0, sensors: int = 4) -> pd.DataFrame:
    """Normal history of a few sensors, concatenated in time, as a wide frame (for `monitor train`)."""
    parts = [normal_series(n_rows // sensors, n_channels, seed=10_000 + seed * 100 + s) for s in range(sensors)]
    values = np.concatenate(parts)
    index = pd.date_range(EPOCH - timedelta(seconds=len(values)), periods=len(values), freq="s", tz="UTC")
    return pd.DataFrame(values, columns=channel_names(n_channels), index=pd.Index(index, name="timestamp"))


def evaluate(
    alerts: list[dict[str, object]], injected: list[Injected], tolerance_s: float = 0.0
) -> dict[str, float]:
    """Event-level precision/recall: an alert is true if it overlaps an injected anomaly of its sensor
    (widened by ``tolerance_s`` on both sides); an anomaly is found if some alert overlaps it."""
    tol = timedelta(seconds=tolerance_s)

    def overlaps(alert: dict[str, object], inj: Injected) -> bool:
        opened = alert["opened_at"]
        ended = alert.get("closed_at") or alert["last_window_end"]
        return (alert["sensor_id"] == inj.sensor_id and opened <= inj.end + tol  # type: ignore[operator]
                and ended >= inj.start - tol)  # type: ignore[operator]

    true_alerts = sum(1 for a in alerts if any(overlaps(a, i) for i in injected))
    found = sum(1 for i in injected if any(overlaps(a, i) for a in alerts))
    precision = true_alerts / len(alerts) if alerts else 0.0
    recall = found / len(injected) if injected else 1.0
    return {"alerts": float(len(alerts)), "true_alerts": float(true_alerts), "injected": float(len(injected)),
            "found": float(found), "precision": precision, "recall": recall}
