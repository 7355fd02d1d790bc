"""Retraining trains on the topic windows as they are: no window mixes two sensors; seeded, time-ordered, cancellable."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from monitor.core.scoring import train as train_module
from monitor.core.scoring.seasonal import Seasonality
from monitor.core.scoring.train import train_on_windows
from monitor.errors import CancelledRunError, DataError
from monitor.settings import (
    AlertSettings,
    KafkaSettings,
    ModelSettings,
    RegistrySettings,
    RetrainSettings,
    ThresholdSettings,
)
from monitor.store.database import init_schema, make_engine
from monitor.training import retrain as retrain_module
from monitor.training.history import History, HistoryWindow
from monitor.training.retrain import FAILED, PROMOTED, RetrainConfig, RetrainRequest, retrain

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
WL = 8
MODEL = ModelSettings(window_len=WL, stride=2, hidden_size=4, latent_size=2, epochs=3, batch_size=16, seed=3)
CHANNELS = ("a", "b")


def _two_sensor_history(n_windows: int = 40) -> History:
    """Sensor ``low`` sits near 0, sensor ``high`` near 100, over the same time span (1 s per row)."""
    rng = np.random.default_rng(0)
    windows: list[HistoryWindow] = []
    for sensor, level in (("low", 0.0), ("high", 100.0)):
        for i in range(n_windows):
            ws = T0 + timedelta(seconds=i * WL)
            values = (level + rng.normal(0, 1, size=(WL, len(CHANNELS)))).astype(np.float32)
            windows.append(HistoryWindow(sensor, ws, ws + timedelta(seconds=WL - 1), values,
                                         int(ws.timestamp() * 1000), 0, len(windows)))
    return History(windows, CHANNELS, WL, T0, T0 + timedelta(hours=1), "t.windows")


def _config() -> RetrainConfig:
    return RetrainConfig(KafkaSettings(), MODEL, ThresholdSettings(), AlertSettings(),
                         RetrainSettings(min_windows=16, min_holdout_windows=4), RegistrySettings(model_name="t"))


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Any:
    engine = make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    init_schema(engine)
    yield engine
    engine.dispose()


def _spy_on_fit(monkeypatch: pytest.MonkeyPatch) -> dict[str, np.ndarray]:
    """The training and validation windows the next fit gets, under ``"train"`` and ``"val"``."""
    seen: dict[str, np.ndarray] = {}
    real_fit = train_module._fit

    def spy(train_windows: np.ndarray, val_windows: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        seen.update(train=train_windows.copy(), val=val_windows.copy())
        return real_fit(train_windows, val_windows, *args, **kwargs)

    monkeypatch.setattr(train_module, "_fit", spy)
    return seen


def test_retrain_from_topic_windows_never_trains_on_a_window_mixing_two_sensors(
    sqlite_db: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(retrain_module, "read_history", lambda *a, **k: _two_sensor_history())
    seen = _spy_on_fit(monkeypatch)
    with caplog.at_level(logging.INFO, logger="monitor.training.retrain"):
        outcome = retrain(sqlite_db, _config(), RetrainRequest(start=T0, end=T0 + timedelta(hours=1)))

    assert outcome.outcome == PROMOTED, outcome.reason
    windows = np.concatenate([seen["train"], seen["val"]])
    assert len(windows) == outcome.counts["train_windows"]  # the topic windows, used as they are
    one_level = [(w < 50).all() or (w > 50).all() for w in windows]
    assert all(one_level), f"{one_level.count(False)} training windows mix the two sensors"
    # The scheduler's job has no bars: one log line per epoch with both losses.
    epoch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert epoch_lines and epoch_lines[0].startswith(f"epoch 1/{MODEL.epochs}: train_loss=")
    assert "val_loss=" in epoch_lines[0]


def test_retrain_from_a_fleet_csv_with_a_sensor_column_cuts_each_sensors_own_windows(
    sqlite_db: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The same two sensors as a CSV whose rows alternate between them (`monitor retrain --from-file F
    --sensor-column sensor`): no training or validation window mixes them, and the candidate is a fleet's."""
    lines = ["timestamp,sensor,a,b"]
    for w in sorted(_two_sensor_history().windows, key=lambda w: w.window_start):
        for i, row in enumerate(w.values):
            lines.append(f"{(w.window_start + timedelta(seconds=i)).isoformat()},{w.sensor_id},{row[0]},{row[1]}")
    lines[1:] = sorted(lines[1:], key=lambda line: line.split(",")[0])  # every second: one row of each sensor
    csv = tmp_path / "fleet.csv"
    csv.write_text("\n".join(lines) + "\n")
    seen = _spy_on_fit(monkeypatch)
    outcome = retrain(sqlite_db, _config(), RetrainRequest(path=csv, sensor_column="sensor"))
    assert outcome.outcome == PROMOTED, outcome.reason
    windows = np.concatenate([seen["train"], seen["val"]])
    one_level = [(w < 50).all() or (w > 50).all() for w in windows]
    assert all(one_level), f"{one_level.count(False)} training windows mix the two sensors"
    assert outcome.counts["windows"] == 80, "each sensor's 320 rows: 40 windows of 8"
    from monitor.registry import versions

    candidate = versions.load_bundle(sqlite_db, "t", outcome.version or "")
    assert candidate.meta.training["sensors"] == 2 and not candidate.meta.calibration.centre_drifting
    with pytest.raises(DataError, match="no sensor column 'unit'"):
        retrain_module._file_windows(RetrainRequest(path=csv, sensor_column="unit"), WL)
    with pytest.raises(DataError, match="--sensor-column reads a CSV file"):
        retrain_module._file_windows(RetrainRequest(path=tmp_path / "fleet.parquet", sensor_column="sensor"), WL)


def test_training_on_windows_validates_on_the_latest_windows_and_is_reproducible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(1)
    windows = rng.normal(0, 1, size=(40, WL, 2)).astype(np.float32)
    windows[:, 0, 0] = np.arange(40)  # each window's time order, readable in the split below
    seen: dict[str, np.ndarray] = {}
    real_fit = train_module._fit

    def spy(train_windows: np.ndarray, val_windows: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        seen.update(train=train_windows, val=val_windows)
        return real_fit(train_windows, val_windows, *args, **kwargs)

    monkeypatch.setattr(train_module, "_fit", spy)
    epochs: list[tuple[int, float, float]] = []
    one = train_on_windows(windows, CHANNELS, MODEL,
                           on_epoch=lambda e, n, tl, vl: epochs.append((e, tl, vl)))
    n_val = int(40 * MODEL.val_fraction)
    assert list(seen["val"][:, 0, 0]) == list(range(40 - n_val, 40))
    assert list(seen["train"][:, 0, 0]) == list(range(40 - n_val))
    assert [e for e, _, _ in epochs] == list(range(1, one.meta.training["epochs"] + 1))

    two = train_on_windows(windows, CHANNELS, MODEL)
    assert one.meta.metrics == two.meta.metrics
    for name, tensor in one.module.state_dict().items():
        assert torch.equal(tensor, two.module.state_dict()[name]), name
    assert one.meta.calibration.channel_error == two.meta.calibration.channel_error


def test_a_cancelled_run_stops_training_and_the_retrain_reports_failed(
    sqlite_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cancel = threading.Event()
    cancel.set()
    windows = np.random.default_rng(2).normal(0, 1, size=(40, WL, 2)).astype(np.float32)
    with pytest.raises(CancelledRunError, match="training cancelled"):
        train_on_windows(windows, CHANNELS, MODEL, cancel=cancel)

    monkeypatch.setattr(retrain_module, "read_history", lambda *a, **k: _two_sensor_history())
    outcome = retrain(sqlite_db, _config(), RetrainRequest(start=T0, end=T0 + timedelta(hours=1)), cancel=cancel)
    assert outcome.outcome == FAILED and "CancelledRunError" in outcome.reason


def test_a_fleet_whose_sensors_sit_at_different_levels_does_not_make_a_noisy_channel_drift() -> None:
    """Windows of four sensors interleaved in time, as a topic's history comes: channel a is noise around each
    sensor's own level (levels 5 noise SD apart), channel b a slow random walk. Told from the concatenated rows,
    every window boundary is a seam between sensors and the levels' spread survives the moving average: a was
    marked drifting. Told from each sensor's own rows around its own mean (``groups``), only b drifts."""
    rng = np.random.default_rng(4)
    wl, per_sensor = 32, 60
    model = ModelSettings(window_len=wl, hidden_size=4, latent_size=2, epochs=1, batch_size=64, seed=3)
    sensors = []
    for level in (90.0, 100.0, 110.0, 120.0):
        noise = level + rng.normal(0, 2, per_sensor * wl)
        walk = np.cumsum(rng.normal(0, 0.3, per_sensor * wl))
        sensors.append(np.stack([noise, walk], axis=1).reshape(per_sensor, wl, 2))
    windows = np.stack(sensors, axis=1).reshape(-1, wl, 2).astype(np.float32)  # time order across sensors
    groups = [f"s{i}" for _ in range(per_sensor) for i in range(4)]
    assert train_on_windows(windows, CHANNELS, model).meta.calibration.drifting == [True, True]  # the defect
    grouped = train_on_windows(windows, CHANNELS, model, groups=groups)
    assert grouped.meta.calibration.drifting == [False, True]
    with pytest.raises(DataError, match="groups"):
        train_on_windows(windows, CHANNELS, model, groups=groups[:-1])


def _daily_fleet(days: int = 4, sensors: int = 3) -> History:
    """Three sensors of 5-minute rows over ``days`` days, windows of WL rows back to back: channel ``a`` carries a
    daily cycle of amplitude 10 (noise 1) at a level of its own per sensor, ``b`` is noise."""
    rng = np.random.default_rng(5)
    step = 300.0
    windows: list[HistoryWindow] = []
    for i in range(days * 288 // WL):
        for s in range(sensors):
            ws = T0 + timedelta(seconds=i * WL * step)
            t = np.array([(ws - T0).total_seconds() + k * step for k in range(WL)])
            a = 10.0 * np.sin(2 * np.pi * t / 86_400.0) + 3.0 * s + rng.normal(0, 1, WL)
            values = np.stack([a, rng.normal(0, 1, WL)], axis=1).astype(np.float32)
            windows.append(HistoryWindow(f"s{s}", ws, ws + timedelta(seconds=(WL - 1) * step), values,
                                         int(ws.timestamp() * 1000), 0, len(windows)))
    return History(windows, CHANNELS, WL, T0, T0 + timedelta(days=days), "t.windows")


def test_retraining_from_topic_windows_keeps_the_daily_profile(
    sqlite_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A topic's windows come from several sensors, interleaved in time: the profile is fitted on their rows at
    their times, sensors together (they share their times, so the row step is taken between distinct times), and
    removed before the model sees them, as ``train`` does for one series. Before, a model retrained from a topic
    had no profile, and a jump of the daily cycle was invisible to it (docs/quality.md, round 10)."""
    history = _daily_fleet()
    windows = np.stack([w.values for w in history.windows])
    times = ([w.window_start for w in history.windows], [w.window_end for w in history.windows])
    groups = [w.sensor_id for w in history.windows]
    model = MODEL.model_copy(update={"seasonal": True})
    with_times = train_on_windows(windows, CHANNELS, model, groups=groups, times=times)
    assert with_times.meta.training["seasonal_periods_s"] == [86_400.0]
    profile = Seasonality.from_dict(with_times.meta.calibration.seasonal, 2)
    assert profile is not None
    day = np.arange(0, 86_400.0, 300.0)
    component = profile.component(day)
    assert 17.0 < np.ptp(component[:, 0]) < 23.0, "the cycle of amplitude 10 on channel a"
    assert np.ptp(component[:, 1]) < 1.0, "no cycle on the noise channel"
    without = train_on_windows(windows, CHANNELS, model, groups=groups)
    assert without.meta.calibration.seasonal == {} and without.meta.training["seasonal_periods_s"] == []
    with pytest.raises(DataError, match="window starts"):
        train_on_windows(windows, CHANNELS, model, times=(times[0][:-1], times[1]))

    monkeypatch.setattr(retrain_module, "read_history", lambda *a, **k: history)
    seen: dict[str, Any] = {}
    real_fit = train_module._fit

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train_module, "_fit", spy)
    config = _config()
    config = RetrainConfig(config.kafka, model, config.threshold, config.alert, config.retrain, config.registry)
    retrain(sqlite_db, config, RetrainRequest(start=T0, end=T0 + timedelta(days=4)))
    assert seen["seasonality"] is not None and seen["seasonality"].periods == (86_400.0,)
