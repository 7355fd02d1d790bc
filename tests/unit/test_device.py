"""Settings ``model.device`` reaches training and scoring; a device this machine lacks is a ConfigError."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from monitor.core.engine import Engine
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.device import resolve_device
from monitor.core.scoring.scorer import Scorer
from monitor.core.scoring.train import train
from monitor.core.windows import sliding_windows
from monitor.errors import ConfigError
from monitor.settings import AlertSettings, ThresholdSettings
from tests.unit.conftest import TINY

MISSING = "cuda:99"  # absent with or without CUDA (no machine has 100 GPUs)


def test_cpu_is_the_default_and_resolves() -> None:
    assert TINY.device == "cpu"
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", [MISSING, "toaster", "xla"])
def test_a_device_this_machine_lacks_is_a_clear_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="model.device"):
        resolve_device(name)


def test_cuda_without_cuda_names_the_problem() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")  # the MISSING case above covers it
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")


def test_scoring_on_cpu_gives_the_default_scores(tiny_bundle: ModelBundle, tiny_history: pd.DataFrame) -> None:
    windows = sliding_windows(tiny_history.to_numpy(dtype=np.float32)[:200], 8, 8)
    default, on_cpu = Scorer(tiny_bundle).score(windows), Scorer(tiny_bundle, device="cpu").score(windows)
    np.testing.assert_array_equal(default.score, on_cpu.score)
    assert next(tiny_bundle.module.parameters()).device.type == "cpu"


def test_a_scorer_on_a_missing_device_is_refused(tiny_bundle: ModelBundle) -> None:
    with pytest.raises(ConfigError):
        Scorer(tiny_bundle, device=MISSING)


def test_a_hot_swap_keeps_the_scorers_device(tiny_bundle: ModelBundle) -> None:
    engine = Engine(Scorer(tiny_bundle, device="cpu"), ThresholdSettings(), AlertSettings())
    engine.swap(tiny_bundle)
    assert engine.scorer.device == torch.device("cpu")


def test_training_on_cpu_works_and_a_missing_device_is_refused(tiny_history: pd.DataFrame) -> None:
    bundle = train(tiny_history, TINY.model_copy(update={"device": "cpu", "epochs": 2}))
    assert next(bundle.module.parameters()).device.type == "cpu"
    assert bundle.meta.calibration.channel_error
    with pytest.raises(ConfigError, match="model.device"):
        train(tiny_history, TINY.model_copy(update={"device": MISSING}))
