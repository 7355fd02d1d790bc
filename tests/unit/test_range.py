"""The range term of a model that takes its drifting channels in centred (``model.centre_drifting``):
a slow variable is not judged by its distance from a centre (none is learned for it), but a level beyond every
level its history showed is judged for as long as it lasts, until an operator's verdict ``new_normal``."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from monitor.core.engine import Engine
from monitor.core.feedback import adopt_state
from monitor.core.scoring.artifact import ModelBundle, ModelMeta
from monitor.core.scoring.baseline import RANGE_SDS, level_ranges
from monitor.core.scoring.scorer import Scorer
from monitor.core.scoring.train import centring, train, train_on_windows
from monitor.errors import ArtifactError, DataError
from monitor.settings import AlertSettings, ModelSettings, Settings, ThresholdSettings
from tests.unit.helpers import records_of

PERIOD = 400  # rows: a slow variable, 25 windows of 16 rows per cycle


def _rows(start: int, n: int, seed: int) -> np.ndarray:
    """A slow bounded variable (a cycle of amplitude 10, noise 0.3) beside a noise channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(start, start + n, dtype=np.float64)
    return np.stack([10 * np.sin(2 * np.pi * t / PERIOD) + rng.normal(0, 0.3, n), rng.normal(0, 1, n)], axis=1)


def _frame(values: np.ndarray) -> pd.DataFrame:
    index = pd.date_range("2026-01-05", periods=len(values), freq="s", tz="UTC")
    return pd.DataFrame(values.astype(np.float32), index=index, columns=["slow", "noise"])


@pytest.fixture(scope="module")
def model() -> ModelBundle:
    cfg = ModelSettings(window_len=16, stride=2, hidden_size=8, latent_size=4, epochs=12, batch_size=32, seed=0,
                        seasonal=False, centre_drifting=True)
    return train(_frame(_rows(0, 2400, seed=1)), cfg, version="range-1")


def _without_range(bundle: ModelBundle) -> ModelBundle:
    cal = dataclasses.replace(bundle.meta.calibration, range_low=[], range_high=[], range_scale=[])
    return ModelBundle(bundle.module, bundle.scaler, dataclasses.replace(bundle.meta, calibration=cal))


def _active(bundle: ModelBundle, values: np.ndarray) -> tuple[np.ndarray, Engine]:
    engine = Engine(Scorer(bundle), ThresholdSettings(), AlertSettings())
    outcome = engine.process(records_of(bundle, values.astype(np.float32)))
    return np.array([d.active for _, d in outcome.decisions]), engine


def test_the_slow_channel_has_a_range_and_the_noise_none(model: ModelBundle) -> None:
    cal = model.meta.calibration
    assert cal.centre_drifting and cal.drifting == [True, False]
    assert cal.range_scale[0] > 0 and cal.range_scale[1] == 0
    low, high = (v * model.scaler.scale[0] + model.scaler.center[0] for v in (cal.range_low[0], cal.range_high[0]))
    assert -10.5 < low < -8.5 and 8.5 < high < 10.5, (low, high)  # the cycle's window means


def test_a_lasting_shift_beyond_the_history_stays_an_alert_and_a_wander_within_it_raises_none(
    model: ModelBundle,
) -> None:
    values = _rows(2400, 160 * 16, seed=2)
    onset = 60 * 16
    values[onset:, 0] += 60.0  # 50 above the highest level the history held (7 SDs of its levels), for good
    active, engine = _active(model, values)
    assert not active[:60].any(), "the cycle's wander over the levels it held is not judged"
    held = active[62:].mean()
    assert held > 0.9, held
    blind, _ = _active(_without_range(model), values)
    assert blind[60:].any() and blind[62:].mean() < 0.5, "without the range term the shift is seen at its onset only"
    # nothing was learned for the slow channel meanwhile: it has no centre to learn
    assert engine.sensors["s1"].baseline.offset[0] == 0.0  # type: ignore[union-attr]


def test_the_verdict_new_normal_makes_the_shifted_level_normal(model: ModelBundle) -> None:
    values = _rows(2400, 200 * 16, seed=3)
    values[60 * 16 :, 0] += 60.0
    first = Engine(Scorer(model), ThresholdSettings(), AlertSettings())
    records = records_of(model, values.astype(np.float32))
    before = first.process(records[:100])
    assert before.decisions[-1][1].active
    state, moved = adopt_state(first.sensors["s1"].snapshot())
    assert moved
    second = Engine(Scorer(model), ThresholdSettings(), AlertSettings())
    second.sensors["s1"] = second.restore_context("s1", 0, state, model.meta.version)
    after = second.process(records[100:])
    assert not any(d.active for _, d in after.decisions[-60:]), "the adopted level is judged normal"


def test_level_ranges_cover_the_drifting_channels_levels_only() -> None:
    rng = np.random.default_rng(0)
    windows = rng.normal(0, 1, size=(50, 8, 2))
    windows[:, :, 0] += np.linspace(-3, 3, 50)[:, None]
    low, high, scale = level_ranges([windows[:40], windows[40:]], [True, False])
    means = windows.mean(axis=1)
    assert low[0] == pytest.approx(means[:, 0].min()) and high[0] == pytest.approx(means[:, 0].max())
    assert scale[0] == pytest.approx(RANGE_SDS * means[:, 0].std())
    assert (low[1], high[1], scale[1]) == (0.0, 0.0, 0.0)
    assert level_ranges([], [True, False]) == ([0.0, 0.0], [0.0, 0.0], [0.0, 0.0])
    assert level_ranges([windows], [False, False])[2] == [0.0, 0.0]


@pytest.mark.parametrize(("change", "problem"), [
    ({"range_scale": [-1.0, 0.0]}, "must not be negative"),
    ({"range_low": [2.0, 0.0], "range_high": [1.0, 0.0], "range_scale": [1.0, 0.0]}, "must not lie above"),
    ({"range_low": [], "range_high": [1.0, 0.0], "range_scale": [1.0, 0.0]}, "given together"),
])
def test_a_damaged_range_is_refused(model: ModelBundle, change: dict[str, Any], problem: str) -> None:
    meta = dataclasses.replace(model.meta, calibration=dataclasses.replace(model.meta.calibration, **change))
    with pytest.raises(ArtifactError, match=problem):
        ModelMeta.from_json(meta.to_json())


def test_a_swap_settles_no_centre_for_a_centred_channel(model: ModelBundle) -> None:
    """After a hot swap the sensor settles its drifting channels' centres at their level (InputBaseline.settle); a
    centred channel has none to settle: its offset stays 0 though its level sits away from its range's middle, so
    the new model judges it against the range its own history showed."""
    values = _rows(2400, 60 * 16, seed=4)
    values[:, 0] += 8.0  # within the range (the cycle's levels span about -9..9), off its middle
    records = records_of(model, values.astype(np.float32))
    engine = Engine(Scorer(model), ThresholdSettings(), AlertSettings())
    engine.process(records[:30])
    meta = dataclasses.replace(model.meta, version="range-2")
    engine.swap(ModelBundle(model.module, model.scaler, meta))
    baseline = engine.sensors["s1"].baseline
    assert baseline is not None and baseline.settling  # the noise channel re-centres, so a swap settles
    engine.process(records[30:])
    assert not baseline.settling and baseline.offset[0] == 0.0, baseline.offset


def test_auto_centres_one_sensors_history_and_follows_a_fleets() -> None:
    """``model.centre_drifting`` ``auto``: the range of levels is a property of one sensor's history, so a model
    trained on one series (or on the windows of one sensor) takes its drifting channels in centred; one trained on
    several sensors' histories (end to end, or their windows), whose levels span every sensor's, judges their level
    against a centre that follows each sensor. An explicit true / false wins, and a warm start keeps its model's
    choice."""
    cfg = ModelSettings(window_len=16, stride=16, hidden_size=8, latent_size=4, epochs=2, batch_size=32, seed=0,
                        seasonal=False)
    assert cfg.centre_drifting == "auto"
    values = _rows(0, 2400, seed=1).astype(np.float32)
    windows = values.reshape(-1, 16, 2)
    one = train_on_windows(windows, ["slow", "noise"], cfg, groups=["a"] * len(windows))
    fleet = train_on_windows(windows, ["slow", "noise"], cfg, groups=["a", "b"] * (len(windows) // 2))
    assert one.meta.calibration.centre_drifting and one.meta.training["sensors"] == 1
    assert any(one.meta.calibration.range_scale)
    assert not fleet.meta.calibration.centre_drifting and fleet.meta.training["sensors"] == 2
    assert not any(fleet.meta.calibration.range_scale)
    assert train(_frame(values), cfg).meta.calibration.centre_drifting  # one series
    assert not train(_frame(values), cfg, sensors=2).meta.calibration.centre_drifting  # two sensors' end to end
    with pytest.raises(DataError, match="at least one sensor"):
        train(_frame(values), cfg, sensors=0)
    assert not train(_frame(values), cfg.model_copy(update={"centre_drifting": False})).meta.calibration.centre_drifting
    assert centring(True, 5) and not centring(False, 1) and centring("auto", 1) and not centring("auto", 2)
    assert not centring("auto", 1, warm_start=fleet) and centring("auto", 2, warm_start=one)


@pytest.mark.parametrize(("text", "value"), [("auto", "auto"), ("true", True), ("false", False)])
def test_the_setting_reads_auto_or_a_boolean_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, text: str, value: object
) -> None:
    monkeypatch.setenv("MONITOR_MODEL__CENTRE_DRIFTING", text)
    assert Settings().model.centre_drifting == value
    monkeypatch.setenv("MONITOR_MODEL__CENTRE_DRIFTING", "sometimes")
    with pytest.raises(ValidationError):
        Settings()
