"""Faults of a scheduled retrain on the real broker and databases: a stuck history read gives up, a lost lease
cancels the job, a failed release does not make the replica run again."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from kafka import TopicPartition
from sqlalchemy import Engine, update

from monitor.errors import BrokerError, StoreError
from monitor.ingest.kafka import make_consumer
from monitor.settings import KafkaSettings
from monitor.store.schema import utcnow
from monitor.training import history as history_module
from monitor.training import lease
from monitor.training.history import read_history
from monitor.training.lease import _T as JOBS
from monitor.training.retrain import FAILED, REJECTED, RetrainOutcome
from monitor.training.scheduler import Schedule, Scheduler
from tests.integration.retrain_helpers import base_time, produce, sensor_windows

pytestmark = pytest.mark.integration


def _make_due(db: Engine) -> None:
    """As if the schedule's interval had passed."""
    with db.begin() as conn:
        conn.execute(update(JOBS).where(JOBS.c.job == "retrain:test").values(next_due_at=utcnow() - timedelta(seconds=1)))


def test_history_read_that_stops_progressing_raises_broker_error_naming_the_partition(
    kafka_cfg: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = base_time()
    sent = produce(kafka_cfg, sensor_windows(0, 20, base))
    partition = sent[0].partition
    lines: list[str] = []
    # Without bars, progress lines come through on_progress (here: every poll).
    full = read_history(kafka_cfg, base, base + timedelta(hours=1), progress=False, on_progress=lines.append,
                        report_every_s=0.0, poll_timeout_ms=200)
    assert len(full.windows) == 20
    assert any(line.startswith("history: read 20 of 20 records") for line in lines), lines

    # The end offset snapshot asks for records that never come (as when the partition's leader is down).
    def consumer_expecting_more(cfg: KafkaSettings, **kwargs: Any) -> Any:
        consumer = make_consumer(cfg, **kwargs)
        real = consumer.end_offsets

        def end_offsets(tps: list[TopicPartition]) -> dict[TopicPartition, int]:
            return {tp: off + (5 if tp.partition == partition else 0) for tp, off in real(tps).items()}

        consumer.end_offsets = end_offsets
        return consumer

    monkeypatch.setattr(history_module, "make_consumer", consumer_expecting_more)
    started = time.monotonic()
    with pytest.raises(BrokerError, match=rf"stalled.*incomplete partitions: {partition} \(at 20 of \[0, 25\)\)"):
        read_history(kafka_cfg, base, base + timedelta(hours=1), progress=False, stall_timeout_s=1.0,
                     poll_timeout_ms=200)
    assert time.monotonic() - started < 30  # gives up instead of polling forever


def test_a_lost_lease_cancels_the_running_job_and_the_run_is_reported_failed(db: Engine) -> None:
    cancelled_after: list[float] = []

    def job(trigger: str, reason: str, cancel: threading.Event) -> RetrainOutcome:
        started = time.monotonic()
        # Another holder takes the row over, as after an expiry (its clock is past our lease's end).
        assert lease.acquire(db, "retrain:test", "thief", 60.0, utcnow() + timedelta(seconds=10))
        if cancel.wait(30):
            cancelled_after.append(time.monotonic() - started)
        return RetrainOutcome(REJECTED, None, "finished anyway")  # a job that ignores cancel is still failed

    scheduler = Scheduler(db, job, name="test", schedule=Schedule("3600"), lease_s=1.5, tick_s=0.05, drift=None,
                          owner="me")
    lease.ensure_job(db, "retrain:test", utcnow() - timedelta(seconds=1))
    outcome = scheduler.tick()

    assert outcome is not None and outcome.outcome == FAILED and "lease was lost" in outcome.reason
    assert cancelled_after and cancelled_after[0] < 5  # the first renewal (after lease_s / 3) noticed
    state = lease.read(db, "retrain:test")
    assert state.lease_owner == "thief"  # our release did not clobber the new holder's lease


def test_a_failing_release_neither_loses_the_outcome_nor_makes_the_replica_run_again(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[str] = []

    def job(trigger: str, reason: str, cancel: threading.Event) -> RetrainOutcome:
        runs.append(trigger)
        return RetrainOutcome(REJECTED, "v1", "ok")

    scheduler = Scheduler(db, job, name="test",
                          schedule=Schedule("3600"), lease_s=30, tick_s=0.01, drift=None, owner="me")
    lease.ensure_job(db, "retrain:test", utcnow() - timedelta(seconds=1))
    real_release = lease.release
    failures = {"left": 1}

    def flaky_release(*args: Any, **kwargs: Any) -> bool:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise StoreError("scheduler state: cannot release the lease: OperationalError")
        return real_release(*args, **kwargs)

    monkeypatch.setattr(lease, "release", flaky_release)
    assert scheduler.tick() is not None
    state = lease.read(db, "retrain:test")
    assert state.lease_owner is None and state.last_outcome == REJECTED  # retried once: recorded

    # The release fails twice: the tick fails, but the schedule moved on with the start.
    monkeypatch.setattr(lease, "release", lambda *a, **k: (_ for _ in ()).throw(StoreError("down")))
    _make_due(db)
    with pytest.raises(StoreError):
        scheduler.tick()
    assert len(runs) == 2
    state = lease.read(db, "retrain:test")
    assert state.next_due_at is not None and state.last_started_at is not None
    assert (state.next_due_at - state.last_started_at).total_seconds() == pytest.approx(3600)
    monkeypatch.setattr(lease, "release", real_release)
    assert scheduler.tick() is None and len(runs) == 2  # not due: no second run
