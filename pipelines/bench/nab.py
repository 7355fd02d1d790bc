"""NAB-style changepoint scoring as used by the SKAB leaderboard (pure numpy/pandas).

Per series: true changepoints open a detection window ``[cp, cp + window]`` (a window to the right only).
Predicted changepoints are the rising and falling edges of the binary alarm. Per window, the first
prediction inside the window or in the following quarter-window ("slow" zone) earns a sigmoid-scaled
reward between ``A_tp`` (at the window start) and ``A_fp`` (late); no prediction there costs ``A_fn``.
Predictions before the first window, and those in the tail of each inter-window span (a stretch as long as
the window + slow zone, counted back from the end of that span, which is how the SKAB reference scorer
counts them), cost ``A_fp`` each. Scores, their "perfect" (every window hit at once) and "null" (nothing detected) counterparts are
summed over all series, and each profile reports ``100 * (S - S_null) / (S_perfect - S_null)``, floored at 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

PROFILES: dict[str, tuple[float, float, float]] = {  # name: (A_tp, A_fp, A_fn)
    "standard": (1.0, -0.11, -1.0),
    "lowFP": (1.0, -0.22, -1.0),
    "lowFN": (1.0, -0.11, -2.0),
}


def alarm_edges(alarm: np.ndarray) -> np.ndarray:
    """Binary alarm (n,) -> 1 where it changes value (rising or falling edge), 0 elsewhere; first row 0."""
    alarm = np.asarray(alarm, dtype=np.int8)
    edges = np.zeros(len(alarm), dtype=np.int8)
    if len(alarm) > 1:
        edges[1:] = (np.diff(alarm) != 0).astype(np.int8)
    return edges


def _windows(times: pd.DatetimeIndex, true_cp: np.ndarray, window: pd.Timedelta) -> list[tuple[int, int]]:
    """Row ranges [start, end] (inclusive) of the detection windows of the true changepoints."""
    out = []
    for i in np.flatnonzero(true_cp):
        end = int(np.searchsorted(times.values, (times[i] + window).to_datetime64(), side="right")) - 1
        out.append((int(i), max(int(i), end)))
    return out


def _sigmoid_reward(position: int, slow_width: int, a_tp: float, a_fp: float) -> float:
    """Reward of a first detection at ``position`` rows relative to the window end (negative: inside)."""
    width = max(slow_width, 1)
    return float((a_tp - a_fp) / (1.0 + np.exp(5.0 * position / width)) + a_fp)


def series_scores(
    times: pd.DatetimeIndex, true_cp: np.ndarray, predicted_cp: np.ndarray, window: pd.Timedelta
) -> dict[str, tuple[float, float, float]]:
    """One series -> {profile: (score, null score, perfect score)}."""
    pred = np.asarray(predicted_cp, dtype=np.int8)
    wins = _windows(times, np.asarray(true_cp), window)
    result: dict[str, tuple[float, float, float]] = {}
    for name, (a_tp, a_fp, a_fn) in PROFILES.items():
        score = float(pred[: wins[0][0]].sum() * a_fp) if wins else float(pred.sum() * a_fp)
        for k, (start, end) in enumerate(wins):
            space_end = wins[k + 1][0] if k + 1 < len(wins) else len(pred)
            space = pred[start:space_end]
            fault_len = end - start + 1
            slow_width = fault_len // 4
            fault_slow = space[: fault_len + slow_width]
            hits = np.flatnonzero(fault_slow)
            if len(hits) == 0:
                score += a_fn
            else:
                score += _sigmoid_reward(int(hits[0]) - fault_len, slow_width, a_tp, a_fp)
            # As the SKAB reference scorer: false positives are counted in the last len(fault_slow) rows of
            # the span up to the next window (not in the whole remainder of the span).
            score += float(space[-len(fault_slow):].sum() * a_fp) if len(fault_slow) else 0.0
        result[name] = (score, len(wins) * a_fn, len(wins) * a_tp)
    return result


@dataclass(frozen=True)
class NabResult:
    standard: float
    lowFP: float
    lowFN: float


def nab_scores(
    series: Sequence[tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]], window_s: float = 60.0
) -> NabResult:
    """``series``: (times, true changepoints 0/1, binary alarm 0/1) per file; pooled NAB scores per profile."""
    window = pd.Timedelta(seconds=window_s)
    totals = {name: np.zeros(3) for name in PROFILES}
    for times, true_cp, alarm in series:
        for name, triple in series_scores(times, true_cp, alarm_edges(alarm), window).items():
            totals[name] += np.asarray(triple)
    out = {}
    for name, (s, null, perfect) in totals.items():
        out[name] = 0.0 if perfect - null <= 0 else max(0.0, 100.0 * (s - null) / (perfect - null))
    return NabResult(**out)
