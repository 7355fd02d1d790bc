"""The serving model outside the consumer loop: the hot-swap watcher refuses a promoted model that does not fit
the stream."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from monitor.registry import versions
from monitor.registry.serving import serving_model
from monitor.scoring.artifact import ModelBundle
from monitor.scoring.train import train
from monitor.settings import RegistrySettings
from pipelines.synthetic import normal_series
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
    a = train(_frame(four), TINY, progress=False, version="A")
    wider = train(_frame([*four, "ch4"]), TINY, progress=False, version="B-wider")
    shorter = train(_frame(four), TINY.model_copy(update={"window_len": 8}), progress=False, version="C-shorter")
    a2 = train(_frame(four), TINY.model_copy(update={"seed": 5}), progress=False, version="A2")
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

    versions.promote(db, "test", "B-wider", by="test", reason="extra column")
    with caplog.at_level(logging.ERROR, logger="monitor.registry.watcher"):
        assert poll() is None
        assert poll() is None  # still promoted, still refused: reported once
    assert watcher.current_version == "A" and watcher.serving.version == "A"
    assert _refused() == before + 1
    [record] = caplog.records
    assert "B-wider" in record.getMessage() and "adds ch4" in record.getMessage()

    caplog.clear()
    versions.promote(db, "test", "C-shorter", by="test", reason="shorter windows")
    with caplog.at_level(logging.ERROR, logger="monitor.registry.watcher"):
        assert poll() is None
    assert "window_len 8 != 16" in caplog.records[0].getMessage()
    assert _refused() == before + 2 and watcher.current_version == "A"

    versions.promote(db, "test", "A2", by="test", reason="compatible")
    swapped = poll()
    assert swapped is not None and swapped.meta.version == "A2"
    assert watcher.current_version == "A2" and watcher.serving.version == "A2"
