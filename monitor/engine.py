"""The pure processing core: decoded windows in, decisions, alert changes and sensor state out.

No Kafka, no SQL: the runner hands in records and persists what comes out. Windows of one sensor must
arrive in order (they do: records are keyed by sensor id, so a sensor lives on one partition).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from monitor import metrics
from monitor.contract import SensorWindow
from monitor.incidents import AlertRecord, IncidentTracker
from monitor.scoring.artifact import ModelBundle
from monitor.scoring.scorer import Scorer
from monitor.settings import AlertSettings, ThresholdSettings
from monitor.thresholds import Decision, SensorThreshold


@dataclass(frozen=True, slots=True)
class Record:
    """A decoded window with its source coordinates."""

    partition: int
    offset: int
    window: SensorWindow


@dataclass
class SensorContext:
    sensor_id: str
    partition: int
    threshold: SensorThreshold
    incidents: IncidentTracker
    model_version: str
    last_score: float | None = None
    last_threshold: float | None = None
    last_window_end: datetime | None = None

    def snapshot(self) -> dict[str, Any]:
        return {"threshold": self.threshold.snapshot(), "incidents": self.incidents.snapshot()}


@dataclass
class BatchOutcome:
    alerts: dict[tuple[str, datetime], AlertRecord] = field(default_factory=dict)
    touched: dict[str, SensorContext] = field(default_factory=dict)
    decisions: list[tuple[Record, Decision]] = field(default_factory=list)




class Engine:
    """Holds the per-sensor state of the sensors this process currently owns."""

    def __init__(self, scorer: Scorer, threshold_cfg: ThresholdSettings, alert_cfg: AlertSettings) -> None:
        self.scorer = scorer
        self.threshold_cfg = threshold_cfg
        self.alert_cfg = alert_cfg
        self.sensors: dict[str, SensorContext] = {}

    def new_context(self, sensor_id: str, partition: int) -> SensorContext:
        cal = self.scorer.bundle.meta.calibration
        threshold = SensorThreshold(
            self.threshold_cfg, self.alert_cfg, log_mean=cal.log_score_mean, log_std=cal.log_score_std
        )
        return SensorContext(
            sensor_id, partition, threshold, IncidentTracker(sensor_id, self.alert_cfg, self.scorer.channels),
            self.scorer.version,
        )

    def restore_context(
        self, sensor_id: str, partition: int, state: dict[str, Any], model_version: str
    ) -> SensorContext:
        if model_version != self.scorer.version:
            # Another model's score scale: keep the open alert, re-warm the threshold from the new calibration.
            ctx = self.new_context(sensor_id, partition)
        else:
            ctx = SensorContext(
                sensor_id, partition, SensorThreshold.restore(self.threshold_cfg, self.alert_cfg, state["threshold"]),
                IncidentTracker(sensor_id, self.alert_cfg, self.scorer.channels), model_version,
            )
        ctx.incidents = IncidentTracker.restore(sensor_id, self.alert_cfg, self.scorer.channels, state["incidents"])
        if ctx.incidents.current is not None:
            ctx.threshold.active = True
        return ctx

    def swap(self, bundle: ModelBundle) -> None:
        """Hot swap: score with ``bundle`` from now on. Sensors in memory keep their open alerts and get
        thresholds re-warmed from the new model's calibration (another score scale); new alerts carry the
        new version. Sensors loaded later from the database are re-warmed by ``restore_context``."""
        self.scorer = Scorer(bundle, self.scorer.batch_size)
        for sensor_id, ctx in list(self.sensors.items()):
            self.sensors[sensor_id] = self.restore_context(sensor_id, ctx.partition, ctx.snapshot(), ctx.model_version)
        metrics.MODEL_INFO.clear()
        metrics.MODEL_INFO.labels(bundle.meta.version).set(1)

    def forget(self, partitions: set[int] | None = None) -> None:
        """Drop state of sensors on these partitions (all when None): it is in the database already."""
        if partitions is None:
            self.sensors.clear()
            return
        for sensor_id in [s for s, c in self.sensors.items() if c.partition in partitions]:
            del self.sensors[sensor_id]

    def missing(self, records: Sequence[Record]) -> list[str]:
        return sorted({r.window.sensor_id for r in records} - self.sensors.keys())

    def process(self, records: Sequence[Record]) -> BatchOutcome:
        """Score all windows in one batch, then judge them in order, sensor by sensor."""
        outcome = BatchOutcome()
        if not records:
            return outcome
        scores = self.scorer.score(np.stack([r.window.values for r in records]))
        values = scores.score.tolist()  # Python floats once for the batch, not one numpy scalar per window
        for i, record in enumerate(records):
            w = record.window
            ctx = self.sensors.get(w.sensor_id)
            if ctx is None:
                ctx = self.sensors[w.sensor_id] = self.new_context(w.sensor_id, record.partition)
            ctx.partition = record.partition
            score = values[i]
            decision = ctx.threshold.update(score)
            alert = ctx.incidents.update(
                decision, window_start=w.window_start, window_end=w.window_end, partition=record.partition,
                offset=record.offset, contributions=scores.contributions[i], model_version=ctx.model_version,
                std=ctx.threshold.std,
            )
            if alert is not None:
                outcome.alerts[alert.key] = alert
            ctx.last_score, ctx.last_threshold, ctx.last_window_end = score, decision.threshold, w.window_end
            outcome.touched[w.sensor_id] = ctx
            outcome.decisions.append((record, decision))
        return outcome
