"""The move allowance (monitor/core/scoring/scorer.py ``move_factors``, train.py ``_calibrate_moves``): a sensor that
steps between operating states as part of its normal work is not alerted at every step, a window without a step is
judged as before, and a second mode of scores the threshold reaches gets no allowance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.backtest import run_backtest
from monitor.core.scoring.artifact import Calibration
from monitor.core.scoring.scorer import MOVE_RAMP, Scorer, move_factors
from monitor.core.scoring.train import train
from monitor.settings import AlertSettings, ModelSettings, ThresholdSettings
from pipelines.bench.taxonomy import generate

HISTORY = 2500


def _telemetry(seed: int, n: int = 6500) -> pd.DataFrame:
    """A sensor in a low mode (0.2, SD 0.01) with excursions to a high mode (0.8) of 10-30 rows every 200-500 rows
    (a spacecraft channel following its commands), beside 24 sparse one-hot command channels (each used once in
    36 to 288 rows); 1-minute rows."""
    rng = np.random.default_rng(seed)
    x = 0.2 + rng.normal(0, 0.01, n)
    i = 0
    while i < n:
        i += int(rng.integers(200, 500))
        length = int(rng.integers(10, 30))
        x[i : i + length] = 0.8 + rng.normal(0, 0.01, len(x[i : i + length]))
        i += length
    commands = np.zeros((n, 24))
    for c in range(24):
        commands[rng.random(n) < 1 / rng.uniform(36, 288), c] = 1.0
    index = pd.date_range("2026-01-01", periods=n, freq="1min", tz="UTC")
    columns = ["sensor"] + [f"cmd{k}" for k in range(24)]
    return pd.DataFrame(np.column_stack([x, commands]).astype(np.float32), index=index, columns=columns)


def test_a_sensor_stepping_between_its_modes_is_quiet_and_a_sensor_stuck_between_them_is_found() -> None:
    """Without the allowance every few excursions' edges open an alert (the autoencoder reconstructs a step at an
    arbitrary row tens to hundreds of times worse than noise, beyond the threshold's reach); with it the normal
    steps are silent, and a sensor stuck halfway between the modes for 60 rows (no step inside most of its windows)
    is still found (docs/quality.md, round 20)."""
    frame = _telemetry(0)
    cfg = ModelSettings(threads=1)
    bundle = train(frame.iloc[:HISTORY], cfg, version="moves")
    off = train(frame.iloc[:HISTORY], cfg.model_copy(update={"move_allowance": False}), version="plain")
    cal, plain = bundle.meta.calibration, off.meta.calibration
    assert cal.move_ratio[0] > 1 and cal.move_floor[0] > 0 and cal.move_top[0] > cal.move_floor[0]
    assert not plain.move_ratio
    assert all(r == 1.0 for r in cal.move_ratio[1:]), "command channels are not judged: no allowance"
    assert cal.channel_error[0] * 10 < plain.channel_error[0], "the error scale is the quiet windows'"
    after = frame.index[HISTORY]
    with_allowance = [a for a in run_backtest(frame, bundle, ThresholdSettings(), AlertSettings()).alerts
                      if a.opened_at >= after]
    without = [a for a in run_backtest(frame, off, ThresholdSettings(), AlertSettings()).alerts
               if a.opened_at >= after]
    assert len(without) >= 5, "the stream must show the failure the allowance mends"
    assert len(with_allowance) * 5 <= len(without), (len(with_allowance), len(without))
    stuck = frame.copy()
    start = 5000 + int(np.argmax(np.abs(frame.iloc[5000:5400, 0].to_numpy() - 0.2) < 0.05))  # in the low mode
    stuck.iloc[start : start + 60, 0] = 0.5
    flags = run_backtest(stuck, bundle, ThresholdSettings(), AlertSettings()).table["is_anomaly"]
    assert flags.to_numpy()[start : start + 60].any()


def test_a_window_holding_a_normal_step_is_marked_moved_and_a_quiet_one_is_not() -> None:
    """The scorer marks each window whose score the allowance lowered (``Scores.moved``): the engine lets no such
    window teach the input centres, whose mean residual is the model's miss of a step, not a drift."""
    frame = _telemetry(0)
    bundle = train(frame.iloc[:HISTORY], ModelSettings(threads=1, epochs=3), version="moves")
    cal = bundle.meta.calibration
    assert cal.move_ratio and cal.move_ratio[0] > 1
    w = bundle.meta.window_len
    values = frame.to_numpy()
    quiet = values[None, 100 : 100 + w].copy()
    quiet[0, :, 0] = 0.2
    step = quiet.copy()
    step[0, w // 2 :, 0] = 0.8
    huge = quiet.copy()
    huge[0, w // 2 :, 0] = 0.2 + 2 * cal.move_top[0] * bundle.scaler.scale[0]
    scores = Scorer(bundle).score(np.concatenate([quiet, step, huge]))
    assert scores.moved is not None and scores.moved.tolist() == [False, True, False]


def test_a_quantised_channels_steps_within_the_thresholds_reach_get_no_allowance() -> None:
    """A pump count and its flow step together in a fifth of the windows: a second mode of scores the threshold
    covers (thresholds.py ``train_quantile``). An allowance would only narrow the scores it is fitted on, and other
    normal windows would then alert: none is fitted."""
    series = generate("clean_quantised", 0)
    bundle = train(series.frame.iloc[: series.train_rows], ModelSettings(threads=1), version="pumps")
    assert not bundle.meta.calibration.move_ratio


def _calibration(floor: float, top: float, ratio: float) -> Calibration:
    return Calibration([1.0], 0.0, 1.0, move_floor=[floor], move_top=[top], move_ratio=[ratio])


@settings(max_examples=200, deadline=None)
@given(floor=st.floats(1e-3, 1e3), room=st.floats(1.01, 10.0), ratio=st.floats(1.0, 1e4),
       moves=st.lists(st.floats(0.0, 1e5, allow_subnormal=False), min_size=1, max_size=40))
def test_a_moves_factor_lies_between_one_over_the_ratio_and_one_and_never_grows_with_the_move_up_to_the_top(
    floor: float, room: float, ratio: float, moves: list[float]
) -> None:
    cal = _calibration(floor, floor * room, ratio)
    move = np.sort(np.asarray(moves))[:, None]
    factor = move_factors(move, cal)
    assert factor is not None and factor.shape == move.shape
    assert ((factor >= 1 / ratio * (1 - 1e-12)) & (factor <= 1.0)).all()
    inside = move[:, 0] <= floor * room
    assert (np.diff(factor[inside, 0]) <= 1e-12).all(), "a larger move (up to the top) is never judged harder"
    assert (factor[move[:, 0] <= floor / MOVE_RAMP] == 1.0).all(), "a move below the ramp is judged in full"
    assert (factor[move[:, 0] > floor * room] == 1.0).all(), "a move beyond the top is judged in full"
    full = (move[:, 0] >= floor) & inside
    assert np.allclose(factor[full, 0], 1 / ratio)


def test_no_allowance_and_an_allowance_of_one_leave_every_factor_at_one() -> None:
    move = np.array([[0.0], [1.0], [5.0]])
    assert move_factors(move, Calibration([1.0], 0.0, 1.0)) is None
    assert move_factors(None, _calibration(1.0, 3.0, 10.0)) is None
    assert (move_factors(move, _calibration(1.0, 3.0, 1.0)) == 1.0).all()  # type: ignore[union-attr]
    assert move_factors(move, _calibration(1.0, 3.0, 10.0))[:, 0] == pytest.approx([1.0, 0.1, 1.0])  # type: ignore[index]


def test_the_threshold_is_fitted_on_the_windows_without_a_step() -> None:
    """An operator's setpoint steps (taxonomy ``clean_setpoint``, four steps in the history): the allowance brings
    the steps' scores onto the quiet windows' top, and their scores spread further below it. The threshold's level and
    spread are the windows' without a step: fitted on all of them, the spread reached its ceiling and the threshold
    sat 23.6 times the median normal score, beyond exp(k_enter * max_std); fitted on the steady windows, 8."""
    series = generate("clean_setpoint", 1)
    bundle = train(series.frame.iloc[: series.train_rows], ModelSettings(threads=1), version="setpoint")
    assert bundle.meta.calibration.move_ratio and bundle.meta.calibration.move_ratio[0] > 1
    cfg = ThresholdSettings()
    table = run_backtest(series.frame, bundle, cfg, AlertSettings()).table
    ratio = (table["threshold"] / table["score"]).to_numpy()[series.train_rows :]
    assert 1.0 < float(np.nanmedian(ratio)) < np.exp(cfg.k_enter * cfg.max_std)
