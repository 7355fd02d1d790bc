"""A model swap keeps what each sensor learned online (issue 19): its threshold statistics move to the new
model's score scale through the two calibrations and its alert state stays (``threshold.carry_on_swap=false``
re-warms from the new calibration as before); a swap to the promoted shadow takes the contexts the shadow built."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.engine import Engine
from monitor.core.scoring.artifact import Calibration, ModelBundle
from monitor.core.scoring.scorer import Scorer
from monitor.core.thresholds import SensorThreshold
from monitor.settings import AlertSettings, ThresholdSettings
from pipelines.synthetic import normal_series
from tests.unit.helpers import records_of

CFG = ThresholdSettings()
ALERT = AlertSettings(min_hits=2, min_normal=2)


def _cal(mean: float, std: float) -> Calibration:
    return Calibration([1.0], mean, std)


def test_a_threshold_keeps_its_place_relative_to_the_models_normal() -> None:
    old = SensorThreshold.from_calibration(CFG, ALERT, _cal(-2.0, 0.2))
    for i in range(400):  # this sensor sits above the model's normal: ~ -1.9 with a small wobble
        old.update(math.exp(-1.9 + 0.02 * math.sin(i)))
    data = old.snapshot()
    new = SensorThreshold.carried(CFG, ALERT, data, _cal(1.0, 0.4))
    ratio = 0.4 / 0.2
    assert math.isclose(new._mean.get(), 1.0 + (data["mean"] + 2.0) * ratio, rel_tol=1e-9)
    assert math.isclose(new._sq.get(), data["sq"] * ratio * ratio, rel_tol=1e-9)
    assert new.prior == (1.0, 0.4)  # the next swap maps from this model's scale
    assert new.seen == old.seen and new.active == old.active and not new.warming
    assert new.level is not None and math.isclose(new.level, 1.0 + (old.level + 2.0) * ratio)  # type: ignore[operator]
    # the same score relative to each model's normal gets the same decision
    z = 2.0
    assert old.update(math.exp(-2.0 + 0.2 * z)).opened == new.update(math.exp(1.0 + 0.4 * z)).opened


@settings(max_examples=60, deadline=None)
@given(st.floats(-20, 20), st.floats(0.06, 3), st.floats(-20, 20), st.floats(0.06, 3),
       st.lists(st.floats(-30, 30), min_size=1, max_size=40))
def test_carrying_keeps_every_learned_level_at_the_same_standard_score(
    m0: float, s0: float, m1: float, s1: float, levels: list[float]
) -> None:
    old = SensorThreshold.from_calibration(CFG, ALERT, _cal(m0, s0))
    for level in levels:
        old.update(math.exp(level))
    new = SensorThreshold.carried(CFG, ALERT, old.snapshot(), _cal(m1, s1))

    def clamp(v: float) -> float:
        return min(max(v, CFG.min_std), CFG.max_std)

    z_old = (old._mean.get() - m0) / clamp(s0)
    z_new = (new._mean.get() - m1) / clamp(s1)
    assert math.isclose(z_old, z_new, rel_tol=1e-6, abs_tol=1e-6)
    assert math.isfinite(new.enter) and math.isfinite(new.exit) and new.exit < new.enter


def test_a_snapshot_without_a_usable_prior_starts_from_the_new_calibration() -> None:
    old = SensorThreshold.from_calibration(CFG, ALERT, _cal(0.0, 0.3))
    data = {**old.snapshot(), "prior": None}
    new = SensorThreshold.carried(CFG, ALERT, data, _cal(2.0, 0.5))
    assert new._mean.get() == 2.0 and new.seen == 0


def _other(bundle: ModelBundle, version: str, shift: float) -> ModelBundle:
    cal = dataclasses.replace(bundle.meta.calibration, log_score_mean=bundle.meta.calibration.log_score_mean + shift)
    return ModelBundle(bundle.module, bundle.scaler, dataclasses.replace(bundle.meta, version=version, calibration=cal))


def test_an_engine_swap_carries_each_sensors_threshold_or_rewarms_it_when_told(tiny_bundle: ModelBundle) -> None:
    wl, n = tiny_bundle.meta.window_len, len(tiny_bundle.meta.channels)
    history = records_of(tiny_bundle, normal_series(80 * wl, n, seed=3), sensor_id="s1")
    for carry in (True, False):
        engine = Engine(Scorer(tiny_bundle), CFG.model_copy(update={"carry_on_swap": carry}), ALERT)
        engine.process(history)
        before = engine.sensors["s1"].threshold
        mean, seen = before._mean.get(), before.seen
        other = _other(tiny_bundle, f"tiny-shifted-{carry}", shift=1.5)
        engine.swap(other)
        after = engine.sensors["s1"].threshold
        assert engine.sensors["s1"].model_version == other.meta.version
        if carry:
            assert after.seen == seen and math.isclose(after._mean.get(), mean + 1.5, rel_tol=1e-9)
        else:
            fresh = SensorThreshold.from_calibration(engine.threshold_cfg, ALERT, other.meta.calibration)
            assert after.seen == 0 and after._mean.get() == fresh._mean.get()


def test_a_swap_to_the_promoted_shadow_takes_the_contexts_it_learned_and_keeps_the_alert(
    tiny_bundle: ModelBundle,
) -> None:
    wl, n = tiny_bundle.meta.window_len, len(tiny_bundle.meta.channels)
    values = normal_series(60 * wl, n, seed=4)
    values[54 * wl :] += 8 * values.std(axis=0)  # an alert still open at the swap
    history = records_of(tiny_bundle, values, sensor_id="s1")
    engine = Engine(Scorer(tiny_bundle), CFG, ALERT)
    other = _other(tiny_bundle, "tiny-shadowed", shift=0.0)
    shadow = Engine(Scorer(other), CFG, ALERT)
    for first in range(0, len(history), 10):
        outcome = engine.process(history[first : first + 10])
        shadow.process([r for r, _ in outcome.decisions])
    assert engine.sensors["s1"].incidents.current is not None
    learned = shadow.sensors["s1"]
    engine.swap(other, shadow.sensors)
    ctx = engine.sensors["s1"]
    assert ctx.threshold is learned.threshold and ctx.baseline is learned.baseline
    assert ctx.threshold.seen == len(history) and ctx.threshold.active  # the active model's open alert goes on
    assert ctx.incidents.current is not None and ctx.model_version == "tiny-shadowed"
    # contexts of another version than the one swapped in are not taken
    engine.swap(_other(tiny_bundle, "tiny-3", shift=0.0), shadow.sensors)
    assert engine.sensors["s1"].threshold is not learned.threshold


def test_settling_places_only_drifting_channels_inside_their_gate_once() -> None:
    from monitor.core.scoring.baseline import InputBaseline
    from monitor.core.scoring.scaler import RobustScaler

    scaler = RobustScaler(np.zeros(3), np.ones(3))
    b = InputBaseline(scaler, 0.01, 2.0, drifting=[True, True, False], drift_rate=0.05, drift_k=6.0)
    b.settling = True
    b.settle(np.array([4.0, 9.0, 1.5]))  # in the gate; a step outside it; a non-drifting channel
    assert b.offset.tolist() == [4.0, 0.0, 0.0] and not b.settling
    b.settling = True
    again = InputBaseline.restore(scaler, 0.01, 2.0, b.snapshot(), drifting=[True, True, False], drift_rate=0.05,
                                  drift_k=6.0)
    assert again.settling and again.offset.tolist() == [4.0, 0.0, 0.0]  # a restart keeps it pending
    b.settle(np.array([np.nan, 1.0, 0.0]))
    assert b.offset.tolist() == [4.0, 1.0, 0.0]  # a non-finite residual teaches nothing


def _wandering(bundle: ModelBundle, windows: int, seed: int) -> np.ndarray:
    """Normal rows whose channel 0 wanders slowly away from the training level (a drifting process variable)."""
    wl, n = bundle.meta.window_len, len(bundle.meta.channels)
    values = normal_series(windows * wl, n, seed=seed)
    values[:, 0] += np.linspace(0.0, 7.0 * values[:, 0].std(), len(values))  # 7 SD: 5 now lies inside the calibrated spread
    return values


@pytest.mark.parametrize("settle", [True, False])
def test_a_swap_does_not_alert_on_a_drifting_channels_wander_the_old_model_had_followed(
    tiny_bundle: ModelBundle, settle: bool
) -> None:
    """A hot swap while a sensor is normal: the new model's input centres start at its training level, and a
    drifting channel that wandered since (followed by the old model's re-centring) must not open an alert that,
    learning nothing while open, never closes. ``settle=False`` is the behaviour before: it alerts."""
    n = len(tiny_bundle.meta.channels)
    cal = dataclasses.replace(tiny_bundle.meta.calibration, drifting=[True] + [False] * (n - 1))
    a = ModelBundle(tiny_bundle.module, tiny_bundle.scaler, dataclasses.replace(tiny_bundle.meta, calibration=cal))
    history = records_of(a, _wandering(a, 240, seed=5), sensor_id="s1")
    engine = Engine(Scorer(a), CFG, ALERT)
    before = engine.process(history[:200])
    assert not any(d.active for _, d in before.decisions[-40:]), "the old model follows the wander"
    engine.swap(_other(a, "tiny-next", shift=0.0))
    assert engine.sensors["s1"].baseline.settling  # type: ignore[union-attr]
    if not settle:
        engine.sensors["s1"].baseline.settling = False  # type: ignore[union-attr]
    after = engine.process(history[200:])
    opened = sum(d.opened for _, d in after.decisions)
    if settle:
        assert opened == 0 and not engine.sensors["s1"].baseline.settling  # type: ignore[union-attr]
    else:
        assert opened >= 1
