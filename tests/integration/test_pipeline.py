"""End to end on the real broker and databases: produce -> monitor run -> alerts in SQL."""

from __future__ import annotations

import logging

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from monitor.core import contract
from monitor.core.scoring.artifact import ModelBundle
from monitor.ingest.kafka import make_consumer, make_producer
from monitor.settings import KafkaSettings
from monitor.store.alerts_api import query_alerts
from monitor.store.repository import load_offsets
from pipelines.synthetic import evaluate, make_fleet
from tests.integration.helpers import end_offsets, produce_fleet, read_all, run_to_end

pytestmark = pytest.mark.integration


def test_injected_anomalies_raise_alerts_and_the_clean_sensor_none(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(4, wl * 150, seed=5, length=4 * wl)
    sent = produce_fleet(kafka_cfg, fleet, wl)

    stats = run_to_end(kafka_cfg, e2e_bundle, db)

    assert stats.consumed == sent and stats.scored == sent and stats.dead_letters == 0
    alerts = query_alerts(db, limit=10_000)
    clean = fleet.sensor_ids[-1]
    assert [a for a in alerts if a["sensor_id"] == clean] == []
    result = evaluate(alerts, fleet.injected, tolerance_s=wl)
    missed = [i for i in fleet.injected if not any(
        a["sensor_id"] == i.sensor_id and a["opened_at"] <= i.end and a["last_window_end"] >= i.start for a in alerts)]
    assert missed == [], f"injected anomalies without an alert: {missed}"
    assert result["precision"] >= 0.75, result
    for alert in alerts:
        assert alert["model_version"] == "e2e-1"
        assert alert["opened_at"].tzinfo is not None
        assert alert["window_count"] >= 1 and alert["peak_score"] > 0
    # Offsets stored with the output reached the end of every partition.
    assert load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) == {
        p: o for p, o in end_offsets(kafka_cfg).items() if o > 0
    }
    # The runner has stopped: it owns no partition, and no per-partition series outlives it in the registry
    assert REGISTRY.get_sample_value("monitor_assigned_partitions") == 0
    for p in range(3):
        for name in ("monitor_consumer_lag", "monitor_event_lag_seconds"):
            assert REGISTRY.get_sample_value(name, {"partition": str(p)}) is None, (name, p)


def test_malformed_record_goes_to_dead_letters_and_later_records_are_processed(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(2, wl * 20, seed=9, anomalous=0)
    producer = make_producer(kafka_cfg)
    from pipelines.synthetic import fleet_windows

    windows = list(fleet_windows(fleet, wl))
    futures = []
    for i, (sid, start, end, values) in enumerate(windows):
        if i == 10:
            futures.append(producer.send(kafka_cfg.topic, key=sid.encode(), value=b'{"sensor_id": "broken"'))
        futures.append(producer.send(kafka_cfg.topic, key=sid.encode(),
                                     value=contract.encode_values(sid, start, end, fleet.channels, values)))
    producer.flush()
    bad = futures[10].get(timeout=10)
    producer.close()

    stats = run_to_end(kafka_cfg, e2e_bundle, db)

    assert stats.dead_letters == 1
    assert stats.scored == len(windows), "records after the malformed one were not all processed"
    dead = read_all(kafka_cfg, kafka_cfg.dlq_topic)
    assert len(dead) == 1
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["dlq.reason"] == contract.BAD_JSON
    assert headers["dlq.topic"] == kafka_cfg.topic
    assert int(headers["dlq.partition"]) == bad.partition
    assert int(headers["dlq.offset"]) == bad.offset
    assert dead[0].value == b'{"sensor_id": "broken"'
    stored = load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic)
    assert stored[bad.partition] == end_offsets(kafka_cfg)[bad.partition]
    # Kafka's group offsets follow the database (committed after it, for lag monitoring).
    consumer = KafkaConsumer(bootstrap_servers=kafka_cfg.bootstrap_servers, group_id=kafka_cfg.group_id,
                             enable_auto_commit=False)
    try:
        committed = consumer.committed(TopicPartition(kafka_cfg.topic, bad.partition))
    finally:
        consumer.close()
    assert committed == stored[bad.partition]


def test_fetch_limits_below_one_record_still_deliver_every_record(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    """The fetch bounds are soft: a record larger than both comes alone, so a small bound never stalls."""
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(2, wl * 15, seed=13, anomalous=0)
    sent = produce_fleet(kafka_cfg, fleet, wl)
    small = kafka_cfg.model_copy(update={"max_partition_fetch_bytes": 1024, "fetch_max_bytes": 1024})
    assert all(len(r.value) > 1024 for r in read_all(kafka_cfg, kafka_cfg.topic))
    consumer = make_consumer(small)
    try:  # the settings reach the client (the run below would pass on kafka-python's defaults too)
        assert consumer.config["max_partition_fetch_bytes"] == 1024 and consumer.config["fetch_max_bytes"] == 1024
    finally:
        consumer.close()

    stats = run_to_end(small, e2e_bundle, db)

    assert stats.consumed == sent and stats.scored == sent and stats.dead_letters == 0
    assert load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) == {
        p: o for p, o in end_offsets(kafka_cfg).items() if o > 0
    }


def test_a_second_run_over_the_same_topic_changes_nothing(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(3, wl * 60, seed=11, per_sensor=1, length=4 * wl)
    produce_fleet(kafka_cfg, fleet, wl)
    run_to_end(kafka_cfg, e2e_bundle, db)
    before = query_alerts(db, limit=10_000)
    assert before, "the injected anomalies should have raised alerts"

    again = run_to_end(kafka_cfg, e2e_bundle, db, idle_exit_s=3.0)

    assert again.scored == 0, "a restarted consumer must resume from the offsets stored in the database"
    assert query_alerts(db, limit=10_000) == before
    assert orjson.dumps(before, default=str)  # rows are plain, serialisable values


@pytest.mark.parametrize("decode_process", [False, True, "auto"], ids=["decode-thread", "decode-process", "auto"])
def test_overlapped_batches_with_packed_values_match_one_batch_at_a_time(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle, decode_process: bool | str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """run.overlap (batch N+1 decoded while N is scored and committed) over packed values_f32 records with
    a malformed one, in small batches; then a synchronous run in another group writes the same alerts. With
    run.decode_process the overlapped run decodes in a child process (monitor/consumer/decoder.py); with "auto"
    (resolved for a host with a spare core) it does so only while it is behind, and decodes in its own thread,
    one batch at a time, once caught up."""
    from monitor.consumer.parallelism import resolve
    from monitor.consumer.runner import RunStats, build_runner
    from monitor.settings import AlertSettings, RunSettings, ThresholdSettings
    from pipelines.synthetic import fleet_windows

    caplog.set_level(logging.INFO, logger="monitor.consumer.runner")  # "decode process started"
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(3, wl * 60, seed=21, length=4 * wl)
    producer = make_producer(kafka_cfg)
    windows = list(fleet_windows(fleet, wl))
    for i, (sid, start, end, values) in enumerate(windows):
        if i == 25:
            producer.send(kafka_cfg.topic, key=sid.encode(), value=b'{"sensor_id": "broken"')
        producer.send(kafka_cfg.topic, key=sid.encode(),
                      value=contract.encode_values(sid, start, end, fleet.channels, values, packed=True))
    producer.flush()
    producer.close()

    def run(group: str, overlap: bool, caught_up: bool = False) -> RunStats:
        cfg = kafka_cfg.model_copy(update={"group_id": group})
        if decode_process == "auto" and overlap:
            settings = RunSettings(overlap="auto", decode_process="auto")
            par = resolve("auto", "auto", workers=1, threads=1, cpus=2)
        else:
            settings = RunSettings(overlap=overlap, decode_process=bool(decode_process) and overlap)
            par = None
        runner = build_runner(cfg, settings, ThresholdSettings(), AlertSettings(), e2e_bundle, db, idle_exit_s=4.0,
                              parallelism=par)
        runner.max_poll_records = 7
        if par is not None:  # behind while more than 20 records are not durable: polls of 20, then of 7
            runner.max_poll_records, runner.live_poll_records = 20, 7
        stats = runner.run()
        if decode_process is True and overlap:
            assert stats.child_decodes == stats.batches + stats.stale_batches
        elif decode_process == "auto" and overlap and not caught_up:  # behind (lag > 7) at first, then caught up
            assert 0 < stats.child_decodes < stats.batches, (stats.child_decodes, stats.batches)
        else:
            assert stats.child_decodes == 0
        assert runner._decoder is None, "the decode process is stopped when the run ends"
        started = [r for r in caplog.records if r.getMessage().startswith("decode process started")]
        assert len(started) == (stats.child_decodes > 0), "started once, by the first batch that used it"
        assert not [r for r in caplog.records if "decode process failed" in r.getMessage()], "fell back"
        caplog.clear()  # each run's log lines alone
        return stats

    stats = run(kafka_cfg.group_id, overlap=True)
    assert stats.dead_letters == 1 and stats.scored == len(windows) and stats.failed_batches == 0
    assert load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) == {
        p: o for p, o in end_offsets(kafka_cfg).items() if o > 0
    }
    for p in {p for p, _, _ in stats.committed}:  # durable ranges tile each partition: nothing twice or missed
        spans = sorted((a, b) for q, a, b in stats.committed if q == p)
        assert all(prev[1] == nxt[0] for prev, nxt in zip(spans, spans[1:])), spans
    # peak_score is left out: fp32 inference of a window differs in the last bits with the batch it is in,
    # and poll batches differ between runs; the decisions (which windows, when) must not.
    fields = ("sensor_id", "opened_at", "closed_at", "status", "window_count", "first_offset", "last_offset")

    def decided() -> list[tuple[object, ...]]:
        return sorted(tuple(a[f] for f in fields) for a in query_alerts(db, limit=10_000))

    overlapped = decided()
    assert overlapped, "the fleet's injected anomalies raised no alert"
    run(f"{kafka_cfg.group_id}-sync", overlap=False)  # upserts the same alerts when the decisions are equal
    assert decided() == overlapped
    if decode_process == "auto":  # a consumer that is never behind never starts the decode process
        again = run(kafka_cfg.group_id, overlap=True, caught_up=True)  # run() asserts no child was started
        assert again.scored == 0


def test_a_decode_process_that_cannot_be_spawned_leaves_the_consumer_decoding_itself(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """run.decode_process on, but the child cannot be spawned (here: no such interpreter) when the first batch
    asks for it: the consumer logs it once, decodes every batch in its own thread and scores every window."""
    import sys

    from monitor.consumer.runner import build_runner
    from monitor.settings import AlertSettings, RunSettings, ThresholdSettings

    wl = e2e_bundle.meta.window_len
    sent = produce_fleet(kafka_cfg, make_fleet(2, wl * 20, seed=12, anomalous=0), wl)
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    runner = build_runner(kafka_cfg, RunSettings(overlap=True, decode_process=True), ThresholdSettings(),
                          AlertSettings(), e2e_bundle, db, idle_exit_s=3.0)
    runner.max_poll_records = runner.live_poll_records = 7  # several batches: the child is tried once
    stats = runner.run()
    assert stats.scored == sent and stats.batches > 1 and stats.child_decodes == 0
    spawned = [r.getMessage() for r in caplog.records if "could not be spawned" in r.getMessage()]
    assert len(spawned) == 1, spawned
