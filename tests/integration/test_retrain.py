"""Retraining on the real broker and databases: time range, alert exclusion, group offsets, the gate."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata
from sqlalchemy import Engine

from monitor.registry import versions
from monitor.settings import KafkaSettings
from monitor.store.schema import utcnow
from monitor.training.history import read_history
from monitor.training.retrain import PROMOTED, REJECTED, RetrainRequest, retrain
from pipelines.synthetic import history_frame
from tests.integration.retrain_helpers import (
    WL, base_time, db_url, insert_alert, produce, retrain_config, sensor_windows,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _committed(cfg: KafkaSettings, partitions: list[int]) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=cfg.bootstrap_servers, group_id=cfg.group_id, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(cfg.topic, p)) for p in partitions}
    finally:
        consumer.close()


def test_retrain_reads_exactly_the_range_excludes_alert_windows_and_leaves_group_offsets(
    kafka_cfg: KafkaSettings, db: Engine
) -> None:
    base = base_time()
    # 3 sensors x 90 windows; the range is windows [20, 80) by record time: before, inside and after it.
    sent = produce(kafka_cfg, [w for s in range(3) for w in sensor_windows(s, 90, base)])
    start, end = base + timedelta(seconds=20 * WL), base + timedelta(seconds=80 * WL)
    inside = {(r.partition, r.offset) for r in sent if start <= r.start < end}
    assert len(inside) == 3 * 60
    # The live group has committed offsets (mid-topic) before the retrain.
    live = KafkaConsumer(bootstrap_servers=kafka_cfg.bootstrap_servers, group_id=kafka_cfg.group_id,
                         enable_auto_commit=False)
    parts = sorted({r.partition for r in sent})
    live.commit({TopicPartition(kafka_cfg.topic, p): OffsetAndMetadata(7, "", -1) for p in parts})
    live.close()
    before = _committed(kafka_cfg, parts)
    # A known alert of sensor-1 covering windows 30..34 (by window time).
    insert_alert(db, "sensor-1", base + timedelta(seconds=30 * WL), base + timedelta(seconds=34 * WL + WL - 1))

    history = read_history(kafka_cfg, start, end, progress=False)
    assert {(w.partition, w.offset) for w in history.windows} == inside
    assert history.records_in_range == len(inside) and set(history.dropped) <= {"out_of_range"}

    cfg = retrain_config(kafka_cfg)
    outcome = retrain(db, cfg, RetrainRequest(start=start, end=end, reason="test"))

    assert outcome.outcome == PROMOTED, outcome.reason  # first model of the name: the absolute gate only
    assert outcome.counts["records"] == len(inside)
    assert outcome.counts["excluded"] == 5 and outcome.counts["alerts"] == 1
    assert outcome.counts["train_windows"] + outcome.counts["holdout_windows"] == len(inside) - 5
    info = versions.get(db, "test", outcome.version or "")
    assert info.status == versions.ACTIVE and versions.active_version(db, "test") == info.version
    assert info.train_start == start and info.train_end == end
    assert info.sources["excluded_windows"] == 5 and info.sources["records"] == len(inside)
    assert info.metrics["gate"]["passed"] is True
    assert versions.load_bundle(db, "test", info.version).meta.window_len == WL
    assert _committed(kafka_cfg, parts) == before == {p: 7 for p in parts}


def test_candidate_trained_on_corrupted_data_is_rejected_and_the_active_model_stays(
    kafka_cfg: KafkaSettings, db: Engine, tmp_path: Path
) -> None:
    base = base_time()
    clean = [w for s in range(3) for w in sensor_windows(s, 60, base)]
    produce(kafka_cfg, clean)
    first_end = base + timedelta(seconds=60 * WL)
    # The first model comes from `monitor retrain` itself (the CLI prints progress and the outcome).
    env = {**os.environ, "MONITOR_DB__URL": db_url(db), "MONITOR_KAFKA__BOOTSTRAP_SERVERS": kafka_cfg.bootstrap_servers,
           "MONITOR_KAFKA__TOPIC": kafka_cfg.topic, "MONITOR_REGISTRY__MODEL_NAME": "test",
           "MONITOR_MODEL__HIDDEN_SIZE": "8", "MONITOR_MODEL__LATENT_SIZE": "4", "MONITOR_MODEL__EPOCHS": "4",
           "MONITOR_RETRAIN__MIN_WINDOWS": "16", "MONITOR_RETRAIN__MIN_HOLDOUT_WINDOWS": "8"}
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "retrain", "--start", base.isoformat(), "--end", first_end.isoformat()],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "retrain: outcome=promoted" in done.stdout
    assert "[retrain] read 180 records" in done.stderr and "gate PASSED" in done.stderr
    active = versions.active_version(db, "test")
    assert active is not None

    # Then a broken feed: 48 windows per sensor of heavy noise, followed by 12 clean ones (the hold-out).
    broken = [w for s in range(3) for w in sensor_windows(s, 48, base, first_window=60, corrupt=True)]
    tail = [w for s in range(3) for w in sensor_windows(s, 12, base, first_window=108)]
    produce(kafka_cfg, broken + tail)
    outcome = retrain(db, retrain_config(kafka_cfg), RetrainRequest(start=first_end, end=base + timedelta(
        seconds=120 * WL), reason="corrupted"))

    assert outcome.outcome == REJECTED
    assert "reconstruction error" in outcome.reason
    assert versions.active_version(db, "test") == active
    rejected = versions.get(db, "test", outcome.version or "")
    assert rejected.status == versions.REJECTED and "reconstruction error" in (rejected.reason or "")
    gate = rejected.metrics["gate"]
    assert gate["candidate"]["error"] > gate["active"]["error"] * 1.1
    assert versions.get(db, "test", active).status == versions.ACTIVE


def test_candidate_with_an_extra_column_is_rejected_naming_it_and_the_active_model_stays(
    db: Engine, tmp_path: Path
) -> None:
    cfg = retrain_config(KafkaSettings())  # --from-file: no broker involved
    frame = history_frame(1600, n_channels=4, sensors=2)
    frame.to_csv(tmp_path / "four.csv")
    first = retrain(db, cfg, RetrainRequest(path=tmp_path / "four.csv", reason="first"))
    assert first.outcome == PROMOTED, first.reason
    active = versions.active_version(db, "test")
    assert active == first.version

    frame["ch_new"] = frame["ch0"] * 0.5 + 1.0  # the feed gained a column
    frame.to_csv(tmp_path / "five.csv")
    outcome = retrain(db, cfg, RetrainRequest(path=tmp_path / "five.csv", reason="extra column"),
                      clock=lambda: utcnow() + timedelta(seconds=1))
    assert outcome.outcome == REJECTED
    assert "incompatible with the active model" in outcome.reason and "adds ch_new" in outcome.reason
    assert versions.active_version(db, "test") == active
    rejected = versions.get(db, "test", outcome.version or "")
    assert rejected.status == versions.REJECTED and "adds ch_new" in (rejected.reason or "")
    assert rejected.metrics["gate"]["active"] is None and rejected.metrics["gate"]["passed"] is False
