"""Offline detection over a wide table through exactly the streaming path (Engine = Scorer + thresholds + alerts).

A backtest cuts the rows into windows of the model's ``window_len``, the window *ending* at row ``r`` covering
rows ``r - window_len + 1 .. r``, one window every ``stride`` rows, and feeds them in time order, in batches,
to the same :class:`~monitor.core.engine.Engine` that ``monitor run`` uses for Kafka records. So every threshold
update, hysteresis step and alert transition is the one the streaming monitor would make on the same windows.

Row mapping (documented contract of ``monitor backtest``):

* a row's ``score`` is the score of the window ending at that row, its ``threshold`` the open level (raw
  score scale) that window was judged against, and ``is_anomaly`` is 1 when an alert is active after that
  window (the alert state, so hysteresis and ``min_hits``/``min_normal`` apply);
* with ``stride`` > 1, the rows after a window end up to the next window end carry that window's values;
* rows before the first full window (the first ``window_len - 1`` rows) have an empty score and
  ``is_anomaly`` 0.

``retrain_every`` simulates scheduled retraining: every that many rows a new model is trained on all rows
seen so far, with the starting model's architecture (window length, hidden/latent size, layers, dropout, taken
from its metadata; the model settings give only the training knobs such as epochs and seed); sensor state
carries over the way the streaming path carries it over a model swap (the open alert is kept, the threshold's
statistics move to the new model's scale: ``threshold.carry_on_swap``; the input centres start afresh).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from monitor.core.contract import SensorWindow
from monitor.core.engine import Engine, Record, SensorRow
from monitor.core.incidents import AlertRecord
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer
from monitor.errors import DataError
from monitor.settings import AlertSettings, ModelSettings, ThresholdSettings

SENSOR_ID = "backtest"


@dataclass
class BacktestResult:
    """``table``: one row per input row, indexed by time, columns score, threshold (float, NaN before the
    first full window) and is_anomaly (0/1). ``alerts``: final state of every alert, in opening order."""

    table: pd.DataFrame
    alerts: list[AlertRecord] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # versions used, in order

    @property
    def flagged_rows(self) -> int:
        return int(self.table["is_anomaly"].sum())


def window_records(
    frame: pd.DataFrame, window_len: int, stride: int, *, first_end: int = 0, last_end: int | None = None,
    sensor_id: str = SENSOR_ID,
) -> Iterator[Record]:
    """The windows a backtest feeds, as engine records: offset = row index of the window's last row.

    Ends run from ``max(window_len - 1, first_end)`` to ``last_end`` (exclusive; default: all rows), every
    ``stride`` rows counted from the first possible end, so a retrain split does not shift the grid.
    """
    values = frame.to_numpy(dtype=np.float32)
    times = frame.index
    channels = tuple(str(c) for c in frame.columns)
    last = len(values) if last_end is None else min(last_end, len(values))
    origin = window_len - 1
    start = max(origin, first_end)
    start += (-(start - origin)) % stride
    for end in range(start, last, stride):
        window = SensorWindow(sensor_id, times[end - window_len + 1].to_pydatetime(), times[end].to_pydatetime(),
                              channels, np.ascontiguousarray(values[end - window_len + 1 : end + 1]))
        yield Record(0, end, window)


def run_backtest(
    frame: pd.DataFrame,
    bundle: ModelBundle,
    threshold_cfg: ThresholdSettings,
    alert_cfg: AlertSettings,
    *,
    stride: int = 1,
    retrain_every: int | None = None,
    model_cfg: ModelSettings | None = None,
    batch_windows: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """Detect on ``frame`` (time-indexed, the model's channels in its order) with ``bundle``; see module doc.
    ``progress``: called with (windows judged so far, windows in all) after each batch (the caller shows it)."""
    channels = [str(c) for c in frame.columns]
    if channels != list(bundle.meta.channels):
        raise DataError(f"data channels {channels} differ from the model's {list(bundle.meta.channels)}")
    if stride < 1:
        raise DataError("stride must be >= 1")
    if retrain_every is not None and (retrain_every < 1 or model_cfg is None):
        raise DataError("retrain_every needs a positive row count and the model settings to train with")
    if not np.isfinite(frame.to_numpy(dtype=np.float32)).all():
        raise DataError("input contains NaN or Infinity; clean or drop those rows first")
    n = len(frame)
    wl = bundle.meta.window_len
    score = np.full(n, np.nan)
    threshold = np.full(n, np.nan)
    flag = np.zeros(n, dtype=np.int8)
    engine = Engine(Scorer(bundle), threshold_cfg, alert_cfg)
    alerts: dict[tuple[str, datetime], AlertRecord] = {}
    models = [bundle.meta.version]
    if model_cfg is not None:
        # Windows are cut at the artifact's window_len; retrained models must keep that shape (the LSTM would
        # accept any length and silently score windows it was not trained on).
        model_cfg = model_cfg.model_copy(update={**architecture_of(bundle), "auto_shape": False})
    segments = [0, n] if not retrain_every else [*range(0, n, retrain_every), n]
    total, done = max(0, (n - wl) // stride + 1), 0
    for seg_start, seg_end in zip(segments[:-1], segments[1:]):
        if seg_start > 0 and model_cfg is not None and seg_start >= wl * 4:
            engine = _retrained(engine, frame.iloc[:seg_start], model_cfg, f"{bundle.meta.version}+r{seg_start}")
            models.append(engine.scorer.version)
        batch: list[Record] = []
        for record in window_records(frame, wl, stride, first_end=seg_start, last_end=seg_end):
            batch.append(record)
            if len(batch) >= batch_windows:
                _apply(engine, batch, score, threshold, flag, alerts)
                done += len(batch)
                if progress is not None:
                    progress(done, total)
                batch = []
        if batch:
            _apply(engine, batch, score, threshold, flag, alerts)
            done += len(batch)
            if progress is not None:
                progress(done, total)
    if stride > 1:
        score, threshold, flag = _forward_fill(score, threshold, flag, wl)
    table = pd.DataFrame({"score": score, "threshold": threshold, "is_anomaly": flag}, index=frame.index)
    return BacktestResult(table, sorted(alerts.values(), key=lambda a: a.opened_at), models)


def architecture_of(bundle: ModelBundle) -> dict[str, int | float]:
    """The ModelSettings fields that the artifact's metadata fixes (shape of the windows and of the network)."""
    meta = bundle.meta
    return {"window_len": meta.window_len, "hidden_size": meta.hidden_size, "latent_size": meta.latent_size,
            "num_layers": meta.num_layers, "dropout": meta.dropout}


def _apply(
    engine: Engine, batch: list[Record], score: np.ndarray, threshold: np.ndarray, flag: np.ndarray,
    alerts: dict[tuple[str, datetime], AlertRecord],
) -> None:
    outcome = engine.process(batch)
    for record, decision in outcome.decisions:
        row = record.offset
        score[row], threshold[row], flag[row] = decision.score, decision.threshold, int(decision.active)
    alerts.update(outcome.alerts)


def _forward_fill(
    score: np.ndarray, threshold: np.ndarray, flag: np.ndarray, window_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    filled = pd.DataFrame({"s": score, "t": threshold, "f": np.where(np.isnan(score), np.nan, flag)}).ffill()
    filled.iloc[: window_len - 1] = np.nan
    f = filled["f"].fillna(0).to_numpy(dtype=np.int8)
    return filled["s"].to_numpy(), filled["t"].to_numpy(), f


def _retrained(engine: Engine, seen: pd.DataFrame, cfg: ModelSettings, version: str) -> Engine:
    """A new engine on a model trained on ``seen``; sensor state crosses over like a live model swap."""
    from monitor.core.scoring.train import train

    bundle = train(seen, cfg, source="backtest retrain", version=version)
    fresh = Engine(Scorer(bundle), engine.threshold_cfg, engine.alert_cfg)
    fresh.load({s: SensorRow(s, c.partition, c.snapshot(), None, None, None, c.model_version)
                for s, c in engine.held().items()})
    return fresh
