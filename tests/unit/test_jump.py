"""The jump term of a model whose drifting channels enter it centred (``model.centre_drifting``): their level is
not judged, so a step is seen while it lies inside a window (its shape) and, between windows, by the change of
the window mean since the sensor's previous window (monitor/core/scoring/scorer.py ``jump_values``)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from monitor.core.backtest import run_backtest
from monitor.core.scoring.baseline import MIN_JUMP, InputBaseline, jump_scales
from monitor.core.scoring.scaler import RobustScaler
from monitor.core.scoring.train import train
from monitor.settings import AlertSettings, ModelSettings, ThresholdSettings

WINDOW = 32
STEP_AT = 100 * WINDOW  # a window boundary: with stride = window length, no window holds the step


def walk_and_noise(seed: int = 3, n: int = 4000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    temperature = 60 + np.cumsum(rng.normal(0, 0.02, n)) + rng.normal(0, 0.2, n)  # slow: a drifting channel
    flow = 100 + rng.normal(0, 1.0, n)
    index = pd.date_range("2026-01-01", periods=n, freq="60s", tz="UTC")
    return pd.DataFrame({"temperature": temperature, "flow": flow}, index=index).astype(np.float32)


def test_jump_scales_are_the_typical_change_between_the_halves_of_a_window() -> None:
    rng = np.random.default_rng(0)
    windows = np.stack([rng.normal(0, 1, (2000, WINDOW)), np.full((2000, WINDOW), 2.0),
                        rng.normal(0, 1, (2000, WINDOW))], axis=2)
    scales = jump_scales(windows, [True, True, False])
    # Gaussian rows: the means of a window's two halves differ by N(0, 4 / 32), whose 1.4826 x median |.| is its SD
    assert abs(scales[0] - np.sqrt(4 / WINDOW)) < 0.08 * np.sqrt(4 / WINDOW)
    assert scales[1] == MIN_JUMP  # a constant channel: the floor, never 0 (a finite jump)
    assert scales[2] == 0.0  # not drifting: no jump term
    assert jump_scales(windows[:, :1], [True, True, False]) == [0.0, 0.0, 0.0]  # one-row windows: no halves
    assert jump_scales(windows, [False, False, False]) == [0.0, 0.0, 0.0]
    # windows of two sensors far apart, interleaved as a topic's history is: the seams between them change nothing
    other = windows + 50.0
    mixed = np.stack([windows, other], axis=1).reshape(-1, WINDOW, 3)
    assert jump_scales(mixed, [True, True, False]) == pytest.approx(scales, rel=0.1)


def test_a_step_of_a_centred_drifting_channel_at_a_window_boundary_is_seen_by_its_jump() -> None:
    frame = walk_and_noise()
    frame.iloc[STEP_AT:, 0] += 2.0  # 10 noise SD, lasting; it starts where a window starts
    bundle = train(frame.iloc[:2000], ModelSettings(threads=1, epochs=8, centre_drifting=True), version="jump")
    assert bundle.meta.calibration.drifting == [True, False]
    assert bundle.meta.calibration.jump_scale[0] > 0 and bundle.meta.calibration.jump_scale[1] == 0
    blind = copy.deepcopy(bundle)
    blind.meta.calibration.jump_scale = []  # the same model without its jump term (nor its range term, which
    blind.meta.calibration.range_low, blind.meta.calibration.range_high, blind.meta.calibration.range_scale = [], [], []
    # sees a lasting step that leaves the walk's range of levels: test_range.py)

    def alerted(model: object) -> np.ndarray:
        result = run_backtest(frame, model, ThresholdSettings(), AlertSettings(), stride=WINDOW)  # type: ignore[arg-type]
        flags: np.ndarray = result.table["is_anomaly"].to_numpy()
        return flags

    with_jump, without = alerted(bundle), alerted(blind)
    after = slice(STEP_AT, STEP_AT + 3 * WINDOW)
    assert with_jump[after].any(), "the step's first window is judged against the window before it"
    assert not without[after].any(), "without the jump no window holds the step: the blind spot this term closes"
    assert not with_jump[2000:STEP_AT].any(), "natural drift between windows is no jump"


def test_the_last_level_survives_a_snapshot_and_a_damaged_one_is_dropped() -> None:
    scaler = RobustScaler(center=np.zeros(2), scale=np.ones(2))
    baseline = InputBaseline(scaler, 0.0, 1.0)
    assert "level" not in baseline.snapshot()  # nothing judged yet
    baseline.level, baseline.level_end = np.array([1.5, -2.0]), 1_767_225_600.0
    restored = InputBaseline.restore(scaler, 0.0, 1.0, baseline.snapshot())
    np.testing.assert_array_equal(restored.level, [1.5, -2.0])
    assert restored.level_end == 1_767_225_600.0
    for damaged in ({"level": ["x", 1], "level_end": 5.0}, {"level": [1.0], "level_end": 5.0},
                    {"level": [1.0, float("nan")], "level_end": 5.0}, {"level": [1.0, 2.0], "level_end": "5"}):
        again = InputBaseline.restore(scaler, 0.0, 1.0, {"offset": [0.0, 0.0], **damaged})
        assert np.isnan(again.level).all() and np.isnan(again.level_end), damaged


@settings(max_examples=60, deadline=None, database=None)
@given(st.integers(1, 4).flatmap(lambda c: st.tuples(
    arrays(np.float64, st.tuples(st.integers(0, 30), st.integers(1, 20), st.just(c)),
           elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)),
    st.lists(st.booleans(), min_size=c, max_size=c))))
def test_jump_scales_are_one_finite_non_negative_number_per_channel(case: tuple[np.ndarray, list[bool]]) -> None:
    windows, drifting = case
    scales = jump_scales(windows, drifting)
    assert len(scales) == windows.shape[2] and all(np.isfinite(scales))
    enough = len(windows) > 0 and windows.shape[1] >= 2
    for scale, flag in zip(scales, drifting, strict=True):
        assert scale == 0.0 if not (flag and enough) else scale >= MIN_JUMP


@settings(max_examples=100, deadline=None, database=None)
@given(st.dictionaries(st.sampled_from(["offset", "residual", "level", "level_end", "settling"]),
                       st.none() | st.booleans() | st.floats() | st.text(max_size=3)
                       | st.lists(st.floats() | st.integers() | st.text(max_size=2), max_size=3)))
def test_a_stored_state_of_any_shape_restores_without_raising(data: dict[str, object]) -> None:
    baseline = InputBaseline.restore(RobustScaler(center=np.zeros(2), scale=np.ones(2)), 0.0, 1.0, data)
    level: np.ndarray = baseline.level  # numpy's stubs give InputBaseline.level (an np.full) a 0-d shape
    assert level.shape == (2,)
    assert np.isnan(baseline.level).all() or (np.isfinite(baseline.level).all() and np.isfinite(baseline.level_end))
