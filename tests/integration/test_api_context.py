"""An alert's context: scores as decided (evidence) and values read back from the real broker; false-positive
feedback teaches the sensor's threshold; the live consumer group's offsets are never touched; expired records
are reported and the decisions still plotted."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from sqlalchemy import Engine, Text, cast, select

from monitor.core.scoring.artifact import ModelBundle
from monitor.settings import KafkaSettings
from monitor.store.alerts_api import query_alerts
from monitor.store.feedback import false_positive_ranges
from monitor.store.schema import SensorState
from pipelines.synthetic import make_fleet
from tests.integration.api_helpers import api_bundle, api_model_path, client, keys  # noqa: F401 - fixtures
from tests.integration.helpers import produce_fleet, run_to_end

pytestmark = pytest.mark.integration


def _committed(cfg: KafkaSettings) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=cfg.bootstrap_servers, group_id=cfg.group_id, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(cfg.topic, p)) for p in range(3)}
    finally:
        consumer.close()


def _stored_state(db: Engine, sensor_id: str) -> tuple[str, int, object]:
    """The sensor_state row as stored: the state's JSON text (not the parsed dict), revision, updated_at."""
    with db.connect() as conn:
        row = conn.execute(
            select(cast(SensorState.state, Text), SensorState.revision, SensorState.updated_at)
            .where(SensorState.sensor_id == sensor_id)
        ).one()
    return row[0], row[1], row[2]


def test_context_plots_the_alert_and_false_positive_feedback_teaches_the_threshold(
    kafka_cfg: KafkaSettings, db: Engine, api_bundle: ModelBundle, api_model_path: Path
) -> None:
    wl = api_bundle.meta.window_len
    fleet = make_fleet(3, wl * 120, seed=11, anomalous=0)
    series = fleet.series["sensor-000"]  # one strong, known anomaly: 4 windows shifted by 10 std on 3 channels
    series[wl * 60 : wl * 64, :3] += 10 * series.std(axis=0)[:3]
    produce_fleet(kafka_cfg, fleet, wl)
    run_to_end(kafka_cfg, api_bundle, db)
    alerts = query_alerts(db, limit=100)
    assert alerts, "the injected anomalies raised no alert"
    alert = max((a for a in alerts if a["sensor_id"] == "sensor-000"), key=lambda a: a["window_count"])
    committed = _committed(kafka_cfg)
    read, write = keys(db)
    api = client(db, api_model_path, kafka_cfg)

    r = api.get(f"/alerts/{alert['id']}?around=5", headers=read)
    assert r.status_code == 200, r.text
    ctx = r.json()["context"]
    assert ctx["available"] is True and ctx["scored_with"] == "api-1"
    assert ctx["channels"] == list(fleet.channels)
    inside = [w for w in ctx["windows"] if w["in_alert"]]
    before = [w for w in ctx["windows"] if w["offset"] < alert["first_offset"]]
    after = [w for w in ctx["windows"] if w["offset"] > alert["last_offset"]]
    assert len(inside) >= alert["window_count"] >= 1  # pending windows before the opening one belong to it too
    assert 4 <= len(inside) <= 6
    assert len(before) == 5 and (len(after) == 5 or alert["closed_at"] is None)
    assert all(len(w["values"]) == wl and len(w["values"][0]) == len(fleet.channels) for w in ctx["windows"])
    assert [w["window_start"] for w in ctx["windows"]] == sorted(w["window_start"] for w in ctx["windows"])
    # The scores are the decisions recorded at the time (no re-scoring): the peak is the stored one exactly, and
    # the threshold is frozen across the alert (protected), so every alerted window shows threshold_at_peak.
    assert ctx["source"] == "evidence"
    assert max(w["score"] for w in inside) == alert["peak_score"]
    assert all(w["threshold"] == alert["threshold_at_peak"] for w in inside)
    assert all(w["score"] is not None and w["threshold"] is not None for w in before)
    assert max(w["score"] for w in inside) > alert["threshold_at_peak"]
    assert sum(ctx["contributions"].values()) == pytest.approx(1.0, abs=1e-4)
    assert sorted(ctx["contributions"], key=ctx["contributions"].get, reverse=True)[0] == alert["top_channels"][0]

    with db.connect() as conn:
        state_before = conn.execute(select(SensorState.state).where(SensorState.sensor_id == alert["sensor_id"])).scalar_one()
    r = api.post(f"/alerts/{alert['id']}/feedback", headers=write, json={"verdict": "false_positive", "note": "test rig"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["threshold_applied"] is True, body["threshold_note"]
    assert f"{len(inside)} window levels" in body["threshold_note"]
    with db.connect() as conn:
        state_after = conn.execute(select(SensorState.state).where(SensorState.sensor_id == alert["sensor_id"])).scalar_one()
    # The anomalous levels now count as normal: the mean of the log score rose, the incident state is untouched.
    assert state_after["threshold"]["mean"] > state_before["threshold"]["mean"]
    assert state_after["incidents"] == state_before["incidents"]
    # Applied once per alert: a repeated false positive, and false -> true -> false, leave the stored
    # threshold state byte for byte as it was (same JSON text, same revision).
    stored = _stored_state(db, alert["sensor_id"])
    again = api.post(f"/alerts/{alert['id']}/feedback", headers=write, json={"verdict": "false_positive"})
    assert again.status_code == 200, again.text
    assert again.json()["threshold_applied"] is True and again.json()["threshold_note"] == "already applied"
    assert _stored_state(db, alert["sensor_id"]) == stored
    flip = api.post(f"/alerts/{alert['id']}/feedback", headers=write, json={"verdict": "true_positive"})
    assert flip.status_code == 200, flip.text
    assert flip.json()["threshold_applied"] is True and "left as is" in flip.json()["threshold_note"]
    assert flip.json()["alert"]["feedback"]["threshold_applied"] is True
    assert false_positive_ranges(db) == []
    assert _stored_state(db, alert["sensor_id"]) == stored
    back = api.post(f"/alerts/{alert['id']}/feedback", headers=write, json={"verdict": "false_positive"})
    assert back.json()["threshold_applied"] is True and back.json()["threshold_note"] == "already applied"
    assert _stored_state(db, alert["sensor_id"]) == stored
    assert [r[0] for r in false_positive_ranges(db)] == [alert["sensor_id"]]
    assert _committed(kafka_cfg) == committed  # the context reader has no group: the live offsets did not move

    # Records removed by retention: the window values are gone (the note says why); the decisions are still plotted.
    admin = KafkaAdminClient(bootstrap_servers=kafka_cfg.bootstrap_servers)
    try:
        tp = TopicPartition(kafka_cfg.topic, alert["partition"])
        admin.delete_records({tp: alert["last_offset"] + 1})
    finally:
        admin.close()
    r = api.get(f"/alerts/{alert['id']}", headers=read)
    assert r.status_code == 200
    ctx = r.json()["context"]
    assert ctx["available"] is True and "no longer in" in ctx["note"]
    assert ctx["windows"] and all(w["values"] is None for w in ctx["windows"])
    assert max(w["score"] for w in ctx["windows"] if w["in_alert"]) == alert["peak_score"]
    assert r.json()["peak_score"] == alert["peak_score"]
