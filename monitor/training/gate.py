"""The promotion gate: candidate versus active model on a recent hold-out of normal data. Pure (no I/O).

Two measures per model, on the same hold-out windows (alerts already excluded, so they are normal data):

* **reconstruction error**: mean over windows and channels of the squared reconstruction error in raw units,
  divided by the hold-out's own per-channel variance, so models with different scalers compare fairly;
  plus quantiles of the log window score against the model's own calibration;
* **expected alert rate**: the hold-out windows, each sensor's in time order, are judged by the one judge,
  ``monitor.core.engine.Engine``, with a fresh sensor context per sensor (exactly as a consumer starting on the
  model would judge them: input re-centring, threshold warm-up, hysteresis) and the alerts it opens are counted,
  per window. The log-score quantiles are those of the scores it decided with.

The candidate passes when its error is at most ``max_error_ratio`` times the best error, on the same hold-out, of
the active model and the ``gate_history`` versions active before it (no slide: a chain of candidates each a
little worse than its predecessor is stopped at the first that falls behind the best), and its alert rate is
at most ``max_alert_rate`` or no higher than the active's. Without an active model only the absolute alert
rate applies. A candidate whose channels or window length differ from the active model's never passes: the
consumers would send every window to the dead-letter topic (promote it explicitly, with the producers, if the
stream itself changed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from monitor.core.contract import SensorWindow
from monitor.core.engine import Engine, Record
from monitor.core.evidence import finite_or_none
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer, channel_residuals, deseasonalise, seasonality_of
from monitor.settings import AlertSettings, RetrainSettings, ThresholdSettings


@dataclass(frozen=True)
class Evaluation:
    """One model on the hold-out."""

    version: str
    windows: int
    error: float  # normalised reconstruction error (1.0 = as bad as predicting the channel mean)
    alerts: int
    alert_rate: float  # alerts opened per window
    log_score_p50: float
    log_score_p99: float
    calibration_z: float  # (median hold-out log score - calibration mean) / calibration std


@dataclass(frozen=True)
class ReferenceCheck:
    """Both models on the reference set: what the candidate loses and what it adds."""

    true_positives: int
    false_positives: int
    detected_by_active: int
    detected_by_candidate: int
    raised_by_active: int
    raised_by_candidate: int
    missed: list[str] = field(default_factory=list)  # confirmed true positives the active detects, the candidate not
    raised: list[str] = field(default_factory=list)  # confirmed false positives the candidate raises, the active not

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: list[str]
    candidate: Evaluation
    active: Evaluation | None
    notes: list[str] = field(default_factory=list)
    earlier: list[tuple[str, float]] = field(default_factory=list)  # (version, error) of earlier active versions
    reference: ReferenceCheck | None = None  # both models on the confirmed alerts (monitor/training/reference.py)

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons or ["gate passed"] + self.notes)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = finite({"passed": self.passed, "reasons": self.reasons, "notes": self.notes,
                "candidate": asdict(self.candidate), "active": asdict(self.active) if self.active else None,
                "earlier": [{"version": v, "error": e} for v, e in self.earlier],
                "reference": self.reference.to_json() if self.reference else None})
        return out


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (JSON columns and API bodies refuse them)."""
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def holdout_variance(windows: np.ndarray) -> np.ndarray:
    """(n, window_len, n_channels) -> per-channel variance of all hold-out rows, floored (n_channels,)."""
    rows = windows.reshape(-1, windows.shape[2]).astype(np.float64)
    out: np.ndarray = np.maximum(rows.var(axis=0), 1e-9)
    return out


def evaluate(
    bundle: ModelBundle,
    windows: np.ndarray,
    sensor_ids: Sequence[str],
    threshold_cfg: ThresholdSettings,
    alert_cfg: AlertSettings,
    variance: np.ndarray | None = None,
    starts: np.ndarray | None = None,
    ends: np.ndarray | None = None,
) -> Evaluation:
    """``windows``: (n, window_len, n_channels) raw values, each sensor's windows in time order; ``starts`` /
    ``ends``: their first and last times (seconds since the epoch), needed by a model with a daily profile.

    The reconstruction error measures the model's fit (no decision: raw windows, no re-centring); the scores and
    alerts are the engine's decisions (``judge``)."""
    error = reconstruction_error(bundle, windows, variance, starts, ends)
    scores, alerts = judge(bundle, windows, sensor_ids, threshold_cfg, alert_cfg, starts, ends)
    log_scores = np.log(np.maximum(scores, 1e-12))
    cal = bundle.meta.calibration
    return Evaluation(
        version=bundle.meta.version, windows=len(windows), error=error, alerts=alerts,
        alert_rate=alerts / max(len(windows), 1),
        log_score_p50=float(np.median(log_scores)), log_score_p99=float(np.quantile(log_scores, 0.99)),
        calibration_z=float((np.median(log_scores) - cal.log_score_mean) / max(cal.log_score_std, 1e-9)),
    )


def reconstruction_error(
    bundle: ModelBundle,
    windows: np.ndarray,
    variance: np.ndarray | None = None,
    starts: np.ndarray | None = None,
    ends: np.ndarray | None = None,
) -> float:
    """Mean squared reconstruction error in raw units over the hold-out's per-channel ``variance`` (1.0 = as bad
    as predicting each channel's mean): comparable between models with different scalers."""
    plain = deseasonalise(seasonality_of(bundle), windows, starts, ends)
    errors, _, _ = channel_residuals(bundle, plain)  # (n, C), in the model's scaled units
    raw = errors * (bundle.scaler.scale.astype(np.float64) ** 2)
    var = holdout_variance(plain) if variance is None else variance
    return float((raw / var).mean())


def judge(
    bundle: ModelBundle,
    windows: np.ndarray,
    sensor_ids: Sequence[str],
    threshold_cfg: ThresholdSettings,
    alert_cfg: AlertSettings,
    starts: np.ndarray | None = None,
    ends: np.ndarray | None = None,
    batch_windows: int = 2048,
) -> tuple[np.ndarray, int]:
    """The hold-out through ``Engine`` (fresh context per sensor): (each window's decided score (n,), alerts opened).

    Without ``starts`` / ``ends`` the windows get times one window length apart per sensor, in their order (the
    engine orders a sensor's windows by time; only a model with a daily profile needs the real ones)."""
    engine = Engine(Scorer(bundle), threshold_cfg, alert_cfg)
    channels = tuple(bundle.meta.channels)
    values = np.asarray(windows, dtype=np.float32)
    records: list[Record] = []
    for i, sensor_id in enumerate(sensor_ids):
        if starts is not None and ends is not None:
            start, end = float(starts[i]), float(ends[i])
        else:
            start, end = float(i * values.shape[1]), float(i * values.shape[1] + values.shape[1] - 1)
        window = SensorWindow(sensor_id, datetime.fromtimestamp(start, timezone.utc),
                              datetime.fromtimestamp(end, timezone.utc), channels, values[i])
        records.append(Record(0, i, window))
    scores = np.empty(len(records))
    alerts = 0
    for first in range(0, len(records), batch_windows):
        for record, decision in engine.process(records[first : first + batch_windows]).decisions:
            scores[record.offset] = decision.score
            alerts += decision.opened
    return scores, alerts


def compatible(bundle: ModelBundle, channels: Sequence[str], window_len: int) -> bool:
    return list(bundle.meta.channels) == list(channels) and bundle.meta.window_len == window_len


def decide(
    candidate: Evaluation, active: Evaluation | None, cfg: RetrainSettings, incompatible: str | None = None,
    earlier: Sequence[tuple[str, float]] = (), reference: ReferenceCheck | None = None,
) -> GateResult:
    """Apply the gate's rules (see the module docstring). ``incompatible``: why the candidate does not fit the
    active model's windows (``monitor.core.scoring.artifact.incompatibility``), which rejects it. ``earlier``: (version,
    reconstruction error on this hold-out) of versions active before the current one: the error bar is the best
    of them and the active model, so a chain of candidates each a little worse than the last cannot slide.
    ``reference``: both models on the confirmed alerts: the candidate must detect every confirmed true positive
    the active model detects and raise no more confirmed false positives."""
    reasons: list[str] = []
    notes: list[str] = []
    if incompatible:
        reasons.append(f"incompatible with the active model: {incompatible} (consumers would dead-letter every "
                       "window; promote it explicitly with `monitor models promote` if the stream changed)")
    if candidate.windows < cfg.min_holdout_windows:
        reasons.append(f"hold-out too small: {candidate.windows} windows < {cfg.min_holdout_windows}")
    if not np.isfinite(candidate.error):
        reasons.append("candidate's hold-out reconstruction error is not finite")
    if active is not None and np.isfinite(candidate.error):
        bars = [(f"active {active.version}", active.error)]
        bars += [(f"earlier {v}", e) for v, e in earlier if np.isfinite(e)]
        who, best = min(bars, key=lambda b: b[1])
        limit = best * cfg.max_error_ratio
        if candidate.error > limit:
            reasons.append(f"hold-out reconstruction error {candidate.error:.4f} > {cfg.max_error_ratio:g} x "
                           f"{who}'s {best:.4f}")
        else:
            notes.append(f"error {candidate.error:.4f} vs active {active.error:.4f}"
                         + (f" (best of the last {len(bars)} versions: {who.split()[-1]} {best:.4f})"
                            if len(bars) > 1 else ""))
    if candidate.alert_rate > cfg.max_alert_rate and (active is None or candidate.alert_rate > active.alert_rate):
        against = f" and above active {active.version}'s {active.alert_rate:.4f}" if active else ""
        reasons.append(f"expected alert rate on normal hold-out {candidate.alert_rate:.4f}/window "
                       f"({candidate.alerts} alerts) > {cfg.max_alert_rate:g}{against}")
    else:
        notes.append(f"alert rate {candidate.alert_rate:.4f}/window")
    if reference is not None:
        if reference.missed:
            reasons.append(f"misses {len(reference.missed)} confirmed true positive(s) the active model detects: "
                           + ", ".join(reference.missed[:5]) + (" ..." if len(reference.missed) > 5 else ""))
        if reference.raised_by_candidate > reference.raised_by_active:
            reasons.append(f"raises {reference.raised_by_candidate} confirmed false positive(s), the active model "
                           f"{reference.raised_by_active}: " + ", ".join(reference.raised[:5]))
        if reference.true_positives or reference.false_positives:
            notes.append(f"reference set: {reference.detected_by_candidate}/{reference.true_positives} confirmed "
                         f"true positives detected (active {reference.detected_by_active}), "
                         f"{reference.raised_by_candidate}/{reference.false_positives} confirmed false positives "
                         f"raised (active {reference.raised_by_active})")
    return GateResult(not reasons, reasons, candidate, active, notes, list(earlier), reference)
