from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.scoring.artifact import Calibration
from monitor.core.thresholds import SensorThreshold, fit_level
from monitor.settings import AlertSettings, ThresholdSettings

CFG = ThresholdSettings(k_enter=4.0, k_exit=2.0, k_instant=20.0, fading=0.05, min_std=0.05, smoothing=1.0,
                        warmup_windows=0)
ALERT = AlertSettings(min_hits=2, min_normal=3)


def fresh() -> SensorThreshold:
    return SensorThreshold(CFG, ALERT, log_mean=0.0, log_std=0.2)


def normal_scores(n: int, seed: int = 0) -> list[float]:
    return list(np.exp(np.random.default_rng(seed).normal(0, 0.2, n)))


def test_snapshot_restore_continues_identically() -> None:
    a = fresh()
    for s in normal_scores(50):
        a.update(s)
    b = SensorThreshold.restore(CFG, ALERT, a.snapshot())
    tail = normal_scores(30, seed=1) + [math.exp(3)] * 3 + normal_scores(10, seed=2)
    assert [a.update(s) for s in tail] == [b.update(s) for s in tail]
    assert a.snapshot() == b.snapshot()


def test_anomalous_windows_do_not_move_the_threshold() -> None:
    t = fresh()
    for s in normal_scores(100):
        t.update(s)
    before = (t.enter, t.exit)
    for _ in range(20):
        d = t.update(math.exp(5.0))
        assert d.above
    assert (t.enter, t.exit) == before


def test_normal_windows_adapt_the_threshold_to_drift() -> None:
    t = fresh()
    before = t.enter
    for i, s in enumerate(normal_scores(600)):
        t.update(s * math.exp(0.5 * min(1.0, i / 300)))  # a slow, normal level change stays under the open level
    assert t.enter > before + 0.3


def test_hysteresis_needs_min_hits_to_open_and_min_normal_to_close() -> None:
    t = fresh()
    high, mid, low = math.exp(2.0), math.exp(0.6), 1.0  # enter 0.8, exit 0.4 on the log scale
    d1 = t.update(high)
    assert d1.above and not d1.opened and not d1.active
    d2 = t.update(high)
    assert d2.opened and d2.active
    assert t.update(mid).active, "between exit and enter keeps an alert active"
    assert not t.update(low).closed
    assert not t.update(low).closed
    d = t.update(low)
    assert d.closed and not d.active


def test_single_hit_does_not_open() -> None:
    t = fresh()
    assert not t.update(math.exp(3)).opened
    assert not t.update(1.0).active
    assert not t.update(math.exp(3)).opened


def test_one_severe_window_opens_at_once() -> None:
    t = SensorThreshold(CFG.model_copy(update={"k_instant": 8.0}), ALERT, log_mean=0.0, log_std=0.2)
    assert not t.update(math.exp(1.5)).opened, "above enter (0.8) but below instant (1.6): needs two hits"
    t.update(1.0)
    d = t.update(math.exp(2.0))
    assert d.opened and d.active


def test_min_rows_asks_dense_windows_for_rows_of_evidence_and_sparse_ones_for_min_hits() -> None:
    alert = AlertSettings(min_hits=2, min_normal=3, min_rows=8)
    high = math.exp(2.0)  # above enter (0.8), below instant (20 * 0.2 = 4.0)

    dense = SensorThreshold(CFG, alert, log_mean=0.0, log_std=0.2)  # windows cut at every row: 1 new row each
    opened = [dense.update(high, rows=1.0).opened for _ in range(8)]
    assert opened == [False] * 7 + [True]

    sparse = SensorThreshold(CFG, alert, log_mean=0.0, log_std=0.2)  # non-overlapping windows of 32 rows
    assert [sparse.update(high, rows=32.0).opened for _ in range(2)] == [False, True], "min_hits still holds"

    broken = SensorThreshold(CFG, alert, log_mean=0.0, log_std=0.2)
    for _ in range(6):
        assert not broken.update(high, rows=1.0).opened
    assert not broken.update(1.0, rows=1.0).above  # one normal window ends the run: its rows start again
    assert [broken.update(high, rows=1.0).opened for _ in range(8)] == [False] * 7 + [True]


def test_min_rows_never_delays_the_instant_level_and_zero_turns_it_off() -> None:
    t = SensorThreshold(CFG.model_copy(update={"k_instant": 8.0}), AlertSettings(min_hits=2, min_rows=8),
                        log_mean=0.0, log_std=0.2)
    assert t.update(math.exp(2.0), rows=1.0).opened, "above the instant level (1.6): at once, one row or not"
    off = SensorThreshold(CFG, AlertSettings(min_hits=2, min_rows=0), log_mean=0.0, log_std=0.2)
    assert [off.update(math.exp(2.0), rows=1.0).opened for _ in range(2)] == [False, True]


def test_a_run_of_hits_survives_a_restore_and_old_states_go_on_as_before() -> None:
    alert = AlertSettings(min_hits=2, min_normal=3, min_rows=8)
    a = SensorThreshold(CFG, alert, log_mean=0.0, log_std=0.2)
    for _ in range(5):
        a.update(math.exp(2.0), rows=1.0)
    b = SensorThreshold.restore(CFG, alert, a.snapshot())
    assert b.rows == 5.0
    assert [a.update(math.exp(2.0), rows=1.0).opened for _ in range(3)] == \
        [b.update(math.exp(2.0), rows=1.0).opened for _ in range(3)] == [False, False, True]
    old = a.snapshot()
    old["hits"], old["active"] = 1, False
    del old["rows"]  # stored before min_rows existed: the run counts as enough rows
    assert SensorThreshold.restore(CFG, alert, old).update(math.exp(2.0), rows=1.0).opened
    for damaged in ("", None, -1.0, float("nan"), True):
        old["rows"] = damaged
        assert SensorThreshold.restore(CFG, alert, old).rows == 1e9


_LOGS = st.lists(st.floats(min_value=-1.0, max_value=5.0, allow_nan=False), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(logs=_LOGS, sparse=st.lists(st.floats(min_value=8.0, max_value=64.0), min_size=80, max_size=80))
def test_windows_that_each_bring_min_rows_decide_as_without_min_rows(logs: list[float], sparse: list[float]) -> None:
    with_rows = SensorThreshold(CFG, AlertSettings(min_hits=2, min_normal=3, min_rows=8), log_mean=0.0, log_std=0.2)
    without = SensorThreshold(CFG, AlertSettings(min_hits=2, min_normal=3, min_rows=0), log_mean=0.0, log_std=0.2)
    for log_score, rows in zip(logs, sparse):
        assert with_rows.update(math.exp(log_score), rows=rows) == without.update(math.exp(log_score), rows=1.0)


@settings(max_examples=200, deadline=None)
@given(logs=_LOGS)
def test_dense_windows_never_open_before_min_rows_of_them_unless_instant(logs: list[float]) -> None:
    t = SensorThreshold(CFG, AlertSettings(min_hits=2, min_normal=3, min_rows=5), log_mean=0.0, log_std=0.2)
    run = 0
    for log_score in logs:
        d = t.update(math.exp(log_score), rows=1.0)
        run = run + 1 if d.above else 0
        if d.opened:
            assert run >= 5 or d.level > t.instant - 1e-9, (run, d)


# ------------------------------------------------------------------ the training windows' quantile (train_quantile)
def _calibration(q99: float | None, *, mean: float = 0.0, std: float = 0.4) -> Calibration:
    quantiles = {} if q99 is None else {"q900": q99 - 0.6, "q950": q99 - 0.3, "q990": q99, "q999": q99 + 0.2}
    return Calibration(channel_error=[1.0], log_score_mean=mean, log_score_std=std, fit_quantiles=quantiles)


def test_fit_level_reads_the_stored_training_quantiles() -> None:
    stored = {"q900": 1.0, "q950": 2.0, "q990": 3.0}
    assert (fit_level(stored, 0.9), fit_level(stored, 0.99)) == (1.0, 3.0)
    assert fit_level(stored, 0.97) == pytest.approx(2.5)
    assert fit_level(stored, 0.0) is None and fit_level({}, 0.99) is None
    assert fit_level(stored, 0.995) is None, "outside the stored quantiles: no floor, never an extrapolation"
    damaged = {"q²": 9.0, "q": 9.0, "x990": 9.0, "q9x": 9.0, "q990": 3.0, "q999": float("nan")}
    assert fit_level(damaged, 0.99) == 3.0, "keys of an edited artifact that are no quantile are ignored"


def test_a_second_mode_of_training_scores_within_reach_lifts_the_open_level_above_it() -> None:
    """Mean 0, std 0.4: the Gaussian open level is 1.2 and the instant level 2.0 (defaults k 3 / 5). A quantised
    channel's steps make a tenth of the training windows score around 1.5-1.8: with the floor, a run of such
    windows is normal; without it (train_quantile 0) it is an alert, as on round 9's short histories."""
    cfg, alert = ThresholdSettings(), AlertSettings(min_hits=2, min_normal=3, min_rows=0)
    lifted = SensorThreshold.from_calibration(cfg, alert, _calibration(1.8))
    plain = SensorThreshold.from_calibration(cfg.model_copy(update={"train_quantile": 0.0}), alert, _calibration(1.8))
    assert lifted.enter == pytest.approx(1.8) and plain.enter == pytest.approx(1.2)
    steps = [math.exp(1.6)] * 6
    assert not any(lifted.update(s).opened for s in steps)
    assert any(plain.update(s).opened for s in steps)
    assert lifted.update(math.exp(2.7)).opened, "above the lifted instant level (2.6): still an alert at once"
    beyond = SensorThreshold.from_calibration(cfg, alert, _calibration(1.8))
    assert [beyond.update(math.exp(2.2)).opened for _ in range(2)] == [False, True], "a run above the mode opens"


def test_the_lift_stops_at_the_instant_level_and_ignores_modes_beyond_reach_or_absent() -> None:
    cfg, alert = ThresholdSettings(), AlertSettings()
    capped = SensorThreshold.from_calibration(cfg, alert, _calibration(2.9))  # within reach (3.0), above 2.0
    assert capped.lift == pytest.approx(2.0) and capped.enter == pytest.approx(2.0), "k_instant - k_enter stds at most"
    for q99 in (3.5, None):  # a setpoint switch's windows (far beyond exp(3) times typical), an old model
        t = SensorThreshold.from_calibration(cfg, alert, _calibration(q99))
        assert t.lift == 0.0 and t.enter == pytest.approx(1.2), q99
    restored = SensorThreshold.restore(cfg, alert, capped.snapshot())
    assert restored.lift == capped.lift and restored.enter == pytest.approx(capped.enter)


@settings(max_examples=200, deadline=None)
@given(mean=st.floats(-5.0, 5.0), std=st.floats(0.0, 3.0), q99=st.floats(-5.0, 12.0))
def test_no_training_quantile_takes_a_level_past_the_ceiling(mean: float, std: float, q99: float) -> None:
    """Whatever the stored quantiles say, exit <= enter <= instant and the open level stays within
    exp(k_enter * max_std) of the sensor's typical score (the documented bound of a threshold within reach)."""
    cfg = ThresholdSettings()
    t = SensorThreshold.from_calibration(cfg, AlertSettings(), _calibration(q99, mean=mean, std=std))
    assert t.exit <= t.enter + 1e-9 and t.enter <= t.instant + 1e-9
    assert t.enter <= mean + cfg.k_enter * cfg.max_std + 1e-9
    assert t.enter >= mean + cfg.k_enter * min(max(std, cfg.min_std), cfg.max_std) - 1e-9, "the lift never lowers"
