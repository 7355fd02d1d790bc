"""Per-sensor online thresholds on river statistics, with protection and hysteresis. Pure: no I/O.

Scores are compared on a log scale (reconstruction errors are heavy-tailed). For each sensor:

* the log score is smoothed with an exponentially weighted mean (``smoothing`` = weight of the newest score);
* a river ``EWMean`` tracks the level of normal smoothed log scores and a second ``EWMean`` their squared
  deviation (an exponentially weighted variance), so the threshold follows slow drift but forgets old history;
* both start from the model's validation-score calibration; then, during a **warm-up** (probation) of
  ``warmup_windows`` windows in which the sensor may not alert, the sensor's own smoothed log scores are
  collected and, at its end, raise the calibration where the sensor's own scores are higher or wider (median
  and 1.4826 x MAD): a sensor noisier than the validation windows does not alert on its noise (hysterical).
  The warm-up never lowers them: a few correlated windows, or the model's own training rows, understate the
  spread of new data; a calibration too high to be reached is bounded by ``max_std`` below;
* the std of the log score lies in [``min_std``, ``max_std``]: the open level is never more than
  ``exp(k_enter * max_std)`` times the typical score (a threshold within reach of the data); and it is never
  below the calibration's (capped) std: learning only from windows below the close level, the statistics
  would otherwise shrink onto the lower mode of a sensor with two kinds of normal windows (a quantised
  channel, flat or stepping) and every normal step would alert;
* the open level is at least the training windows' ``train_quantile`` (0.99) log score stored in the model
  (``Calibration.fit_quantiles``), and the close and instant levels move up with it (the ``lift``, in stds, at
  most ``k_instant - k_enter``, as the optional tail bound ``tail_risk``): normal behaviour the model
  reconstructs badly is a second mode of scores (a quantised channel's steps in a short history) that a level
  fitted on the validation windows puts above the open level. A quantile beyond ``exp(k_enter * max_std)`` times
  the typical score is out of reach and ignored, and no lift takes a level past ``k * max_std``;
* **protected**: a window above the close level (mean + k_exit * std), or any window while an alert is
  active, does not update the statistics, so anomalies never teach the threshold (river's ``protect_anomaly_detector`` idea);
* **hysteresis**: an alert opens after ``min_hits`` consecutive windows above the open level
  (mean + k_enter * std) that together brought at least ``min_rows`` rows of new data (windows cut at every row
  overlap: eight of them in a row are eight rows of evidence, two non-overlapping windows of 32 rows are 64), or
  at once on one window above the instant level (mean + k_instant * std: a short burst that fits in one window),
  and closes after ``min_normal`` consecutive windows below the close level (mean + k_exit * std).

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
    normal: bool = True  # judged normal: it taught the statistics (and may teach other online adaptation)
    warming: bool = False  # in the sensor's warm-up: judged, never alerting

    @property
    def threshold(self) -> float:
        """The open level on the raw score scale (what users compare scores with)."""
        return math.exp(self.enter)


def _ewmean(fading: float, start: float) -> stats.EWMean:
    mean = stats.EWMean(fading_factor=fading)
    mean.update(start)  # river's EWMean takes its first value as is: an exact restore
    return mean


MAX_LOG_SCORE = 700.0  # log of the largest score judged (a non-finite or absurd score counts as this, never learned)


class SensorThreshold:
    """Adaptive, protected, hysteretic threshold of one sensor."""

    def __init__(
        self,
        cfg: ThresholdSettings,
        alert: AlertSettings,
        *,
        log_mean: float,
        log_std: float,
        tail_k: float = 0.0,
    ) -> None:
        self.cfg = cfg
        self.alert = alert
        log_mean = log_mean if math.isfinite(log_mean) else 0.0
        log_std = min(log_std, cfg.max_std) if math.isfinite(log_std) else cfg.max_std
        self._mean = _ewmean(cfg.fading, log_mean)
        self._sq = _ewmean(cfg.fading, log_std**2)
        self.level: float | None = None
        self.hits = 0
        self.rows = 0.0  # rows of new data the current run of hits brought (min_rows)
        self.normals = 0
        self.active = False
        self.seen = 0
        # Warm-up: the levels seen so far, while fewer than warmup_windows (None once it is over).
        self.warm: list[float] | None = [] if cfg.warmup_windows > 0 else None
        self.prior = (log_mean, log_std)  # the calibration, a floor of the warm-up's estimate
        # How many stds the calibration's tail puts the open level above k_enter (0: the Gaussian levels hold).
        # Bounded by the instant level: a heavy or badly estimated tail cannot put the open level out of reach.
        self.lift = min(max(0.0, tail_k - cfg.k_enter), max(cfg.k_instant - cfg.k_enter, 0.0)) if math.isfinite(
            tail_k) else 0.0

    @classmethod
    def from_calibration(cls, cfg: ThresholdSettings, alert: AlertSettings, cal: Any) -> SensorThreshold:
        """A fresh sensor's threshold for a model's ``Calibration`` (its log-score level, spread and tail)."""
        std = min(max(cal.log_score_std, cfg.min_std), cfg.max_std)
        levels = [tail_level(cal.tail, cfg.tail_risk)]
        fit = fit_level(getattr(cal, "fit_quantiles", {}), cfg.train_quantile)
        if fit is not None and fit <= cal.log_score_mean + cfg.k_enter * cfg.max_std:
            # A second mode of normal scores within reach of a threshold (exp(k_enter * max_std) times the typical
            # score) is absorbed; one beyond it (an operator's setpoint switch the model cannot reconstruct, ~600
            # times the typical score) is left alone: no threshold within reach sits above it, and lifting towards
            # it would only make the sensor deaf.
            levels.append(fit)
        found = [v for v in levels if v is not None]
        tail_k = (max(found) - cal.log_score_mean) / std if found else 0.0
        return cls(cfg, alert, log_mean=cal.log_score_mean, log_std=cal.log_score_std, tail_k=tail_k)

    @property
    def warming(self) -> bool:
        return self.warm is not None

    def _std(self, sq: float) -> float:
        # Never narrower than the calibration's spread: the statistics learn only from windows below the close
        # level, so on a sensor whose scores have a second mode (a quantised channel's steps) they would shrink
        # onto the lower one and every normal step would alert (issue 15: a threshold must not go hysterical).
        return min(max(math.sqrt(sq if sq > 0.0 else 0.0), self.cfg.min_std, self.prior[1]), self.cfg.max_std)

    @property
    def std(self) -> float:
        return self._std(self._sq.get())

    @property
    def enter(self) -> float:
        return self._level(self.cfg.k_enter)

    @property
    def instant(self) -> float:
        """Level at which a single window opens an alert (no need for ``min_hits`` in a row)."""
        return self._level(self.cfg.k_instant)

    @property
    def exit(self) -> float:
        return self._level(self.cfg.k_exit)

    def _level(self, k: float) -> float:
        """mean + (k + lift) * std; the lift never takes a level past k * max_std: the ceiling of a threshold
        within reach of the data holds whatever the tail or the training quantile say."""
        return self._mean.get() + min((k + self.lift) * self.std, k * self.cfg.max_std)

    def update(self, score: float, rows: float = math.inf) -> Decision:
        """Judge one window score (> 0) and learn from it if it looks normal. ``rows``: rows of new data the
        window brought since the sensor's previous one (its length for a first window or after a gap; the
        default counts every window as enough evidence, as without ``min_rows``)."""
        cfg = self.cfg
        finite = score == score and score < math.inf  # NaN or inf: judged as the largest score, never learned
        log_score = min(math.log(max(score, 1e-12)), MAX_LOG_SCORE) if finite else MAX_LOG_SCORE
        level = log_score if self.level is None else cfg.smoothing * log_score + (1 - cfg.smoothing) * self.level
        self.level = level
        if self.warm is not None:
            return self._warm_up(score, level, finite)
        mean, std, lift, top = self._mean.get(), self._std(self._sq.get()), self.lift, cfg.max_std  # the hot path
        enter = mean + min((cfg.k_enter + lift) * std, cfg.k_enter * top)
        exit_ = mean + min((cfg.k_exit + lift) * std, cfg.k_exit * top)
        above = level > (exit_ if self.active else enter)
        opened = closed = False
        if above:
            self.hits += 1
            self.rows += rows if rows > 0.0 else 0.0
            self.normals = 0
            if not self.active and ((self.hits >= self.alert.min_hits and self.rows >= self.alert.min_rows)
                                    or level > mean + min((cfg.k_instant + lift) * std, cfg.k_instant * top)):
                self.active = opened = True
        else:
            self.normals += 1
            self.hits = 0
            self.rows = 0.0
            if self.active and self.normals >= self.alert.min_normal:
                self.active = False
                closed = True
        learn = level <= exit_ and not self.active and finite
        if learn:
            # Only windows below the close level teach the statistics: the band between the close and open
            # levels is suspicious, and learning it lets a noisy anomaly inflate the variance and hide itself.
            mean = self._mean.get()
            deviation = level - mean
            self._mean.update(level)
            self._sq.update(deviation * deviation)
        self.seen += 1
        return Decision(score, level, enter, exit_, above, self.active, opened, closed, learn)

    def _warm_up(self, score: float, level: float, finite: bool) -> Decision:
        """A warm-up window: never alerts; its level is collected; the last one sets the statistics."""
        cfg = self.cfg
        assert self.warm is not None
        enter, exit_ = self.enter, self.exit
        if finite:
            self.warm.append(level)
        self.seen += 1
        if self.seen >= cfg.warmup_windows:
            self._end_warm_up()
        return Decision(score, level, enter, exit_, level > enter, False, False, False, finite, warming=True)

    def _end_warm_up(self) -> None:
        levels = sorted(self.warm or [])
        self.warm = None
        if len(levels) < 4:
            return  # too few finite scores to say anything: keep the calibration
        median = _median(levels)
        spread = 1.4826 * _median(sorted(abs(v - median) for v in levels))
        prior_mean, prior_std = self.prior
        mean = max(median, prior_mean)
        std = min(max(spread, prior_std, self.cfg.min_std), self.cfg.max_std)
        self._mean = _ewmean(self.cfg.fading, mean)
        self._sq = _ewmean(self.cfg.fading, std * std)

    def forgive(self, log_levels: list[float]) -> None:
        """Operator feedback: these levels were normal after all; let them teach the statistics."""
        for level in log_levels:
            if not math.isfinite(level):
                continue
            deviation = level - self._mean.get()
            self._mean.update(level)
            self._sq.update(deviation * deviation)

    def snapshot(self) -> dict[str, Any]:
        return {
            "mean": self._mean.get(),
            "sq": self._sq.get(),
            "level": self.level,
            "hits": self.hits,
            "rows": self.rows if math.isfinite(self.rows) else _ROWS_CAP,
            "normals": self.normals,
            "active": self.active,
            "seen": self.seen,
            "warm": None if self.warm is None else list(self.warm),  # a copy: the snapshot is of its moment
            "prior": list(self.prior),
            "lift": self.lift,
        }

    @classmethod
    def carried(cls, cfg: ThresholdSettings, alert: AlertSettings, data: dict[str, Any], cal: Any) -> SensorThreshold:
        """A threshold learned under another model (``data``: its snapshot), moved to the score scale of the model
        whose ``Calibration`` is ``cal``: every log level x becomes ``new_mean + (x - old_mean) * new_std / old_std``,
        with (old_mean, old_std) the calibration it was learned under (its ``prior``), so each sensor keeps its
        place relative to the model's normal, its learned spread, and its alert state. A snapshot without a usable
        prior starts from the new calibration, as a sensor seen for the first time."""
        fresh = cls.from_calibration(cfg, alert, cal)
        prior = data.get("prior")
        old_mean, old_std = (float(prior[0]), float(prior[1])) if isinstance(prior, list) and len(prior) == 2 else (
            math.nan, math.nan)
        new_mean, new_std = fresh.prior

        def clamp(v: float) -> float:  # the spread from_calibration uses
            return min(max(v, cfg.min_std), cfg.max_std)

        if not (math.isfinite(old_mean) and math.isfinite(old_std) and math.isfinite(new_std)):
            return fresh
        ratio = clamp(new_std) / clamp(old_std)

        def moved(x: float) -> float:
            return new_mean + (x - old_mean) * ratio

        mean, sq = float(data["mean"]), float(data["sq"])
        if not (math.isfinite(mean) and math.isfinite(sq)):
            return fresh
        fresh._mean = _ewmean(cfg.fading, moved(mean))
        fresh._sq = _ewmean(cfg.fading, max(sq, 0.0) * ratio * ratio)
        level = data.get("level")
        fresh.level = moved(float(level)) if isinstance(level, (int, float)) and math.isfinite(level) else None
        fresh.hits, fresh.normals = int(data["hits"]), int(data["normals"])
        fresh.rows = _stored_rows(data)
        fresh.active, fresh.seen = bool(data["active"]), int(data["seen"])
        warm = data.get("warm")
        fresh.warm = [moved(float(v)) for v in warm] if isinstance(warm, list) and cfg.warmup_windows > 0 else None
        return fresh

    @classmethod
    def restore(cls, cfg: ThresholdSettings, alert: AlertSettings, data: dict[str, Any]) -> SensorThreshold:
        obj = cls(cfg, alert, log_mean=float(data["mean"]), log_std=0.0)
        obj._sq = _ewmean(cfg.fading, float(data["sq"]))
        obj.level = data["level"]
        obj.hits = int(data["hits"])
        obj.rows = _stored_rows(data)
        obj.normals = int(data["normals"])
        obj.active = bool(data["active"])
        obj.seen = int(data["seen"])
        warm = data.get("warm")  # absent in states stored before the warm-up existed: warmed up
        obj.warm = [float(v) for v in warm] if isinstance(warm, list) and cfg.warmup_windows > 0 else None
        prior = data.get("prior")
        if isinstance(prior, list) and len(prior) == 2:
            obj.prior = (float(prior[0]), float(prior[1]))
        lift = data.get("lift", 0.0)
        obj.lift = float(lift) if isinstance(lift, (int, float)) and math.isfinite(lift) and lift > 0 else 0.0
        return obj


_ROWS_CAP = 1e9  # a run's stored row count (JSON has no infinity): far above any min_rows


def _stored_rows(data: dict[str, Any]) -> float:
    """The stored ``rows`` of a run of hits; states stored before ``min_rows`` existed, or damaged, count each
    stored hit as enough evidence (the run goes on as it would have before)."""
    rows = data.get("rows")
    if isinstance(rows, (int, float)) and not isinstance(rows, bool) and math.isfinite(rows) and rows >= 0:
        return float(rows)
    return _ROWS_CAP if int(data.get("hits", 0) or 0) > 0 else 0.0


def fit_tail(log_scores: Any, quantile: float = 0.9) -> dict[str, float]:
    """Peaks over threshold (Pickands-Balkema-de Haan): a generalised Pareto fit, by the method of moments, of the
    excesses of ``log_scores`` over their ``quantile``; ``{}`` with fewer than 10 excesses. ``tail_level`` turns it
    into the level exceeded with a given probability (SPOT, Siffer et al., KDD 2017)."""
    values = sorted(float(v) for v in log_scores if math.isfinite(v))
    if len(values) < 20:
        return {}
    u = values[min(len(values) - 1, int(quantile * len(values)))]
    excess = [v - u for v in values if v > u]
    if len(excess) < 10:
        return {}
    m = sum(excess) / len(excess)
    var = sum((e - m) ** 2 for e in excess) / max(len(excess) - 1, 1)
    if m <= 0 or var <= 0:
        return {}
    ratio = m * m / var
    shape = max(-0.5, min(0.5, 0.5 * (1.0 - ratio)))  # bounded: a few dozen excesses cannot support more
    scale = max(m * (1.0 - shape), 1e-6)  # mean of the excesses = scale / (1 - shape)
    return {"u": u, "scale": scale, "shape": shape, "rate": len(excess) / len(values)}


def fit_level(quantiles: dict[str, float], q: float) -> float | None:
    """The training windows' log-score ``q`` quantile from a calibration's ``fit_quantiles`` (keys ``q950``, ...),
    linear between the stored ones; None when ``q`` is 0, none are stored, or ``q`` lies outside them."""
    if q <= 0 or not quantiles:
        return None
    points = sorted((int(k[1:]) / 1000.0, float(v)) for k, v in quantiles.items()
                    if k.startswith("q") and k[1:].isascii() and k[1:].isdigit() and math.isfinite(v))
    for (q0, v0), (q1, v1) in zip(points, points[1:], strict=False):
        if q0 <= q <= q1:
            return v0 + (v1 - v0) * (q - q0) / (q1 - q0) if q1 > q0 else v0
    return points[0][1] if points and abs(q - points[0][0]) < 1e-9 else None


def tail_level(tail: dict[str, float], risk: float) -> float | None:
    """The log score exceeded with probability ``risk`` per window under the fitted tail (None: no tail, risk 0,
    or a risk within the fitted body)."""
    if not tail or risk <= 0 or risk >= tail.get("rate", 0.0):
        return None
    u, scale, shape, rate = tail["u"], tail["scale"], tail["shape"], tail["rate"]
    if abs(shape) < 1e-6:
        return u - scale * math.log(risk / rate)
    level = u + scale / shape * ((risk / rate) ** (-shape) - 1.0)
    return level if math.isfinite(level) else None


def _median(sorted_values: list[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    return sorted_values[mid] if n % 2 else 0.5 * (sorted_values[mid - 1] + sorted_values[mid])
