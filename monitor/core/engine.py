"""The pure processing core: decoded windows in, decisions, alert changes and sensor state out.

No Kafka, no SQL: the runner hands in records and persists what comes out. Windows of one sensor must
arrive in order (they do: records are keyed by sensor id, so a sensor lives on one partition).

This is the one judge: the consumer, ``backtest``, the retrain gate (``monitor.training.gate``) all turn windows
into scores and decisions here, and the alert page and feedback read the evidence it records at decision time
(``monitor.core.evidence``: each alerted window's score, threshold and contributions, and the windows before it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np

from monitor.core.contract import SensorWindow
from monitor.core.evidence import EvidenceLog, EvidencePolicy, EvidenceRow, Mark, Prune
from monitor.core.incidents import AlertRecord, IncidentTracker
from monitor.core.ordering import WindowMark, first_mark
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.baseline import InputBaseline
from monitor.core.scoring.scorer import Scorer
from monitor.core.thresholds import Decision, SensorThreshold
from monitor.settings import AlertSettings, ThresholdSettings


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
    order: WindowMark | None = None  # the last judged window (monitor.core.ordering); None: none judged or recorded
    evidence: EvidenceLog = field(default_factory=lambda: EvidenceLog(EvidencePolicy()))  # recent decisions
    used: int = 0  # the engine's batch count when this sensor was last judged (least recently used: evicted first)

    def snapshot(self) -> dict[str, Any]:
        state: dict[str, Any] = {"threshold": self.threshold.snapshot(), "incidents": self.incidents.snapshot()}
        if pending := self.evidence.snapshot(self.incidents.current is None):
            state["evidence"] = pending  # the pending run's windows: they belong to the alert it may open
        if self.order is not None:
            state["order"] = self.order.to_json()
        if self.baseline is not None:
            state["baseline"] = self.baseline.snapshot()
        return state


@dataclass(frozen=True)
class SensorRow:
    """One sensor's state as stored (what the engine emits after a batch and loads back)."""

    sensor_id: str
    partition: int
    state: dict[str, Any]
    last_score: float | None
    last_threshold: float | None
    last_window_end: datetime | None
    model_version: str
    revision: int | None = None  # the stored revision this state was read at (None: not stored yet)


@dataclass
class BatchOutcome:
    alerts: dict[tuple[str, datetime], AlertRecord] = field(default_factory=dict)
    touched: dict[str, SensorContext] = field(default_factory=dict)
    decisions: list[tuple[Record, Decision]] = field(default_factory=list)
    evidence: list[EvidenceRow] = field(default_factory=list)  # decision-time evidence of alerts (monitor.core.evidence)
    prunes: dict[tuple[str, datetime], Prune] = field(default_factory=dict)  # per alert, the latest bound
    events: list[tuple[str, AlertRecord]] = field(default_factory=list)  # ("opened" | "closed", alert then), in order




class Engine:
    """Holds the per-sensor state of the sensors this process currently owns."""

    def __init__(self, scorer: Scorer, threshold_cfg: ThresholdSettings, alert_cfg: AlertSettings,
                 evidence: EvidencePolicy | None = None) -> None:
        self.scorer = scorer
        self.threshold_cfg = threshold_cfg
        self.alert_cfg = alert_cfg
        self.evidence = evidence or EvidencePolicy()
        self.last_scoring_s = 0.0  # seconds the last ``process`` spent in the model (the rest: judging)
        self.sensors: dict[str, SensorContext] = {}
        self._batches = 0  # batches processed: the clock of SensorContext.used

    def new_context(self, sensor_id: str, partition: int) -> SensorContext:
        cal = self.scorer.bundle.meta.calibration
        threshold = SensorThreshold.from_calibration(self.threshold_cfg, self.alert_cfg, cal)
        return SensorContext(
            sensor_id, partition, threshold, IncidentTracker(sensor_id, self.alert_cfg, self.scorer.channels),
            self.scorer.version, self.new_baseline(None), evidence=EvidenceLog(self.evidence),
        )

    def new_baseline(self, data: dict[str, Any] | None) -> InputBaseline:
        """The sensor's input re-centring for the current model (fresh when ``data`` is None)."""
        cfg = self.threshold_cfg
        cal = self.scorer.bundle.meta.calibration
        # a model that takes its drifting channels in centred has no centre to learn for them (scorer.py): their
        # level is judged against the range their history showed, which only an operator's verdict moves
        follow = 0.0 if cal.centre_drifting else 1.0
        return InputBaseline.restore(
            self.scorer.bundle.scaler, cfg.recentre_rate, cfg.recentre_k, data,
            drifting=cal.drifting, drift_rate=follow * cfg.drift_rate, drift_k=cfg.drift_k,
            speed=[follow * cfg.drift_pace * v for v in cal.drift_speed],
        )

    def restore_context(
        self, sensor_id: str, partition: int, state: dict[str, Any], model_version: str, revision: int | None = None
    ) -> SensorContext:
        if model_version != self.scorer.version:
            # Another model's score scale: keep the open alert; the threshold's statistics are mapped to the new
            # scale (threshold.carry_on_swap) or re-warmed from the new calibration. A sensor past its warm-up is
            # not new: the new model judges it at once (no second probation). The input centres start afresh: what
            # the old model could not explain is not what the new one cannot (carrying them in raw units measured
            # worse: docs/retraining.md, bench-swap); the drifting channels' centres settle at the sensor's level
            # with its first window judged outside an alert (InputBaseline.settle).
            ctx = self.new_context(sensor_id, partition)
            assert ctx.baseline is not None
            ctx.baseline.settling = ctx.baseline.enabled and bool(ctx.baseline.drifting.any())
            if self.threshold_cfg.carry_on_swap and isinstance(state.get("threshold"), dict):
                ctx.threshold = SensorThreshold.carried(self.threshold_cfg, self.alert_cfg, state["threshold"],
                                                        self.scorer.bundle.meta.calibration)
            elif not isinstance(state.get("threshold", {}).get("warm"), list):
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
        ctx.evidence = EvidenceLog.restore(self.evidence, state.get("evidence"))
        return ctx

    def swap(self, bundle: ModelBundle, warmed: Mapping[str, SensorContext] | None = None) -> None:
        """Hot swap: score with ``bundle`` from now on. Sensors in memory keep their open alerts; their thresholds
        are carried to the new model's score scale (``threshold.carry_on_swap``; else re-warmed from its
        calibration); new alerts carry the new version. Sensors loaded later from the database go through the same
        ``restore_context``. ``warmed``: contexts the new model built while it ran as the shadow
        (monitor/registry/shadow.py): a sensor it has judged takes its threshold statistics and input centres
        from there (learned by this very model on this sensor's recent windows), and keeps its own alert state."""
        self.scorer = Scorer(bundle, self.scorer.batch_size, device=self.scorer.device)
        for sensor_id, ctx in list(self.sensors.items()):
            fresh = self.restore_context(sensor_id, ctx.partition, ctx.snapshot(), ctx.model_version, ctx.revision)
            fresh.evidence = ctx.evidence  # the decisions already made stay as they were made
            shadowed = warmed.get(sensor_id) if warmed is not None else None
            if shadowed is not None and shadowed.model_version == bundle.meta.version and \
                    not shadowed.threshold.warming:  # a sensor past its warm-up does not go back to probation
                threshold = shadowed.threshold
                threshold.active = fresh.incidents.current is not None  # the alert state is the active model's
                threshold.hits = threshold.normals = 0
                threshold.rows = 0.0
                fresh.threshold = threshold
                fresh.baseline = shadowed.baseline
            self.sensors[sensor_id] = fresh

    def evict(self, keep: int) -> int:
        """Bound the sensors held in memory: beyond ``keep``, drop the least recently judged ones without an
        open alert down to 90 % of ``keep`` (a margin, so that eviction is not paid on every batch); returns how
        many were dropped. Only call it between batches, once their state is durable: a dropped sensor is read back
        from the database when its next window comes (what a restart does). Sensors in an alert stay (the
        open-alerts gauge counts the sensors held), so the bound can be exceeded by as many as are alerting."""
        if len(self.sensors) <= keep:
            return 0
        idle = sorted((c.used, s) for s, c in self.sensors.items() if c.incidents.current is None)
        drop = idle[: max(0, len(self.sensors) - keep * 9 // 10)]
        for _, sensor_id in drop:
            del self.sensors[sensor_id]
        return len(drop)

    def forget(self, partitions: set[int] | None = None) -> None:
        """Drop state of sensors on these partitions (all when None): it is in the database already."""
        if partitions is None:
            self.sensors.clear()
            return
        for sensor_id in [s for s, c in self.sensors.items() if c.partition in partitions]:
            del self.sensors[sensor_id]

    def missing(self, records: Sequence[Record]) -> list[str]:
        return sorted({r.window.sensor_id for r in records} - self.sensors.keys())

    # The sensors' state is the engine's: the adapters load it, read what to store and mark it stored through
    # these methods only (monitor.consumer.batches, monitor.registry.shadow).

    def load(self, rows: Mapping[str, SensorRow]) -> None:
        """Take the stored state of these sensors (read from the database; another model's is carried over)."""
        for sensor_id, row in rows.items():
            self.sensors[sensor_id] = self.restore_context(sensor_id, row.partition, row.state, row.model_version,
                                                           row.revision)

    def drop(self, sensor_ids: Iterable[str]) -> None:
        """Forget these sensors' state: their next windows are judged from the stored state again."""
        for sensor_id in sensor_ids:
            self.sensors.pop(sensor_id, None)

    def orders(self) -> dict[str, WindowMark | None]:
        """Each held sensor's last judged window (monitor.core.ordering)."""
        return {s: c.order for s, c in self.sensors.items()}

    def revision(self, sensor_id: str) -> int | None:
        """The stored revision a held sensor's state grew from (None: never stored)."""
        return self.sensors[sensor_id].revision

    def held(self) -> Mapping[str, SensorContext]:
        """The sensors held in memory, read-only."""
        return MappingProxyType(self.sensors)

    @staticmethod
    def rows(outcome: BatchOutcome) -> list[SensorRow]:
        """The state to store for the sensors a batch touched."""
        return [SensorRow(c.sensor_id, c.partition, c.snapshot(), c.last_score, c.last_threshold, c.last_window_end,
                          c.model_version, c.revision) for c in outcome.touched.values()]

    @staticmethod
    def stored(outcome: BatchOutcome) -> None:
        """The batch's output is durable: each touched sensor's state is now at the revision that commit wrote
        (inserted at 0, each update + 1)."""
        for c in outcome.touched.values():
            c.revision = 0 if c.revision is None else c.revision + 1

    def process(self, records: Sequence[Record]) -> BatchOutcome:
        """Score the windows in batches and judge them in order, sensor by sensor.

        Without re-centring (``recentre_rate`` 0 and no drifting channel re-centred) all windows are one batch.
        With it, a window's input offset depends on its sensor's previous window, so the k-th window of every
        sensor forms batch k, and each window is judged before its sensor's next one is scored: the offsets
        learn only from windows judged normal outside an alert (an anomaly never teaches the detector that it
        is normal), unless the explicit horizon ``threshold.adopt_after_s`` is set and an alert outlasts it."""
        outcome = BatchOutcome()
        self.last_scoring_s = 0.0
        if not records:
            return outcome
        self._batches += 1
        contexts: list[SensorContext] = []
        rounds: list[list[int]] = []  # rounds[k]: indices of every sensor's k-th window in this batch
        seen: dict[str, int] = {}
        jumps = self.scorer.jumps  # a window's jump is judged against its sensor's previous window: in order
        for i, record in enumerate(records):
            w = record.window
            ctx = self.sensors.get(w.sensor_id)
            if ctx is None:
                ctx = self.sensors[w.sensor_id] = self.new_context(w.sensor_id, record.partition)
            if ctx.baseline is None:
                ctx.baseline = self.new_baseline(None)
            ctx.used = self._batches
            contexts.append(ctx)
            ordered = ctx.baseline.enabled or self.threshold_cfg.adopt_after_s > 0 or jumps
            k = seen.get(w.sensor_id, 0) if ordered else 0  # re-centring: a sensor's windows in order
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
            scoring_started = time.perf_counter()
            # sensors this model took over from another one, outside an alert: their drifting channels' centres
            # are placed at the current level first (InputBaseline.settle), then the window is judged
            settling = [j for j, i in enumerate(members)
                        if baselines[j].settling and contexts[i].incidents.current is None]  # type: ignore[union-attr]
            if settling:
                first = self.scorer.score(InputBaseline.shift_many([baselines[j] for j in settling],  # type: ignore[misc]
                                                                   windows[settling]),
                                          None if starts is None else starts[settling],
                                          None if ends is None else ends[settling])
                if first.residual_mean is not None:
                    for j, row in zip(settling, first.residual_mean):
                        baselines[j].settle(row)  # type: ignore[union-attr]
            previous = (np.stack([_previous_level(baselines[j], records[i].window)  # type: ignore[arg-type]
                                  for j, i in enumerate(members)]) if jumps else None)
            part = self.scorer.score(InputBaseline.shift_many(baselines, windows), starts, ends,  # type: ignore[arg-type]
                                     previous)
            self.last_scoring_s += time.perf_counter() - scoring_started
            normal = np.zeros(len(members), dtype=bool)
            # the horizon and the drift pace cost a Python call per window: only when they are set (off by default)
            adopt = np.zeros(len(members), dtype=bool) if self.threshold_cfg.adopt_after_s > 0 else None
            rows = None
            if baselines and baselines[0].speed.any():  # type: ignore[union-attr]
                rows = np.array([_rows_since(contexts[i].last_window_end, records[i].window) for i in members])
            for j, i in enumerate(members):
                judged = decisions[i] = self._judge(records[i], contexts[i], float(part.score[j]),
                                                    part.contributions[j], outcome)
                normal[j] = not judged.above and not judged.active  # judged normal: below the open level, no alert
                if adopt is not None:
                    adopt[j] = self._past_horizon(contexts[i], records[i].window.window_end)
            if part.moved is not None:  # a window holding a step of its channel's normal kind: its mean residual
                normal &= ~part.moved  # is the model's miss of the step, no drift to follow (scorer.py move_factors)
            if part.residual_mean is not None:
                InputBaseline.learn_many(baselines, part.residual_mean, normal, adopt, rows)  # type: ignore[arg-type]
            if part.level is not None:  # every window's level, in alerts too: a jump is judged window to window
                for j, i in enumerate(members):
                    baselines[j].level = part.level[j]  # type: ignore[union-attr]
                    baselines[j].level_end = records[i].window.window_end.timestamp()  # type: ignore[union-attr]
        for record, maybe in zip(records, decisions):
            assert maybe is not None
            outcome.touched[record.window.sensor_id] = self.sensors[record.window.sensor_id]
            outcome.decisions.append((record, maybe))
        return outcome

    def _past_horizon(self, ctx: SensorContext, window_end: datetime) -> bool:
        """Whether the sensor's open alert has lasted ``threshold.adopt_after_s``: its level is then adopted as
        the new normal (``InputBaseline.learn_many``)."""
        horizon, alert = self.threshold_cfg.adopt_after_s, ctx.incidents.current
        return alert is not None and (window_end - alert.opened_at).total_seconds() >= horizon

    def _judge(self, record: Record, ctx: SensorContext, window_score: float, contributions: np.ndarray,
               outcome: BatchOutcome) -> Decision:
        w = record.window
        ctx.partition = record.partition
        decision = ctx.threshold.update(window_score, _new_rows(ctx.last_window_end, w))
        alert = ctx.incidents.update(
            decision, window_start=w.window_start, window_end=w.window_end, partition=record.partition,
            offset=record.offset, contributions=contributions, model_version=ctx.model_version,
            std=ctx.threshold.std,
        )
        if alert is not None:
            outcome.alerts[alert.key] = alert
            if decision.opened:
                outcome.events.append(("opened", alert))
            if decision.closed:
                outcome.events.append(("closed", alert))
        counted = alert is not None and (decision.above or decision.active)
        mark = Mark(w.window_start, w.window_end, record.offset, window_score, decision.threshold, contributions,
                    ctx.model_version, decision.above, alert.window_count if counted and alert is not None else 0)
        rows = ctx.evidence.record(mark, alert.key if alert is not None else None, opened=decision.opened,
                                   closed=decision.closed)
        if rows:
            outcome.evidence.extend(rows)
            if alert is not None and (prune := ctx.evidence.prune(alert.key, alert.window_count, alert.peak_score)):
                outcome.prunes[alert.key] = prune
        ctx.last_score, ctx.last_threshold, ctx.last_window_end = window_score, decision.threshold, w.window_end
        ctx.order = first_mark(w.window_start, w.window_end) if ctx.order is None else ctx.order.after(
            w.window_start, w.window_end)
        return decision


def _previous_level(baseline: InputBaseline, window: SensorWindow) -> np.ndarray:
    """The level of the sensor's previous window (raw window means), or NaN where there is none or it ended more
    than one row before ``window`` starts (a gap: the level may have moved by any amount meanwhile)."""
    start, end = window.window_start.timestamp(), window.window_end.timestamp()
    rows = window.values.shape[0]
    period = (end - start) / (rows - 1) if rows > 1 else 0.0
    if math.isfinite(baseline.level_end) and start - baseline.level_end <= period * 1.5:
        return baseline.level
    return np.full(baseline.level.shape, np.nan)


def _new_rows(previous_end: datetime | None, window: SensorWindow) -> float:
    """Rows of new data ``window`` brought since the sensor's previous window (``alert.min_rows``): the rows its
    end moved on, at most its length; its length for the sensor's first window or a window of one row."""
    rows = len(window.values)
    if previous_end is None or rows < 2:
        return float(rows)
    return min(float(rows), _rows_since(previous_end, window))


def _rows_since(previous_end: datetime | None, window: SensorWindow) -> float:
    """Rows elapsed from the sensor's previous window to this one, at this window's own row period (0 for the
    first window, a window of one row or time that did not move forward)."""
    rows = len(window.values)
    if previous_end is None or rows < 2:
        return 0.0
    period = (window.window_end - window.window_start).total_seconds() / (rows - 1)
    elapsed = (window.window_end - previous_end).total_seconds()
    return elapsed / period if period > 0 and elapsed > 0 else 0.0
