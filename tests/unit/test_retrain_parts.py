"""Pure parts of retraining: the gate's rules, model compatibility, alert exclusion, schedules."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from monitor.errors import ConfigError
from monitor.scheduler import Schedule
from monitor.scoring.artifact import Calibration, ModelMeta, incompatibility
from monitor.settings import RetrainSettings
from monitor.training.exclusion import Interval, exclude
from monitor.training.gate import Evaluation, decide
from monitor.training.history import HistoryWindow
from monitor.training.retrain import RetrainRequest, _file_windows, _split

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _eval(version: str, error: float, alerts: int, windows: int = 100) -> Evaluation:
    return Evaluation(version, windows, error, alerts, alerts / windows, 0.0, 1.0, 0.0)


def test_gate_rejects_a_worse_error_and_a_higher_alert_rate_and_passes_a_comparable_candidate() -> None:
    cfg = RetrainSettings(max_error_ratio=1.1, max_alert_rate=0.01, min_holdout_windows=10)
    active = _eval("a", 0.20, 0)
    assert decide(_eval("c", 0.21, 0), active, cfg).passed
    worse = decide(_eval("c", 0.30, 0), active, cfg)
    assert not worse.passed and "reconstruction error" in worse.summary
    noisy = decide(_eval("c", 0.20, 5), active, cfg)
    assert not noisy.passed and "alert rate" in noisy.summary
    assert decide(_eval("c", 0.20, 5), _eval("a", 0.2, 6), cfg).passed  # no worse than the active
    assert not decide(_eval("c", 0.1, 0, windows=5), None, cfg).passed  # hold-out too small
    assert decide(_eval("c", 5.0, 0), None, cfg).passed  # first model: absolute alert rate only


def _meta(version: str, channels: list[str], window_len: int = 8) -> ModelMeta:
    return ModelMeta(channels=channels, window_len=window_len, hidden_size=4, latent_size=2, num_layers=1,
                     dropout=0.0, scaler={}, calibration=Calibration([1.0] * len(channels), 0.0, 1.0), version=version)


def test_incompatibility_names_the_differing_channels_and_window_length() -> None:
    serving = _meta("a", ["ch0", "ch1", "ch2"])
    assert incompatibility(serving, _meta("b", ["ch0", "ch1", "ch2"])) is None
    extra = incompatibility(serving, _meta("b", ["ch0", "ch1", "ch2", "ch3"]))
    assert extra is not None and "adds ch3" in extra and "lacks" not in extra and "serving model a" in extra
    swapped = incompatibility(serving, _meta("b", ["ch0", "ch1", "vib"]))
    assert swapped is not None and "adds vib" in swapped and "lacks ch2" in swapped
    reordered = incompatibility(serving, _meta("b", ["ch1", "ch0", "ch2"]))
    assert reordered is not None and "another order" in reordered
    longer = incompatibility(serving, _meta("b", ["ch0", "ch1", "ch2"], window_len=16))
    assert longer is not None and "window_len 16 != 8" in longer and "channels" not in longer


def test_gate_rejects_an_incompatible_candidate_whatever_its_figures() -> None:
    cfg = RetrainSettings(max_error_ratio=1.1, max_alert_rate=0.01, min_holdout_windows=10)
    result = decide(_eval("c", 0.1, 0), None, cfg, incompatible="channels differ (adds ch3)")
    assert not result.passed and "incompatible with the active model: channels differ (adds ch3)" in result.summary
    assert decide(_eval("c", 0.1, 0), None, cfg, incompatible=None).passed


def _window(sensor: str, i: int) -> HistoryWindow:
    start = T0 + timedelta(seconds=10 * i)
    return HistoryWindow(sensor, start, start + timedelta(seconds=9), np.zeros((10, 2), np.float32),
                         int(start.timestamp() * 1000), 0, i)


def test_exclusion_drops_only_the_alerted_sensor_s_overlapping_windows() -> None:
    windows = [_window(s, i) for s in ("a", "b") for i in range(10)]
    alert = Interval("a", T0 + timedelta(seconds=25), T0 + timedelta(seconds=41), 1)
    kept, excluded = exclude(windows, [alert])
    assert excluded == 3  # windows 2, 3, 4 of sensor a overlap [25 s, 41 s]
    assert {(w.sensor_id, w.offset) for w in windows} - {(w.sensor_id, w.offset) for w in kept} == {
        ("a", 2), ("a", 3), ("a", 4)}
    still_open = Interval("b", T0 + timedelta(seconds=85), None, 2)
    assert exclude(windows, [still_open])[1] == 2  # windows 8, 9 of b


def test_split_keeps_the_most_recent_fraction_as_hold_out() -> None:
    windows = [_window("a", i) for i in range(11)]
    train_part, holdout = _split(windows, 0.2)
    assert [w.offset for w in holdout] == [8, 9, 10] and len(train_part) == 8


def test_schedules_interval_and_cron() -> None:
    assert Schedule("3600").first(T0) == T0
    assert Schedule("3600").next_after(T0) == T0 + timedelta(hours=1)
    cron = Schedule("30 3 * * *")
    assert cron.first(T0) == T0.replace(hour=3, minute=30)
    assert cron.next_after(T0.replace(hour=4)) == T0.replace(day=2, hour=3, minute=30)
    for bad in ("0", "every day", "-5"):
        with pytest.raises(ConfigError):
            Schedule(bad)


def test_parquet_without_its_extra_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for engine in ("pyarrow", "fastparquet"):
        monkeypatch.setitem(sys.modules, engine, None)  # as on an install without the extra
    (tmp_path / "history.parquet").write_bytes(b"PAR1")
    with pytest.raises(ConfigError, match=r"pip install 'sensor-monitor\[parquet\]'"):
        _file_windows(RetrainRequest(path=tmp_path / "history.parquet"), 8)
