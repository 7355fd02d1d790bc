"""The user's path through the real CLI: train from a CSV, replay a CSV onto Kafka, run, query alerts."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.settings import KafkaSettings
from pipelines.synthetic import EPOCH, channel_names, history_frame, inject, normal_series

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _env(tmp_path: Path, kafka_cfg: KafkaSettings) -> dict[str, str]:
    """The commands' environment: a SQLite file and a model in ``tmp_path``, the test's topics, small windows."""
    return {
        **os.environ,
        "MONITOR_DB__URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "MONITOR_KAFKA__BOOTSTRAP_SERVERS": kafka_cfg.bootstrap_servers,
        "MONITOR_KAFKA__TOPIC": kafka_cfg.topic,
        "MONITOR_KAFKA__DLQ_TOPIC": kafka_cfg.dlq_topic,
        "MONITOR_KAFKA__GROUP_ID": kafka_cfg.group_id,
        "MONITOR_MODEL__PATH": str(tmp_path / "model.pt"),
        "MONITOR_MODEL__WINDOW_LEN": "16",
        "MONITOR_MODEL__HIDDEN_SIZE": "16",
        "MONITOR_MODEL__LATENT_SIZE": "8",
    }


def test_train_replay_run_and_query_through_the_cli(tmp_path: Path, kafka_cfg: KafkaSettings) -> None:
    env = _env(tmp_path, kafka_cfg)
    # A semicolon-separated CSV with a label column to ignore, like SKAB's files.
    history = history_frame(6000, n_channels=4, sensors=6)
    history["label"] = 0
    history.to_csv(tmp_path / "history.csv", sep=";", index_label="datetime")
    trained = cli("-m", "monitor", "train", str(tmp_path / "history.csv"), "--out", str(tmp_path / "model.pt"),
                  "--sep", ";", "--time-column", "datetime", "--ignore", "label", "--epochs", "25", "--sensors", "6", env=env)
    assert trained.returncode == 0, trained.stderr
    assert "written to" in trained.stdout and (tmp_path / "model.pt").is_file()

    values = normal_series(16 * 120, 4, seed=4242)
    inject(values, "level_shift", 16 * 60, 16 * 6, np.random.default_rng(0))
    index = pd.date_range(EPOCH, periods=len(values), freq="s", tz="UTC")
    frame = pd.DataFrame(values, columns=channel_names(4), index=pd.Index(index, name="datetime"))
    frame["label"] = 0
    frame.to_csv(tmp_path / "live.csv", sep=";")
    replayed = cli("-m", "pipelines.replay_csv", str(tmp_path / "live.csv"), "--sensor-id", "pump-1", "--sep", ";",
                   "--time-column", "datetime", "--ignore", "label", "--window-len", "16", env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert "sent 120 windows" in replayed.stdout

    ran = cli("-m", "monitor", "run", "--idle-exit-s", "4", env=env)
    assert ran.returncode == 0, ran.stderr
    assert "consumed=120 scored=120 dead_letters=0" in ran.stderr

    as_json = cli("-m", "monitor", "alerts", "--sensor", "pump-1", "--format", "json", env=env)
    alerts = json.loads(as_json.stdout)
    assert len(alerts) >= 1
    shift_start, shift_end = index[16 * 60], index[16 * 66 - 1]
    assert any(pd.Timestamp(a["opened_at"]) <= shift_end and pd.Timestamp(a["closed_at"] or a["opened_at"])
               >= shift_start for a in alerts), alerts
    as_csv = cli("-m", "monitor", "alerts", "--format", "csv", env=env)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["id"] for r in rows] == [str(a["id"]) for a in alerts]
    none = cli("-m", "monitor", "alerts", "--sensor", "nobody", env=env)
    assert none.stdout.strip() == "no alerts"
    bad = cli("-m", "monitor", "alerts", "--since", "yesterday", env=env)
    assert bad.returncode != 0 and "ISO-8601" in bad.stderr


def _fleet_csv(path: Path, rows: int, names: list[str], seed: int, shifted: str | None = None) -> pd.DatetimeIndex:
    """A fleet's rows as one CSV, interleaved in time, a ``sensor`` column naming each row's sensor; ``shifted``
    gets a 5-SD level shift on rows 16*30 to 16*36."""
    index = pd.date_range(EPOCH, periods=rows, freq="s", tz="UTC")
    frames = []
    for i, name in enumerate(names):
        values = normal_series(rows, 4, seed=seed + i)
        if name == shifted:
            inject(values, "level_shift", 16 * 30, 16 * 6, np.random.default_rng(0))
        frame = pd.DataFrame(values, columns=channel_names(4), index=pd.Index(index, name="timestamp"))
        frame.insert(0, "sensor", name)
        frames.append(frame)
    pd.concat(frames).sort_index(kind="stable").to_csv(path)
    return index


def test_a_fleets_csv_trains_replays_and_alerts_by_its_sensor_column(tmp_path: Path, kafka_cfg: KafkaSettings) -> None:
    """One file with a column naming each row's sensor: `monitor train --sensor-column` and
    `pipelines.replay_csv --sensor-column` cut each sensor's own windows, keyed by its name."""
    env = _env(tmp_path, kafka_cfg)
    names = ["pump-a", "pump-b", "pump-c"]
    _fleet_csv(tmp_path / "history.csv", 2000, names, seed=20_000)
    trained = cli("-m", "monitor", "train", str(tmp_path / "history.csv"), "--out", str(tmp_path / "model.pt"),
                  "--sensor-column", "sensor", "--epochs", "25", env=env)
    assert trained.returncode == 0, trained.stderr
    assert "of 3 sensor(s) ('sensor')" in trained.stderr

    index = _fleet_csv(tmp_path / "live.csv", 16 * 60, names, seed=30_000, shifted="pump-b")
    without = cli("-m", "pipelines.replay_csv", str(tmp_path / "live.csv"), "--ignore", "sensor", env=env)
    assert without.returncode == 2 and "--sensor-column" in without.stderr, "a fleet's rows sent as one sensor's"
    replayed = cli("-m", "pipelines.replay_csv", str(tmp_path / "live.csv"), "--sensor-column", "sensor", env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert "window length 16 (from model" in replayed.stderr
    assert "sent 180 windows of 16 x 4" in replayed.stdout and "as 3 sensors ('sensor')" in replayed.stdout

    ran = cli("-m", "monitor", "run", "--idle-exit-s", "4", env=env)
    assert ran.returncode == 0, ran.stderr
    assert "consumed=180 scored=180 dead_letters=0" in ran.stderr, "each sensor's windows in its own time order"
    alerts = json.loads(cli("-m", "monitor", "alerts", "--format", "json", env=env).stdout)
    assert {a["sensor_id"] for a in alerts} <= set(names)
    shift_start, shift_end = index[16 * 30], index[16 * 36 - 1]
    assert any(a["sensor_id"] == "pump-b" and pd.Timestamp(a["opened_at"]) <= shift_end
               and pd.Timestamp(a["closed_at"] or a["opened_at"]) >= shift_start for a in alerts), alerts


def test_training_on_too_little_data_fails_clearly(tmp_path: Path) -> None:
    from monitor.core.scoring.train import min_rows
    from monitor.settings import ModelSettings

    need = min_rows(ModelSettings())  # short histories are trained on as they are, down to this many rows
    history_frame(need - 1, n_channels=2, sensors=1).to_csv(tmp_path / "tiny.csv")
    out = cli("-m", "monitor", "train", str(tmp_path / "tiny.csv"), "--out", str(tmp_path / "m.pt"),
              env=dict(os.environ))
    assert out.returncode == 2
    assert "too little data" in out.stderr and f"at least {need} rows" in out.stderr
    assert not (tmp_path / "m.pt").exists()
    history_frame(need, n_channels=2, sensors=1).to_csv(tmp_path / "enough.csv")
    ok = cli("-m", "monitor", "train", str(tmp_path / "enough.csv"), "--out", str(tmp_path / "m.pt"),
             env=dict(os.environ))
    assert ok.returncode == 0, ok.stderr
    assert "shortened for" in ok.stdout
