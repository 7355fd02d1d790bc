"""`pipelines.replay_csv` cuts windows of the length the monitor scores unless told otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.core.scoring.artifact import ModelBundle
from monitor.registry import model_files
from monitor.settings import ModelSettings
from pipelines import replay_csv
from pipelines.synthetic import history_frame


def test_the_default_window_length_is_the_model_artifacts(tmp_path: Path, tiny_bundle: ModelBundle) -> None:
    path = model_files.save(tiny_bundle, tmp_path / "model.pt")
    assert tiny_bundle.meta.window_len == 8
    assert replay_csv.default_window_len(ModelSettings(path=path, window_len=32)) == (8, f"model {path}")


def test_without_an_artifact_the_default_window_length_is_the_settings(tmp_path: Path) -> None:
    cfg = ModelSettings(path=tmp_path / "absent.pt", window_len=24)
    assert replay_csv.default_window_len(cfg) == (24, "settings model.window_len")
    assert replay_csv.default_window_len(ModelSettings(path=tmp_path / "absent.pt"))[0] == 32, "training's default"


def test_the_command_says_which_window_length_it_used(
    tmp_path: Path, tiny_bundle: ModelBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = model_files.save(tiny_bundle, tmp_path / "model.pt")
    monkeypatch.setenv("MONITOR_MODEL__PATH", str(path))
    history_frame(5, n_channels=2, sensors=1).to_csv(tmp_path / "short.csv")  # fewer rows than one window
    result = CliRunner().invoke(replay_csv.app, [str(tmp_path / "short.csv")])
    assert f"window length 8 (from model {path})" in result.output
    assert "fewer than one window of 8" in result.output, "cut with the model's length (before any Kafka call)"
