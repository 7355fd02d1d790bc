"""A fleet's history in one CSV with a sensor column (`monitor train --sensor-column`): each sensor's rows are its
own history, no training window mixes two sensors, and rows of several sensors are never trained on as one's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.scoring.train import _validation_last, train
from monitor.core.windows import sliding_windows, window_starts, windows_straddling
from monitor.errors import DataError
from monitor.ingest.files import read_wide_csv, refuse_interleaved
from monitor.settings import ModelSettings

EPOCH = pd.Timestamp("2026-01-01", tz="UTC")


def fleet_csv(path: Path, sensors: dict[str, np.ndarray], order: list[str]) -> Path:
    """Rows of ``sensors`` (name -> (n, 2) values, one row a second), written in the interleaving ``order`` (a
    sensor's name per row, each sensor's rows in time order)."""
    taken = dict.fromkeys(sensors, 0)
    lines = ["timestamp,sensor,a,b"]
    for name in order:
        i = taken[name]
        taken[name] += 1
        a, b = sensors[name][i]
        lines.append(f"{(EPOCH + pd.Timedelta(seconds=i)).isoformat()},{name},{float(a)!r},{float(b)!r}")
    path.write_text("\n".join(lines) + "\n")
    return path


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(1, 12), min_size=1, max_size=4), shuffle=st.randoms(use_true_random=False))
def test_each_sensors_rows_are_its_history_end_to_end_in_the_order_sensors_first_appear(
    tmp_path_factory: pytest.TempPathFactory, counts: list[int], shuffle: object,
) -> None:
    rng = np.random.default_rng(len(counts))
    sensors = {f"s-{k}": rng.normal(size=(n, 2)).round(3) for k, n in enumerate(counts)}
    order = [name for name, values in sensors.items() for _ in range(len(values))]
    shuffle.shuffle(order)  # type: ignore[attr-defined]
    frame = read_wide_csv(fleet_csv(tmp_path_factory.mktemp("fleet") / "f.csv", sensors, order),
                          sensor_column="sensor")
    first_seen = list(dict.fromkeys(order))
    assert frame.attrs["sensors"] == first_seen
    bounds = [0, *frame.attrs["seams"], len(frame)]
    assert len(bounds) == len(first_seen) + 1
    for name, a, b in zip(first_seen, bounds[:-1], bounds[1:], strict=True):
        part = frame.iloc[a:b]
        np.testing.assert_allclose(part.to_numpy(), sensors[name], rtol=1e-6)
        assert part.index.is_monotonic_increasing and part.index[0] == EPOCH
    assert list(frame.columns) == ["a", "b"], "the sensor column is no channel"


def test_time_going_backwards_within_one_sensor_names_its_line_and_sensor(tmp_path: Path) -> None:
    rows = ["timestamp,sensor,a", "2026-01-01T00:00:00Z,x,1", "2026-01-01T00:00:05Z,y,1",
            "2026-01-01T00:00:01Z,x,1",  # x goes on (y's later time is another sensor's clock)
            "2026-01-01T00:00:00Z,x,1"]  # line 5: x goes back
    (tmp_path / "f.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as info:
        read_wide_csv(tmp_path / "f.csv", sensor_column="sensor")
    text = str(info.value)
    assert "goes backwards at line 5 (sensor 'x')" in text and "on line 4" in text, text
    sorted_ = read_wide_csv(tmp_path / "f.csv", sensor_column="sensor", unordered="sort")
    assert sorted_.attrs["unordered"] == 1 and sorted_.attrs["sensors"] == ["x", "y"]


def test_a_missing_sensor_column_or_a_row_without_a_sensor_is_an_error_that_says_where(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("timestamp,sensor,a\n2026-01-01T00:00:00Z,x,1\n2026-01-01T00:00:01Z,,2\n")
    with pytest.raises(DataError, match=r"no sensor column 'unit'; columns are \['timestamp', 'sensor', 'a'\]"):
        read_wide_csv(tmp_path / "f.csv", sensor_column="unit")
    with pytest.raises(DataError, match=r"line 3 names no sensor in 'sensor'"):
        read_wide_csv(tmp_path / "f.csv", sensor_column="sensor")
    with pytest.raises(DataError, match="--sensor-column"):  # without it: the error says how to name it
        read_wide_csv(tmp_path / "f.csv")


@settings(max_examples=60, deadline=None)
@given(n_rows=st.integers(1, 80), window_len=st.integers(2, 16), stride=st.integers(1, 5),
       seams=st.lists(st.integers(1, 79), max_size=4))
def test_a_window_straddles_a_seam_exactly_when_it_holds_rows_of_both_sides(
    n_rows: int, window_len: int, stride: int, seams: list[int],
) -> None:
    owner = np.searchsorted(np.array(sorted(set(seams))), np.arange(n_rows), side="right")  # a sensor per row
    windows = sliding_windows(owner[:, None].astype(np.float64), window_len, stride)
    mixed = np.array([len(np.unique(w)) > 1 for w in windows], dtype=bool)
    assert len(window_starts(n_rows, window_len, stride)) == len(mixed)
    np.testing.assert_array_equal(windows_straddling(n_rows, seams, window_len, stride), mixed)


def test_every_sensors_latest_rows_are_the_validation_part() -> None:
    frame = pd.DataFrame({"a": np.arange(30.0)}, index=pd.date_range(EPOCH, periods=30, freq="s"))
    out, seams = _validation_last(frame, [10, 20], 0.2)
    assert out["a"].tolist() == [*range(0, 8), *range(10, 18), *range(20, 28), 8, 9, 18, 19, 28, 29]
    assert seams == [8, 16, 24, 26, 28]


def test_a_fleet_whose_sensors_sit_at_different_levels_trains_without_windows_across_them() -> None:
    """Three sensors' histories, the middle one 40 SDs higher on one channel. Without the seams, the windows that
    hold two sensors' rows are trained on; with them none is (each history's training and validation parts give
    their own windows), and the model is a fleet's (its drifting channels follow each sensor)."""
    rng = np.random.default_rng(3)
    parts = [rng.normal(size=(800, 2)) + [level, 0.0] for level in (0.0, 40.0, 0.0)]
    index = pd.DatetimeIndex(list(pd.date_range(EPOCH, periods=800, freq="s")) * 3, name="timestamp")
    frame = pd.DataFrame(np.concatenate(parts).astype(np.float32), columns=["a", "b"], index=index)
    cfg = ModelSettings(epochs=1, hidden_size=8, latent_size=4, window_len=16, stride=4, seed=1, val_fraction=0.25)
    with pytest.raises(DataError, match="do not split"):
        train(frame, cfg, sensors=2, seams=[800, 1600])
    bundle = train(frame, cfg, sensors=3, seams=[800, 1600])
    own = 3 * ((600 - 16) // 4 + 1 + (200 - 16) // min(4, 16 // 4) + 1)  # each part's own windows
    assert bundle.meta.training["windows"] == own
    assert bundle.meta.training["sensors"] == 3 and not bundle.meta.calibration.centre_drifting
    assert bundle.meta.training["start"] == EPOCH.isoformat()
    assert bundle.meta.training["end"] == (EPOCH + pd.Timedelta(seconds=799)).isoformat()
    plain = train(frame, cfg, sensors=3)
    assert plain.meta.training["windows"] > own, "end to end without seams: windows across them too"


def test_monitor_train_takes_a_fleets_csv_by_its_sensor_column_and_refuses_it_without(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from monitor.commands.app import app
    from monitor.registry import model_files

    rng = np.random.default_rng(5)
    sensors = {name: rng.normal(size=(300, 2)).round(3) for name in ("north", "south", "east")}
    order = [name for _ in range(300) for name in sensors]  # a row of each sensor every second
    csv = fleet_csv(tmp_path / "fleet.csv", sensors, order)
    env = {"MONITOR_MODEL__HIDDEN_SIZE": "8", "MONITOR_MODEL__LATENT_SIZE": "4", "MONITOR_MODEL__THREADS": "1",
           "MONITOR_MODEL__WINDOW_LEN": "16"}
    out = tmp_path / "m.pt"
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(csv), "--out", str(out), "--epochs", "1", "--sensor-column", "sensor"],
                           env=env)
    assert result.exit_code == 0, result.output
    assert "900 rows x 2 channels of 3 sensor(s) ('sensor')" in result.output
    meta = model_files.load(out).meta
    assert meta.training["sensors"] == 3 and not meta.calibration.centre_drifting
    refused = runner.invoke(app, ["train", str(csv), "--out", str(tmp_path / "x.pt"), "--ignore", "sensor"], env=env)
    assert refused.exit_code != 0 and "600 of 900 rows repeat the time of the row before (first at line 3)" in \
        refused.output and "--sensor-column" in refused.output, refused.output
    assert not (tmp_path / "x.pt").exists()
    unnamed = runner.invoke(app, ["backtest", str(csv), "--out", str(tmp_path / "bt.csv"), "--ignore", "sensor",
                                  "--train-rows", "150"], env=env)  # backtest refuses it alike
    assert unnamed.exit_code != 0 and "600 of 900 rows repeat the time" in unnamed.output, unnamed.output
    wrong = runner.invoke(app, ["train", str(csv), "--out", str(tmp_path / "y.pt"), "--sensor-column", "sensor",
                                "--sensors", "2"], env=env)
    assert wrong.exit_code != 0 and "--sensors 2, but" in wrong.output and "names 3 sensors" in wrong.output
    both = runner.invoke(app, ["retrain", "--from-file", str(csv), "--sensor-column", "sensor", "--sensors", "3"],
                         env=env)
    assert both.exit_code != 0 and "give it or --sensors, not both" in both.output, both.output


def _one_column(stamps: pd.DatetimeIndex) -> pd.DataFrame:
    return pd.DataFrame({"a": np.arange(len(stamps), dtype=float)}, index=stamps)


@pytest.mark.parametrize("sensors", [2, 3, 5])
def test_rows_of_sensors_whose_clocks_are_milliseconds_apart_are_refused_without_the_sensor_column(
    sensors: int,
) -> None:
    """A historian's export: each sensor's rows a second apart, each sensor's clock a few milliseconds off the
    others'. No two rows share a time, yet most follow the row before within milliseconds."""
    second = pd.date_range(EPOCH, periods=200, freq="s")
    stamps = pd.DatetimeIndex(np.concatenate([second + pd.Timedelta(milliseconds=7 * k) for k in range(sensors)]))
    with pytest.raises(DataError, match=rf"{199 * sensors + sensors - 1 - 199} of {200 * sensors} rows follow the "
                       r"row before within 10% of the file's mean step of .* \(first at line 3\).*--sensor-column"):
        refuse_interleaved("fleet.csv", _one_column(stamps.sort_values()))


@settings(max_examples=50, deadline=None)
@given(rows=st.integers(4, 400), seed=st.integers(0, 2**16), regular=st.booleans())
def test_one_sensors_regular_or_randomly_spaced_rows_are_never_refused(rows: int, seed: int, regular: bool) -> None:
    """Rows a period apart, or apart by exponential (Poisson) gaps: about a tenth of the steps are within a tenth
    of the mean step, never more than half in 20 rows or more (fewer are judged by equal times only)."""
    gaps = np.ones(rows) if regular else np.random.default_rng(seed).exponential(1.0, rows)
    gaps[0] = 0.0
    stamps = pd.DatetimeIndex(EPOCH + pd.to_timedelta(np.cumsum(gaps), unit="s"))
    refuse_interleaved("one.csv", _one_column(stamps))


def test_monitor_backtest_judges_each_sensors_rows_on_their_own_and_keeps_the_column(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from monitor.commands.app import app

    rng = np.random.default_rng(6)
    sensors = {name: rng.normal(size=(n, 2)).round(3) for name, n in (("north", 400), ("south", 300))}
    sensors["south"][200:240, 0] += 30.0  # a lasting shift of one sensor only
    order = [name for name, values in sensors.items() for _ in range(len(values))]
    np.random.default_rng(7).shuffle(order)
    csv = fleet_csv(tmp_path / "fleet.csv", sensors, order)
    env = {"MONITOR_MODEL__HIDDEN_SIZE": "8", "MONITOR_MODEL__LATENT_SIZE": "4", "MONITOR_MODEL__THREADS": "1",
           "MONITOR_MODEL__WINDOW_LEN": "8", "MONITOR_MODEL__EPOCHS": "2"}
    runner = CliRunner()
    out = tmp_path / "bt.csv"
    result = runner.invoke(app, ["backtest", str(csv), "--out", str(out), "--sensor-column", "sensor",
                                 "--train-rows", "150"], env=env)
    assert result.exit_code == 0, result.output
    assert "training on 300 rows x 2 channels of 2 sensor(s)" in result.output
    table = pd.read_csv(out)
    assert list(table.columns) == ["timestamp", "sensor", "score", "threshold", "is_anomaly"]
    first = order[0]
    other = next(name for name in sensors if name != first)
    assert list(dict.fromkeys(table["sensor"])) == [first, other], "one sensor's rows after another's"
    assert table.groupby("sensor").size().to_dict() == {name: len(v) for name, v in sensors.items()}
    south = table[table["sensor"] == "south"].reset_index(drop=True)
    assert south.loc[200:247, "is_anomaly"].any(), "the shift of sensor south is found in its own rows"
    assert "sensor 'south': 300 rows" in result.output and "rows of 2 sensors written to" in result.output
    too_few = runner.invoke(app, ["backtest", str(csv), "--out", str(out), "--sensor-column", "sensor",
                                  "--train-rows", "350"], env=env)
    assert too_few.exit_code != 0 and "the input has 300 rows of sensor 'south'" in too_few.output, too_few.output
    refused = runner.invoke(app, ["backtest", str(csv), "--out", str(out), "--sensor-column", "sensor",
                                  "--train-rows", "150", "--retrain-every", "50"], env=env)
    assert refused.exit_code != 0 and "not with --sensor-column" in refused.output
