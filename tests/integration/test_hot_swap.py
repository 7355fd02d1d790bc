"""Hot swap on the real broker and databases: a running consumer picks up a promotion and a rollback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from monitor.consumer.runner import Runner, build_runner
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.train import train
from monitor.registry import versions
from monitor.registry.watcher import ModelWatcher
from monitor.settings import AlertSettings, KafkaSettings, RunSettings, ThresholdSettings
from monitor.store.alerts_api import query_alerts
from monitor.store.repository import load_sensor_states
from pipelines.synthetic import normal_series
from tests.integration.retrain_helpers import CHANNELS, TINY, WL, base_time, db_url, produce, sensor_windows

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _history() -> pd.DataFrame:
    values = np.concatenate([normal_series(1500, len(CHANNELS), seed=500 + s) for s in range(3)])
    index = pd.date_range("2025-01-01", periods=len(values), freq="s", tz="UTC")
    return pd.DataFrame(values, columns=CHANNELS, index=index)


def _wait(what: str, condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _model_info(version: str) -> float | None:
    return REGISTRY.get_sample_value("monitor_model_info", {"version": version})


def _active_and_candidate(db: Engine, **b_settings: Any) -> tuple[ModelBundle, ModelBundle]:
    """Model A active in the registry, model B (``b_settings`` on the tiny settings) registered beside it."""
    tag = uuid.uuid4().hex[:6]
    frame = _history()
    a = train(frame, TINY, version=f"A-{tag}")
    b = train(frame, TINY.model_copy(update=b_settings), version=f"B-{tag}")
    versions.register(db, "test", a)
    versions.promote(db, "test", a.meta.version, by="test", reason="first")
    versions.register(db, "test", b)
    return a, b


def _watched_runner(kafka_cfg: KafkaSettings, db: Engine, a: ModelBundle) -> tuple[Runner, threading.Thread]:
    """A runner serving ``a`` with a watcher on the registry's pointer, running in a thread."""
    runner = build_runner(kafka_cfg, RunSettings(), ThresholdSettings(), AlertSettings(), a, db)
    runner.watcher = ModelWatcher(db, "test", a.meta.version, serving=a.meta, check_interval_s=0.3)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    return runner, thread


def test_running_consumer_swaps_to_a_promoted_model_and_back_on_rollback(
    kafka_cfg: KafkaSettings, db: Engine
) -> None:
    a, b = _active_and_candidate(db, seed=1, hidden_size=12)
    runner, thread = _watched_runner(kafka_cfg, db, a)
    base = base_time()
    try:
        produce(kafka_cfg, [w for s in range(2) for w in sensor_windows(s, 20, base)])
        _wait("the first windows", lambda: runner.stats.scored >= 40)
        assert _model_info(a.meta.version) == 1

        versions.promote(db, "test", b.meta.version, by="test", reason="hot swap test")
        _wait("the swap to B", lambda: _model_info(b.meta.version) == 1, timeout_s=30)
        assert _model_info(a.meta.version) is None
        assert runner.engine.scorer.version == b.meta.version
        produce(kafka_cfg, sensor_windows(0, 20, base, first_window=20, shift_windows=range(30, 36)))
        _wait("an alert from model B", lambda: any(
            al["model_version"] == b.meta.version for al in query_alerts(db, sensor_id="sensor-0")))
        _wait("the windows after the swap", lambda: runner.stats.scored >= 60)
        shifted = [al for al in query_alerts(db, sensor_id="sensor-0")
                   if al["opened_at"] >= base + pd.Timedelta(seconds=16 * 30)]
        assert shifted and all(al["model_version"] == b.meta.version for al in shifted)
        assert load_sensor_states(db, ["sensor-0"])["sensor-0"].model_version == b.meta.version

        env = {**os.environ, "MONITOR_DB__URL": db_url(db), "MONITOR_REGISTRY__MODEL_NAME": "test"}
        done = subprocess.run([sys.executable, "-m", "monitor", "models", "rollback", "--reason", "test"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"rolled back {b.meta.version} -> {a.meta.version}" in done.stdout
        assert versions.active_version(db, "test") == a.meta.version
        assert versions.get(db, "test", b.meta.version).status == versions.RETIRED
        _wait("the swap back to A", lambda: _model_info(a.meta.version) == 1, timeout_s=30)
        assert _model_info(b.meta.version) is None
        produce(kafka_cfg, sensor_windows(1, 20, base, first_window=20, shift_windows=range(30, 36)))
        _wait("an alert from model A after the rollback", lambda: any(
            al["model_version"] == a.meta.version for al in query_alerts(db, sensor_id="sensor-1")))
    finally:
        runner.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_shadow_version_is_scored_alongside_never_alerts_and_reports_its_differences(
    kafka_cfg: KafkaSettings, db: Engine
) -> None:
    from monitor.registry import shadow

    a, b = _active_and_candidate(db, seed=1)
    versions.set_shadow(db, "test", b.meta.version, by="test")
    assert versions.pointer(db, "test") == (a.meta.version, b.meta.version)
    runner, thread = _watched_runner(kafka_cfg, db, a)
    base = base_time()
    try:
        _wait("the shadow to load", lambda: runner.shadow is not None)
        produce(kafka_cfg, [w for s in range(2) for w in sensor_windows(s, 30, base, shift_windows=range(20, 26))])
        _wait("every window", lambda: runner.stats.scored >= 60)
    finally:
        runner.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    alerts = query_alerts(db)
    assert alerts and {al["model_version"] for al in alerts} == {a.meta.version}  # the shadow never alerts
    report = shadow.summary(db, "test", b.meta.version)  # written on stop
    assert report is not None and report.consumers == 1 and report.active_versions == [a.meta.version]
    assert report.counts["windows"] == 60
    # the active model's own alert windows are counted where both or only it alert
    in_alert_active = report.counts["both"] + report.counts["only_active"]
    assert in_alert_active > 0 and report.counts["opened_active"] == len(alerts)
    assert report.counts["opened_shadow"] >= 1  # the blatant shifts: the shadow would have alerted too
    # promoting the shadow ends shadowing (the pointer clears)
    versions.promote(db, "test", b.meta.version, by="test", reason="after the shadow period")
    assert versions.pointer(db, "test") == (b.meta.version, None)


def test_by_default_a_candidate_serves_after_a_shadow_period_and_keeps_each_sensors_false_alarm_rate(
    kafka_cfg: KafkaSettings, db: Engine, tmp_path: Path
) -> None:
    """The default path end to end: `retrain` makes a passing candidate the shadow (not the active model), a running
    consumer scores it alongside, the scheduler's settle promotes it only once the period is complete, and the
    consumer swaps to it taking the contexts it built. Across the swap each sensor's share of normal windows under
    an alert rises by at most one percentage point, and the new model finds a shift injected after the swap."""
    from monitor.registry import shadow
    from monitor.settings import RegistrySettings
    from monitor.training.retrain import PROMOTED, SHADOWED, RetrainRequest, retrain
    from tests.integration.retrain_helpers import retrain_config

    cfg = retrain_config(kafka_cfg, max_error_ratio=100.0)
    frame = _history().rename_axis("timestamp")
    frame.iloc[:2000].to_csv(tmp_path / "first.csv")  # two sensors' histories end to end (1500 rows each), as is
    frame.iloc[2000:].to_csv(tmp_path / "later.csv")  # this: one model for the fleet (model.centre_drifting auto)
    first = retrain(db, cfg, RetrainRequest(path=tmp_path / "first.csv", sensor_count=2))
    second = retrain(db, cfg, RetrainRequest(path=tmp_path / "later.csv", sensor_count=2))
    assert (first.outcome, second.outcome) == (PROMOTED, SHADOWED), (first.reason, second.reason)
    a_version, b_version = first.version or "", second.version or ""
    a = versions.load_bundle(db, "test", a_version)
    assert a.meta.training["sensors"] == 2 and not a.meta.calibration.centre_drifting  # a fleet's model
    runner = build_runner(kafka_cfg, RunSettings(), ThresholdSettings(), AlertSettings(), a, db)
    runner.watcher = ModelWatcher(db, "test", a_version, serving=a.meta, check_interval_s=0.3)
    runner.shadow_flush_s = 0.3
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    base, per_phase, sensors = base_time(), 100, range(3)
    shift = range(per_phase + 50, per_phase + 56)  # sensor 0, after the swap
    try:
        _wait("the shadow to load", lambda: runner.shadow is not None)
        for chunk in range(0, per_phase, 10):  # live traffic: batch after batch, the shadow's counts written as it goes
            produce(kafka_cfg, [w for s in sensors for w in sensor_windows(s, 10, base, first_window=chunk)])
            time.sleep(0.4)
        _wait("the shadow period", lambda: (r := shadow.summary(db, "test", b_version, a_version)) is not None
              and r.counts["windows"] >= 200)
        assert cfg.registry.shadow_min_windows == RegistrySettings().shadow_min_windows > 300  # the default
        assert shadow.settle(db, "test", cfg.registry.shadow_min_windows, by="scheduler") is None  # not complete
        assert versions.pointer(db, "test") == (a_version, b_version)
        done = shadow.settle(db, "test", 200, by="scheduler")  # a period these windows complete
        assert done is not None and done.startswith(f"promoted test/{b_version}"), done
        _wait("the hot swap", lambda: runner.engine.scorer.version == b_version)
        scored = runner.stats.scored
        produce(kafka_cfg, [w for s in sensors for w in sensor_windows(
            s, per_phase, base, first_window=per_phase, shift_windows=shift if s == 0 else None)])
        _wait("every window", lambda: runner.stats.scored >= scored + len(sensors) * per_phase)
    finally:
        runner.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    shift_from = base + timedelta(seconds=shift.start * WL)
    shift_to = base + timedelta(seconds=shift.stop * WL)
    alerts = query_alerts(db)

    def true(al: dict[str, Any]) -> bool:
        return bool(al["sensor_id"] == "sensor-0" and al["opened_at"] <= shift_to
                    and (al["closed_at"] or al["last_window_end"]) >= shift_from)

    assert any(true(al) and al["model_version"] == b_version for al in alerts), alerts  # B finds the shift
    for s in sensors:
        false_windows = {v: sum(al["window_count"] for al in alerts if al["sensor_id"] == f"sensor-{s}"
                                and al["model_version"] == v and not true(al)) for v in (a_version, b_version)}
        # per_phase windows each side: one percentage point is one window
        assert false_windows[b_version] <= false_windows[a_version] + per_phase // 100, (s, false_windows, alerts)
