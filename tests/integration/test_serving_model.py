"""The serving model outside the consumer loop: the hot-swap watcher refuses a promoted model that does not fit
the stream, and `monitor serve` serves (and follows) the registry's active model as `monitor run` does."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from monitor.api.app import create_app
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.train import train
from monitor.registry import model_files, versions
from monitor.registry.serving import serving_model
from monitor.settings import KafkaSettings, RegistrySettings, Settings
from monitor.store.alerts_api import query_alerts
from pipelines.synthetic import history_frame, make_fleet, normal_series
from tests.integration.api_helpers import API_MODEL, api_bundle, keys  # noqa: F401 - fixtures
from tests.integration.helpers import produce_fleet, run_to_end
from tests.integration.retrain_helpers import TINY

pytestmark = pytest.mark.integration


def _frame(channels: list[str], rows: int = 1200) -> pd.DataFrame:
    index = pd.date_range("2025-01-01", periods=rows, freq="s", tz="UTC")
    return pd.DataFrame(normal_series(rows, len(channels), seed=7), columns=channels, index=index)


def _refused() -> float:
    return REGISTRY.get_sample_value("monitor_model_swaps_refused_total") or 0.0


def test_watcher_refuses_a_promoted_model_with_other_channels_or_window_length(
    db: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    four = ["ch0", "ch1", "ch2", "ch3"]
    a = train(_frame(four), TINY, version="A")
    wider = train(_frame([*four, "ch4"]), TINY, version="B-wider")
    shorter = train(_frame(four), TINY.model_copy(update={"window_len": 8}), version="C-shorter")
    a2 = train(_frame(four), TINY.model_copy(update={"seed": 5}), version="A2")
    for bundle in (a, wider, shorter, a2):
        versions.register(db, "test", bundle)
    versions.promote(db, "test", "A", by="test", reason="first")
    serving, watcher = serving_model(db, RegistrySettings(model_name="test", check_interval_s=0.001),
                                     tmp_path / "absent.pt")
    assert serving.meta.version == "A" and watcher is not None
    before = _refused()

    def poll() -> ModelBundle | None:
        time.sleep(0.01)  # past check_interval_s: every call reads the pointer
        return watcher.poll()

    def watcher_errors() -> list[logging.LogRecord]:  # other loggers may write into caplog in a full run
        return [r for r in caplog.records if r.name == "monitor.registry.watcher" and r.levelno >= logging.ERROR]

    versions.promote(db, "test", "B-wider", by="test", reason="extra column")
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="monitor.registry.watcher"):
        assert poll() is None
        assert poll() is None  # still promoted, still refused: reported once
    assert watcher.current_version == "A" and watcher.serving.version == "A"
    assert _refused() == before + 1
    [record] = watcher_errors()
    assert "B-wider" in record.getMessage() and "adds ch4" in record.getMessage()

    caplog.clear()
    versions.promote(db, "test", "C-shorter", by="test", reason="shorter windows")
    with caplog.at_level(logging.ERROR, logger="monitor.registry.watcher"):
        assert poll() is None
    [record] = watcher_errors()
    assert "window_len 8 != 16" in record.getMessage()
    assert _refused() == before + 2 and watcher.current_version == "A"

    versions.promote(db, "test", "A2", by="test", reason="compatible")
    swapped = poll()
    assert swapped is not None and swapped.meta.version == "A2"
    assert watcher.current_version == "A2" and watcher.serving.version == "A2"


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_api_serves_the_registry_model_and_follows_a_promotion(
    kafka_cfg: KafkaSettings, db: Engine, api_bundle: ModelBundle, tmp_path: Path
) -> None:
    # The model file the settings name is an older model; the registry promotes api-1 while the API runs.
    old = train(history_frame(1200, sensors=2), API_MODEL.model_copy(update={"epochs": 1}),
                version="old-file", sensors=2)
    path = model_files.save(old, tmp_path / "model.pt")
    wl = api_bundle.meta.window_len
    fleet = make_fleet(3, wl * 120, seed=11, anomalous=0)
    series = fleet.series["sensor-000"]  # one strong anomaly: 4 windows shifted by 10 std on 3 channels
    series[wl * 60 : wl * 64, :3] += 10 * series.std(axis=0)[:3]
    produce_fleet(kafka_cfg, fleet, wl)
    run_to_end(kafka_cfg, api_bundle, db)  # the consumers served api-1: alerts and sensor state are on it
    alert = max((a for a in query_alerts(db, limit=100) if a["sensor_id"] == "sensor-000"),
                key=lambda a: a["window_count"])
    assert alert["model_version"] == "api-1"

    settings = Settings()
    settings.model.path = path
    settings.kafka = kafka_cfg
    settings.registry = RegistrySettings(model_name="test", check_interval_s=0.01)
    api = TestClient(create_app(settings, db))
    read, write = keys(db)
    serving = api.get("/models", headers=read).json()["serving"]
    assert serving["version"] == "old-file" and serving["source"] == str(path)  # no registry model yet: the file

    versions.register(db, "test", api_bundle)
    versions.promote(db, "test", "api-1", by="test", reason="promotion while the API runs")
    serving = api.get("/models", headers=read).json()["serving"]
    assert serving["version"] == "api-1" and serving["source"] == "registry:test/api-1"
    assert serving["channels"] == list(fleet.channels) and serving["window_len"] == wl

    ctx = api.get(f"/alerts/{alert['id']}?around=0", headers=read).json()["context"]
    assert ctx["scored_with"] == "api-1" and "recomputed" not in ctx["note"]
    r = api.post(f"/alerts/{alert['id']}/feedback", headers=write, json={"verdict": "false_positive"})
    assert r.status_code == 200, r.text
    assert r.json()["threshold_applied"] is True, r.json()["threshold_note"]
