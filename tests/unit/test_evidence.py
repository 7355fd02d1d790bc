"""Decision-time evidence (monitor.core.evidence) recorded by the one judge (monitor.core.engine), and the retrain gate
judging through that same engine."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.engine import BatchOutcome, Engine, Record
from monitor.core.evidence import EvidenceLog, EvidencePolicy, EvidenceRow, Mark
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer
from monitor.settings import AlertSettings, ThresholdSettings
from monitor.training.gate import evaluate, judge
from pipelines.synthetic import normal_series
from tests.unit.helpers import records_of

THRESH = ThresholdSettings()
ALERT = AlertSettings(min_hits=2, min_normal=2)


def _records(bundle: ModelBundle, n: int = 60, anomaly: slice = slice(30, 36), shift: float = 25.0,
             sensor_id: str = "s1") -> list[Record]:
    wl = bundle.meta.window_len
    values = normal_series(n * wl, 3, seed=99)
    values[anomaly.start * wl : anomaly.stop * wl] += shift
    return records_of(bundle, values, sensor_id=sensor_id)


def _run(engine: Engine, recs: list[Record], cuts: tuple[int, ...] = ()) -> BatchOutcome:
    """Process ``recs`` in batches split at ``cuts``; one outcome with every batch's rows."""
    total = BatchOutcome()
    for lo, hi in zip((0, *cuts), (*cuts, len(recs))):
        part = engine.process(recs[lo:hi])
        total.alerts.update(part.alerts)
        total.decisions += part.decisions
        total.evidence += part.evidence
        total.prunes.update(part.prunes)
    return total


def test_every_alerted_window_is_recorded_as_decided_bit_for_bit(tiny_bundle: ModelBundle) -> None:
    policy = EvidencePolicy(ring=6, after=3)
    recs = _records(tiny_bundle)
    out = _run(Engine(Scorer(tiny_bundle), THRESH, ALERT, policy), recs, cuts=(17, 31, 33))
    (alert,) = out.alerts.values()
    decided = {r.offset: d for r, d in out.decisions}
    rows = [r for r in out.evidence if (r.sensor_id, r.opened_at) == alert.key]
    assert rows == out.evidence  # every row belongs to the one alert
    by_offset = {r.mark.offset: r.mark for r in rows}
    opening = next(r.offset for r, d in out.decisions if d.opened)
    # the ring before the opening window (pending run included), every window of the alert, `after` more
    assert sorted(by_offset) == list(range(opening - policy.ring + 1, alert.last_offset + 1 + 1 + policy.after))
    assert set(range(alert.first_offset, alert.last_offset + 1)) <= set(by_offset)
    for offset, mark in by_offset.items():
        d = decided[offset]
        assert mark.score == d.score and mark.threshold == d.threshold  # the same float64, not approximately
        assert mark.model_version == "tiny-1" and mark.window_end == recs[offset].window.window_end
        assert abs(float(mark.contributions.sum()) - 1.0) < 1e-9
    counted = [by_offset[o] for o in range(alert.first_offset, alert.last_offset + 1) if by_offset[o].seq > 0]
    assert [m.seq for m in counted] == list(range(1, alert.window_count + 1))
    assert max(m.score for m in counted) == alert.peak_score
    assert by_offset[alert.first_offset].above


def test_a_pending_run_survives_a_restart_and_its_windows_stay_evidence(tiny_bundle: ModelBundle) -> None:
    alert_cfg = AlertSettings(min_hits=3, min_normal=2)
    thresh = ThresholdSettings(k_instant=1e6)  # no instant opening: a run of 3 hits opens the alert
    recs = _records(tiny_bundle)
    whole = _run(Engine(Scorer(tiny_bundle), thresh, alert_cfg), recs)
    (alert,) = whole.alerts.values()
    opening = next(r.offset for r, d in whole.decisions if d.opened)
    assert opening > alert.first_offset  # a pending run before the opening window
    first = Engine(Scorer(tiny_bundle), thresh, alert_cfg)
    a = first.process(recs[:opening])  # stops inside the pending run
    state = first.sensors["s1"].snapshot()
    assert [m["offset"] for m in state["evidence"]] == list(range(alert.first_offset, opening))
    second = Engine(Scorer(tiny_bundle), thresh, alert_cfg)
    second.sensors["s1"] = second.restore_context("s1", 0, state, "tiny-1")
    b = second.process(recs[opening:])
    assert not a.evidence and [d for _, d in a.decisions + b.decisions] == [d for _, d in whole.decisions]
    inside = range(alert.first_offset, alert.last_offset + 1)
    split = {r.mark.offset: (r.mark.score, r.mark.threshold) for r in b.evidence if r.mark.offset in inside}
    kept = {r.mark.offset: (r.mark.score, r.mark.threshold) for r in whole.evidence if r.mark.offset in inside}
    assert split == kept and set(split) == set(inside)


def test_a_long_alert_keeps_its_head_tail_and_peak(tiny_bundle: ModelBundle) -> None:
    policy = EvidencePolicy(ring=4, head=3, tail=2, after=1)
    recs = _records(tiny_bundle, n=80, anomaly=slice(30, 60))
    out = _run(Engine(Scorer(tiny_bundle), THRESH, ALERT, policy), recs, cuts=(35, 50))
    (alert,) = out.alerts.values()
    assert alert.window_count > policy.head + policy.tail
    (prune,) = out.prunes.values()
    assert (prune.head, prune.through, prune.peak) == (3, alert.window_count - 2, alert.peak_score)
    # what the store keeps after the prune (monitor.store.evidence.write_evidence deletes the others)
    stored = {r.mark.window_end: r.mark for r in out.evidence}
    kept = [m for m in stored.values() if not (prune.head < m.seq <= prune.through and m.score != prune.peak)]
    counted = sorted(m.seq for m in kept if m.seq > 0)
    peak_seq = next(m.seq for m in kept if m.score == alert.peak_score)
    assert counted == sorted({1, 2, 3, alert.window_count - 1, alert.window_count, peak_seq})
    assert len(kept) <= policy.ring + policy.head + policy.tail + 1 + policy.after


def test_marks_round_trip_through_json_exactly() -> None:
    from datetime import datetime, timezone

    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    mark = Mark(t, t, 7, 0.1 + 0.2, np.exp(1.2345678901234567), np.array([1 / 3, 2 / 3, np.nan]), "m", True, 0)
    log = EvidenceLog(EvidencePolicy(ring=3))
    log.record(mark, None, opened=False, closed=False)
    (again,) = EvidenceLog.restore(log.policy, log.snapshot(pending=True)).ring
    assert again.score == mark.score and again.threshold == mark.threshold
    assert again.contributions[:2].tolist() == mark.contributions[:2].tolist() and np.isnan(again.contributions[2])
    assert log.snapshot(pending=False) == []
    rows = log.record(mark, ("s", t), opened=True, closed=False)
    assert rows == [EvidenceRow("s", t, mark), EvidenceRow("s", t, mark)]


def test_the_gate_counts_the_alerts_the_engine_opens(tiny_bundle: ModelBundle) -> None:
    recs = _records(tiny_bundle, sensor_id="a") + _records(tiny_bundle, anomaly=slice(10, 14), sensor_id="b")
    windows = np.stack([r.window.values for r in recs])
    sensors = [r.window.sensor_id for r in recs]
    starts = np.array([r.window.window_start.timestamp() for r in recs])
    ends = np.array([r.window.window_end.timestamp() for r in recs])
    # a consumer on this model: its own engine, the windows in other batches
    live = Engine(Scorer(tiny_bundle), THRESH, ALERT)
    opened = sum(d.opened for lo in range(0, len(recs), 13) for _, d in live.process(recs[lo : lo + 13]).decisions)
    scores, alerts = judge(tiny_bundle, windows, sensors, THRESH, ALERT, starts, ends, batch_windows=7)
    assert alerts == opened >= 2
    evaluation = evaluate(tiny_bundle, windows, sensors, THRESH, ALERT, None, starts, ends)
    assert evaluation.alerts == opened and evaluation.windows == len(recs)
    # the same windows in other batch compositions: float32 scores may differ in the last bits (seen on AVX-512)
    assert np.isfinite(scores).all() and evaluation.log_score_p50 == pytest.approx(float(np.median(np.log(scores))),
                                                                                    rel=1e-6, abs=1e-6)
