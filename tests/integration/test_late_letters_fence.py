"""An ``out_of_order`` dead letter is a judgment of a window against its sensor's state: a batch whose fence no
longer holds (its partition moved on elsewhere) must not send one. Found by the fault suite (scenario 11, a
member that read a newer owner's state lettered windows that owner had applied)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from monitor.consumer.batches import Batch, make_durable
from monitor.core.engine import Engine as Judge
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer
from monitor.errors import StaleOffsetError
from monitor.ingest.faults import FaultInjector
from monitor.ingest.kafka import DeadLetters, make_producer
from monitor.settings import AlertSettings, KafkaSettings, ThresholdSettings
from monitor.store.repository import load_offsets
from pipelines.synthetic import make_fleet
from tests.integration.helpers import end_offsets, produce_fleet, read_all, run_to_end

pytestmark = pytest.mark.integration


def _replay(kafka_cfg: KafkaSettings, db: Engine, bundle: ModelBundle, raw: list[Any],
            expected: dict[int, int | None]) -> int:
    """make_durable on ``raw`` as a member that believes the partitions start at ``expected``; returns the number of
    dead letters that reached the topic meanwhile (the StaleOffsetError is the caller's to expect)."""
    scorer = Scorer(bundle)
    batch = Batch.decode(raw, window_len=scorer.window_len, channels=scorer.channels, max_bytes=1 << 20)
    batch.expected = expected
    before = sum(end_offsets(kafka_cfg, kafka_cfg.dlq_topic).values())
    producer = make_producer(kafka_cfg)
    try:
        with pytest.raises(StaleOffsetError):
            make_durable(batch, engine=Judge(scorer, ThresholdSettings(), AlertSettings()), db=db,
                         dead_letters=DeadLetters(producer, kafka_cfg.dlq_topic), faults=FaultInjector(None),
                         group_id=kafka_cfg.group_id, topic=kafka_cfg.topic)
        producer.flush()
    finally:
        producer.close()
    return sum(end_offsets(kafka_cfg, kafka_cfg.dlq_topic).values()) - before


def test_a_member_whose_partition_moved_on_sends_no_out_of_order_letters(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    wl = e2e_bundle.meta.window_len
    produce_fleet(kafka_cfg, make_fleet(1, wl * 24, seed=5, anomalous=0), wl)
    stats = run_to_end(kafka_cfg, e2e_bundle, db)  # the owner: every window applied, its state's mark at the last
    assert stats.dead_letters == 0
    (partition, stored), = load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic).items()
    first = [r for r in read_all(kafka_cfg, kafka_cfg.topic) if r.partition == partition][:8]
    assert len(first) == 8 and stored > 8
    # A member that started the partition before the owner did (nothing stored then: expected None) reads its
    # first records now: against the owner's stored state each of them is older than the last judged window.
    assert _replay(kafka_cfg, db, e2e_bundle, first, {partition: None}) == 0
    # The same, believing the partition at an offset the owner has since moved past.
    assert _replay(kafka_cfg, db, e2e_bundle, first, {partition: stored - 3}) == 0
    assert load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) == {partition: stored}  # nothing written
