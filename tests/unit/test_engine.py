from __future__ import annotations

import numpy as np
from prometheus_client import REGISTRY

from monitor import metrics
from monitor.engine import Engine, Record
from monitor.incidents import RESOLVED, IncidentTracker
from monitor.scoring.artifact import ModelBundle
from monitor.scoring.scorer import Scorer
from monitor.settings import AlertSettings, ThresholdSettings
from pipelines.synthetic import normal_series
from tests.unit.helpers import records_of

THRESH = ThresholdSettings()
ALERT = AlertSettings(min_hits=2, min_normal=2)


def records(bundle: ModelBundle, n: int = 60, anomaly: slice = slice(30, 36)) -> list[Record]:
    wl = bundle.meta.window_len
    values = normal_series(n * wl, 3, seed=99)
    values[anomaly.start * wl : anomaly.stop * wl] += 25.0
    return records_of(bundle, values)


def test_an_injected_anomaly_opens_and_closes_one_alert(tiny_bundle: ModelBundle) -> None:
    engine = Engine(Scorer(tiny_bundle), THRESH, ALERT)
    recs = records(tiny_bundle)
    outcome = engine.process(recs)
    assert len(outcome.alerts) == 1
    alert = next(iter(outcome.alerts.values()))
    assert alert.status == RESOLVED and alert.closed_at is not None
    assert recs[30].window.window_start <= alert.opened_at <= recs[31].window.window_start
    assert alert.window_count >= 5
    assert alert.first_offset in (30, 31) and alert.last_offset >= 35
    assert alert.model_version == "tiny-1"
    assert len(alert.top_channels) == 3
    assert alert.peak_score > alert.threshold_at_peak


def test_state_restored_midway_gives_the_same_decisions(tiny_bundle: ModelBundle) -> None:
    recs = records(tiny_bundle)
    whole = Engine(Scorer(tiny_bundle), THRESH, ALERT).process(recs)

    first = Engine(Scorer(tiny_bundle), THRESH, ALERT)
    a = first.process(recs[:32])  # stops inside the alert
    snap = first.sensors["s1"].snapshot()
    second = Engine(Scorer(tiny_bundle), THRESH, ALERT)
    second.sensors["s1"] = second.restore_context("s1", 0, snap, "tiny-1")
    b = second.process(recs[32:])
    assert [d for _, d in whole.decisions] == [d for _, d in a.decisions + b.decisions]
    assert {**a.alerts, **b.alerts} == whole.alerts


def test_incident_snapshot_round_trips(tiny_bundle: ModelBundle) -> None:
    engine = Engine(Scorer(tiny_bundle), THRESH, ALERT)
    engine.process(records(tiny_bundle)[:33])
    tracker = engine.sensors["s1"].incidents
    assert tracker.current is not None
    again = IncidentTracker.restore("s1", ALERT, tracker.channels, tracker.snapshot())
    assert again.current == tracker.current


def test_clean_stream_raises_no_alert(tiny_bundle: ModelBundle) -> None:
    engine = Engine(Scorer(tiny_bundle), THRESH, ALERT)
    outcome = engine.process(records(tiny_bundle, anomaly=slice(0, 0)))
    assert outcome.alerts == {}
    assert np.isfinite([d.level for _, d in outcome.decisions]).all()


def test_a_swap_leaves_the_metrics_to_the_runner(tiny_bundle: ModelBundle) -> None:
    metrics.show_model("before-swap")
    Engine(Scorer(tiny_bundle), ThresholdSettings(), AlertSettings()).swap(tiny_bundle)
    assert REGISTRY.get_sample_value("monitor_model_info", {"version": "before-swap"}) == 1
    assert REGISTRY.get_sample_value("monitor_model_info", {"version": tiny_bundle.meta.version}) is None
