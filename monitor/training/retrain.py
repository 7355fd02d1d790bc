"""One retraining run: history -> exclusions -> train -> gate against the active model -> promote or reject.

Steps (each reported through ``progress``):
  1. read the time range from the window topic with a group-less consumer (or a CSV/Parquet file);
  2. drop windows that overlap alerts of their sensor (minus operator-confirmed false positives);
  3. keep the most recent ``holdout_fraction`` of the windows (by record time) out of training;
  4. train a candidate (optionally warm-started from the active model);
  5. evaluate candidate and active on the hold-out, the best earlier versions' error on it, and both models on
     the reference set of confirmed alerts (monitor/training/reference.py), then apply the gate (a candidate
     with other channels or another window length than the active model is rejected: it would dead-letter the
     whole fleet);
  6. register the candidate and, if the gate passed, promote it atomically (compare-and-set on the
     active pointer); otherwise record it as rejected with the reason.
Any failure before step 6's single transaction leaves the active model serving untouched.

Topic windows are trained on as they are (``train_on_windows``): they come from many sensors, with gaps
where alerts were excluded, so re-cutting them from one stitched series would make windows that straddle two
sensors or a gap. ``cancel`` (set by the scheduler when it loses its lease) stops the run between steps, polls
and epochs; the outcome is then ``failed``.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine as DbEngine
from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError

from monitor.core.scoring import artifact
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.train import EpochCallback, train, train_on_windows
from monitor.errors import ArtifactError, CancelledRunError, ConfigError, DataError, MonitorError
from monitor.observe.progress import Bar
from monitor.registry import shadow, versions
from monitor.settings import (
    AlertSettings,
    KafkaSettings,
    ModelSettings,
    RegistrySettings,
    RetrainSettings,
    ThresholdSettings,
)
from monitor.store.schema import RetrainRun, utcnow
from monitor.training import gate, reference
from monitor.training.exclusion import alert_intervals, exclude
from monitor.training.history import HistoryWindow, read_history

log = logging.getLogger(__name__)

PARQUET_EXTRA = "sensor-monitor[parquet]"  # pyproject's optional extra that reads --from-file *.parquet

PROMOTED, REJECTED, SKIPPED, FAILED = "promoted", "rejected", "skipped", "failed"
SHADOWED = "shadowed"  # passed the gate; scored alongside the active model until its shadow period ends


@dataclass(frozen=True)
class RetrainRequest:
    """What to train on. Without ``path`` the window topic is read over ``[start, end)`` (record times);
    ``end`` defaults to now and ``start`` to ``end - lookback_s``."""

    start: datetime | None = None
    end: datetime | None = None
    path: Path | None = None
    sep: str = ","
    time_column: str | None = "timestamp"
    ignore: tuple[str, ...] = ()
    triggered_by: str = "cli"
    reason: str = "manual"
    force: bool = False  # train even when too few windows are newer than the active model's training range
    sensor_count: int = 1  # with ``path``: how many sensors' histories the file holds end to end (train ``sensors``)
    sensor_column: str | None = None  # with a CSV ``path``: the column naming each row's sensor (read_wide_csv)


@dataclass(frozen=True)
class RetrainConfig:
    """The settings sections a retraining run needs (wired by the entry point)."""

    kafka: KafkaSettings
    model: ModelSettings
    threshold: ThresholdSettings
    alert: AlertSettings
    retrain: RetrainSettings
    registry: RegistrySettings


@dataclass
class RetrainOutcome:
    outcome: str  # promoted | shadowed | rejected | skipped | failed
    version: str | None
    reason: str
    gate: gate.GateResult | None = None
    counts: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        counts = " ".join(f"{k}={v}" for k, v in self.counts.items()
                          if not isinstance(v, (dict, list)) and k != "active")
        return f"retrain: outcome={self.outcome} version={self.version or '-'} {counts} reason={self.reason}"


def retrain(
    db: DbEngine,
    cfg: RetrainConfig,
    request: RetrainRequest,
    *,
    progress: Callable[[str], None] = log.info,
    progress_bars: bool = False,
    clock: Callable[[], datetime] = utcnow,
    cancel: threading.Event | None = None,
) -> RetrainOutcome:
    """Run one retraining; never raises for a failed step (the outcome says ``failed`` and why). Every run, whatever
    its outcome, leaves its report in ``retrain_runs`` (`monitor models runs`).

    ``progress_bars``: tqdm bars for the history read and the epochs (interactive); without them ``progress``
    gets a line with the records read every ~10 s and one line per epoch (train/validation loss)."""
    started = utcnow()
    outcome = _run(db, cfg, request, progress=progress, progress_bars=progress_bars, clock=clock, cancel=cancel)
    _record(db, cfg.registry.model_name, request, started, outcome)
    return outcome


def _record(db: DbEngine, name: str, request: RetrainRequest, started: datetime, outcome: RetrainOutcome) -> None:
    report = {"counts": outcome.counts, "gate": outcome.gate.to_json() if outcome.gate else None}
    try:
        with db.begin() as conn:
            conn.execute(insert(RetrainRun).values(
                name=name, started_at=started, finished_at=utcnow(), triggered_by=request.triggered_by[:200],
                trigger_reason=request.reason, outcome=outcome.outcome, version=outcome.version,
                reason=outcome.reason, report=gate.finite(json.loads(json.dumps(report, default=str)))))
    except SQLAlchemyError as exc:  # the outcome stands; only its report is missing
        log.warning("retrain run report not stored (%s): %s", exc.__class__.__name__, outcome.line())


def _run(
    db: DbEngine,
    cfg: RetrainConfig,
    request: RetrainRequest,
    *,
    progress: Callable[[str], None],
    progress_bars: bool,
    clock: Callable[[], datetime],
    cancel: threading.Event | None,
) -> RetrainOutcome:
    name = cfg.registry.model_name
    counts: dict[str, Any] = {}
    version: str | None = None
    registered = False
    try:
        active_name = versions.active_version(db, name) or _import_serving_file(db, cfg, progress)
        if active_name is not None and (settled := shadow.settle(db, name, cfg.registry.shadow_min_windows,
                                                                 by=request.triggered_by)):
            progress(settled)  # a one-shot run (a CronJob) ends a complete shadow period as the scheduler does
            active_name = versions.active_version(db, name)
        read: list[HistoryWindow] = []  # every window read, alerts included: the reference set's harvest
        windows, channels, window_len, sources, start, end = _load(db, cfg, request, counts, progress, progress_bars,
                                                                   clock, cancel, read)
        _check(cancel, "after reading the history")
        counts.update(data_range=[start.isoformat(), end.isoformat()], active=active_name)
        if active_name is not None and not request.force and cfg.registry.shadow_min_windows > 0 and (
            shadowing := versions.pointer(db, name)[1]
        ) is not None:
            report = shadow.summary(db, name, shadowing, active_name)
            why = (f"the shadow period of {name}/{shadowing} is still running: "
                   f"{report.counts['windows'] if report else 0} of registry.shadow_min_windows="
                   f"{cfg.registry.shadow_min_windows} windows judged by it and {active_name} so far (running "
                   "consumers report them); a new candidate would replace it before it ends (`monitor models show "
                   f"{shadowing}`; --force trains anyway, `monitor models shadow --stop` ends the period)")
            progress(f"skipped: {why}")
            return RetrainOutcome(SKIPPED, None, why, None, counts)
        if active_name is not None and not request.force:
            stale = _nothing_new(db, name, active_name, windows, channels, window_len, cfg.retrain)
            if stale is not None:
                progress(f"skipped: {stale}")
                return RetrainOutcome(SKIPPED, None, stale, None, counts)
        train_part, holdout = _split(windows, cfg.retrain.holdout_fraction)
        capped = _cap(train_part, cfg.retrain.max_train_rows)
        counts.update(train_windows=len(capped), holdout_windows=len(holdout))
        progress(f"split: {len(train_part)} training windows, {len(holdout)} hold-out windows (most recent "
                 f"{cfg.retrain.holdout_fraction:.0%} of the range)"
                 + (f"; training on the most recent {len(capped)} (max_train_rows={cfg.retrain.max_train_rows})"
                    if len(capped) < len(train_part) else ""))
        train_part = capped
        if len(train_part) < cfg.retrain.min_windows:
            raise DataError(f"too few training windows after exclusions: {len(train_part)} < "
                            f"{cfg.retrain.min_windows} (widen the time range)")
        active = _load_active(db, name, active_name, progress)
        model_cfg = cfg.model.model_copy(update={"window_len": window_len, "auto_shape": False})
        warm = active if cfg.retrain.warm_start and active and gate.compatible(active, channels, window_len) else None
        version = f"{clock():%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        progress(f"training candidate {version}: window_len={window_len} channels={len(channels)} "
                 f"hidden={model_cfg.hidden_size} epochs<={model_cfg.epochs}"
                 f"{' warm-started from ' + warm.meta.version if warm else ''}")
        with Bar("train", "epoch", enabled=progress_bars) as bar:
            on_epoch = bar.epoch if progress_bars else _epoch_lines(progress)
            if request.path is not None and not request.sensor_column:  # one continuous series
                candidate = train(_frame(train_part, channels), model_cfg, source=str(request.path), version=version,
                                  sensors=request.sensor_count, warm_start=warm, on_epoch=on_epoch, cancel=cancel,
                                  clock=clock)
            else:
                ordered = sorted(train_part, key=lambda w: (w.window_start, w.sensor_id))
                candidate = train_on_windows(
                    np.stack([w.values for w in ordered]), channels, model_cfg,
                    source=str(sources.get("topic") or sources.get("path") or ""),
                    start=ordered[0].window_start, end=max(w.window_end for w in ordered),
                    groups=[w.sensor_id for w in ordered], version=version,
                    times=([w.window_start for w in ordered], [w.window_end for w in ordered]),
                    warm_start=warm, on_epoch=on_epoch, cancel=cancel, clock=clock)
        progress(f"trained {version}: val_loss={candidate.meta.metrics['val_loss']:.4f} "
                 f"epochs={candidate.meta.training['epochs']}")
        added = reference.harvest(db, name, read, channels, window_len, cfg.retrain.reference_context)
        refs = reference.load(db, name, channels, window_len)
        counts.update(references=len(refs), references_added=added)
        if refs:
            progress(f"reference set: {len(refs)} confirmed alert(s) ({added} new in this range)")
        result = _gate(candidate, active, holdout, cfg, _earlier(db, name, active_name, cfg.retrain.gate_history,
                                                                 progress), refs)
        progress(f"gate {'PASSED' if result.passed else 'FAILED'}: {result.summary}")
        _check(cancel, "before registering the candidate")
        versions.register(
            db, name, candidate, train_start=start, train_end=end, sources=sources,
            config={"model": model_cfg.model_dump(mode="json"), "retrain": cfg.retrain.model_dump(mode="json"),
                    "triggered_by": request.triggered_by, "trigger_reason": request.reason},
            metrics=gate.finite({**candidate.meta.metrics, "gate": result.to_json(), "counts": counts}),
            reason=request.reason,
        )
        registered = True
        if not result.passed:
            versions.reject(db, name, version, result.summary)
            return RetrainOutcome(REJECTED, version, result.summary, result, counts)
        if cfg.registry.shadow_min_windows > 0 and active_name is not None:
            versions.set_shadow(db, name, version, by=request.triggered_by)
            progress(f"{name}/{version} passed the gate and is now the shadow: consumers score it alongside "
                     f"{active_name}; `monitor scheduler` promotes or rejects it after "
                     f"registry.shadow_min_windows={cfg.registry.shadow_min_windows} windows (`monitor models show "
                     f"{version}`)")
            return RetrainOutcome(SHADOWED, version, result.summary, result, counts)
        versions.promote(db, name, version, by=request.triggered_by, reason=f"{request.reason}: {result.summary}",
                         expected_active=active_name)
        progress(f"promoted {name}/{version} (was {active_name or 'none'}); consumers pick it up on their next check")
        return RetrainOutcome(PROMOTED, version, result.summary, result, counts)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an outcome; the active model stays
        reason = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, MonitorError):
            log.exception("retraining failed unexpectedly")
        if registered and version:
            try:
                versions.reject(db, name, version, f"failed after registration: {reason}")
            except MonitorError:
                log.warning("could not mark %s/%s rejected", name, version)
        progress(f"retraining failed: {reason}; the active model keeps serving")
        return RetrainOutcome(FAILED, version, reason, None, counts)


def _import_serving_file(db: DbEngine, cfg: RetrainConfig, progress: Callable[[str], None]) -> str | None:
    """An empty registry: the model file consumers serve (``model.path``) is imported and made active first, so
    the candidate competes against what actually runs instead of replacing it unchecked. None: no such file."""
    path = cfg.model.path
    if not path.is_file():
        progress(f"no active model for {cfg.registry.model_name!r} and no serving file at {path}: "
                 "the gate checks the candidate alone")
        return None
    info = versions.import_file(db, cfg.registry.model_name, path, by="retrain", activate=True,
                                reason=f"the serving model file {path}, imported before the first retrain")
    progress(f"the registry had no active model: imported the serving file {path} as "
             f"{cfg.registry.model_name}/{info.version} (active), which the candidate must now beat")
    return info.version


def _nothing_new(
    db: DbEngine, name: str, active_name: str, windows: list[HistoryWindow], channels: tuple[str, ...],
    window_len: int, cfg: RetrainSettings,
) -> str | None:
    """Why this run has nothing to learn (too few windows ending after the active model's training range, in
    window time: a replay of old data is not new), or None.
    A feed whose channels or window length changed is new by definition: the gate then says what changed."""
    if cfg.min_new_windows <= 0:
        return None
    info = versions.get(db, name, active_name)
    trained_to = info.train_end
    if trained_to is None:
        return None
    if trained_to.tzinfo is None:
        trained_to = trained_to.replace(tzinfo=timezone.utc)
    try:
        active_meta = versions.load_bundle(db, name, active_name).meta
    except ArtifactError:
        return None
    if list(active_meta.channels) != list(channels) or active_meta.window_len != window_len:
        return None
    new = sum(1 for w in windows if w.window_end > trained_to)  # window (event) times, like the training range
    if new >= cfg.min_new_windows:
        return None
    return (f"only {new} window(s) newer than the active model {name}/{active_name}'s training range (ends "
            f"{trained_to.isoformat()}), fewer than retrain.min_new_windows={cfg.min_new_windows}: nothing new to "
            "learn (use --force to train anyway)")


def _earlier(
    db: DbEngine, name: str, active_name: str | None, limit: int, progress: Callable[[str], None]
) -> list[ModelBundle]:
    """Up to ``limit`` versions active before the current one (newest first) that still load."""
    if active_name is None or limit <= 0:
        return []
    out = []
    for version in versions.recently_active(db, name, limit + 1):
        if version == active_name:
            continue
        try:
            out.append(versions.load_bundle(db, name, version))
        except ArtifactError as exc:
            progress(f"earlier version {version} is unloadable ({exc}): left out of the gate")
    return out[:limit]


def _check(cancel: threading.Event | None, where: str) -> None:
    if cancel is not None and cancel.is_set():
        raise CancelledRunError(f"retraining cancelled {where}")


def _epoch_lines(progress: Callable[[str], None]) -> EpochCallback:
    def on_epoch(epoch: int, max_epochs: int, train_loss: float, val_loss: float) -> None:
        progress(f"epoch {epoch}/{max_epochs}: train_loss={train_loss:.4f} val_loss={val_loss:.4f}")

    return on_epoch


def _load(
    db: DbEngine, cfg: RetrainConfig, request: RetrainRequest, counts: dict[str, Any],
    progress: Callable[[str], None], progress_bars: bool, clock: Callable[[], datetime],
    cancel: threading.Event | None, read: list[HistoryWindow],
) -> tuple[list[HistoryWindow], tuple[str, ...], int, dict[str, Any], datetime, datetime]:
    """The training windows (alerts excluded), their channels, window length, sources and time range; ``read``
    gets every window read."""
    if request.path is not None:
        windows, channels, start, end = _file_windows(request, cfg.model.window_len)
        read.extend(windows)
        counts.update(windows=len(windows))
        fleet = len({w.sensor_id for w in windows}) if request.sensor_column else 0
        progress(f"read {len(windows)} windows of {cfg.model.window_len} rows from {request.path}"
                 + (f" ({fleet} sensors, {request.sensor_column!r})" if request.sensor_column else ""))
        return windows, channels, cfg.model.window_len, {"kind": "file", "path": str(request.path)}, start, end
    end = request.end or clock()
    start = request.start or end - timedelta(seconds=cfg.retrain.lookback_s)
    # A read with no progress for a whole lease duration is stuck (a partition leader down): give up, so the
    # scheduler releases its lease instead of renewing it forever.
    history = read_history(cfg.kafka, start, end, progress=progress_bars, on_progress=progress,
                           stall_timeout_s=cfg.retrain.lease_s, cancel=cancel)
    # Alerts live in event time (window timestamps); the range above is in record (produce) time, which
    # differs for replays and late data: look alerts up over the windows' own time span.
    if history.windows:
        first = min(w.window_start for w in history.windows)
        last = max(w.window_end for w in history.windows)
        intervals = alert_intervals(db, first, last + timedelta(microseconds=1))
    else:
        intervals = []
    kept, excluded = exclude(history.windows, intervals)
    read.extend(history.windows)
    counts.update(records=history.records_in_range, windows=len(history.windows), excluded=excluded,
                  alerts=len(intervals), dropped=dict(history.dropped))
    progress(f"read {history.records_in_range} records in range (scanned {history.records_read}) -> "
             f"{len(history.windows)} windows "
             f"({dict(history.dropped) or 'none dropped'}); excluded {excluded} windows inside {len(intervals)} alerts")
    sources = {"kind": "kafka", "topic": history.topic, "offsets": {str(p): list(b) for p, b in history.offsets.items()},
               "records": history.records_in_range, "windows": len(history.windows), "excluded_windows": excluded,
               "excluded_alerts": [i.alert_id for i in intervals][:1000],
               "requested_range": [start.isoformat(), end.isoformat()]}
    if history.windows:  # the version's training range is the data's (window times), not the lookback asked for
        return kept, history.channels, history.window_len, sources, first, last
    return kept, history.channels, history.window_len, sources, start, end


def _file_windows(request: RetrainRequest, window_len: int) -> tuple[list[HistoryWindow], tuple[str, ...],
                                                                       datetime, datetime]:
    """A wide CSV/Parquet file -> consecutive non-overlapping windows of one pseudo-sensor (the file's name), or,
    with ``request.sensor_column`` (CSV), of each sensor the column names: no window mixes two sensors."""
    from monitor.ingest.files import read_wide_csv, refuse_interleaved, sensor_parts

    path = Path(request.path or "")
    if request.sensor_column:
        if path.suffix == ".parquet":
            raise DataError(f"{path}: --sensor-column reads a CSV file; write the Parquet file as CSV, or train on it "
                            "with one sensor's rows")
        fleet = read_wide_csv(path, sep=request.sep, time_column=request.time_column, ignore=request.ignore,
                              sensor_column=request.sensor_column)
        windows = [w for name, part in sensor_parts(fleet) for w in _cut(name, _in_range(part, request), window_len)]
        if not windows:
            raise DataError(f"{path}: no sensor has {window_len} rows in range (one window)")
        return (windows, tuple(str(c) for c in fleet.columns), min(w.window_start for w in windows),
                max(w.window_end for w in windows))
    if path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except ImportError as exc:  # neither pyarrow nor fastparquet: an optional extra
            raise ConfigError(f"{path}: reading Parquet needs pyarrow: pip install '{PARQUET_EXTRA}' ({exc})") from exc
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
        if request.time_column and request.time_column in frame.columns:
            frame = frame.set_index(pd.DatetimeIndex(pd.to_datetime(frame.pop(request.time_column), utc=True)))
        frame = frame.drop(columns=[c for c in request.ignore if c in frame.columns]).astype(np.float32)
    else:
        frame = read_wide_csv(path, sep=request.sep, time_column=request.time_column, ignore=request.ignore)
        refuse_interleaved(path, frame)
    frame = _in_range(frame, request)
    if len(frame) < window_len:
        raise DataError(f"{path}: {len(frame)} rows in range, fewer than one window of {window_len}")
    times = frame.index
    return (_cut(path.name, frame, window_len), tuple(str(c) for c in frame.columns), times[0].to_pydatetime(),
            times[-1].to_pydatetime())


def _in_range(frame: pd.DataFrame, request: RetrainRequest) -> pd.DataFrame:
    if request.start is not None:
        frame = frame[frame.index >= request.start]
    if request.end is not None:
        frame = frame[frame.index < request.end]
    return frame


def _cut(sensor_id: str, frame: pd.DataFrame, window_len: int) -> list[HistoryWindow]:
    """One sensor's rows -> its consecutive non-overlapping windows (a short rest is left out)."""
    values = frame.to_numpy(dtype=np.float32)
    times = frame.index
    windows = []
    for i in range(0, len(values) - window_len + 1, window_len):
        ws, we = times[i].to_pydatetime(), times[i + window_len - 1].to_pydatetime()
        windows.append(HistoryWindow(sensor_id, ws, we, values[i : i + window_len], int(ws.timestamp() * 1000), 0, i))
    return windows


def _split(windows: list[HistoryWindow], holdout_fraction: float) -> tuple[list[HistoryWindow], list[HistoryWindow]]:
    """Time split by record timestamp: the most recent ``holdout_fraction`` of the covered span is the hold-out."""
    if not windows:
        return [], []
    t0 = min(w.timestamp_ms for w in windows)
    t1 = max(w.timestamp_ms for w in windows)
    cut = t1 - holdout_fraction * (t1 - t0)
    train_part = [w for w in windows if w.timestamp_ms < cut]
    holdout = [w for w in windows if w.timestamp_ms >= cut]
    holdout.sort(key=lambda w: (w.sensor_id, w.window_start))
    return train_part, holdout


def _cap(windows: list[HistoryWindow], max_rows: int) -> list[HistoryWindow]:
    """The most recent windows (by record time) holding at most ``max_rows`` rows in total."""
    if not windows or sum(w.values.shape[0] for w in windows) <= max_rows:
        return windows
    keep = max(1, max_rows // windows[0].values.shape[0])
    return sorted(windows, key=lambda w: w.timestamp_ms)[-keep:]


def _frame(windows: list[HistoryWindow], channels: tuple[str, ...]) -> pd.DataFrame:
    """``--from-file`` training windows (consecutive windows of ONE pseudo-sensor) -> the continuous series.

    Only for windows that follow each other without gaps: topic windows go through ``train_on_windows``."""
    parts, stamps = [], []
    for w in sorted(windows, key=lambda w: (w.sensor_id, w.window_start)):
        n = w.values.shape[0]
        parts.append(w.values)
        stamps.append(pd.date_range(w.window_start, w.window_end, periods=n) if n > 1 else
                      pd.DatetimeIndex([w.window_start]))
    index = stamps[0].append(stamps[1:]) if len(stamps) > 1 else stamps[0]
    return pd.DataFrame(np.concatenate(parts), columns=list(channels), index=index)


def _load_active(db: DbEngine, name: str, version: str | None, progress: Callable[[str], None]) -> ModelBundle | None:
    if version is None:
        progress(f"no active model for {name!r} yet: the gate checks the candidate alone")
        return None
    try:
        return versions.load_bundle(db, name, version)
    except ArtifactError as exc:
        progress(f"active model {version} is unloadable ({exc}); the gate checks the candidate alone")
        return None


def _gate(
    candidate: ModelBundle, active: ModelBundle | None, holdout: list[HistoryWindow], cfg: RetrainConfig,
    earlier: Sequence[ModelBundle] = (), refs: Sequence[reference.Reference] = (),
) -> gate.GateResult:
    # A candidate that does not fit the active model's windows is rejected outright (it is still evaluated,
    # so its figures are recorded with the rejection); the active model is then not evaluated at all. A
    # compatible active model has the candidate's channels and window length, so it scores the same windows.
    problem = artifact.incompatibility(active.meta, candidate.meta) if active is not None else None
    if not holdout:
        empty = gate.Evaluation(candidate.meta.version, 0, float("nan"), 0, 0.0, 0.0, 0.0, 0.0)
        return gate.decide(empty, None, cfg.retrain, incompatible=problem)
    arrays = np.stack([w.values for w in holdout])
    sensors = [w.sensor_id for w in holdout]
    variance = gate.holdout_variance(arrays)
    starts = np.array([w.window_start.timestamp() for w in holdout])
    ends = np.array([w.window_end.timestamp() for w in holdout])
    cand = gate.evaluate(candidate, arrays, sensors, cfg.threshold, cfg.alert, variance, starts, ends)
    act = None
    errors: list[tuple[str, float]] = []
    if active is not None and problem is None:
        act = gate.evaluate(active, arrays, sensors, cfg.threshold, cfg.alert, variance, starts, ends)
        errors = [(b.meta.version, gate.reconstruction_error(b, arrays, variance, starts, ends))
                  for b in earlier if artifact.incompatibility(b.meta, candidate.meta) is None]
    check = None
    if active is not None and problem is None and refs:
        check = reference.compare(candidate, active, refs, cfg.threshold, cfg.alert)
    return gate.decide(cand, act, cfg.retrain, incompatible=problem, earlier=errors, reference=check)
