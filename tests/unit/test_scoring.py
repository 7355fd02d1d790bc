from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from monitor.errors import ArtifactError, DataError
from monitor.scoring import artifact
from monitor.scoring.artifact import ModelBundle
from monitor.scoring.scorer import Scorer
from monitor.scoring.train import calibrate, train
from monitor.windows import sliding_windows
from tests.unit.conftest import TINY


def windows_of(frame: pd.DataFrame) -> np.ndarray:
    return sliding_windows(frame.to_numpy(), TINY.window_len, TINY.window_len)


def test_save_load_gives_identical_scores(tmp_path: Path, tiny_bundle: ModelBundle, tiny_history: pd.DataFrame) -> None:
    path = artifact.save(tiny_bundle, tmp_path / "m.pt")
    loaded = artifact.load(path)
    x = windows_of(tiny_history)
    a, b = Scorer(tiny_bundle).score(x), Scorer(loaded).score(x)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(a.contributions, b.contributions)
    assert loaded.meta == tiny_bundle.meta


def test_seeded_training_is_reproducible(tiny_history: pd.DataFrame, tiny_bundle: ModelBundle) -> None:
    again = train(tiny_history, TINY, progress=False, version="tiny-1")
    for (name, p), (_, q) in zip(tiny_bundle.module.state_dict().items(), again.module.state_dict().items()):
        assert torch.equal(p, q), name


def test_other_seed_gives_other_weights(tiny_history: pd.DataFrame, tiny_bundle: ModelBundle) -> None:
    other = train(tiny_history, TINY.model_copy(update={"seed": 4}), progress=False)
    assert not torch.equal(other.module.to_output.weight, tiny_bundle.module.to_output.weight)


def test_contributions_sum_to_one_and_name_the_broken_channel(tiny_bundle: ModelBundle, tiny_history: pd.DataFrame) -> None:
    x = windows_of(tiny_history)[:20].copy()
    x[:, :, 1] += 50.0
    scores = Scorer(tiny_bundle).score(x)
    np.testing.assert_allclose(scores.contributions.sum(axis=1), 1.0, rtol=1e-9)
    assert (scores.contributions.argmax(axis=1) == 1).all()


def test_corrupt_artifact_is_named(tmp_path: Path, tiny_bundle: ModelBundle) -> None:
    path = artifact.save(tiny_bundle, tmp_path / "m.pt")
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError):
        artifact.load(path)


def test_garbage_and_missing_artifacts_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="not a readable model artifact"):
        artifact.load(tmp_path / "junk.pt")
    with pytest.raises(ArtifactError, match="does not exist"):
        artifact.load(tmp_path / "absent.pt")


class Evil:
    """An arbitrary class: the weights-only loader must refuse to build it."""


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    torch.save({"format": artifact.FORMAT, "meta": "{}", "state_dict": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ArtifactError):
        artifact.load(tmp_path / "evil.pt")


def test_too_little_data_is_a_clear_error(tiny_history: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="too little data"):
        train(tiny_history.iloc[:20], TINY, progress=False)


def test_calibration_describes_validation_scores(tiny_bundle: ModelBundle) -> None:
    cal = tiny_bundle.meta.calibration
    assert len(cal.channel_error) == 3 and all(e > 0 for e in cal.channel_error)
    assert cal.log_score_std > 0
    assert cal.log_score_quantiles["q500"] <= cal.log_score_quantiles["q990"]


def test_calibration_floors_each_channel_error_at_a_fraction_of_the_median_channel(
    tiny_bundle: ModelBundle, tiny_history: pd.DataFrame
) -> None:
    x = windows_of(tiny_history)
    x[:, :, 0] = x[:, :1, 0]  # channel 0 frozen inside each window: reconstructed better than the others
    raw = np.asarray(calibrate(tiny_bundle, x, error_floor=0.0).channel_error)
    floor = 0.8 * np.median(raw)
    floored = np.asarray(calibrate(tiny_bundle, x, error_floor=0.8).channel_error)
    assert raw[0] < floor, "the test needs a channel below the floor"
    np.testing.assert_allclose(floored, np.maximum(raw, floor), rtol=1e-6)
    assert floored[0] > raw[0] and (floored[raw >= floor] == raw[raw >= floor]).all()
    assert TINY.error_floor == 0.5  # the default: a smooth channel does not dominate the score
