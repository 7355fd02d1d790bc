"""Hot swap on the real broker and databases: a running consumer picks up a promotion and a rollback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from monitor.registry import versions
from monitor.registry.watcher import ModelWatcher
from monitor.runner import Runner, build_runner
from monitor.scoring.artifact import ModelBundle
from monitor.scoring.train import train
from monitor.settings import AlertSettings, KafkaSettings, RunSettings, ThresholdSettings
from monitor.store.repository import load_sensor_states, query_alerts
from pipelines.synthetic import normal_series
from tests.integration.retrain_helpers import CHANNELS, TINY, base_time, db_url, produce, sensor_windows

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
    a = train(frame, TINY, progress=False, version=f"A-{tag}")
    b = train(frame, TINY.model_copy(update=b_settings), progress=False, version=f"B-{tag}")
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


def test_by_default_a_retrained_candidate_serves_only_after_a_shadow_period_the_consumers_judged(
    kafka_cfg: KafkaSettings, db: Engine, tmp_path: Path
) -> None:
    """The default path end to end: `retrain` makes a passing candidate the shadow (not the active model), a running
    consumer scores it alongside, and the scheduler's settle promotes it only once the period is complete."""
    from monitor.registry import shadow
    from monitor.settings import RegistrySettings
    from monitor.training.retrain import PROMOTED, SHADOWED, RetrainRequest, retrain
    from tests.integration.retrain_helpers import retrain_config

    cfg = retrain_config(kafka_cfg, max_error_ratio=100.0)
    assert cfg.registry.shadow_min_windows == RegistrySettings().shadow_min_windows > 0  # the default, untouched
    frame = _history().rename_axis("timestamp")
    frame.iloc[:2000].to_csv(tmp_path / "first.csv")
    frame.iloc[2000:].to_csv(tmp_path / "later.csv")
    first = retrain(db, cfg, RetrainRequest(path=tmp_path / "first.csv"))
    assert first.outcome == PROMOTED, first.reason  # the first model of the name: nothing to shadow
    second = retrain(db, cfg, RetrainRequest(path=tmp_path / "later.csv"))
    assert second.outcome == SHADOWED, second.reason
    a_version, b_version = first.version or "", second.version or ""
    assert versions.pointer(db, "test") == (a_version, b_version)
    runner, thread = _watched_runner(kafka_cfg, db, versions.load_bundle(db, "test", a_version))
    try:
        _wait("the shadow to load", lambda: runner.shadow is not None)
        produce(kafka_cfg, [w for s in range(2) for w in sensor_windows(s, 30, base_time())])
        _wait("every window", lambda: runner.stats.scored >= 60)
    finally:
        runner.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    report = shadow.summary(db, "test", b_version, a_version)
    assert report is not None and report.counts["windows"] == 60
    assert shadow.settle(db, "test", cfg.registry.shadow_min_windows, by="scheduler") is None  # 60 < the period
    assert versions.pointer(db, "test") == (a_version, b_version)
    assert {al["model_version"] for al in query_alerts(db)} <= {a_version}  # the shadow never alerted
    done = shadow.settle(db, "test", 60, by="scheduler")  # a period these 60 windows complete
    assert done is not None, report.line()
    # quiet windows: the shadow opened no more alerts than the active model, so the complete period promotes it
    assert report.counts["opened_shadow"] <= report.counts["opened_active"], report.line()
    assert done.startswith(f"promoted test/{b_version} after its shadow period"), done
    assert versions.pointer(db, "test") == (b_version, None)
    assert versions.get(db, "test", b_version).status == versions.ACTIVE
