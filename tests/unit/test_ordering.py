"""Per-sensor window order (monitor.core.ordering) and its mark in the engine's sensor state."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError

from monitor.core.engine import Engine, Record
from monitor.core.ordering import Order, WindowMark, admit
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer
from monitor.observe import health
from monitor.settings import AlertSettings, ThresholdSettings
from monitor.store.database import postgres_timeouts
from monitor.store.repository import is_data_refusal
from pipelines.synthetic import normal_series
from tests.unit.helpers import records_of

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def at(start_s: int, end_s: int) -> tuple[datetime, datetime]:
    return T0 + timedelta(seconds=start_s), T0 + timedelta(seconds=end_s)


def test_a_window_is_new_only_when_it_starts_later_and_ends_no_earlier() -> None:
    mark = WindowMark(*at(10, 20), judged=5)
    assert mark.classify(*at(10, 20)) is Order.DUPLICATE
    assert mark.classify(*at(11, 21)) is Order.NEW
    assert mark.classify(*at(11, 20)) is Order.NEW  # same end, later start
    assert mark.classify(*at(9, 19)) is Order.OUT_OF_ORDER  # older
    assert mark.classify(*at(10, 25)) is Order.OUT_OF_ORDER  # same start, other end: not the judged window
    assert mark.classify(*at(12, 19)) is Order.OUT_OF_ORDER  # ends before the judged one ended
    assert mark.after(*at(11, 21)) == WindowMark(*at(11, 21), judged=6)


def test_the_mark_round_trips_through_json_and_a_missing_or_broken_one_is_none() -> None:
    mark = WindowMark(T0 + timedelta(microseconds=7), T0 + timedelta(seconds=3), judged=42)
    assert WindowMark.from_json(mark.to_json()) == mark
    assert WindowMark.from_json(None) is None
    assert WindowMark.from_json({"start": "x", "end": "2026-01-01T00:00:00Z"}) is None
    assert WindowMark.from_json({**mark.to_json(), "judged": True}) is None


def test_admit_splits_a_batch_in_order_per_sensor_and_leaves_the_marks_alone() -> None:
    recs = [("a", *at(0, 9)), ("a", *at(10, 19)), ("a", *at(10, 19)), ("b", *at(5, 14)), ("a", *at(0, 9)),
            ("a", *at(20, 29)), ("b", *at(0, 9))]
    marks: dict[str, WindowMark | None] = {"b": WindowMark(*at(5, 14), judged=3)}
    out = admit(recs, marks, lambda r: r)
    assert out.new == [recs[0], recs[1], recs[5]]
    assert out.duplicates == [recs[2], recs[3]]  # a re-send within the batch, and of b's stored last window
    assert [r for r, _ in out.late] == [recs[4], recs[6]]
    assert "is not after the last judged window" in out.late[0][1]
    assert marks == {"b": WindowMark(*at(5, 14), judged=3)}


def test_the_engine_keeps_the_mark_in_the_sensor_state_across_restore_and_swap(tiny_bundle: ModelBundle) -> None:
    recs = records_of(tiny_bundle, normal_series(10 * tiny_bundle.meta.window_len, 3, seed=4))
    engine = Engine(Scorer(tiny_bundle), ThresholdSettings(), AlertSettings())
    engine.process(recs[:6])
    ctx = engine.sensors["s1"]
    last = recs[5].window
    assert ctx.order == WindowMark(last.window_start, last.window_end, judged=6)
    state = ctx.snapshot()
    assert state["order"]["judged"] == 6
    other = Engine(Scorer(tiny_bundle), ThresholdSettings(), AlertSettings())
    restored = other.restore_context("s1", 0, state, "another-model")  # re-warmed threshold, same order
    assert restored.order == ctx.order
    engine.swap(replace(tiny_bundle, meta=replace(tiny_bundle.meta, version="tiny-2")))
    assert engine.sensors["s1"].order == ctx.order
    # what the consumer does with a replay of a stored range: every window is older, none is judged twice
    out = admit(recs, {"s1": engine.sensors["s1"].order}, lambda r: (r.window.sensor_id, r.window.window_start,
                                                                       r.window.window_end))
    assert out.new == recs[6:] and out.duplicates == [recs[5]] and len(out.late) == 5


def test_a_state_without_a_mark_judges_its_next_window() -> None:
    recs = [("a", *at(0, 9))]
    assert admit(recs, {"a": WindowMark.from_json(None)}, lambda r: r).new == recs


def test_healthz_turns_503_with_the_reason_once_batches_keep_failing() -> None:
    health.batch_durable()
    health.beat()
    try:
        health.batch_failed("batch not durable: refused", now=100.0)
        health.batch_failed("batch not durable: refused again", now=150.0)  # the clock runs from the first
        alive, body = health.liveness(60.0, now=130.0, last=129.0, failing_limit_s=40.0)
        assert alive and body["status"] == "ok"
        alive, body = health.liveness(60.0, now=141.0, last=140.0, failing_limit_s=40.0)
        assert not alive and body["status"] == "failing" and body["reason"] == "batch not durable: refused again"
        assert body["seconds_failing"] == 41.0
        assert health.liveness(60.0, now=141.0, last=140.0)[0]  # not checked without a limit
        health.batch_durable()
        assert health.liveness(60.0, now=141.0, last=140.0, failing_limit_s=40.0)[0]
    finally:
        health.batch_durable()


def test_data_refusals_are_told_from_outages() -> None:
    orig = Exception("driver")
    assert is_data_refusal(DataError("INSERT", {}, orig))
    assert is_data_refusal(IntegrityError("INSERT", {}, orig))
    assert is_data_refusal(StatementError("bind failed", "INSERT", {}, ValueError("naive datetime")))
    assert not is_data_refusal(OperationalError("INSERT", {}, orig))


def test_postgres_timeouts_are_added_unless_the_url_sets_them() -> None:
    base = "postgresql+psycopg://u:p@h:5432/db"
    idle = "idle_in_transaction_session_timeout"
    assert postgres_timeouts(base, 2.4, 1.5) == {"connect_timeout": 2,
                                                 "options": f"-c statement_timeout=1500 -c {idle}=1500"}
    assert postgres_timeouts(base, 0.1, 0.0001) == {"connect_timeout": 1, "options": f"-c statement_timeout=1 -c {idle}=1"}
    args = postgres_timeouts(f"{base}?connect_timeout=7&options=-csearch_path%3Ds1", 2, 3)
    assert args == {"options": f"-csearch_path=s1 -c statement_timeout=3000 -c {idle}=3000"}
    assert postgres_timeouts(f"{base}?options=-c%20statement_timeout%3D5%20-c%20{idle}%3D9", 2, 3) == {
        "connect_timeout": 2}
    assert postgres_timeouts(f"{base}?options=-c%20statement_timeout%3D5", 2, 3) == {
        "connect_timeout": 2, "options": f"-c statement_timeout=5 -c {idle}=3000"}


def test_a_back_dated_window_cannot_reopen_an_older_incident_key(tiny_bundle: ModelBundle) -> None:
    wl = tiny_bundle.meta.window_len
    values = normal_series(40 * wl, 3, seed=99)
    values[20 * wl : 26 * wl] += 25.0
    recs = records_of(tiny_bundle, values)
    engine = Engine(Scorer(tiny_bundle), ThresholdSettings(), AlertSettings(min_hits=2, min_normal=2))
    outcome = engine.process(recs)
    (alert,) = outcome.alerts.values()
    opening = next(r for r in recs if r.window.window_start == alert.opened_at)
    again = Record(0, 99, opening.window)  # the anomalous window re-sent much later
    shifted = Record(0, 100, replace(opening.window, window_end=recs[-1].window.window_end))  # back-dated start
    out = admit([again, shifted], {"s1": engine.sensors["s1"].order},
                lambda r: (r.window.sensor_id, r.window.window_start, r.window.window_end))
    assert out.new == [] and [r for r, _ in out.late] == [again, shifted]
