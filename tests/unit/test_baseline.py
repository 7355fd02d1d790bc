"""Input re-centring (monitor/core/scoring/baseline.py) and its wiring in the Engine."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from monitor.core.engine import Engine, Record
from monitor.core.scoring import baseline
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.baseline import InputBaseline, drift_speeds, drifting_channels, stepping_channels
from monitor.core.scoring.scaler import RobustScaler
from monitor.core.scoring.scorer import Scorer
from monitor.core.windows import sliding_windows, without_any_episode
from monitor.settings import AlertSettings, ThresholdSettings
from pipelines.synthetic import normal_series
from tests.unit.helpers import records_of

SCALER = RobustScaler(np.zeros(2, dtype=np.float32), np.ones(2, dtype=np.float32))


def test_small_residuals_are_learned_large_ones_are_not() -> None:
    base, other = InputBaseline(SCALER, rate=0.05, k=2.0), InputBaseline(SCALER, rate=0.05, k=2.0)
    for _ in range(200):  # the model under-predicts channel 0 by 0.5 units; channel 1 is a step of 10 units
        InputBaseline.learn_many([base, other], np.stack([  # other: over-predicts channel 1 by 0.3 units
            np.array([0.5, 10.0]) - base.offset * np.array([1.0, 0.0]),
            np.array([0.0, -0.3]) - other.offset * np.array([0.0, 1.0]),
        ]))
    assert abs(base.offset[0] - 0.5) < 0.01  # converged: the window shifted by the offset has no residual left
    assert base.offset[1] == 0.0  # outside k scaler units: never learned
    assert other.offset[0] == 0.0 and abs(other.offset[1] + 0.3) < 0.01  # each row learns its own sensor only
    shifted = InputBaseline.shift_many([base, other], np.array([[[2.0, 10.0]] * 4] * 2))
    assert np.allclose(shifted[0, :, 0], 1.5, atol=0.01) and np.allclose(shifted[0, :, 1], 10.0)
    assert np.allclose(shifted[1, :, 0], 2.0) and np.allclose(shifted[1, :, 1], 10.3, atol=0.01)


def test_rate_zero_leaves_windows_alone() -> None:
    bases = [InputBaseline(SCALER, rate=0.0, k=2.0) for _ in range(2)]
    windows = np.random.default_rng(0).normal(size=(2, 4, 2))
    for _ in range(10):
        assert np.allclose(InputBaseline.shift_many(bases, windows), windows)
        InputBaseline.learn_many(bases, np.array([[0.5, -0.5], [-0.5, 0.5]]))
    assert all(np.all(b.offset == 0.0) for b in bases)


def test_snapshot_restores_exactly_and_rejects_other_channel_counts() -> None:
    base = InputBaseline(SCALER, rate=0.1, k=5.0)
    InputBaseline.learn_many([base], np.array([[1.0, -2.0]]))
    again = InputBaseline.restore(SCALER, 0.1, 5.0, base.snapshot())
    assert np.array_equal(again.offset, base.offset)
    windows = np.full((1, 4, 2), 0.5)
    assert np.array_equal(InputBaseline.shift_many([again], windows), InputBaseline.shift_many([base], windows))
    fresh = InputBaseline.restore(SCALER, 0.1, 5.0, {"offset": [1.0, 2.0, 3.0]})
    assert np.all(fresh.offset == 0.0)


def _drifting(bundle: ModelBundle, n: int = 80) -> list[Record]:
    wl = bundle.meta.window_len
    values = normal_series(n * wl, 3, seed=7)
    values[:, 0] += np.linspace(0.0, 3.0, n * wl)  # slow drift
    return records_of(bundle, values)


def test_engine_persists_the_baseline_and_resumes_identically(tiny_bundle: ModelBundle) -> None:
    thresh, alert = ThresholdSettings(recentre_rate=0.05), AlertSettings()
    recs = _drifting(tiny_bundle)
    whole = Engine(Scorer(tiny_bundle), thresh, alert).process(recs)
    first = Engine(Scorer(tiny_bundle), thresh, alert)
    a = first.process(recs[:40])
    snap = first.sensors["s1"].snapshot()
    assert "baseline" in snap and snap["baseline"]["offset"][0] != 0.0
    second = Engine(Scorer(tiny_bundle), thresh, alert)
    second.sensors["s1"] = second.restore_context("s1", 0, snap, tiny_bundle.meta.version)
    b = second.process(recs[40:])
    assert [d.score for _, d in whole.decisions] == [d.score for _, d in a.decisions + b.decisions]
    # batching does not matter: one window at a time decides exactly like one batch
    single = Engine(Scorer(tiny_bundle), thresh, alert)
    one_by_one = [d.score for r in recs for _, d in single.process([r]).decisions]
    assert one_by_one == [d.score for _, d in whole.decisions]
    # an old state without a baseline (before this feature) still restores, at the model's centre
    old = {k: v for k, v in snap.items() if k != "baseline"}
    ctx = Engine(Scorer(tiny_bundle), thresh, alert).restore_context("s1", 0, old, tiny_bundle.meta.version)
    assert ctx.baseline is not None and np.all(ctx.baseline.offset == 0.0)


def test_recentring_lowers_scores_of_a_drifting_sensor(tiny_bundle: ModelBundle) -> None:
    recs = _drifting(tiny_bundle)
    fixed = ThresholdSettings(recentre_rate=0.0, drift_rate=0.0)
    off = Engine(Scorer(tiny_bundle), fixed, AlertSettings()).process(recs)
    on = Engine(Scorer(tiny_bundle), ThresholdSettings(recentre_rate=0.05), AlertSettings()).process(recs)
    tail_off = np.mean([d.score for _, d in off.decisions[-20:]])
    tail_on = np.mean([d.score for _, d in on.decisions[-20:]])
    assert tail_on < tail_off


def test_slow_channels_are_marked_drifting_noise_and_constants_are_not() -> None:
    rng = np.random.default_rng(1)
    n = 400
    t = np.arange(n)
    rows = np.column_stack([
        20 + np.cumsum(rng.normal(0, 0.05, n)) + rng.normal(0, 0.02, n),  # a wandering temperature
        np.sin(2 * np.pi * t / 300) + rng.normal(0, 0.1, n),  # slower than the span
        rng.normal(0, 1, n),  # noise
        np.full(n, 3.0),  # constant
        rng.integers(31, 33, n).astype(float),  # a quantised meter toggling between counts
    ])
    assert drifting_channels(rows, span=20, ratio=0.5) == [True, True, False, False, False]
    assert drifting_channels(rows, span=20, ratio=0.0) == [False] * 5  # off
    assert drifting_channels(rows[:30], span=20, ratio=0.5) == [False] * 5  # too short to tell


def test_one_lasting_excursion_does_not_make_a_channel_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    """Noise with one incident of 6 % of its rows at 6 SD: its moving average keeps ~2/3 of the variance (above the
    default ratio 0.6), but not with the incident's part of the history left out; a random walk drifts in every
    part. Judged on the whole history alone (``EPISODE_SHARE`` 0), the noise drifts."""
    rng = np.random.default_rng(3)
    n = 1200
    noise = rng.normal(0, 1, n)
    walk = 20 + np.cumsum(rng.normal(0, 0.05, n)) + rng.normal(0, 0.02, n)
    for start in (100, 500, 1100):  # anywhere, up to its end
        spoiled = noise.copy()
        spoiled[start : start + 72] += 6.0
        rows = np.column_stack([spoiled, walk])
        assert drifting_channels(rows, span=20, ratio=0.6) == [False, True], start
        with monkeypatch.context() as m:
            m.setattr(baseline, "EPISODE_SHARE", 0.0)
            assert drifting_channels(rows, span=20, ratio=0.6) == [True, True], start


def test_the_history_without_any_episode_leaves_out_every_two_neighbouring_sixths() -> None:
    sets = without_any_episode(60)
    assert [len(k) for k in sets] == [40, 40, 40, 40, 40]
    assert sets[0][0] == 20 and sets[4][-1] == 39  # the first two sixths left out, then the last two
    assert set(sets[2].tolist()) == set(range(20)) | set(range(40, 60))  # the third and fourth left out
    assert all(np.all(np.diff(k) > 0) for k in sets), "in time order"
    assert without_any_episode(5) == []
    assert without_any_episode(60, least=41) == []


def test_channels_that_switch_between_levels_step_and_slow_wanders_do_not() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    pumps = np.repeat(rng.integers(1, 4, n // 50), 50).astype(float)  # a pump count, switching now and then
    rows = np.column_stack([
        pumps,
        40 * pumps + rng.normal(0, 1.5, n),  # a flow that follows it
        20 + np.cumsum(rng.normal(0, 0.05, n)),  # a wandering temperature
        np.sin(2 * np.pi * np.arange(n) / 300) + rng.normal(0, 0.1, n),  # a slow cycle
        np.full(n, 3.0),  # constant
    ])
    assert drifting_channels(rows, span=20, ratio=0.5)[:4] == [True] * 4, "the moving-average test alone marks all"
    assert stepping_channels(sliding_windows(rows, 32, 8)) == [True, True, False, False, False]
    # Windows of two sensors at different levels, taken in turn (retraining on a topic): the seams between them
    # are not steps of either sensor.
    walk = rows[:, 2:3]
    own, other = sliding_windows(walk, 32, 32), sliding_windows(walk + 50, 32, 32)
    assert stepping_channels(np.stack([w for pair in zip(own, other, strict=True) for w in pair])) == [False]


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(0, 6), st.integers(1, 8), st.integers(1, 3)),
              elements=st.floats(-1e6, 1e6, allow_nan=False)))
def test_stepping_channels_answers_one_flag_per_channel_for_any_windows(windows: np.ndarray) -> None:
    flags = stepping_channels(windows)
    assert len(flags) == windows.shape[2] and all(isinstance(f, bool) for f in flags)
    constant = np.broadcast_to(windows[:, :1, :], windows.shape)
    assert stepping_channels(constant) == [False] * windows.shape[2], "a constant channel does not step"


def test_drifting_channels_follow_larger_residuals_faster() -> None:
    base = InputBaseline(SCALER, rate=0.01, k=2.0, drifting=[True, False], drift_rate=0.1, drift_k=6.0)
    InputBaseline.learn_many([base], np.array([[4.0, 4.0]]))  # beyond k, within drift_k
    np.testing.assert_allclose(base.offset, [0.4, 0.0])
    InputBaseline.learn_many([base], np.array([[1.0, 1.0]]))
    np.testing.assert_allclose(base.offset, [0.5, 0.01])
    InputBaseline.learn_many([base], np.array([[7.0, 1.0]]))  # a step beyond drift_k is not learned either
    np.testing.assert_allclose(base.offset, [0.5, 0.02])
    again = InputBaseline.restore(SCALER, 0.01, 2.0, base.snapshot(), drifting=[True, False], drift_rate=0.1,
                                  drift_k=6.0)
    np.testing.assert_array_equal(again.offset, base.offset)
    assert InputBaseline(SCALER, rate=0.0, k=2.0, drifting=[True, False], drift_rate=0.1).enabled
    assert not InputBaseline(SCALER, rate=0.0, k=2.0, drifting=[True, False], drift_rate=0.0).enabled


def test_drift_speed_is_the_fastest_move_of_a_drifting_channels_level() -> None:
    n = 400
    ramp = np.concatenate([np.linspace(0, 1, n // 2), np.linspace(1, 5, n // 2)])  # 1/200 then 4/200 per row
    rows = np.column_stack([ramp, np.random.default_rng(0).normal(0, 1, n)])
    speeds = drift_speeds(rows, [True, False], span=20)
    assert speeds[1] == 0.0  # not drifting: never moves during an alert
    assert abs(speeds[0] - 4 / 199) < 1e-3, speeds
    assert drift_speeds(rows[:50], [True, False], span=20) == [0.0, 0.0]  # too short to tell


def test_during_an_alert_a_drifting_channel_keeps_at_most_its_natural_pace() -> None:
    def paced(speed: list[float]) -> InputBaseline:
        return InputBaseline(SCALER, rate=0.01, k=2.0, drifting=[True, False], drift_rate=0.1, drift_k=6.0,
                             speed=speed)

    base = paced([0.02, 0.0])
    in_alert = np.array([False])
    InputBaseline.learn_many([base], np.array([[4.0, 1.0]]), in_alert, rows=np.array([3.0]))
    np.testing.assert_allclose(base.offset, [0.06, 0.0])  # 0.1 x 4 = 0.4 wanted, 3 rows x 0.02 allowed
    InputBaseline.learn_many([base], np.array([[-0.2, 1.0]]), in_alert, rows=np.array([3.0]))
    np.testing.assert_allclose(base.offset, [0.04, 0.0])  # a small move is taken whole
    InputBaseline.learn_many([base], np.array([[7.0, 1.0]]), in_alert, rows=np.array([100.0]))
    np.testing.assert_allclose(base.offset, [0.04, 0.0])  # a step beyond the gate: never
    off = paced([0.0, 0.0])  # threshold.drift_pace 0 (the default): nothing moves during an alert
    InputBaseline.learn_many([off], np.array([[4.0, 1.0]]), in_alert, rows=np.array([3.0]))
    np.testing.assert_array_equal(off.offset, [0.0, 0.0])
    InputBaseline.learn_many([off], np.array([[4.0, 1.0]]), np.array([True]), rows=np.array([3.0]))
    np.testing.assert_allclose(off.offset, [0.4, 0.01])  # judged normal: the usual rates, no pace limit
