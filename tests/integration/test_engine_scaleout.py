"""Scale-out: two consumers in one group split the partitions; no record is made durable twice."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine

from monitor.consumer.runner import Runner, build_runner
from monitor.core.scoring.artifact import ModelBundle
from monitor.settings import AlertSettings, KafkaSettings, RunSettings, ThresholdSettings
from monitor.store.repository import load_offsets
from pipelines.synthetic import make_fleet
from tests.integration.helpers import end_offsets, produce_fleet

pytestmark = pytest.mark.integration


def test_two_consumers_split_the_partitions_without_overlap(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    runners: list[Runner] = []
    threads: list[threading.Thread] = []
    for _ in range(2):
        runner = build_runner(kafka_cfg, RunSettings(), ThresholdSettings(), AlertSettings(), e2e_bundle, db,
                              idle_exit_s=None)
        runner.max_poll_records = 50
        runners.append(runner)
        threads.append(threading.Thread(target=runner.run, daemon=True))
        threads[-1].start()
        time.sleep(1.0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (all(r.assigned for r in runners)  # disjoint: both applied the change
                                               and runners[0].assigned.isdisjoint(runners[1].assigned)
                                               and len(runners[0].assigned | runners[1].assigned) == 3):
        time.sleep(0.2)
    owned = [r.assigned for r in runners]
    assert all(owned) and owned[0].isdisjoint(owned[1]) and owned[0] | owned[1] == {0, 1, 2}, owned

    wl = e2e_bundle.meta.window_len
    sent = produce_fleet(kafka_cfg, make_fleet(9, wl * 40, seed=17, anomalous=0), wl)
    ends = end_offsets(kafka_cfg)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) != {
        p: o for p, o in ends.items() if o > 0
    }:
        time.sleep(0.5)
    for runner in runners:
        runner.stop()
    for thread in threads:
        thread.join(timeout=15)

    assert [r.assigned for r in runners] == owned, "no rebalance happened during the test"
    ranges = [sorted(r.stats.committed) for r in runners]
    for mine, partitions in zip(ranges, owned):
        assert mine and {p for p, _, _ in mine} == partitions, "each consumer wrote only its own partitions"
    # per partition, the durable ranges of both consumers tile [0, end) exactly: nothing twice, nothing missed
    for p, end in ends.items():
        spans = sorted((a, b) for r in ranges for q, a, b in r if q == p)
        assert spans[0][0] == 0 and spans[-1][1] == end
        assert all(prev[1] == nxt[0] for prev, nxt in zip(spans, spans[1:])), f"gap or overlap on {p}: {spans}"
    assert sum(r.stats.scored for r in runners) == sent
