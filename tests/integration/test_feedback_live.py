"""Operator feedback on a sensor whose state a running consumer holds in memory is not overwritten by it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from monitor.consumer.runner import RunStats, build_runner
from monitor.core.scoring.artifact import ModelBundle
from monitor.ingest.kafka import make_producer
from monitor.settings import AlertSettings, KafkaSettings, RunSettings, ThresholdSettings
from monitor.store.alerts_api import query_alerts, record_feedback
from monitor.store.database import init_schema, make_engine
from monitor.store.feedback import apply_false_positive
from monitor.store.repository import load_offsets
from monitor.store.schema import AlertFeedback, SensorState
from pipelines.produce import send_windows
from pipelines.synthetic import fleet_windows, make_fleet
from tests.integration.helpers import end_offsets, run_to_end

pytestmark = pytest.mark.integration


def _state(db: Engine, sensor_id: str) -> tuple[dict[str, Any], int]:
    with db.connect() as conn:
        row = conn.execute(select(SensorState.state, SensorState.revision).where(SensorState.sensor_id == sensor_id)).one()
    return row.state, row.revision


def test_feedback_during_a_run_survives_the_owning_consumer(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle, tmp_path: Path
) -> None:
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(3, wl * 100, seed=13, anomalous=0)
    series = fleet.series["sensor-000"]
    series[wl * 10 : wl * 14, :3] += 10 * series.std(axis=0)[:3]  # one strong anomaly in the first part
    windows = list(fleet_windows(fleet, wl))
    half = len(windows) // 2
    producer = make_producer(kafka_cfg)
    try:
        send_windows(producer, kafka_cfg.topic, windows[:half], fleet.channels, progress=False)
        run_to_end(kafka_cfg, e2e_bundle, db)  # first part durable: stored states at revision 0
        alert = max((a for a in query_alerts(db, limit=100) if a["sensor_id"] == "sensor-000"),
                    key=lambda a: a["window_count"])
        send_windows(producer, kafka_cfg.topic, windows[half:], fleet.channels, progress=False)
    finally:
        producer.close()

    runner = build_runner(kafka_cfg, RunSettings(), ThresholdSettings(), AlertSettings(), e2e_bundle, db,
                          idle_exit_s=10.0)  # a slow rebalance on a loaded machine must not end the run early
    runner.max_poll_records = 12  # many batches: the sensor's state is in memory when the feedback lands
    applied: list[tuple[bool, str]] = []

    def feedback_while_held(stats: RunStats) -> None:
        # Once the consumer holds the sensor's state in memory, with windows of it still to come: what
        # POST /alerts/{id}/feedback does for a false positive.
        if "sensor-000" in runner.engine.sensors and not applied:
            record_feedback(db, alert["id"], "false_positive", "operator", "valve test")
            applied.append(apply_false_positive(db, alert["id"], [3.0] * 10, ThresholdSettings(), AlertSettings()))

    runner.on_batch = feedback_while_held
    stats = runner.run()

    assert applied and applied[0][0] is True, applied
    # Either the revision fence dropped a batch (stale) and the state was re-read, or a rebalance after the
    # feedback made the consumer re-read it anyway; the fence alone is pinned by the test below.
    print(f"stale batches after the feedback: {stats.stale_batches}")
    assert load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) == {
        p: o for p, o in end_offsets(kafka_cfg).items() if o > 0}
    state, revision = _state(db, "sensor-000")
    assert revision >= 2  # every write moves it: the batches' and the feedback's
    with db.connect() as conn:
        assert conn.execute(select(AlertFeedback.threshold_applied)).scalar_one() is True

    # The same records without feedback, in another group and database: the forgiven levels must still weigh
    # in the final threshold statistics (an overwrite by the consumer would leave them equal).
    ref_db = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    init_schema(ref_db)
    run_to_end(kafka_cfg.model_copy(update={"group_id": f"{kafka_cfg.group_id}-ref"}), e2e_bundle, ref_db)
    reference, _ = _state(ref_db, "sensor-000")
    assert state["threshold"]["mean"] > reference["threshold"]["mean"] + 0.01, (state, reference)
    assert state["threshold"]["seen"] == reference["threshold"]["seen"]  # every window judged once in the end
    ref_db.dispose()


def test_a_batch_never_overwrites_a_state_whose_revision_moved(db: Engine) -> None:
    """The fence itself, on both databases: a state read at revision 0 cannot be written once feedback moved it,
    each write moves the revision, and a writer that believed the sensor new cannot overwrite it."""
    from datetime import datetime, timezone

    from sqlalchemy import update

    from monitor.core.engine import SensorRow
    from monitor.errors import StaleStateError
    from monitor.store.repository import commit_batch, load_sensor_states

    at = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def write(state: dict[str, Any], revision: int | None, offsets: dict[int, int],
              expected: dict[int, int | None]) -> None:
        commit_batch(db, group_id="g", topic="t", alerts=[], offsets=offsets, expected=expected,
                     sensors=[SensorRow("s1", 0, state, 1.0, 2.0, at, "m1", revision)])

    write({"v": 1}, None, {0: 10}, {0: None})  # first write: stored at revision 0
    assert load_sensor_states(db, ["s1"])["s1"].revision == 0
    with db.begin() as conn:  # what apply_false_positive does besides rewriting the state
        conn.execute(update(SensorState).where(SensorState.sensor_id == "s1").values(
            state={"v": "feedback"}, revision=SensorState.revision + 1))
    with pytest.raises(StaleStateError, match="s1"):
        write({"v": 2}, 0, {0: 20}, {0: 10})
    row = load_sensor_states(db, ["s1"])["s1"]
    assert row.state == {"v": "feedback"} and row.revision == 1
    assert load_offsets(db, "g", "t") == {0: 10}  # the whole batch was rolled back, its offset too
    write({"v": 3}, 1, {0: 20}, {0: 10})  # re-read at revision 1: accepted; every write moves the revision
    row = load_sensor_states(db, ["s1"])["s1"]
    assert row.state == {"v": 3} and row.revision == 2
    # another writer that believed the sensor new (its windows reached a second consumer): refused as well
    with pytest.raises(StaleStateError, match="s1"):
        write({"v": "second writer"}, None, {1: 5}, {1: None})
    assert load_sensor_states(db, ["s1"])["s1"].state == {"v": 3} and load_offsets(db, "g", "t") == {0: 20}


def test_feedback_reads_the_state_under_the_lock_of_a_batch_commit_in_progress(db: Engine) -> None:
    """A locked read-modify-write on both databases: feedback that starts while a consumer's batch transaction
    holds the sensor's state waits for it and forgives the committed state, so none of the batch's windows is
    lost (without the lock, SQLite's feedback read the state from before the batch and wrote it back)."""
    import threading
    from datetime import datetime, timezone

    from sqlalchemy import update

    from monitor.core.engine import Engine as Judge
    from monitor.core.scoring.scorer import Scorer
    from monitor.store.repository import commit_batch, load_sensor_states
    from pipelines.synthetic import normal_series
    from tests.unit.artifacts import small_bundle
    from tests.unit.helpers import records_of

    bundle = small_bundle()
    wl = bundle.meta.window_len
    values = normal_series(12 * wl, 3, seed=5)
    values[3 * wl : 4 * wl] += 1e3
    records = records_of(bundle, values, "s1")
    judge = Judge(Scorer(bundle), ThresholdSettings(), AlertSettings())
    first = judge.process(records[:8])
    commit_batch(db, group_id="g", topic="t", alerts=list(first.alerts.values()), sensors=Judge.rows(first),
                 offsets={0: 8}, expected={0: None})
    alert_id = query_alerts(db, limit=10)[-1]["id"]
    record_feedback(db, alert_id, "false_positive", "operator", "not a fault")
    second = Judge.rows(judge.process(records[8:]))  # the consumer's next batch
    done: list[tuple[bool, str]] = []
    feedback = threading.Thread(target=lambda: done.append(
        apply_false_positive(db, alert_id, [3.0] * 4, ThresholdSettings(), AlertSettings())))
    with db.begin() as conn:  # the batch's transaction, as commit_batch writes it, not committed yet
        conn.execute(update(SensorState).where(SensorState.sensor_id == "s1").values(
            state=second[0].state, updated_at=datetime.now(timezone.utc)))
        feedback.start()
        feedback.join(1.0)
        assert feedback.is_alive(), "feedback must wait for the batch's lock"
    feedback.join(30)
    assert done and done[0][0] is True, done
    row = load_sensor_states(db, ["s1"])["s1"]
    assert row.revision == 1
    assert row.state["order"]["judged"] == 12  # the forgiven state is the one the batch committed
