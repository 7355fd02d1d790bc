from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from monitor.core.scoring import artifact
from monitor.core.scoring.artifact import Calibration, ModelBundle, ModelMeta
from monitor.core.scoring.scorer import Scorer, channel_residuals, normalise
from monitor.core.scoring.train import calibrate, train
from monitor.core.windows import sliding_windows
from monitor.errors import ArtifactError, DataError
from monitor.registry import model_files
from tests.unit.conftest import TINY


def windows_of(frame: pd.DataFrame) -> np.ndarray:
    return sliding_windows(frame.to_numpy(), TINY.window_len, TINY.window_len)


def test_save_load_gives_identical_scores(tmp_path: Path, tiny_bundle: ModelBundle, tiny_history: pd.DataFrame) -> None:
    path = model_files.save(tiny_bundle, tmp_path / "m.pt")
    loaded = model_files.load(path)
    x = windows_of(tiny_history)
    a, b = Scorer(tiny_bundle).score(x), Scorer(loaded).score(x)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(a.contributions, b.contributions)
    assert loaded.meta == tiny_bundle.meta


def test_seeded_training_is_reproducible(tiny_history: pd.DataFrame, tiny_bundle: ModelBundle) -> None:
    again = train(tiny_history, TINY, version="tiny-1", sensors=2)
    for (name, p), (_, q) in zip(tiny_bundle.module.state_dict().items(), again.module.state_dict().items()):
        assert torch.equal(p, q), name


def test_other_seed_gives_other_weights(tiny_history: pd.DataFrame, tiny_bundle: ModelBundle) -> None:
    other = train(tiny_history, TINY.model_copy(update={"seed": 4}))
    assert not torch.equal(other.module.to_output.weight, tiny_bundle.module.to_output.weight)


def test_contributions_sum_to_one_and_name_the_broken_channel(tiny_bundle: ModelBundle, tiny_history: pd.DataFrame) -> None:
    x = windows_of(tiny_history)[:20].copy()
    x[:, :, 1] += 50.0
    scores = Scorer(tiny_bundle).score(x)
    np.testing.assert_allclose(scores.contributions.sum(axis=1), 1.0, rtol=1e-9)
    assert (scores.contributions.argmax(axis=1) == 1).all()


@pytest.mark.parametrize("where", ["weights", "metadata"])
def test_corrupt_artifact_is_named(tmp_path: Path, tiny_bundle: ModelBundle, where: str) -> None:
    """64 bytes zeroed inside the first weight tensor's bytes, or inside the metadata's text (found in the file,
    not at a fixed offset: the middle of the file may be a zip record's padding, which no reader checks)."""
    path = model_files.save(tiny_bundle, tmp_path / "m.pt")
    data = bytearray(path.read_bytes())
    if where == "weights":
        needle = next(iter(tiny_bundle.module.state_dict().values())).numpy().tobytes()[:64]
    else:
        needle = b'"channel_error": ['
    at = data.find(needle)
    assert at > 0, where
    data[at : at + 64] = b"\x00" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError):
        model_files.load(path)


def test_garbage_and_missing_artifacts_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="not a readable model artifact"):
        model_files.load(tmp_path / "junk.pt")
    with pytest.raises(ArtifactError, match="does not exist"):
        model_files.load(tmp_path / "absent.pt")


class Evil:
    """An arbitrary class: the weights-only loader must refuse to build it."""


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    torch.save({"format": artifact.FORMAT, "meta": "{}", "state_dict": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ArtifactError):
        model_files.load(tmp_path / "evil.pt")


def test_too_little_data_is_a_clear_error(tiny_history: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="too little data"):
        train(tiny_history.iloc[:20], TINY)


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


def test_level_term_sees_a_shift_of_a_noisy_channel_that_the_squared_error_hides() -> None:
    """A quantised channel toggling between two counts: its squared error is the toggling; a one-count shift of
    its mean barely moves that but is many standard deviations of its window mean (docs/skab.md, round 5)."""
    rng = np.random.default_rng(0)
    n, c = 400, 3
    errors = np.ones((n, c))
    residual = rng.normal(0, 0.1, size=(n, c))
    cal = Calibration([1.0] * c, 0.0, 1.0, level_weight=1.0, level_centre=[0.0] * c, level_scale=[0.1] * c)
    off = Calibration([1.0] * c, 0.0, 1.0)
    shifted_errors, shifted_residual = errors.copy(), residual.copy()
    shifted_errors[:, 2] *= 1.2  # the toggling still dominates the squared error
    shifted_residual[:, 2] -= 0.8  # the window mean moved by 8 of its standard deviations
    err_only = normalise(shifted_errors, off, shifted_residual).score / normalise(errors, off, residual).score
    with_level = normalise(shifted_errors, cal, shifted_residual).score / normalise(errors, cal, residual).score
    assert np.median(err_only) < 1.1 and np.median(with_level) > 10
    contributions = normalise(shifted_errors, cal, shifted_residual).contributions
    assert (contributions.argmax(axis=1) == 2).all()  # the alert names the shifted channel
    # weight 0 (artifacts made before the level term) is the error alone, residuals or not
    np.testing.assert_array_equal(normalise(errors, off, residual).score, normalise(errors, off).score)


def test_calibration_measures_the_level_term_on_the_training_windows(
    tiny_bundle: ModelBundle, tiny_history: pd.DataFrame
) -> None:
    cal = tiny_bundle.meta.calibration
    assert cal.level_weight == TINY.level_weight == 0.5
    assert len(cal.level_centre) == len(cal.level_scale) == 3 and min(cal.level_scale) > 0
    assert len(cal.drifting) == 3
    x = windows_of(tiny_history)
    without = calibrate(tiny_bundle, x[-20:], level_weight=0.0)
    assert without.level_weight == 0.0 and without.level_scale == []
    fitted = calibrate(tiny_bundle, x[-20:], level_weight=2.0, fit_windows=x[:-20])
    residual = channel_residuals(tiny_bundle, x)[1]
    np.testing.assert_allclose(fitted.level_centre, np.median(residual, axis=0), rtol=1e-5, atol=1e-7)
    # the log-score calibration includes the level term, so thresholds start on the scores they will see
    errors, means, _ = channel_residuals(tiny_bundle, x[-20:])
    scores = normalise(errors, fitted, means).score
    assert fitted.log_score_mean == pytest.approx(float(np.log(scores).mean()), rel=1e-6)


def test_an_artifact_whose_level_lists_do_not_match_its_channels_is_damaged(
    tmp_path: Path, tiny_bundle: ModelBundle
) -> None:
    meta = json.loads(tiny_bundle.meta.to_json())
    meta["calibration"]["level_scale"] = [1.0]
    with pytest.raises(ArtifactError, match="3 channels"):
        ModelMeta.from_json(json.dumps(meta))
    # an artifact made before the level term (no level fields) loads and scores by the error alone
    for key in ("level_weight", "level_centre", "level_scale", "drifting"):
        meta["calibration"].pop(key)
    old = ModelMeta.from_json(json.dumps(meta))
    assert old.calibration.level_weight == 0.0 and old.calibration.drifting == []
