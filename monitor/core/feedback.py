"""Operator feedback on the threshold layer. Pure: no I/O.

A window judged anomalous never teaches a sensor's threshold statistics (protection). When an operator
marks an alert a false positive, the windows were normal after all: their smoothed log scores ("levels")
are fed to ``SensorThreshold.forgive`` so the sensor's mean/variance take them in, and the same pattern
raises the open level a little instead of alerting again. When an operator says an alert is a **new normal**
(a lasting change of operating point), the sensor's current level becomes the centre its windows are judged
against (``adopt_state``): the only way, besides the explicit horizon ``threshold.adopt_after_s``, that a
lasting change becomes normal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from monitor.core.scoring.baseline import MAX_OFFSET
from monitor.core.thresholds import SensorThreshold
from monitor.settings import AlertSettings, ThresholdSettings


def levels_from_scores(scores: Sequence[float], smoothing: float) -> list[float]:
    """Raw window scores (> 0) in time order -> the smoothed log levels the threshold layer compares.

    The smoothing chain starts at the first window (the level before it is unknown); with the default
    ``smoothing=1`` this is exact: level = log(score).
    """
    out: list[float] = []
    level: float | None = None
    for score in scores:
        log_score = math.log(max(float(score), 1e-12))
        level = log_score if level is None else smoothing * log_score + (1 - smoothing) * level
        out.append(level)
    return out


def forgive_state(
    state: dict[str, Any], levels: Sequence[float], threshold_cfg: ThresholdSettings, alert_cfg: AlertSettings
) -> dict[str, Any]:
    """A sensor's stored state ``{"threshold": snapshot, "incidents": ...}`` with ``levels`` admitted as normal.

    Returns a new dict; the input is not mutated. Hysteresis counters and the incident state are kept.
    """
    threshold = SensorThreshold.restore(threshold_cfg, alert_cfg, state["threshold"])
    threshold.forgive(list(levels))
    return {**state, "threshold": threshold.snapshot()}


def adopt_state(state: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A sensor's stored state with its current level adopted as the new normal (the verdict ``new_normal``).

    The input re-centring's offsets (``state["baseline"]``, scaler units) move by the last judged window's mean
    residual, every channel (``InputBaseline.residual``), within ``MAX_OFFSET``: the next windows are judged relative to the level the
    sensor holds now, so an alert that was only about a changed operating point closes by itself, and one about a
    changed shape, variance or correlation keeps alerting. Returns (new state, whether anything moved); the input
    is not mutated. A state without a judged window (no residual) is returned unchanged.
    """
    baseline = state.get("baseline")
    if not isinstance(baseline, dict):
        return state, False
    offset, residual = baseline.get("offset"), baseline.get("residual")
    if not isinstance(offset, list) or not isinstance(residual, list) or len(offset) != len(residual):
        return state, False
    moved = [float(o) + float(r) if math.isfinite(float(r)) else float(o) for o, r in zip(offset, residual)]
    if moved == [float(o) for o in offset]:
        return state, False
    bound = MAX_OFFSET
    adopted = {"offset": [min(max(v, -bound), bound) for v in moved], "residual": [0.0] * len(residual)}
    return {**state, "baseline": {**baseline, **adopted}}, True
