"""Per-sensor online thresholds on river statistics, with protection and hysteresis. Pure: no I/O.

Scores are compared on a log scale (reconstruction errors are heavy-tailed). For each sensor:

* the log score is smoothed with an exponentially weighted mean (``smoothing`` = weight of the newest score);
* a river ``EWMean`` tracks the level of normal smoothed log scores and a second ``EWMean`` their squared
  deviation (an exponentially weighted variance), so the threshold follows slow drift but forgets old history;
* both are warm-started from the model's validation-score calibration, so the first windows are judged at once;
* **protected**: a window above the close level (mean + k_exit * std), or any window while an alert is
  active, does not update the statistics, so anomalies never teach the threshold (river's ``protect_anomaly_detector`` idea);
* **hysteresis**: an alert opens after ``min_hits`` consecutive windows above the open level
  (mean + k_enter * std), or at once on one window above the instant level (mean + k_instant * std: a short
  burst that fits in one window), and closes after ``min_normal`` consecutive windows below the close level
  (mean + k_exit * std).

``snapshot()`` returns plain JSON-able data; ``restore()`` continues exactly where the snapshot left off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from river import stats

from monitor.settings import AlertSettings, ThresholdSettings


@dataclass(frozen=True, slots=True)
class Decision:
    """The threshold layer's verdict on one window."""

    score: float  # raw window score
    level: float  # smoothed log score that was compared
    enter: float  # open level (log scale)
    exit: float  # close level (log scale)
    above: bool  # level > enter (or > exit while active)
    active: bool  # an alert is active after this window
    opened: bool  # this window opened it
    closed: bool  # this window closed it

    @property
    def threshold(self) -> float:
        """The open level on the raw score scale (what users compare scores with)."""
        return math.exp(self.enter)


def _ewmean(fading: float, start: float) -> stats.EWMean:
    mean = stats.EWMean(fading_factor=fading)
    mean.update(start)  # river's EWMean takes its first value as is: an exact restore
    return mean


class SensorThreshold:
    """Adaptive, protected, hysteretic threshold of one sensor."""

    def __init__(
        self,
        cfg: ThresholdSettings,
        alert: AlertSettings,
        *,
        log_mean: float,
        log_std: float,
    ) -> None:
        self.cfg = cfg
        self.alert = alert
        self._mean = _ewmean(cfg.fading, log_mean)
        self._sq = _ewmean(cfg.fading, log_std**2)
        self.level: float | None = None
        self.hits = 0
        self.normals = 0
        self.active = False
        self.seen = 0

    @property
    def std(self) -> float:
        return max(math.sqrt(max(self._sq.get(), 0.0)), self.cfg.min_std)

    @property
    def enter(self) -> float:
        return self._mean.get() + self.cfg.k_enter * self.std

    @property
    def instant(self) -> float:
        """Level at which a single window opens an alert (no need for ``min_hits`` in a row)."""
        return self._mean.get() + self.cfg.k_instant * self.std

    @property
    def exit(self) -> float:
        return self._mean.get() + self.cfg.k_exit * self.std

    def update(self, score: float) -> Decision:
        """Judge one window score (> 0) and learn from it if it looks normal."""
        cfg = self.cfg
        log_score = math.log(max(score, 1e-12))
        level = log_score if self.level is None else cfg.smoothing * log_score + (1 - cfg.smoothing) * self.level
        self.level = level
        mean = self._mean.get()  # read once: this is the hot path (one call per window)
        sq = self._sq.get()
        std = max(math.sqrt(sq if sq > 0.0 else 0.0), cfg.min_std)
        enter, exit_ = mean + cfg.k_enter * std, mean + cfg.k_exit * std
        above = level > (exit_ if self.active else enter)
        opened = closed = False
        if above:
            self.hits += 1
            self.normals = 0
            if not self.active and (self.hits >= self.alert.min_hits or level > mean + cfg.k_instant * std):
                self.active = opened = True
        else:
            self.normals += 1
            self.hits = 0
            if self.active and self.normals >= self.alert.min_normal:
                self.active = False
                closed = True
        if level <= exit_ and not self.active:
            # Only windows below the close level teach the statistics: the band between the close and open
            # levels is suspicious, and learning it lets a noisy anomaly inflate the variance and hide itself.
            deviation = level - mean
            self._mean.update(level)
            self._sq.update(deviation * deviation)
        self.seen += 1
        return Decision(score, level, enter, exit_, above, self.active, opened, closed)

    def forgive(self, log_levels: list[float]) -> None:
        """Operator feedback: these levels were normal after all; let them teach the statistics."""
        for level in log_levels:
            deviation = level - self._mean.get()
            self._mean.update(level)
            self._sq.update(deviation * deviation)

    def snapshot(self) -> dict[str, Any]:
        return {
            "mean": self._mean.get(),
            "sq": self._sq.get(),
            "level": self.level,
            "hits": self.hits,
            "normals": self.normals,
            "active": self.active,
            "seen": self.seen,
        }

    @classmethod
    def restore(cls, cfg: ThresholdSettings, alert: AlertSettings, data: dict[str, Any]) -> SensorThreshold:
        obj = cls(cfg, alert, log_mean=float(data["mean"]), log_std=0.0)
        obj._sq = _ewmean(cfg.fading, float(data["sq"]))
        obj.level = data["level"]
        obj.hits = int(data["hits"])
        obj.normals = int(data["normals"])
        obj.active = bool(data["active"])
        obj.seen = int(data["seen"])
        return obj
