from __future__ import annotations

import math

import numpy as np

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
