"""`monitor backtest`: synthetic anomalies are flagged, a clean series is not, and it decides like streaming."""

from __future__ import annotations

import copy
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.core import contract
from monitor.core.backtest import run_backtest, window_records
from monitor.core.engine import Engine, Record
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer
from monitor.core.scoring.train import train
from monitor.settings import AlertSettings, ModelSettings, ThresholdSettings
from pipelines.synthetic import EPOCH, channel_names, normal_series

REPO = Path(__file__).resolve().parents[2]
SMALL = ModelSettings(window_len=10, stride=2, hidden_size=16, latent_size=4, epochs=12, batch_size=32, seed=2)
N_ROWS, TRAIN_ROWS, N_CHANNELS = 3000, 1400, 6
# (kind, first row, length): one of each kind the issue names, well apart.
INJECTED = [("level_shift", 1700, 120), ("spike", 2100, 60), ("variance", 2500, 150)]


def frame_of(values: np.ndarray) -> pd.DataFrame:
    index = pd.date_range(EPOCH, periods=len(values), freq="s", tz="UTC", name="timestamp")
    return pd.DataFrame(values, columns=channel_names(values.shape[1]), index=index)


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return frame_of(normal_series(N_ROWS, N_CHANNELS, seed=21))


@pytest.fixture(scope="module")
def anomalous(clean: pd.DataFrame) -> pd.DataFrame:
    return frame_of(injected(clean.to_numpy()))


def injected(clean_values: np.ndarray) -> np.ndarray:
    """The INJECTED anomalies on half the channels, in units of each channel's std."""
    values = clean_values.copy()
    rng = np.random.default_rng(7)
    chans = np.arange(N_CHANNELS // 2)
    scale = values.std(axis=0)[chans]
    for kind, start, length in INJECTED:
        rows = slice(start, start + length)
        if kind == "level_shift":
            values[rows, chans] += 5 * scale
        elif kind == "spike":
            values[start + length // 2 : start + length // 2 + 5, chans] += 10 * scale
        else:
            values[rows, chans] += rng.normal(0, 4, size=(length, len(chans))) * scale
    return values


@pytest.fixture(scope="module")
def small_bundle(clean: pd.DataFrame) -> ModelBundle:
    return train(clean.iloc[:TRAIN_ROWS], SMALL, version="small-1")


def test_injected_level_shift_spike_and_variance_change_are_flagged(
    anomalous: pd.DataFrame, small_bundle: ModelBundle
) -> None:
    result = run_backtest(anomalous, small_bundle, ThresholdSettings(), AlertSettings())
    flags = result.table["is_anomaly"].to_numpy()
    for kind, start, length in INJECTED:
        assert flags[start : start + length + SMALL.window_len].any(), f"{kind} at row {start} not flagged"
    assert len(result.alerts) >= len(INJECTED)
    outside = np.ones(len(flags), dtype=bool)
    for _kind, start, length in INJECTED:
        outside[start : start + length + 3 * SMALL.window_len] = False
    assert flags[outside][TRAIN_ROWS:].mean() < 0.02, "too many flagged rows outside the anomalies"


def test_clean_series_is_not_flagged(clean: pd.DataFrame, small_bundle: ModelBundle) -> None:
    result = run_backtest(clean, small_bundle, ThresholdSettings(), AlertSettings())
    assert result.flagged_rows == 0 and result.alerts == []


def test_rows_before_the_first_full_window_are_empty(clean: pd.DataFrame, small_bundle: ModelBundle) -> None:
    table = run_backtest(clean.iloc[:200], small_bundle, ThresholdSettings(), AlertSettings()).table
    wl = SMALL.window_len
    assert len(table) == 200
    assert table["score"].iloc[: wl - 1].isna().all() and (table["is_anomaly"].iloc[: wl - 1] == 0).all()
    assert table["score"].iloc[wl - 1 :].notna().all()


def test_stride_maps_every_row_to_the_last_window_ending_at_or_before_it(
    anomalous: pd.DataFrame, small_bundle: ModelBundle
) -> None:
    # Re-centring learns per window, and the jump term of centred drifting channels compares a window with the one
    # before it, so both depend on the stride: off here, where only the mapping counts.
    stateless = ThresholdSettings(recentre_rate=0.0, drift_rate=0.0)
    model = copy.deepcopy(small_bundle)
    model.meta.calibration.jump_scale = []
    one = run_backtest(anomalous, model, stateless, AlertSettings(), stride=1).table
    five = run_backtest(anomalous, model, stateless, AlertSettings(), stride=5).table
    wl = SMALL.window_len
    ends = np.arange(wl - 1, len(anomalous), 5)
    np.testing.assert_allclose(five["score"].to_numpy()[ends], one["score"].to_numpy()[ends], rtol=1e-5)
    inner = ends[ends + 1 < len(anomalous)]
    np.testing.assert_array_equal(five["score"].to_numpy()[inner + 1], five["score"].to_numpy()[inner])
    np.testing.assert_array_equal(five["is_anomaly"].to_numpy()[inner + 1], five["is_anomaly"].to_numpy()[inner])


def test_streaming_and_backtest_paths_give_the_same_decisions(
    anomalous: pd.DataFrame, small_bundle: ModelBundle
) -> None:
    """The stream sends contract-encoded windows, decoded and processed in whatever batches polls return."""
    wl = SMALL.window_len
    thresholds, alerts = ThresholdSettings(), AlertSettings()
    backtest = run_backtest(anomalous, small_bundle, thresholds, alerts, stride=wl)

    engine = Engine(Scorer(small_bundle), thresholds, alerts)
    decoded: list[Record] = []
    for offset, record in enumerate(window_records(anomalous, wl, wl, sensor_id="s-1")):
        w = record.window
        raw = contract.encode_values("s-1", w.window_start, w.window_end, w.channels, w.values)
        window = contract.decode(raw, window_len=wl, channels=w.channels)
        assert isinstance(window, contract.SensorWindow)
        decoded.append(Record(0, offset, window))
    stream_alerts = {}
    streamed: list[tuple[int, float, float, bool]] = []
    for begin in range(0, len(decoded), 7):  # poll-sized batches unlike the backtest's
        outcome = engine.process(decoded[begin : begin + 7])
        stream_alerts.update(outcome.alerts)
        streamed += [(int((r.window.window_end - EPOCH) / timedelta(seconds=1)), d.score, d.threshold, d.active)
                     for r, d in outcome.decisions]

    table = backtest.table
    rows = [row for row, *_ in streamed]
    np.testing.assert_allclose(table["score"].to_numpy()[rows], [s for _, s, _, _ in streamed], rtol=1e-6)
    np.testing.assert_allclose(table["threshold"].to_numpy()[rows], [t for _, _, t, _ in streamed], rtol=1e-6)
    assert table["is_anomaly"].to_numpy()[rows].tolist() == [int(a) for *_, a in streamed]
    assert sum(int(a) for *_, a in streamed) > 0, "the comparison must include anomalous decisions"
    assert [(a.opened_at, a.closed_at) for a in backtest.alerts] == sorted(
        (a.opened_at, a.closed_at) for a in stream_alerts.values()
    )


def test_cli_writes_one_row_per_input_row_and_a_summary(tmp_path: Path, anomalous: pd.DataFrame) -> None:
    src = tmp_path / "in.csv"
    frame = anomalous.iloc[:2000].copy()
    frame.index = frame.index.map(lambda t: t.isoformat())
    frame["label"] = 0
    frame.to_csv(src, sep=";")
    out = tmp_path / "out.csv"
    env_model = {"MONITOR_MODEL__" + k.upper(): str(v) for k, v in SMALL.model_dump(exclude={"path", "device"}).items()}
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "backtest", str(src), "--out", str(out), "--train-rows", str(TRAIN_ROWS),
         "--sep", ";", "--ignore", "label"],
        cwd=REPO, capture_output=True, text=True, env={**_env(), **env_model}, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out)
    assert list(table.columns) == ["timestamp", "score", "threshold", "is_anomaly"]
    assert len(table) == 2000
    assert table["score"].iloc[: SMALL.window_len - 1].isna().all()
    assert table["is_anomaly"].iloc[1700:1840].any(), "the level shift is flagged"
    assert "alerts" in proc.stdout and "alert 2026-01-01T00:28" in proc.stdout  # row 1700 = 00:28:20


def test_cli_needs_exactly_one_model_source(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "monitor", "backtest", "x.csv", "--out", str(tmp_path / "o.csv")],
                          cwd=REPO, capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 2 and "exactly one of" in proc.stderr


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}


def test_retrains_keep_the_model_artifacts_window_length_and_architecture(
    clean: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import monitor.core.scoring.train as training

    own = ModelSettings(window_len=8, stride=2, hidden_size=4, latent_size=2, epochs=2, batch_size=32, seed=3)
    bundle = train(clean.iloc[:400], own, version="w8")
    settings = ModelSettings(epochs=2, seed=4)  # the settings' defaults: window_len 32, hidden 64, latent 16
    assert (settings.window_len, settings.hidden_size) != (8, 4)
    retrained: list[ModelBundle] = []

    def recording_train(*args: object, **kwargs: object) -> ModelBundle:
        fitted = train(*args, **kwargs)  # type: ignore[arg-type]
        retrained.append(fitted)
        return fitted

    monkeypatch.setattr(training, "train", recording_train)
    result = run_backtest(clean.iloc[:900], bundle, ThresholdSettings(), AlertSettings(), retrain_every=300,
                          model_cfg=settings)
    assert result.models == ["w8", "w8+r300", "w8+r600"]
    assert [(b.meta.window_len, b.meta.hidden_size, b.meta.latent_size) for b in retrained] == [(8, 4, 2)] * 2
    assert [b.meta.training.get("epochs", 0) <= 2 for b in retrained] == [True, True], "training knobs: settings"
    assert not np.isnan(result.table["score"].to_numpy()[7:]).any()
