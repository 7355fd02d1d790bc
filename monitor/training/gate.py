"""The promotion gate: candidate versus active model on a recent hold-out of normal data. Pure (no I/O).

Two measures per model, on the same hold-out windows (alerts already excluded, so they are normal data):

* **reconstruction error**: mean over windows and channels of the squared reconstruction error in raw units,
  divided by the hold-out's own per-channel variance, so models with different scalers compare fairly;
  plus quantiles of the log window score against the model's own calibration;
* **expected alert rate**: each sensor's hold-out windows, in time order, go through a fresh
  ``SensorThreshold`` warm-started from the model's calibration (exactly as a consumer would start) and
  the alerts that would open are counted, per window.

The candidate passes when its error is at most ``max_error_ratio`` times the active's, and its alert rate is
at most ``max_alert_rate`` or no higher than the active's. Without an active model only the absolute alert
rate applies. A candidate whose channels or window length differ from the active model's never passes: the
consumers would send every window to the dead-letter topic (promote it explicitly, with the producers, if the
stream itself changed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from monitor.scoring.artifact import ModelBundle
from monitor.scoring.scorer import channel_residuals, deseasonalise, normalise, seasonality_of
from monitor.settings import AlertSettings, RetrainSettings, ThresholdSettings
from monitor.thresholds import SensorThreshold


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
class GateResult:
    passed: bool
    reasons: list[str]
    candidate: Evaluation
    active: Evaluation | None
    notes: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons or ["gate passed"] + self.notes)

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "notes": self.notes,
                "candidate": asdict(self.candidate), "active": asdict(self.active) if self.active else None}


def holdout_variance(windows: np.ndarray) -> np.ndarray:
    """(n, window_len, n_channels) -> per-channel variance of all hold-out rows, floored (n_channels,)."""
    rows = windows.reshape(-1, windows.shape[2]).astype(np.float64)
    return np.maximum(rows.var(axis=0), 1e-9)


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
    ``ends``: their first and last times (seconds since the epoch), needed by a model with a daily profile."""
    windows = deseasonalise(seasonality_of(bundle), windows, starts, ends)
    errors, residual_mean, linear = channel_residuals(bundle, windows)  # (n, C) each, in the model's scaled units
    raw = errors * (bundle.scaler.scale.astype(np.float64) ** 2)
    var = holdout_variance(windows) if variance is None else variance
    error = float((raw / var).mean())
    scores = normalise(errors, bundle.meta.calibration, residual_mean, linear).score
    log_scores = np.log(scores)
    cal = bundle.meta.calibration
    alerts = 0
    by_sensor: dict[str, list[float]] = {}
    for sensor_id, score in zip(sensor_ids, scores):
        by_sensor.setdefault(sensor_id, []).append(float(score))
    for series in by_sensor.values():
        threshold = SensorThreshold.from_calibration(threshold_cfg, alert_cfg, cal)
        alerts += sum(1 for s in series if threshold.update(s).opened)
    return Evaluation(
        version=bundle.meta.version, windows=len(windows), error=error, alerts=alerts,
        alert_rate=alerts / max(len(windows), 1),
        log_score_p50=float(np.median(log_scores)), log_score_p99=float(np.quantile(log_scores, 0.99)),
        calibration_z=float((np.median(log_scores) - cal.log_score_mean) / max(cal.log_score_std, 1e-9)),
    )


def compatible(bundle: ModelBundle, channels: Sequence[str], window_len: int) -> bool:
    return list(bundle.meta.channels) == list(channels) and bundle.meta.window_len == window_len


def decide(
    candidate: Evaluation, active: Evaluation | None, cfg: RetrainSettings, incompatible: str | None = None
) -> GateResult:
    """Apply the gate's rules (see the module docstring). ``incompatible``: why the candidate does not fit the
    active model's windows (``monitor.scoring.artifact.incompatibility``), which rejects it."""
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
        limit = active.error * cfg.max_error_ratio
        if candidate.error > limit:
            reasons.append(f"hold-out reconstruction error {candidate.error:.4f} > {cfg.max_error_ratio:g} x "
                           f"active {active.version}'s {active.error:.4f}")
        else:
            notes.append(f"error {candidate.error:.4f} vs active {active.error:.4f}")
    if candidate.alert_rate > cfg.max_alert_rate and (active is None or candidate.alert_rate > active.alert_rate):
        against = f" and above active {active.version}'s {active.alert_rate:.4f}" if active else ""
        reasons.append(f"expected alert rate on normal hold-out {candidate.alert_rate:.4f}/window "
                       f"({candidate.alerts} alerts) > {cfg.max_alert_rate:g}{against}")
    else:
        notes.append(f"alert rate {candidate.alert_rate:.4f}/window")
    return GateResult(not reasons, reasons, candidate, active, notes)
