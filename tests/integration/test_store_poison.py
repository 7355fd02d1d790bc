"""Poison isolation at the store, on both databases: a batch the database refuses for a data reason is bisected
to the records behind the refusal, and the rest of it is committed."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, text

from monitor.consumer.batches import isolate
from monitor.core.engine import Engine as Judge
from monitor.core.engine import Record
from monitor.core.scoring.scorer import Scorer
from monitor.errors import StoreRejectedError
from monitor.settings import AlertSettings, ThresholdSettings
from monitor.store.repository import commit_batch, load_offsets, load_sensor_states, probe_outputs
from monitor.store.schema import Alert
from pipelines.synthetic import normal_series
from tests.unit.artifacts import small_bundle
from tests.unit.helpers import records_of

pytestmark = pytest.mark.integration

PEAK_LIMIT = 1000.0  # the test's database refuses alerts with a peak score above it


def refuse_alerts_above(db: Engine, limit: float) -> None:
    """Make the real database refuse some data: a CHECK constraint (PostgreSQL) or triggers (SQLite)."""
    with db.begin() as conn:
        if db.dialect.name == "postgresql":
            conn.execute(text(f"ALTER TABLE alerts ADD CONSTRAINT sane_peak CHECK (peak_score < {limit})"))
            return
        for event in ("INSERT", "UPDATE"):
            conn.execute(text(
                f"CREATE TRIGGER sane_peak_{event.lower()} BEFORE {event} ON alerts WHEN NEW.peak_score >= {limit} "
                "BEGIN SELECT RAISE(ABORT, 'peak score out of range'); END"))


def batch_with_one_poison_record() -> tuple[list[Record], Record]:
    bundle = small_bundle()
    wl = bundle.meta.window_len
    values = normal_series(12 * wl, 3, seed=5)
    values[3 * wl : 4 * wl] += 1e6  # one absurd window: it opens an alert at once, with an enormous peak
    poisoned = records_of(bundle, values, "s1", partition=0)
    clean = [Record(1, r.offset, r.window.__class__(
        "s2", r.window.window_start, r.window.window_end, r.window.channels, r.window.values)) for r in
        records_of(bundle, normal_series(12 * wl, 3, seed=6), "s2", partition=1)]
    records = [r for pair in zip(poisoned, clean) for r in pair]
    return records, poisoned[3]


def test_the_refused_record_is_found_and_the_rest_of_the_batch_committed(db: Engine) -> None:
    refuse_alerts_above(db, PEAK_LIMIT)
    records, poison = batch_with_one_poison_record()
    judge = Judge(Scorer(small_bundle()), ThresholdSettings(), AlertSettings())
    whole = judge.process(records)
    assert max(a.peak_score for a in whole.alerts.values()) > PEAK_LIMIT  # the poison's alert is in the batch
    with pytest.raises(StoreRejectedError):
        commit_batch(db, group_id="g", topic="t", alerts=list(whole.alerts.values()), sensors=[],
                     offsets={0: 12, 1: 12}, expected={0: None, 1: None})
    assert load_offsets(db, "g", "t") == {}  # nothing of the refused batch is stored

    judge.forget()
    outcome, refused = isolate(records, engine=judge, db=db)
    assert [r for r, _ in refused] == [poison]
    assert "IntegrityError" in refused[0][1]
    assert all(a.peak_score < PEAK_LIMIT for a in outcome.alerts.values())
    assert {r.window.sensor_id for r, _ in outcome.decisions} == {"s1", "s2"} and len(outcome.decisions) == 23
    commit_batch(db, group_id="g", topic="t", alerts=list(outcome.alerts.values()), sensors=Judge.rows(outcome),
                 offsets={0: 12, 1: 12}, expected={0: None, 1: None})
    assert load_offsets(db, "g", "t") == {0: 12, 1: 12}
    states = load_sensor_states(db, ["s1", "s2"])
    assert states["s1"].state["order"]["judged"] == 11 and states["s2"].state["order"]["judged"] == 12
    with db.connect() as conn:
        opened = conn.execute(select(Alert.opened_at).where(Alert.sensor_id == "s1")).scalars().all()
    assert poison.window.window_start not in opened  # the poison's alert is gone with it


def test_a_probe_stores_nothing_and_tells_a_refusal_from_an_accepted_output(db: Engine) -> None:
    refuse_alerts_above(db, PEAK_LIMIT)
    records, _ = batch_with_one_poison_record()
    judge = Judge(Scorer(small_bundle()), ThresholdSettings(), AlertSettings())
    outcome = judge.process(records[:6])  # before the poison
    probe_outputs(db, alerts=list(outcome.alerts.values()), sensors=Judge.rows(outcome))
    assert load_sensor_states(db, ["s1", "s2"]) == {}  # rolled back
    outcome = judge.process(records[6:8])
    with pytest.raises(StoreRejectedError, match="IntegrityError"):
        probe_outputs(db, alerts=list(outcome.alerts.values()), sensors=Judge.rows(outcome))
