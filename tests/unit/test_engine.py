from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from prometheus_client import REGISTRY

from monitor.core.contract import SensorWindow
from monitor.core.engine import Engine, Record
from monitor.core.incidents import RESOLVED, SEVERITIES, IncidentTracker
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer
from monitor.observe import metrics
from monitor.settings import AlertSettings, ThresholdSettings
from pipelines.synthetic import EPOCH, normal_series
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


def test_the_opening_and_closing_of_an_alert_are_logged_once_each(tiny_bundle: ModelBundle, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    from monitor.consumer.batches import log_alert_events

    outcome = Engine(Scorer(tiny_bundle), THRESH, ALERT).process(records(tiny_bundle))
    assert [kind for kind, _ in outcome.events] == ["opened", "closed"]
    assert outcome.events[0][1].closed_at is None and outcome.events[1][1].closed_at is not None
    with caplog.at_level(logging.INFO, logger="monitor.consumer.batches"):
        log_alert_events(outcome)
    # only this logger: a Kafka client left by an earlier test in the same session may log meanwhile
    lines = [r.getMessage() for r in caplog.records if r.name == "monitor.consumer.batches"]
    assert len(lines) == 2 and lines[0].startswith("alert opened: sensor=s1 ") and "model=tiny-1" in lines[0]
    assert lines[1].startswith("alert closed: sensor=s1 ") and "until=" in lines[1], lines


def test_dead_letters_are_logged_at_most_once_per_reason_and_interval(caplog) -> None:  # type: ignore[no-untyped-def]
    import logging
    from types import SimpleNamespace

    from monitor.core.contract import DecodeFailure
    from monitor.ingest.kafka import DeadLetters

    letters = DeadLetters(None, "dlq")  # only the log is exercised
    record = SimpleNamespace(topic="windows", partition=2, offset=7)
    with caplog.at_level(logging.INFO, logger="monitor.ingest.kafka"):
        for i, now in enumerate([0.0, 1.0, 2.0, 11.0]):
            letters._say(record, DecodeFailure("bad_json", f"case {i}"), now=now)
        letters._say(record, DecodeFailure("shape", "other reason"), now=3.0)
    lines = [r.getMessage() for r in caplog.records if r.name == "monitor.ingest.kafka"]
    assert lines == ["dead letter: reason=bad_json at windows[2]@7: case 0",
                     "dead letter: reason=bad_json at windows[2]@7: case 3 (+2 more with this reason since the last line)",
                     "dead letter: reason=shape at windows[2]@7: other reason"]  # another reason has its own clock


def test_json_log_lines_carry_the_alert_events_fields(tiny_bundle: ModelBundle) -> None:
    import io
    import json
    import logging

    from monitor.commands.common import log_formatter
    from monitor.consumer.batches import log_alert_events
    from monitor.settings import Settings

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter(Settings(log={"format": "json"}), worker=2))
    logger = logging.getLogger("monitor.consumer.batches")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        log_alert_events(Engine(Scorer(tiny_bundle), THRESH, ALERT).process(records(tiny_bundle)))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x["event"], x["level"], x["name"], x["worker"]) for x in lines] == [
        ("alert_opened", "INFO", "monitor.consumer.batches", 2), ("alert_closed", "INFO", "monitor.consumer.batches", 2)]
    assert lines[0]["sensor_id"] == "s1" and lines[0]["closed_at"] is None and lines[1]["closed_at"]
    assert lines[1]["message"].startswith("alert closed: sensor=s1 ") and len(lines[1]["top_channels"]) == 3


def test_open_alerts_by_severity_and_event_time_lag_are_gauged_after_a_batch(tiny_bundle: ModelBundle) -> None:
    import time

    recs = records(tiny_bundle, anomaly=slice(50, 60))  # still open at the end
    engine = Engine(Scorer(tiny_bundle), THRESH, ALERT)
    outcome = engine.process(recs)
    current = engine.sensors["s1"].incidents.current
    assert current is not None
    ends: dict[int, float] = {}
    metrics.observe_alerts(engine.sensors.values(), outcome.decisions, ends)
    for severity in SEVERITIES:
        expected = 1.0 if severity == current.severity else 0.0
        assert REGISTRY.get_sample_value("monitor_open_alerts", {"severity": severity}) == expected
    lag = REGISTRY.get_sample_value("monitor_event_lag_seconds", {"partition": str(recs[-1].partition)})
    assert lag is not None and abs(lag - (time.time() - recs[-1].window.window_end.timestamp())) < 60
    metrics.forget_partition(recs[-1].partition)
    assert REGISTRY.get_sample_value("monitor_event_lag_seconds", {"partition": str(recs[-1].partition)}) is None
    # assigned back (or simply polled again with nothing new): the gauge is set again from the newest window judged,
    # and it grows while the partition stays silent instead of freezing at the last batch's value
    time.sleep(0.05)
    silent = recs[-1].partition + 1  # owned, but no window judged from it yet
    metrics.forget_partition(silent)  # the registry is the process's: a consumer run in an earlier test gauged it
    metrics.refresh_event_lag(ends, [recs[-1].partition, silent])
    later = REGISTRY.get_sample_value("monitor_event_lag_seconds", {"partition": str(recs[-1].partition)})
    assert later is not None and later > lag
    assert REGISTRY.get_sample_value("monitor_event_lag_seconds", {"partition": str(silent)}) is None
    metrics.forget_partition(recs[-1].partition)


def test_a_consumer_process_does_not_export_the_schedulers_metrics() -> None:
    import subprocess
    import sys

    probe = ("import monitor.commands.app, monitor.consumer.runner; from prometheus_client import REGISTRY; "
             "print(REGISTRY.get_sample_value('monitor_retrain_runs_total', {'outcome': 'promoted'})); "
             "from monitor.observe import metrics; metrics.scheduler_metrics(); "
             "print(REGISTRY.get_sample_value('monitor_retrain_runs_total', {'outcome': 'promoted'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["None", "0.0"], out.stdout + out.stderr


def test_stage_timers_add_the_time_spent_and_the_engine_reports_its_model_time(tiny_bundle: ModelBundle) -> None:
    import time

    before = REGISTRY.get_sample_value("monitor_stage_seconds_total", {"stage": "decode"}) or 0.0
    with metrics.timed("decode"):
        time.sleep(0.02)
    after = REGISTRY.get_sample_value("monitor_stage_seconds_total", {"stage": "decode"})
    assert after is not None and 0.02 <= after - before < 1.0
    engine = Engine(Scorer(tiny_bundle), THRESH, ALERT)
    started = time.perf_counter()
    engine.process(records(tiny_bundle))
    total = time.perf_counter() - started
    assert 0.0 < engine.last_scoring_s < total
    engine.process([])
    assert engine.last_scoring_s == 0.0
    assert set(metrics.STAGES) == {"fetch", "decode", "state_load", "scoring", "judge", "dead_letters", "store",
                                   "kafka_commit"}


def test_evict_drops_the_least_recently_judged_sensors_without_an_open_alert(tiny_bundle: ModelBundle) -> None:
    wl, n = tiny_bundle.meta.window_len, len(tiny_bundle.meta.channels)
    engine = Engine(Scorer(tiny_bundle), ThresholdSettings(), AlertSettings(min_hits=1))
    values = normal_series(30 * wl, n, seed=9)
    hot = values.copy()
    hot[20 * wl :] += 12 * values.std(axis=0)  # s0 ends in an open alert
    engine.process(records_of(tiny_bundle, hot, sensor_id="s0"))
    for i in range(1, 10):  # s1 .. s9, judged in this order
        engine.process(records_of(tiny_bundle, values[: 2 * wl], sensor_id=f"s{i}"))
    assert engine.sensors["s0"].incidents.current is not None
    assert engine.evict(20) == 0 and len(engine.sensors) == 10  # under the bound: nothing happens
    dropped = engine.evict(5)  # down to 90 % of 5 = 4, but the alerting s0 stays whatever its age
    assert dropped == 6 and set(engine.sensors) == {"s0", "s7", "s8", "s9"}
    assert engine.evict(0) == 3 and set(engine.sensors) == {"s0"}


def _strided(bundle: ModelBundle, values: np.ndarray, stride: int) -> list[Record]:
    """Windows of one sensor cut every ``stride`` rows (one second per row), offsets in order."""
    wl, out = bundle.meta.window_len, []
    for k, begin in enumerate(range(0, len(values) - wl + 1, stride)):
        start = EPOCH + timedelta(seconds=begin)
        out.append(Record(0, k, SensorWindow("s1", start, start + timedelta(seconds=wl - 1),
                                             tuple(bundle.meta.channels), values[begin : begin + wl])))
    return out


@pytest.mark.parametrize("min_rows", [0.0, 6.0])
def test_min_rows_counts_the_new_rows_windows_bring_not_the_windows(tiny_bundle: ModelBundle, min_rows: float) -> None:
    """Windows cut at every row need ``min_rows`` of them above the open level; non-overlapping ones, min_hits."""
    wl = tiny_bundle.meta.window_len
    values = normal_series(40 * wl, len(tiny_bundle.meta.channels), seed=99)
    values[20 * wl :] += 40.0  # a lasting, large shift: every window that holds it is far above the open level
    thresh = ThresholdSettings(k_instant=1e6, warmup_windows=0)  # never at once: the persistence rule decides
    alert = AlertSettings(min_hits=2, min_normal=3, min_rows=min_rows)

    def windows_to_open(stride: int) -> int:
        recs = _strided(tiny_bundle, values, stride)
        decisions = [d for _, d in Engine(Scorer(tiny_bundle), thresh, alert).process(recs).decisions]
        first = next(i for i, d in enumerate(decisions) if d.above)
        return next(i for i, d in enumerate(decisions) if d.opened) - first + 1

    assert windows_to_open(1) == max(2, int(min_rows))  # one new row per window
    assert windows_to_open(wl) == 2  # each window brings wl >= min_rows rows: min_hits decides
