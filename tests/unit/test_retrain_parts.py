"""Pure parts of retraining: the gate's rules, model compatibility, alert exclusion, schedules."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from monitor.core.scoring.artifact import Calibration, ModelMeta, incompatibility
from monitor.errors import ConfigError
from monitor.settings import RetrainSettings
from monitor.training.exclusion import Interval, exclude
from monitor.training.gate import Evaluation, decide
from monitor.training.history import HistoryWindow
from monitor.training.retrain import RetrainRequest, _file_windows, _split
from monitor.training.scheduler import Schedule

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


def test_gate_measures_against_the_best_of_the_earlier_versions_so_quality_cannot_slide() -> None:
    cfg = RetrainSettings(max_error_ratio=1.05, max_alert_rate=0.01, min_holdout_windows=10)
    # each step 4 % worse than the active model: allowed once, stopped when it falls behind the best earlier one
    active = _eval("v2", 0.208, 0)
    earlier = [("v1", 0.200), ("v0", 0.210)]
    slid = decide(_eval("v3", 0.2163, 0), active, cfg, earlier=earlier)
    assert not slid.passed and "earlier v1's 0.2000" in slid.summary
    assert decide(_eval("v3", 0.2163, 0), active, cfg).passed  # against the active model alone it would pass
    kept = decide(_eval("v3", 0.2090, 0), active, cfg, earlier=earlier)
    assert kept.passed and "best of the last 3 versions: v1 0.2000" in "; ".join(kept.notes)
    assert kept.to_json()["earlier"] == [{"version": "v1", "error": 0.2}, {"version": "v0", "error": 0.21}]
    assert decide(_eval("v3", 0.2090, 0), active, cfg, earlier=[("v1", float("nan"))]).passed  # unusable: ignored


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


def test_reference_windows_are_the_alerts_windows_after_their_context() -> None:
    from monitor.training.reference import select_windows

    windows = [_window(s, i) for s in ("a", "b") for i in range(20)]
    chosen = select_windows(windows[::-1], "a", T0 + timedelta(seconds=95), T0 + timedelta(seconds=121), context=3)
    assert [(w.sensor_id, w.offset) for w in chosen] == [("a", i) for i in range(6, 13)]  # 3 before, 9..12 overlap
    assert select_windows(windows, "a", T0 + timedelta(seconds=5), T0 + timedelta(seconds=12), context=3)[0].offset == 0
    assert select_windows(windows, "a", T0 + timedelta(hours=1), T0 + timedelta(hours=2), context=3) == []
    assert select_windows(windows, "c", T0, T0 + timedelta(seconds=50), context=3) == []


def test_gate_rejects_a_candidate_that_loses_a_confirmed_alert_or_raises_a_confirmed_false_one() -> None:
    from monitor.training.gate import ReferenceCheck

    cfg = RetrainSettings(max_error_ratio=1.05, max_alert_rate=0.01, min_holdout_windows=10)
    active = _eval("a", 0.2, 0)
    same = ReferenceCheck(2, 1, 2, 2, 0, 0)
    passed = decide(_eval("c", 0.2, 0), active, cfg, reference=same)
    assert passed.passed and "2/2 confirmed true positives detected" in "; ".join(passed.notes)
    lost = decide(_eval("c", 0.2, 0), active, cfg,
                  reference=ReferenceCheck(2, 1, 2, 1, 0, 0, missed=["alert #7 (s1, t)"]))
    assert not lost.passed and "misses 1 confirmed true positive(s) the active model detects: alert #7" in lost.summary
    noisy = decide(_eval("c", 0.2, 0), active, cfg,
                   reference=ReferenceCheck(2, 1, 2, 2, 0, 1, raised=["alert #9 (s1, t)"]))
    assert not noisy.passed and "raises 1 confirmed false positive(s), the active model 0" in noisy.summary
    assert noisy.to_json()["reference"]["raised"] == ["alert #9 (s1, t)"]
    # a candidate that detects a confirmed alert the active model missed is not held back by it
    assert decide(_eval("c", 0.2, 0), active, cfg, reference=ReferenceCheck(1, 0, 0, 1, 0, 0)).passed


def test_gate_figures_that_are_not_finite_are_stored_as_null() -> None:
    import json

    from monitor.training.gate import finite

    cfg = RetrainSettings(max_error_ratio=1.05, max_alert_rate=0.01, min_holdout_windows=10)
    result = decide(_eval("c", float("nan"), 0), _eval("a", 0.2, 0), cfg, earlier=[("v0", float("inf"))])
    body = result.to_json()
    json.dumps(body, allow_nan=False)  # what PostgreSQL's JSON and the API's renderer demand
    assert body["candidate"]["error"] is None and body["earlier"] == [{"version": "v0", "error": None}]
    assert finite({"a": [1.0, float("-inf")], "b": (float("nan"),), "c": "x"}) == {"a": [1.0, None], "b": [None],
                                                                                  "c": "x"}
