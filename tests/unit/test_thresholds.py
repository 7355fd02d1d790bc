from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.settings import AlertSettings, ThresholdSettings
from monitor.core.thresholds import SensorThreshold

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
