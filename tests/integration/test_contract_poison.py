"""Records that used to stop the consumer (issue 16), on the real broker and databases: a time whose UTC
conversion overflows, JSON nested past the parser's limit, values that overflow float32, NUL and other control
characters in ids, booleans and strings as numbers. Each goes to the dead-letter topic with its reason, every
good window is scored, the consumer exits cleanly and the offsets reach the end of each partition."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Engine, text

from monitor.consumer.runner import build_runner
from monitor.core import contract
from monitor.ingest.kafka import make_producer
from monitor.settings import AlertSettings, KafkaSettings, RunSettings, ThresholdSettings
from monitor.store.repository import load_offsets
from tests.integration.helpers import end_offsets, read_all
from tests.unit.artifacts import small_bundle

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _good(bundle_channels: list[str], window_len: int, sensors: int, per_sensor: int) -> list[tuple[bytes, bytes]]:
    rng = np.random.default_rng(5)
    out = []
    for i in range(per_sensor):
        for s in range(sensors):
            sid = f"sensor-{s}"
            start = T0 + timedelta(seconds=i * window_len)
            out.append((sid.encode(), contract.encode_values(sid, start, start + timedelta(seconds=window_len - 1),
                                                             bundle_channels, rng.normal(size=(window_len, 3)))))
    return out


def _poison(template: dict[str, Any]) -> list[tuple[bytes | None, bytes, str]]:
    def doc(**change: Any) -> bytes:
        return orjson.dumps({**template, **change})

    rows = template["values"]
    deep = b"[" * 50_000 + b"]" * 50_000
    return [
        (b"sensor-0", doc(window_start="0001-01-01T00:30:00+01:00"), contract.BAD_TIME),  # OverflowError
        (b"sensor-1", doc(window_end="9999-12-31T23:59:59-01:00"), contract.BAD_TIME),
        (b"sensor-2", doc(window_start="1960-01-01T00:00:00Z"), contract.BAD_TIME),
        (None, b'{"sensor_id": "sensor-0", "pad": ' + deep + b"}", contract.BAD_JSON),  # RecursionError
        (b"sensor-1", doc(values=[[1e20, *r[1:]] for r in rows]), contract.NON_FINITE),  # inf score, NaN state
        (b"sensor-2", doc(values=[[3.5e38, *r[1:]] for r in rows]), contract.NON_FINITE),  # inf in float32
        (None, doc(sensor_id="sensor-\x00"), contract.SCHEMA),  # psycopg refuses NUL: a retry loop
        (None, doc(sensor_id="sensor-\n1"), contract.SCHEMA),
        (None, doc(channels=[*template["channels"][:-1], "c\x00"]), contract.SCHEMA),
        (b"sensor-0", doc(values=[[True, *r[1:]] for r in rows]), contract.SHAPE),
        (b"sensor-1", doc(values=[[str(r[0]), *r[1:]] for r in rows]), contract.SHAPE),
    ]


def test_poison_that_stopped_the_consumer_goes_to_the_dead_letter_topic(kafka_cfg: KafkaSettings, db: Engine) -> None:
    bundle = small_bundle("poison-1")
    wl = bundle.meta.window_len
    good = _good(bundle.meta.channels, wl, sensors=3, per_sensor=12)
    template = orjson.loads(good[0][1])
    poison = _poison(template)
    mixed: list[tuple[bytes | None, bytes]] = list(good)
    for i, (key, value, _) in enumerate(poison):
        mixed.insert(2 + i * 3, (key, value))
    producer = make_producer(kafka_cfg)
    try:
        futures = [producer.send(kafka_cfg.topic, key=k, value=v) for k, v in mixed]
        producer.flush()
        metas = [f.get(timeout=30) for f in futures]
    finally:
        producer.close()
    where = {(metas[mixed.index((k, v))].partition, metas[mixed.index((k, v))].offset): r for k, v, r in poison}

    runner = build_runner(kafka_cfg, RunSettings(max_record_bytes=200_000), ThresholdSettings(), AlertSettings(),
                          bundle, db, idle_exit_s=3.0)
    stats = runner.run()  # raised (and exited the process) on the first of them before

    assert stats.dead_letters == len(poison) and stats.scored == len(good)
    dead = read_all(kafka_cfg, kafka_cfg.dlq_topic)
    got = {(int(h["dlq.partition"]), int(h["dlq.offset"])): h["dlq.reason"]
           for h in ({k: v.decode() for k, v in r.headers} for r in dead)}
    assert got == where
    ends = {p: o for p, o in end_offsets(kafka_cfg).items() if o}  # partitions that received records
    assert load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) == ends, "no partition stalled"
    with db.connect() as conn:
        sensors = {r[0]: r[1] for r in conn.execute(text("SELECT sensor_id, last_score FROM sensor_state"))}
    assert set(sensors) == {"sensor-0", "sensor-1", "sensor-2"}  # no sensor id from the poison
    assert all(math.isfinite(v) for v in sensors.values())
