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

from monitor.contract import SensorWindow
from monitor.incidents import AlertRecord, IncidentTracker
from monitor.ordering import WindowMark, first_mark
from monitor.scoring.artifact import ModelBundle
from monitor.scoring.baseline import InputBaseline
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
    baseline: InputBaseline | None = None  # input re-centring (None: at the model's centre until first use)
    last_score: float | None = None
    last_threshold: float | None = None
    last_window_end: datetime | None = None
    revision: int | None = None  # stored revision the state was read at (None: never stored); see commit_batch
    order: WindowMark | None = None  # the last judged window (monitor.ordering); None: none judged or recorded

    def snapshot(self) -> dict[str, Any]:
        state = {"threshold": self.threshold.snapshot(), "incidents": self.incidents.snapshot()}
        if self.order is not None:
            state["order"] = self.order.to_json()
        if self.baseline is not None:
            state["baseline"] = self.baseline.snapshot()
        return state


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
        threshold = SensorThreshold.from_calibration(self.threshold_cfg, self.alert_cfg, cal)
        return SensorContext(
            sensor_id, partition, threshold, IncidentTracker(sensor_id, self.alert_cfg, self.scorer.channels),
            self.scorer.version, self.new_baseline(None),
        )

    def new_baseline(self, data: dict[str, Any] | None) -> InputBaseline:
        """The sensor's input re-centring for the current model (fresh when ``data`` is None)."""
        cfg = self.threshold_cfg
        return InputBaseline.restore(
            self.scorer.bundle.scaler, cfg.recentre_rate, cfg.recentre_k, data,
            drifting=self.scorer.bundle.meta.calibration.drifting, drift_rate=cfg.drift_rate, drift_k=cfg.drift_k,
        )

    def restore_context(
        self, sensor_id: str, partition: int, state: dict[str, Any], model_version: str, revision: int | None = None
    ) -> SensorContext:
        if model_version != self.scorer.version:
            # Another model's score scale: keep the open alert, re-warm the threshold from the new calibration.
            # A sensor past its warm-up is not new: the new model judges it at once (no second probation).
            ctx = self.new_context(sensor_id, partition)
            if not isinstance(state.get("threshold", {}).get("warm"), list):
                ctx.threshold.warm = None
        else:
            ctx = SensorContext(
                sensor_id, partition, SensorThreshold.restore(self.threshold_cfg, self.alert_cfg, state["threshold"]),
                IncidentTracker(sensor_id, self.alert_cfg, self.scorer.channels), model_version,
                self.new_baseline(state.get("baseline")),
            )
        ctx.incidents = IncidentTracker.restore(sensor_id, self.alert_cfg, self.scorer.channels, state["incidents"])
        if ctx.incidents.current is not None:
            ctx.threshold.active = True
        ctx.revision = revision
        ctx.order = WindowMark.from_json(state.get("order"))
        return ctx

    def swap(self, bundle: ModelBundle) -> None:
        """Hot swap: score with ``bundle`` from now on. Sensors in memory keep their open alerts and get
        thresholds re-warmed from the new model's calibration (another score scale); new alerts carry the
        new version. Sensors loaded later from the database are re-warmed by ``restore_context``."""
        self.scorer = Scorer(bundle, self.scorer.batch_size, device=self.scorer.device)
        for sensor_id, ctx in list(self.sensors.items()):
            self.sensors[sensor_id] = self.restore_context(sensor_id, ctx.partition, ctx.snapshot(), ctx.model_version,
                                                           ctx.revision)

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
        """Score the windows in batches and judge them in order, sensor by sensor.

        Without re-centring (``recentre_rate`` 0 and no drifting channel re-centred) all windows are one batch.
        With it, a window's input offset depends on its sensor's previous window, so the k-th window of every
        sensor forms batch k, and each window is judged before its sensor's next one is scored: the offsets
        learn only from windows judged normal outside an alert (an anomaly never teaches the detector that it
        is normal)."""
        outcome = BatchOutcome()
        if not records:
            return outcome
        contexts: list[SensorContext] = []
        rounds: list[list[int]] = []  # rounds[k]: indices of every sensor's k-th window in this batch
        seen: dict[str, int] = {}
        for i, record in enumerate(records):
            w = record.window
            ctx = self.sensors.get(w.sensor_id)
            if ctx is None:
                ctx = self.sensors[w.sensor_id] = self.new_context(w.sensor_id, record.partition)
            if ctx.baseline is None:
                ctx.baseline = self.new_baseline(None)
            contexts.append(ctx)
            k = seen.get(w.sensor_id, 0) if ctx.baseline.enabled else 0  # re-centring: a sensor's windows in order
            seen[w.sensor_id] = k + 1
            if k == len(rounds):
                rounds.append([])
            rounds[k].append(i)
        decisions: list[Decision | None] = [None] * len(records)
        for members in rounds:
            baselines = [contexts[i].baseline for i in members]
            windows = np.stack([records[i].window.values for i in members])
            starts = ends = None
            if self.scorer.seasonality is not None:  # the times cost a Python call per window: only when used
                starts = np.array([records[i].window.window_start.timestamp() for i in members])
                ends = np.array([records[i].window.window_end.timestamp() for i in members])
            part = self.scorer.score(InputBaseline.shift_many(baselines, windows), starts, ends)  # type: ignore[arg-type]
            normal = np.zeros(len(members), dtype=bool)
            for j, i in enumerate(members):
                judged = decisions[i] = self._judge(records[i], contexts[i], float(part.score[j]),
                                                    part.contributions[j], outcome)
                normal[j] = not judged.above and not judged.active  # judged normal: below the open level, no alert
            if part.residual_mean is not None:
                InputBaseline.learn_many(baselines, part.residual_mean, normal)  # type: ignore[arg-type]
        for record, maybe in zip(records, decisions):
            assert maybe is not None
            outcome.touched[record.window.sensor_id] = self.sensors[record.window.sensor_id]
            outcome.decisions.append((record, maybe))
        return outcome

    def _judge(self, record: Record, ctx: SensorContext, window_score: float, contributions: np.ndarray,
               outcome: BatchOutcome) -> Decision:
        w = record.window
        ctx.partition = record.partition
        decision = ctx.threshold.update(window_score)
        alert = ctx.incidents.update(
            decision, window_start=w.window_start, window_end=w.window_end, partition=record.partition,
            offset=record.offset, contributions=contributions, model_version=ctx.model_version,
            std=ctx.threshold.std,
        )
        if alert is not None:
            outcome.alerts[alert.key] = alert
        ctx.last_score, ctx.last_threshold, ctx.last_window_end = window_score, decision.threshold, w.window_end
        ctx.order = first_mark(w.window_start, w.window_end) if ctx.order is None else ctx.order.after(
            w.window_start, w.window_end)
        return decision
