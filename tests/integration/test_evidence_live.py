"""One judge, end to end on the real broker and both databases: for every window of every alert, the score and
threshold the API serves (GET /alerts/{id} context) are the live consumer's decision, bit for bit; an alert
without decision-time evidence is re-scored with the model version that fired it, or says it cannot be."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, update

from monitor.consumer.runner import build_runner
from monitor.core.engine import BatchOutcome, Record
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.thresholds import Decision
from monitor.settings import AlertSettings, KafkaSettings, RunSettings, ThresholdSettings
from monitor.store.alerts_api import query_alerts
from monitor.store.schema import Alert, AlertEvidence
from pipelines.synthetic import make_fleet
from tests.integration.api_helpers import api_bundle, api_model_path, client, keys  # noqa: F401 - fixtures
from tests.integration.helpers import produce_fleet

pytestmark = pytest.mark.integration


def test_every_alerted_window_is_served_as_the_consumer_decided_it(
    kafka_cfg: KafkaSettings, db: Engine, api_bundle: ModelBundle, api_model_path: Path
) -> None:
    wl = api_bundle.meta.window_len
    fleet = make_fleet(3, wl * 120, seed=11, anomalous=0)
    for sensor, (lo, hi), k in (("sensor-000", (60, 64), 10.0), ("sensor-001", (40, 52), 6.0)):
        series = fleet.series[sensor]
        series[wl * lo : wl * hi, :3] += k * series.std(axis=0)[:3]
    produce_fleet(kafka_cfg, fleet, wl)

    # The live decisions, as the consumer's engine made them (the last one per window, should a batch replay).
    runner = build_runner(kafka_cfg, RunSettings(), ThresholdSettings(), AlertSettings(), api_bundle, db,
                          idle_exit_s=4.0)
    live: dict[tuple[str, int], Decision] = {}
    process = runner.engine.process

    def recording(records: Sequence[Record]) -> BatchOutcome:
        outcome = process(records)
        live.update({(r.window.sensor_id, r.offset): d for r, d in outcome.decisions})
        return outcome

    runner.engine.process = recording  # type: ignore[method-assign]
    runner.run()
    alerts = query_alerts(db, limit=100)
    assert {a["sensor_id"] for a in alerts} >= {"sensor-000", "sensor-001"}, alerts
    read, _ = keys(db)
    api = client(db, api_model_path, kafka_cfg)

    for alert in alerts:
        r = api.get(f"/alerts/{alert['id']}?around=3", headers=read)
        assert r.status_code == 200, r.text
        ctx = r.json()["context"]
        assert ctx["source"] == "evidence" and ctx["scored_with"] == "api-1", ctx["note"]
        inside = [w for w in ctx["windows"] if w["in_alert"]]
        expected = sorted(o for s, o in live if s == alert["sensor_id"]
                          and alert["first_offset"] <= o <= alert["last_offset"])
        assert [w["offset"] for w in inside] == expected and len(expected) >= alert["window_count"] >= 1
        for w in inside:
            decision = live[(alert["sensor_id"], w["offset"])]
            assert w["score"] == decision.score and w["threshold"] == decision.threshold  # bit for bit
            assert w["values"] is not None and len(w["values"]) == wl
        assert max(w["score"] for w in inside) == alert["peak_score"]
        peak = max(inside, key=lambda w: w["score"])
        assert peak["threshold"] == alert["threshold_at_peak"] and peak["score"] > peak["threshold"]
        before = [w for w in ctx["windows"] if w["offset"] < alert["first_offset"]]
        assert len(before) == 3 and all(w["score"] == live[(alert["sensor_id"], w["offset"])].score for w in before)

    # An alert from before evidence was kept: re-scored with the version that fired it, and said so.
    alert = alerts[0]
    with db.begin() as conn:
        conn.execute(delete(AlertEvidence).where(AlertEvidence.sensor_id == alert["sensor_id"],
                                                 AlertEvidence.opened_at == alert["opened_at"]))
    ctx = api.get(f"/alerts/{alert['id']}?around=2", headers=read).json()["context"]
    assert ctx["source"] == "rescored" and ctx["scored_with"] == "api-1"
    assert "no decision-time evidence" in ctx["note"] and "approximate" in ctx["note"]
    assert all(w["score"] is not None for w in ctx["windows"])
    # ... and when that version is nowhere to be loaded, no scores rather than another model's
    with db.begin() as conn:
        conn.execute(update(Alert).where(Alert.id == alert["id"]).values(model_version="gone-1"))
    ctx = api.get(f"/alerts/{alert['id']}?around=2", headers=read).json()["context"]
    assert ctx["scored_with"] is None and "gone-1" in ctx["note"] and "cannot be loaded" in ctx["note"]
    assert ctx["windows"] and all(w["score"] is None for w in ctx["windows"])


def test_evidence_is_upserted_and_a_long_alert_pruned_to_its_head_tail_and_peak(db: Engine) -> None:
    from datetime import datetime, timedelta, timezone

    import numpy as np

    from monitor.core.evidence import EvidenceRow, Mark, Prune
    from monitor.store.evidence import load_evidence, write_evidence

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    scores = [1.0 + i / 3 for i in range(12)]
    scores[6] = 1e3 + 1 / 7  # the peak, in the middle: kept
    rows = [EvidenceRow("s", t0, Mark(t0 + timedelta(minutes=i), t0 + timedelta(minutes=i + 1), 100 + i, scores[i],
                                      np.exp(0.1 * i), np.array([0.25, 0.75, np.nan]), "m1", i > 0, i))
            for i in range(12)]  # seq 0 (before the alert), then 1..11
    with db.begin() as conn:
        write_evidence(db, conn, rows, [])
        write_evidence(db, conn, rows[5:], [Prune("s", t0, 2, 11 - 3, scores[6])])  # a replay, then the bound
    kept = load_evidence(db, "s", t0)
    assert [r.mark.seq for r in kept] == [0, 1, 2, 6, 9, 10, 11]
    for row in kept:  # as written, bit for bit; a non-finite contribution comes back as NaN
        i = row.mark.seq
        assert row.mark.score == scores[i] and row.mark.threshold == np.exp(0.1 * i) and row.mark.offset == 100 + i
        assert row.mark.contributions[:2].tolist() == [0.25, 0.75] and np.isnan(row.mark.contributions[2])
    assert load_evidence(db, "s", t0 + timedelta(seconds=1)) == []
