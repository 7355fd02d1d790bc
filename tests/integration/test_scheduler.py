"""Two schedulers against one database run one retraining, not two (the lease), and keep the schedule."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, func, select

from monitor.registry import versions
from monitor.settings import KafkaSettings
from monitor.store.database import make_engine
from monitor.store.schema import ModelVersion
from monitor.training import lease
from monitor.training.retrain import PROMOTED, RetrainOutcome, RetrainRequest, retrain
from monitor.training.scheduler import Schedule, Scheduler
from tests.integration.retrain_helpers import base_time, db_url, produce, retrain_config, sensor_windows

pytestmark = pytest.mark.integration


def test_two_schedulers_started_together_run_one_retraining(kafka_cfg: KafkaSettings, db: Engine) -> None:
    base = base_time()
    produce(kafka_cfg, [w for s in range(3) for w in sensor_windows(s, 50, base)])
    cfg = retrain_config(kafka_cfg, lookback_s=4 * 3600.0)
    started = threading.Barrier(2)
    outcomes: list[RetrainOutcome] = []

    def replica(owner: str) -> tuple[Scheduler, threading.Thread]:
        engine = make_engine(db_url(db))  # its own connection pool, as a separate process would have

        def job(trigger: str, reason: str, cancel: threading.Event) -> RetrainOutcome:
            outcome = retrain(engine, cfg, RetrainRequest(triggered_by=f"{owner}/{trigger}", reason=reason),
                              cancel=cancel)
            outcomes.append(outcome)
            return outcome

        scheduler = Scheduler(engine, job, name="test", schedule=Schedule("3600"), lease_s=30, tick_s=0.2,
                              drift=None, owner=owner)

        def main() -> None:
            started.wait()
            scheduler.run()

        return scheduler, threading.Thread(target=main, daemon=True)

    replicas = [replica("one"), replica("two")]
    for _, thread in replicas:
        thread.start()
    deadline = time.monotonic() + 180
    while not outcomes and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # both replicas tick several more times after the run finished
    for scheduler, _ in replicas:
        scheduler.stop()
    for _, thread in replicas:
        thread.join(timeout=60)

    assert len(outcomes) == 1 and outcomes[0].outcome == PROMOTED, [o.line() for o in outcomes]
    assert sum(s.runs for s, _ in replicas) == 1
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ModelVersion)).scalar_one() == 1
    state = lease.read(db, "retrain:test")
    assert state.runs == 1 and state.last_outcome == PROMOTED and state.lease_owner is None
    assert state.last_started_at is not None and state.next_due_at is not None
    assert (state.next_due_at - state.last_started_at).total_seconds() == pytest.approx(3600)
    assert versions.active_version(db, "test") == outcomes[0].version

    # A restarted scheduler keeps the persisted schedule: nothing is due, so it does not train again.
    again = Scheduler(db, lambda t, r, c: RetrainOutcome("failed", None, "must not run"), name="test",
                      schedule=Schedule("3600"), tick_s=0.05, drift=None)
    assert again.run(max_ticks=3) == 0
    assert lease.read(db, "retrain:test").next_due_at == state.next_due_at
