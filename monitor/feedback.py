"""Operator feedback on the threshold layer. Pure: no I/O.

A window judged anomalous never teaches a sensor's threshold statistics (protection). When an operator
marks an alert a false positive, the windows were normal after all: their smoothed log scores ("levels")
are fed to ``SensorThreshold.forgive`` so the sensor's mean/variance take them in, and the same pattern
raises the open level a little instead of alerting again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from monitor.settings import AlertSettings, ThresholdSettings
from monitor.thresholds import SensorThreshold


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
