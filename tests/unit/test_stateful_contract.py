"""The contract every stateful part of the core keeps, checked the same way for each (issue 17; in the spirit of
river's estimator checks), on streams hypothesis draws:

* **restart equals never stopping**: a snapshot taken after any prefix of a stream, sent through JSON (what the
  database stores) and restored, gives the same decisions and the same final state as the uninterrupted object;
* **the snapshot owns its data**: changing the returned object does not change the live part, and the live part
  going on does not change a snapshot already taken (a state written to the database later, or evicted and read
  back, is the state of its moment);
* **inputs are not mutated**: the arrays a part is fed are the same afterwards.

Parts: ``SensorThreshold`` (scores, incl. non-finite and absurd ones, with and without a warm-up), ``InputBaseline``
(mean residuals and verdicts), ``IncidentTracker`` (decisions of a threshold, window times and contributions) and
a whole sensor of the ``Engine`` (model, re-centring, threshold, incidents, evidence and order together).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitor.core.engine import Engine
from monitor.core.incidents import IncidentTracker
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.baseline import InputBaseline
from monitor.core.scoring.scaler import RobustScaler
from monitor.core.scoring.scorer import Scorer
from monitor.core.thresholds import Decision, SensorThreshold
from monitor.settings import AlertSettings, ThresholdSettings
from pipelines.synthetic import normal_series
from tests.unit.helpers import records_of

ALERT = AlertSettings(min_hits=2, min_normal=3)
T0 = datetime(2026, 1, 5, tzinfo=timezone.utc)


def through_json(snapshot: Any) -> Any:
    """What the database keeps of a snapshot (NaN and infinities as JSON allows them in this store)."""
    return json.loads(json.dumps(snapshot))


def same(a: Any, b: Any) -> bool:
    """Equal, NaN included (decisions carry the raw score, which may be NaN)."""
    return json.dumps(a, default=str, sort_keys=True) == json.dumps(b, default=str, sort_keys=True)


def decided(decisions: list[Decision]) -> list[dict[str, Any]]:
    return [asdict(d) for d in decisions]


_typical = st.floats(0.5, 2.0)  # around the calibration's typical score (log mean 0): runs of normal windows
_raised = st.floats(3.0, 15.0)  # around the open level (e^1.5-e^2.5 with k_enter 3): hits without an instant open
scores = st.lists(
    st.one_of(_typical, _typical, _typical, _raised, _raised, st.floats(1e-6, 1e6),
              st.sampled_from([0.0, math.nan, math.inf, 1e300, 5e-324])), min_size=2, max_size=60)
threshold_cfgs = st.builds(
    ThresholdSettings, warmup_windows=st.sampled_from([0, 3, 16]), smoothing=st.sampled_from([1.0, 0.5]),
    k_enter=st.sampled_from([3.0, 4.0]), k_exit=st.just(2.5), k_instant=st.sampled_from([5.0, 8.0]),
    fading=st.sampled_from([0.002, 0.05]))


def _threshold(cfg: ThresholdSettings) -> SensorThreshold:
    return SensorThreshold(cfg, ALERT, log_mean=0.0, log_std=0.5)


@settings(max_examples=150, deadline=None)
@given(cfg=threshold_cfgs, stream=scores)
def test_a_threshold_restored_anywhere_decides_as_if_it_never_stopped(cfg: ThresholdSettings,
                                                                     stream: list[float]) -> None:
    whole = _threshold(cfg)
    expected = decided([whole.update(s) for s in stream])
    for k in range(len(stream) + 1):  # every place a restart can fall
        first = _threshold(cfg)
        head = [first.update(s) for s in stream[:k]]
        taken = first.snapshot()
        kept = copy.deepcopy(taken)
        again = SensorThreshold.restore(cfg, ALERT, through_json(taken))
        tail = [again.update(s) for s in stream[k:]]
        assert same(decided(head + tail), expected), k
        assert same(again.snapshot(), whole.snapshot()), k
        for s in stream[k:]:  # the live part goes on: the snapshot of its moment stays as it was
            first.update(s)
        assert same(taken, kept), k


@settings(max_examples=60, deadline=None)
@given(cfg=threshold_cfgs, stream=scores)
def test_changing_a_threshold_snapshot_does_not_change_the_threshold(cfg: ThresholdSettings,
                                                                     stream: list[float]) -> None:
    t = _threshold(cfg)
    for s in stream:
        t.update(s)
    before = copy.deepcopy(t.snapshot())
    snap = t.snapshot()
    for key, value in list(snap.items()):
        if isinstance(value, list):
            value.append(123.0)
        else:
            snap[key] = 1e9
    assert same(t.snapshot(), before)


SCALER = RobustScaler(np.zeros(3, dtype=np.float32), np.array([1.0, 2.0, 0.5], dtype=np.float32))
residual_rows = st.lists(st.tuples(
    st.lists(st.one_of(st.floats(-6, 6), st.just(math.nan)), min_size=3, max_size=3), st.booleans(),
    st.integers(1, 40)), min_size=1, max_size=40)


def _baseline(drifting: list[bool]) -> InputBaseline:
    return InputBaseline(SCALER, 0.05, 2.0, drifting=drifting, drift_rate=0.2, drift_k=4.0, speed=[0.01, 0.0, 0.02])


@settings(max_examples=100, deadline=None)
@given(rows=residual_rows, cut=st.floats(0.0, 1.0), drifting=st.lists(st.booleans(), min_size=3, max_size=3))
def test_input_centres_restored_anywhere_learn_as_if_they_never_stopped(
    rows: list[tuple[list[float], bool, int]], cut: float, drifting: list[bool]
) -> None:
    k = int(cut * len(rows))

    def feed(base: InputBaseline, part: list[tuple[list[float], bool, int]]) -> None:
        for residual, normal, elapsed in part:
            arrays = (np.array([residual]), np.array([normal]), np.array([elapsed]))
            copies = [a.copy() for a in arrays]
            InputBaseline.learn_many([base], arrays[0], normal=arrays[1], rows=arrays[2])
            assert all(np.array_equal(a, c, equal_nan=True) for a, c in zip(arrays, copies))  # inputs untouched

    whole = _baseline(drifting)
    feed(whole, rows)
    first = _baseline(drifting)
    feed(first, rows[:k])
    taken = first.snapshot()
    kept = copy.deepcopy(taken)
    again = InputBaseline.restore(SCALER, 0.05, 2.0, through_json(taken), drifting=drifting, drift_rate=0.2,
                                  drift_k=4.0, speed=[0.01, 0.0, 0.02])
    feed(again, rows[k:])
    assert np.array_equal(again.offset, whole.offset) and np.array_equal(again.residual, whole.residual)
    feed(first, rows[k:])
    assert same(taken, kept)
    windows = np.random.default_rng(0).normal(size=(1, 4, 3)).astype(np.float32)
    copy_ = windows.copy()
    InputBaseline.shift_many([again], windows)
    assert np.array_equal(windows, copy_)


@settings(max_examples=100, deadline=None)
@given(stream=scores, cooldown=st.sampled_from([0.0, 600.0]))
def test_an_incident_tracker_restored_anywhere_reports_as_if_it_never_stopped(stream: list[float],
                                                                             cooldown: float) -> None:
    cfg = ThresholdSettings(warmup_windows=0)
    alert = AlertSettings(min_hits=2, min_normal=3, cooldown_s=cooldown)
    threshold = SensorThreshold(cfg, alert, log_mean=0.0, log_std=0.5)
    decisions = [threshold.update(s) for s in stream]
    channels = ("a", "b", "c")
    contributions = np.random.default_rng(len(stream)).random((len(stream), 3))

    def feed(tracker: IncidentTracker, start: int, stop: int) -> list[Any]:
        out = []
        for i in range(start, stop):
            given_ = contributions[i].copy()
            record = tracker.update(decisions[i], window_start=T0 + timedelta(minutes=5 * i),
                                    window_end=T0 + timedelta(minutes=5 * i + 4), partition=0, offset=i,
                                    contributions=contributions[i], model_version="m", std=0.5)
            assert np.array_equal(contributions[i], given_)  # inputs untouched
            out.append(None if record is None else record.to_json())
        return out

    whole = IncidentTracker("s", alert, channels)
    expected = feed(whole, 0, len(stream))
    for k in range(len(stream) + 1):  # every place a restart can fall
        first = IncidentTracker("s", alert, channels)
        head = feed(first, 0, k)
        taken = first.snapshot()
        kept = copy.deepcopy(taken)
        again = IncidentTracker.restore("s", alert, channels, through_json(taken))
        assert same(head + feed(again, k, len(stream)), expected), k
        assert same(again.snapshot(), whole.snapshot()), k
        feed(first, k, len(stream))
        assert same(taken, kept), k


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(seed=1, cut=0.35, spike=25.0, recentre=0.02)  # cut inside the alert
@given(seed=st.integers(0, 10_000), cut=st.floats(0.0, 1.0), spike=st.floats(0.0, 30.0),
       recentre=st.sampled_from([0.0, 0.02]))
def test_a_sensor_of_the_engine_restored_anywhere_decides_as_if_it_never_stopped(
    tiny_bundle: ModelBundle, seed: int, cut: float, spike: float, recentre: float
) -> None:
    wl = tiny_bundle.meta.window_len
    values = normal_series(40 * wl, len(tiny_bundle.meta.channels), seed=seed)
    values[12 * wl: 16 * wl] += spike  # an alert, only a rise, or nothing (the tiny model's alerts need ~+25)
    recs = records_of(tiny_bundle, values)
    given_ = [r.window.values.copy() for r in recs]
    cfg = ThresholdSettings(recentre_rate=recentre, warmup_windows=4)
    k = int(cut * len(recs))
    whole = Engine(Scorer(tiny_bundle), cfg, ALERT).process(recs)
    first = Engine(Scorer(tiny_bundle), cfg, ALERT)
    a = first.process(recs[:k])
    sensor_ids = {r.window.sensor_id for r in recs}
    second = Engine(Scorer(tiny_bundle), cfg, ALERT)
    for sid in sensor_ids & set(first.sensors):
        ctx = first.sensors[sid]
        second.sensors[sid] = second.restore_context(sid, ctx.partition, through_json(ctx.snapshot()),
                                                      ctx.model_version)
    b = second.process(recs[k:])
    assert spike < 25.0 or whole.alerts, "the explicit example must alert, or the check would prove little"
    assert same(decided([d for _, d in a.decisions + b.decisions]), decided([d for _, d in whole.decisions]))
    assert {**a.alerts, **b.alerts} == whole.alerts
    assert all(np.array_equal(r.window.values, v) for r, v in zip(recs, given_))  # inputs untouched
