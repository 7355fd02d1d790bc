"""`pipelines.replay_csv` cuts windows of the length the monitor scores unless told otherwise, and a fleet's
file into each sensor's own windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from monitor.core.scoring.artifact import ModelBundle
from monitor.core.windows import sliding_windows, window_starts
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


def _fleet_part(rng: np.random.Generator, rows: int, channels: int = 2) -> pd.DataFrame:
    """``rows`` rows whose times never go backwards (some repeat), from a shared start."""
    steps = rng.integers(0, 3, size=rows).cumsum()
    index = pd.DatetimeIndex(pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(steps, unit="s"))
    return pd.DataFrame(rng.normal(size=(rows, channels)), index=index)


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(0, 40), min_size=1, max_size=4), window_len=st.integers(1, 8),
       stride=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_fleet_windows_are_each_sensors_own_windows_merged_by_end_time(
    lengths: list[int], window_len: int, stride: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    parts = [(f"s{i}", _fleet_part(rng, n)) for i, n in enumerate(lengths)]
    items, counts = replay_csv.fleet_windows(parts, window_len, stride)
    for name, rows in parts:
        own = [it for it in items if it[0] == name]
        expected = sliding_windows(rows.to_numpy(), window_len, stride)
        starts = window_starts(len(rows), window_len, stride)
        assert counts[name] == len(own) == len(expected)
        for (_, start, end, values), s, w in zip(own, starts, expected, strict=True):
            np.testing.assert_array_equal(values, w)  # cut from this sensor's rows alone, in its own order
            assert start == rows.index[s] and end == rows.index[s + window_len - 1]
    keys = [(end, int(name[1:])) for name, _, end, _ in items]
    assert keys == sorted(keys), "sent by last row's time, then in the sensors' order"


def test_a_fleet_file_replays_only_with_its_sensor_column(tmp_path: Path) -> None:
    """Refusals come before any Kafka call (no broker in unit tests)."""
    rows = [f"2026-01-01T00:00:{t:02d}Z,{name},{t}.0,{2 * t}.0" for t in range(20) for name in ("a", "b", "c")]
    (tmp_path / "fleet.csv").write_text("timestamp,sensor,x,y\n" + "\n".join(rows) + "\n")
    run = CliRunner().invoke
    mixed = run(replay_csv.app, [str(tmp_path / "fleet.csv"), "--ignore", "sensor", "--window-len", "4"])
    assert mixed.exit_code == 2 and "40 of 60 rows repeat the time" in mixed.output
    assert "--sensor-column" in mixed.output
    both = run(replay_csv.app, [str(tmp_path / "fleet.csv"), "--sensor-column", "sensor", "--sensor-id", "p"])
    assert both.exit_code == 2 and "not with --sensor-column" in both.output
    short = run(replay_csv.app, [str(tmp_path / "fleet.csv"), "--sensor-column", "sensor", "--window-len", "21"])
    assert short.exit_code != 0 and "no sensor in 'sensor' has the 21 rows of one window" in short.output
    order = run(replay_csv.app, [str(tmp_path / "fleet.csv"), "--sensor-column", "sensor", "--unordered", "later"])
    assert order.exit_code == 2 and "one of stop, sort, drop" in order.output
