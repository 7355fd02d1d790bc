"""A lasting change of operating point becomes normal only by the operator's verdict ``new_normal``.

Two sensors take the same lasting level shift. Without feedback, the alert of one stays open for as long as the
shift lasts (nothing anomalous is learned as normal); after ``new_normal`` on the other's alert, the running
consumer re-reads that sensor's state (revision fence), judges its windows against the adopted level and closes
the alert; the shifted level opens no new alert.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select

from monitor.core.scoring.artifact import ModelBundle
from monitor.ingest.kafka import make_producer
from monitor.settings import KafkaSettings
from monitor.store.alerts_api import query_alerts, record_feedback
from monitor.store.feedback import apply_new_normal
from monitor.store.schema import AlertFeedback, SensorState
from monitor.training.exclusion import false_positive_alert_ids
from pipelines.produce import send_windows
from pipelines.synthetic import fleet_windows, make_fleet
from tests.integration.helpers import run_to_end

pytestmark = pytest.mark.integration


def _alerts(db: Engine, sensor_id: str) -> list[dict[str, Any]]:
    return sorted((a for a in query_alerts(db, limit=1000) if a["sensor_id"] == sensor_id), key=lambda a: a["opened_at"])


def test_new_normal_adopts_a_lasting_shift_and_nothing_else_does(
    kafka_cfg: KafkaSettings, db: Engine, e2e_bundle: ModelBundle
) -> None:
    wl = e2e_bundle.meta.window_len
    fleet = make_fleet(2, wl * 120, seed=21, anomalous=0)
    for sensor_id in ("sensor-000", "sensor-001"):  # the same lasting shift of three channels on both sensors
        series = fleet.series[sensor_id]
        series[wl * 30 :, :3] += 8 * series[: wl * 30, :3].std(axis=0)
    windows = list(fleet_windows(fleet, wl))
    first, rest = windows[: 2 * 60], windows[2 * 60 :]  # (sensor, start, end, values), both sensors interleaved
    producer = make_producer(kafka_cfg)
    try:
        send_windows(producer, kafka_cfg.topic, first, fleet.channels, progress=False)
        producer.flush()
        run_to_end(kafka_cfg, e2e_bundle, db)
        opened = {s: _alerts(db, s) for s in ("sensor-000", "sensor-001")}
        for sensor_id, alerts in opened.items():  # the shift is an alert that is still open on both
            assert alerts and alerts[-1]["closed_at"] is None, (sensor_id, alerts)
        target = opened["sensor-000"][-1]
        with db.connect() as conn:
            before = conn.execute(select(SensorState.revision).where(SensorState.sensor_id == "sensor-000")).scalar_one()
        record_feedback(db, target["id"], "new_normal", "operator", "pump replaced: new operating point")
        applied, note = apply_new_normal(db, target["id"])
        assert applied, note
        assert apply_new_normal(db, target["id"]) == (True, "already applied")  # once per verdict
        with db.connect() as conn:
            assert conn.execute(select(AlertFeedback.threshold_note)).scalar_one() == note
            revision = conn.execute(select(SensorState.revision).where(SensorState.sensor_id == "sensor-000")).scalar_one()
        assert revision == before + 1  # one write: the adoption (once per verdict)
        assert target["id"] in false_positive_alert_ids(db)  # its windows are normal data for the next training

        send_windows(producer, kafka_cfg.topic, rest, fleet.channels, progress=False)
        producer.flush()
    finally:
        producer.close()
    run_to_end(kafka_cfg, e2e_bundle, db)

    adopted, untouched = _alerts(db, "sensor-000"), _alerts(db, "sensor-001")
    assert untouched[-1]["id"] == opened["sensor-001"][-1]["id"] and untouched[-1]["closed_at"] is None, untouched
    assert adopted[-1]["id"] == target["id"], adopted  # no new alert on the adopted level
    assert adopted[-1]["closed_at"] is not None, adopted[-1]
    assert adopted[-1]["closed_at"] < rest[len(rest) // 4][2], (adopted[-1], "closed late")
