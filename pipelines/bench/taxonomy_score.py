"""Scoring of the fault taxonomy (pure numpy): found anomalies, delays, false alerts, threshold ratios.

Inputs are one series' backtest rows: ``flags`` (n,) 0/1 "an alert is active after the window ending at this
row", ``score`` and ``threshold`` (n,) float (NaN before the first full window), the row times, the labelled
spans ``[start, end)`` and the number of training rows. Rules (docs/quality.md):

* an anomaly is *found* when an alert is active at some row of ``[start, end + grace)``; ``grace`` is one
  window length of rows (a window sees an anomaly up to ``window_len - 1`` rows after it ended);
* its *delay* is the number of rows (and minutes) from ``start`` to the first such row;
* a *false alert* is an alert opening (a 0 -> 1 edge of ``flags``) at a test row (``>= train_rows``) outside
  every ``[start, end + grace)``; rates are per sensor-day of the test part (a multichannel series is one
  sensor);
* the *alerted share* is the share of normal test rows (test rows outside every ``[start, end + grace)``)
  under an alert: one alert that never closes is one false alert but may cover the whole test part;
* threshold ratios compare the threshold with the sensor's own normal scores on the normal test rows (test
  rows outside every ``[start, end + grace)``): the median of threshold / score, and the largest and smallest
  threshold over the 99th percentile of those scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

Span = tuple[int, int]


@dataclass(frozen=True)
class SpanOutcome:
    start: int
    end: int  # exclusive
    found: bool
    delay_rows: int | None  # None when not found
    delay_min: float | None


@dataclass(frozen=True)
class Ratios:
    """Threshold over normal scores on the normal test rows; NaN when there are none."""

    median_over_score: float
    max_over_p99: float
    min_over_p99: float


@dataclass(frozen=True)
class SeriesOutcome:
    name: str
    kind: str
    spans: tuple[SpanOutcome, ...]
    false_alerts: int
    test_days: float
    alerted_share: float  # of the normal test rows; NaN when there are none
    ratios: Ratios

    @property
    def clean(self) -> bool:
        return not self.spans


@dataclass(frozen=True)
class KindRow:
    """One kind over its series: ``recall`` NaN and ``delays`` empty for a clean kind."""

    kind: str
    n_series: int
    n_found: int
    n_spans: int
    recall: float
    median_delay_rows: float
    median_delay_min: float
    false_alerts: int
    test_days: float
    alerted_share: float  # mean over the kind's series
    worst_median_ratio: float
    worst_max_ratio: float
    lowest_min_ratio: float

    @property
    def false_per_day(self) -> float:
        return self.false_alerts / self.test_days if self.test_days > 0 else float("nan")


def alert_openings(flags: np.ndarray) -> np.ndarray:
    """Rows where an alert opens: ``flags`` (n,) 0/1 -> indices where it is 1 and the row before is 0 (row 0
    counts when it is 1)."""
    f = np.asarray(flags).astype(bool)
    return np.flatnonzero(f & ~np.concatenate([[False], f[:-1]]))


def covered(n_rows: int, spans: Sequence[Span], grace: int) -> np.ndarray:
    """(n_rows,) bool: rows inside some ``[start, end + grace)``."""
    mask = np.zeros(n_rows, dtype=bool)
    for start, end in spans:
        mask[start : end + grace] = True
    return mask


def judge_spans(flags: np.ndarray, times: pd.DatetimeIndex, spans: Sequence[Span], grace: int) -> list[SpanOutcome]:
    """Found/delay of each span (see module doc)."""
    f = np.asarray(flags).astype(bool)
    out = []
    for start, end in spans:
        hits = np.flatnonzero(f[start : end + grace])
        if hits.size:
            row = start + int(hits[0])
            delay_min = (times[row] - times[start]).total_seconds() / 60
            out.append(SpanOutcome(start, end, True, int(hits[0]), delay_min))
        else:
            out.append(SpanOutcome(start, end, False, None, None))
    return out


def false_alerts(flags: np.ndarray, spans: Sequence[Span], grace: int, first_row: int) -> int:
    """Alert openings at rows >= ``first_row`` outside every ``[start, end + grace)``; an alert still open at
    ``first_row`` (opened in the training part) counts as one opening there: the test part starts in a false
    alert (round 11: a series alerted from its training part to its end counted no false alert)."""
    opened = alert_openings(np.asarray(flags)[first_row:]) + first_row  # the test part's row 0 counts when set
    inside = covered(len(flags), spans, grace)
    return int(np.sum(~inside[opened]))


def threshold_ratios(score: np.ndarray, threshold: np.ndarray, normal: np.ndarray) -> Ratios:
    """Ratios over the rows where ``normal`` (n,) is True and score/threshold are finite (see module doc)."""
    s, t = np.asarray(score, dtype=float), np.asarray(threshold, dtype=float)
    rows = np.asarray(normal, dtype=bool) & np.isfinite(s) & np.isfinite(t)
    if not rows.any():
        return Ratios(float("nan"), float("nan"), float("nan"))
    s, t = s[rows], t[rows]
    positive = s > 0
    median = float(np.median(t[positive] / s[positive])) if positive.any() else float("inf")
    p99 = float(np.percentile(s, 99))
    if p99 <= 0:
        return Ratios(median, float("inf"), float("inf"))
    return Ratios(median, float(t.max() / p99), float(t.min() / p99))


def score_series(
    name: str, kind: str, flags: np.ndarray, score: np.ndarray, threshold: np.ndarray, times: pd.DatetimeIndex,
    spans: Sequence[Span], train_rows: int, grace: int,
) -> SeriesOutcome:
    """Everything the taxonomy reports about one series."""
    n = len(flags)
    normal = ~covered(n, spans, grace)
    normal[:train_rows] = False
    test_days = (times[-1] - times[train_rows]).total_seconds() / 86400 if n > train_rows else 0.0
    alerted = float(np.mean(np.asarray(flags)[normal] > 0)) if normal.any() else float("nan")
    return SeriesOutcome(
        name, kind, tuple(judge_spans(flags, times, spans, grace)), false_alerts(flags, spans, grace, train_rows),
        test_days, alerted, threshold_ratios(score, threshold, normal),
    )


def _median(values: Sequence[float]) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def _mean(values: Sequence[float]) -> float:
    """Mean ignoring NaN; NaN when all are NaN."""
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def _extreme(values: Sequence[float], pick: str) -> float:
    """Largest (``pick`` "max") or smallest finite-or-inf value, ignoring NaN; NaN when all are NaN."""
    kept = [v for v in values if not np.isnan(v)]
    if not kept:
        return float("nan")
    return float(max(kept) if pick == "max" else min(kept))


def summarise(outcomes: Sequence[SeriesOutcome]) -> list[KindRow]:
    """One row per kind, in order of first appearance."""
    rows = []
    for kind in dict.fromkeys(o.kind for o in outcomes):
        group = [o for o in outcomes if o.kind == kind]
        spans = [s for o in group for s in o.spans]
        found = [s for s in spans if s.found]
        rows.append(KindRow(
            kind, len(group), len(found), len(spans), len(found) / len(spans) if spans else float("nan"),
            _median([s.delay_rows for s in found if s.delay_rows is not None]),
            _median([s.delay_min for s in found if s.delay_min is not None]),
            sum(o.false_alerts for o in group), sum(o.test_days for o in group),
            _mean([o.alerted_share for o in group]),
            _extreme([o.ratios.median_over_score for o in group], "max"),
            _extreme([o.ratios.max_over_p99 for o in group], "max"),
            _extreme([o.ratios.min_over_p99 for o in group], "min"),
        ))
    return rows


def headline(outcomes: Sequence[SeriesOutcome]) -> tuple[float, float, float]:
    """(recall, false alerts per sensor-day on clean series, the same outside spans on anomalous series).

    recall = mean over anomaly kinds of the per-kind recall (every kind weighs the same); the rates pool the
    series' false alerts and sensor-days. NaN where there is nothing to average."""
    kinds = [r for r in summarise(outcomes) if r.n_spans]
    recall = float(np.mean([r.recall for r in kinds])) if kinds else float("nan")

    def rate(group: list[SeriesOutcome]) -> float:
        days = sum(o.test_days for o in group)
        return sum(o.false_alerts for o in group) / days if days > 0 else float("nan")

    return recall, rate([o for o in outcomes if o.clean]), rate([o for o in outcomes if not o.clean])
