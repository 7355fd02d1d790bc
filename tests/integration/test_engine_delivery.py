"""Delivery guarantees of `monitor run` on the real broker and databases: incidents, replays, dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, text

from monitor.consumer.runner import build_runner
from monitor.core import contract
from monitor.core.engine import Engine as Detector
from monitor.core.engine import Record
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer
from monitor.ingest.kafka import make_producer
from monitor.settings import AlertSettings, KafkaSettings, RunSettings, ThresholdSettings
from monitor.store.alerts_api import query_alerts
from monitor.store.repository import load_offsets
from pipelines.faults.chaos import poison_records
from pipelines.faults.kit import MAX_RECORD_BYTES, reset_group_to_earliest
from pipelines.synthetic import fleet_windows, make_fleet
from tests.integration.helpers import end_offsets, read_all, run_to_end

pytestmark = pytest.mark.integration

LIFECYCLE = ("sensor_id", "opened_at", "closed_at", "status", "severity", "window_count", "top_channels",
             "model_version", "partition", "first_offset", "last_offset")


def _send(cfg: KafkaSettings, items: Sequence[tuple[bytes, bytes | None]]) -> list[Any]:
    producer = make_producer(cfg)
    try:
        futures = [producer.send(cfg.topic, key=k, value=v) for k, v in items]
        producer.flush()
        return [f.get(timeout=30) for f in futures]
    finally:
        producer.close()


def _lifecycles(alerts: dict[Any, dict[str, Any]]) -> dict[Any, tuple[Any, ...]]:
    return {k: tuple(a[f] for f in LIFECYCLE) for k, a in alerts.items()}


def _offline_lifecycles(bundle: ModelBundle, sent: list[Any], items: Sequence[tuple[bytes, bytes | None]]
                        ) -> dict[Any, tuple[Any, ...]]:
    """The alerts of one offline pass of the pure engine over what was sent, partition by partition."""
    detector = Detector(Scorer(bundle), ThresholdSettings(), AlertSettings())
    by_part: dict[int, list[Record]] = {}
    for meta, (_, value) in zip(sent, items):
        window = contract.decode(value)
        assert isinstance(window, contract.SensorWindow)
        by_part.setdefault(meta.partition, []).append(Record(meta.partition, meta.offset, window))
    expected: dict[Any, Any] = {}
    for records in by_part.values():
        expected.update(detector.process(records).alerts)
    return {k: tuple(getattr(a, f) for f in LIFECYCLE) for k, a in expected.items()}


def _dump(db: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with db.connect() as conn:
        return {t: sorted((tuple(r) for r in conn.execute(text(f"SELECT * FROM {t}"))), key=repr)
                for t in ("alerts", "sensor_state", "consumer_offsets")}


def test_an_incident_opens_then_closes_across_runs_with_its_lifecycle_fields(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(2, wl * 90, seed=31, anomalous=1, per_sensor=1, length=6 * wl, kinds=("level_shift",))
    injected = fleet.injected[0]
    windows = list(fleet_windows(fleet, wl))
    items = [(s.encode(), contract.encode_values(s, a, b, fleet.channels, v)) for s, a, b, v in windows]
    # first part: up to the middle of the anomaly, so the incident is still open at the end
    cut = next(i for i, (s, a, _, _) in enumerate(windows) if s == injected.sensor_id and a >= injected.start) + 8
    sent = _send(kafka_cfg, items[:cut])
    run_to_end(kafka_cfg, e2e_bundle, db, idle_exit_s=3.0)
    open_now = [a for a in query_alerts(db, sensor_id=injected.sensor_id) if a["opened_at"] <= injected.end]
    assert [a["status"] for a in open_now][:1] == ["open"], open_now
    first = open_now[0]
    assert first["closed_at"] is None and first["window_count"] >= 1

    sent += _send(kafka_cfg, items[cut:])
    run_to_end(kafka_cfg, e2e_bundle, db, idle_exit_s=3.0)

    alerts = {(a["sensor_id"], a["opened_at"]): a for a in query_alerts(db, limit=10_000)}
    same = alerts[(first["sensor_id"], first["opened_at"])]
    assert same["id"] == first["id"], "the second run continued the stored incident, not a new one"
    assert same["status"] == "resolved" and same["closed_at"] is not None
    assert injected.start <= same["closed_at"] and same["window_count"] > first["window_count"]
    assert same["peak_score"] > same["threshold_at_peak"] > 0
    assert len(same["top_channels"]) == 3 and set(same["top_channels"]) <= set(fleet.channels)
    assert same["first_offset"] <= same["last_offset"] and same["model_version"] == "e2e-1"
    assert same["severity"] in ("minor", "major", "critical")
    assert not [a for a in alerts.values() if a["sensor_id"] == fleet.sensor_ids[-1]], "clean sensor alerted"
    # The stream, stopped and resumed through the database, equals one offline pass of the pure engine.
    assert _lifecycles(alerts) == _offline_lifecycles(e2e_bundle, sent, items)


def test_a_replay_after_resetting_the_group_offsets_changes_nothing(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(3, wl * 60, seed=12, per_sensor=1, length=4 * wl)
    _send(kafka_cfg, [(s.encode(), contract.encode_values(s, a, b, fleet.channels, v))
                      for s, a, b, v in fleet_windows(fleet, wl)])
    run_to_end(kafka_cfg, e2e_bundle, db, idle_exit_s=3.0)
    before = _dump(db)
    assert before["alerts"], "the injected anomalies should have raised alerts"

    reset_group_to_earliest(kafka_cfg)
    again = run_to_end(kafka_cfg, e2e_bundle, db, idle_exit_s=3.0)

    assert again.consumed == 0, "the consumer must seek to the offsets stored with the output, not Kafka's"
    assert _dump(db) == before  # not even updated_at moved
    from pipelines.faults.kit import group_committed

    assert group_committed(kafka_cfg) == {p: o for p, o in end_offsets(kafka_cfg).items()}, "Kafka lag back to 0"



def test_a_failed_kafka_offset_commit_is_made_good_once_idle(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    """A commit refused by the broker (as mid-rebalance) must not leave the group's Kafka lag behind the
    database for good: the runner commits the stored offsets again once idle. Seen in the fault suite's
    rebalance churn: lag (0, 1) after every member had left."""
    from kafka.errors import CommitFailedError

    from pipelines.faults.kit import group_committed

    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(3, wl * 20, seed=13, per_sensor=1, length=4 * wl)
    _send(kafka_cfg, [(s.encode(), contract.encode_values(s, a, b, fleet.channels, v))
                      for s, a, b, v in fleet_windows(fleet, wl)])
    runner = build_runner(kafka_cfg, RunSettings(), ThresholdSettings(), AlertSettings(), e2e_bundle, db,
                          idle_exit_s=3.0)
    real_commit = runner.consumer.commit
    refused: list[Any] = []

    def commit(offsets: Any = None, **kwargs: Any) -> Any:
        if offsets and len(refused) < 3:  # every commit during the first batches is refused
            refused.append(offsets)
            raise CommitFailedError("injected: group rebalancing")
        return real_commit(offsets, **kwargs)

    runner.consumer.commit = commit
    runner.run()

    assert len(refused) == 3, "the injected refusals fired"
    ends = {p: o for p, o in end_offsets(kafka_cfg).items() if o > 0}
    assert load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) == ends
    committed = group_committed(kafka_cfg)
    assert {p: committed[p] for p in ends} == ends, "Kafka lag back to 0"


def test_a_retriable_error_escaping_the_clients_poll_is_an_empty_poll(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    """kafka-python 3.0.12 lets KafkaConnectionError escape poll() while the broker is down (the coordinator lookup
    fails, then the metadata refresh it asks for). The fault suite's broker kill (scenario 2, seed 3838) ended the
    consumer that way. A retriable error is now an empty poll after a pause; any other Kafka error still ends the
    run."""
    from kafka.errors import KafkaConnectionError, UnsupportedVersionError

    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(3, wl * 20, seed=15, per_sensor=1, length=4 * wl)
    items = [(s.encode(), contract.encode_values(s, a, b, fleet.channels, v)) for s, a, b, v in fleet_windows(fleet, wl)]
    _send(kafka_cfg, items)
    kafka = kafka_cfg.model_copy(update={"max_poll_records": 10, "live_poll_records": 10})
    runner = build_runner(kafka, RunSettings(), ThresholdSettings(), AlertSettings(), e2e_bundle, db, idle_exit_s=3.0)
    real_poll = runner.consumer.poll
    calls: list[int] = []

    def poll(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) in (3, 4, 7):  # mid-stream, twice in a row, and again
            raise KafkaConnectionError("injected: 111 ECONNREFUSED")
        return real_poll(*args, **kwargs)

    runner.consumer.poll = poll  # the real client's poll, wrapped
    stats = runner.run()

    assert len(calls) > 7, "the injected errors fired"
    assert stats.consumed == len(items), "every window consumed: the run went on"
    ends = {p: o for p, o in end_offsets(kafka_cfg).items() if o > 0}
    assert load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) == ends, "and is durable to the end"

    fatal = build_runner(kafka, RunSettings(), ThresholdSettings(), AlertSettings(), e2e_bundle, db, idle_exit_s=3.0)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise UnsupportedVersionError("injected: not retriable")

    fatal.consumer.poll = refuse
    with pytest.raises(UnsupportedVersionError):
        fatal.run()


def test_a_bounded_sensor_memory_reads_dropped_states_back_and_decides_the_same(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    """run.max_sensors_in_memory far below the fleet: states are dropped after durable batches and read back from
    the database when their sensor's next window comes; the alerts equal one offline pass of the pure engine."""
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(6, wl * 40, seed=14, per_sensor=1, length=4 * wl)
    items = [(s.encode(), contract.encode_values(s, a, b, fleet.channels, v)) for s, a, b, v in fleet_windows(fleet, wl)]
    sent = _send(kafka_cfg, items)
    kafka = kafka_cfg.model_copy(update={"max_poll_records": 7, "live_poll_records": 7})  # many small batches
    runner = build_runner(kafka, RunSettings(max_sensors_in_memory=2), ThresholdSettings(), AlertSettings(),
                          e2e_bundle, db, idle_exit_s=3.0)
    stats = runner.run()

    assert stats.evicted > 0 and stats.consumed == len(items)
    assert len(runner.engine.sensors) <= 2 + sum(c.incidents.current is not None for c in runner.engine.sensors.values())
    expected = _offline_lifecycles(e2e_bundle, sent, items)
    assert expected, "the fleet's anomalies should raise alerts"
    assert _lifecycles({(a["sensor_id"], a["opened_at"]): a for a in query_alerts(db, limit=10_000)}) == expected

def test_every_dead_letter_reason_is_routed_with_its_coordinates_and_good_records_flow(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(6, wl * 20, seed=13, anomalous=0)
    items: list[tuple[bytes, bytes | None]] = [
        (s.encode(), contract.encode_values(s, a, b, fleet.channels, v)) for s, a, b, v in fleet_windows(fleet, wl)]
    template = {**__import__("orjson").loads(items[0][1]), "values": None}
    template["values"] = [list(map(float, r)) for r in __import__("orjson").loads(items[0][1])["values"]]
    poison = poison_records(sorted({k for k, _ in items}), template)
    mixed = list(items)
    for i, (key, value, _) in enumerate(poison):
        mixed.insert(3 + i * 9, (key, value))
    metas = _send(kafka_cfg, mixed)
    where = {(metas[mixed.index((k, v))].partition, metas[mixed.index((k, v))].offset): r for k, v, r in poison}

    runner = build_runner(kafka_cfg, RunSettings(max_record_bytes=MAX_RECORD_BYTES), ThresholdSettings(),
                          AlertSettings(), e2e_bundle, db, idle_exit_s=3.0)
    stats = runner.run()

    assert set(where.values()) == set(contract.REASONS), "the poison set covers every reason"
    assert stats.dead_letters == len(poison) and stats.scored == len(items)
    dead = read_all(kafka_cfg, kafka_cfg.dlq_topic)
    got = {(int(h["dlq.partition"]), int(h["dlq.offset"])): h["dlq.reason"]
           for h in ({k: v.decode() for k, v in r.headers} for r in dead)}
    assert got == where
    assert all(dict(r.headers)["dlq.topic"].decode() == kafka_cfg.topic for r in dead)
    assert load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) == end_offsets(kafka_cfg), "no partition stalled"


def test_a_backlog_is_drained_in_large_batches_and_live_traffic_in_small_ones(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    import threading
    import time

    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(8, wl * 240, seed=14, anomalous=0)
    items = [(s.encode(), contract.encode_values(s, a, b, fleet.channels, v)) for s, a, b, v in fleet_windows(fleet, wl)]
    backlog, burst = items[:1600], items[1600:1900]
    _send(kafka_cfg, backlog)
    cfg = kafka_cfg.model_copy(update={"max_poll_records": 400, "live_poll_records": 50})
    sizes: list[int] = []

    def on_batch(stats: Any) -> None:
        sizes.append(stats.scored - sum(sizes))

    runner = build_runner(cfg, RunSettings(), ThresholdSettings(), AlertSettings(), e2e_bundle, db)
    runner.on_batch = on_batch
    worker = threading.Thread(target=runner.run)
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while sum(sizes) < len(backlog) and time.monotonic() < deadline:
            time.sleep(0.05)
        drained = len(sizes)
        time.sleep(1.0)  # caught up: a few empty polls
        _send(kafka_cfg, burst)  # a burst below max_poll_records, all in the topic before the next fetch ends
        while sum(sizes) < len(backlog) + len(burst) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.stop()
        worker.join(30)

    assert sum(sizes[:drained]) == len(backlog) and sum(sizes[drained:]) == len(burst), sizes
    assert max(sizes[:drained]) > 50, f"a backlog is polled up to max_poll_records at a time: {sizes}"
    assert max(sizes) <= 400
    assert max(sizes[drained:]) <= 50, f"caught up, polls take at most live_poll_records: {sizes}"
