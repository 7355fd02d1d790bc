"""``model.device=cuda``: training and scoring on a GPU agree with the CPU path (skipped where torch sees no CUDA;
CI has none. Run on a GPU machine: ``python -m pytest tests/unit/test_cuda.py``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from monitor.core.contract import SensorWindow
from monitor.core.engine import Engine, Record
from monitor.core.scoring.scorer import Scorer
from monitor.core.scoring.train import train
from monitor.core.windows import sliding_windows
from monitor.registry import model_files
from monitor.settings import AlertSettings, ModelSettings, ThresholdSettings
from pipelines.synthetic import EPOCH, history_frame, normal_series

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device here")

CFG = ModelSettings(window_len=16, stride=4, hidden_size=16, latent_size=4, epochs=8, batch_size=32, seed=5)


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return history_frame(1200, n_channels=4, sensors=2)


@pytest.fixture(scope="module")
def cuda_artifact(history: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = train(history, CFG.model_copy(update={"device": "cuda"}), version="cuda-1", sensors=2)
    path = tmp_path_factory.mktemp("cuda") / "model.pt"
    model_files.save(bundle, path)
    return path


def test_a_model_trained_on_cuda_is_saved_as_a_cpu_artifact(cuda_artifact: Path) -> None:
    bundle = model_files.load(cuda_artifact)
    assert next(bundle.module.parameters()).device.type == "cpu"
    assert all(np.isfinite(v) for v in bundle.meta.calibration.channel_error)


def test_scores_on_cuda_match_scores_on_the_cpu(cuda_artifact: Path, history: pd.DataFrame) -> None:
    windows = sliding_windows(history.to_numpy(dtype=np.float32)[:600], CFG.window_len, CFG.window_len)
    on_cpu = Scorer(model_files.load(cuda_artifact), device="cpu").score(windows)
    gpu_scorer = Scorer(model_files.load(cuda_artifact), device="cuda")
    assert next(gpu_scorer.bundle.module.parameters()).device.type == "cuda"
    on_gpu = gpu_scorer.score(windows)
    np.testing.assert_allclose(on_gpu.score, on_cpu.score, rtol=1e-3, atol=1e-6)


def test_an_engine_on_cuda_opens_the_alerts_the_cpu_engine_opens(cuda_artifact: Path, history: pd.DataFrame) -> None:
    values = normal_series(16 * 160, 4, seed=77).astype(np.float32)
    values[16 * 120 : 16 * 130, 0] += 12.0  # a +12 sigma level shift on one channel for ten windows, after warm-up
    channels = [str(c) for c in history.columns]

    def records() -> list[Record]:
        out = []
        for i in range(160):
            start = EPOCH + timedelta(seconds=16 * i)
            window = SensorWindow("s1", start, start + timedelta(seconds=15), tuple(channels),
                                  values[16 * i : 16 * (i + 1)])
            out.append(Record(0, i, window))
        return out

    def alerts(device: str) -> list[tuple[object, object]]:
        engine = Engine(Scorer(model_files.load(cuda_artifact), device=device), ThresholdSettings(), AlertSettings())
        return sorted((a.opened_at, a.closed_at) for a in engine.process(records()).alerts.values())

    on_cpu, on_gpu = alerts("cpu"), alerts("cuda")
    assert on_cpu, "the level shift opens an alert"
    assert on_gpu == on_cpu


def test_cuda_and_cpu_training_reach_comparable_validation_error(history: pd.DataFrame) -> None:
    cpu = train(history, CFG)
    gpu = train(history, CFG.model_copy(update={"device": "cuda"}))
    a, b = cpu.meta.metrics["val_loss"], gpu.meta.metrics["val_loss"]
    assert 0.5 < b / a < 2.0, (a, b)  # the same seed and data: different kernels, not a different model quality
