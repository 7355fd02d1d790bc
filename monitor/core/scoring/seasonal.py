"""Cycles longer than a window: a per-channel daily / weekly profile, removed before the model sees a window.

A 32-row window of 5-minute data covers under three hours: inside it, a daily cycle looks like a slow trend,
and a cycle that jumps up by a quarter of its amplitude looks like any other phase of it. So, when the training
rows span enough cycles, each channel's seasonal profile is fitted (a short Fourier series of the daily and the
weekly period, least squares on the rows' timestamps, the rows far off the profile left out of it: an incident in
the history is not part of the cycle) and subtracted from every row before scaling: the model
then learns the short-term behaviour around the profile, and a jump of the cycle, a flattened or shifted day,
or a missing peak is a level or shape change of that remainder, which the score sees.

A period is kept for a channel only when it is **seen and predictive**: the training rows span at least
``MIN_CYCLES`` of it, a cycle has at least ``MIN_ROWS_PER_CYCLE`` rows, and a profile fitted on the first half
of the rows explains at least ``MIN_R2`` of the variance of the second half (out of sample: a random walk or
noise fits no cycle that carries over). Pure: no I/O; times are seconds since the Unix epoch (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.core.scoring.scaler import robust_sd

DAY = 86_400.0
WEEK = 7 * DAY
PERIODS = (DAY, WEEK)
HARMONICS = {DAY: 6, WEEK: 6}  # weekly harmonics that are multiples of 7 would repeat daily ones: skipped
MIN_CYCLES = 2.0
MIN_ROWS_PER_CYCLE = 16
MIN_R2 = 0.2
MIN_GAIN = 0.05  # out-of-sample R2 a second period must add to be kept
RIDGE = 1e-6


@dataclass(frozen=True)
class Seasonality:
    """The fitted profiles: ``periods`` (seconds) with ``harmonics`` each; ``coef`` (n_channels, n_features):
    per channel the cos/sin weights of :func:`features` (all zero for a channel without a cycle)."""

    periods: tuple[float, ...]
    harmonics: tuple[int, ...]
    coef: np.ndarray

    def component(self, times: np.ndarray) -> np.ndarray:
        """``times`` of any shape (...) -> the profile (..., n_channels), zero mean over whole cycles."""
        feats = features(np.asarray(times, dtype=np.float64), self.periods, self.harmonics)
        out: np.ndarray = feats @ self.coef.T
        return out

    def to_dict(self) -> dict[str, list[float] | list[int] | list[list[float]]]:
        return {"periods": list(self.periods), "harmonics": list(self.harmonics), "coef": self.coef.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, object] | None, n_channels: int) -> Seasonality | None:
        """None for no seasonality (``data`` empty); ValueError when the lists do not fit ``n_channels``."""
        if not data:
            return None
        periods = tuple(float(p) for p in data["periods"])  # type: ignore[attr-defined]
        harmonics = tuple(int(h) for h in data["harmonics"])  # type: ignore[attr-defined]
        coef = np.asarray(data["coef"], dtype=np.float64)
        if len(harmonics) != len(periods) or coef.ndim != 2 or coef.shape[1] != 2 * sum(harmonics):
            raise ValueError(f"seasonal profile does not fit {n_channels} channels and periods {periods}")
        n_features = features(np.zeros(1), periods, harmonics).shape[-1]
        if (len(periods) != len(harmonics) or any(p <= 0 for p in periods) or any(h < 1 for h in harmonics)
                or coef.shape != (n_channels, n_features) or not np.isfinite(coef).all()):
            raise ValueError(f"seasonal profile does not fit {n_channels} channels and periods {periods}")
        return cls(periods, harmonics, coef)


def features(times: np.ndarray, periods: tuple[float, ...], harmonics: tuple[int, ...]) -> np.ndarray:
    """cos/sin of harmonics 1..h of each period: (..., n_features). The phase is taken modulo the period before
    the cos/sin (float64 seconds since 1970 keep sub-second precision). With ``HARMONICS`` 6 no weekly harmonic
    (a multiple of 1/7 day^-1 below 1 day^-1) repeats a daily one."""
    cols = []
    for period, count in zip(periods, harmonics):
        phase = 2 * np.pi * np.mod(times, period) / period
        for k in range(1, count + 1):
            cols += [np.cos(k * phase), np.sin(k * phase)]
    if not cols:
        return np.zeros((*np.shape(times), 0))
    return np.stack(cols, axis=-1)


REJECT = 5.0  # robust SDs: rows this far off a channel's profile are left out of its fit (see _fit)
REFITS = 3


def _fit(times: np.ndarray, values: np.ndarray, periods: tuple[float, ...]) -> np.ndarray:
    """Least squares (with a small ridge) of ``values`` (n, C) on an intercept + the features: (C, n_features).

    Trimmed: rows whose residual lies more than ``REJECT`` robust SDs (1.4826 x MAD of the channel's residuals)
    from the channel's median residual are left out of that channel's fit, and it is refitted (at most ``REFITS``
    times). A profile is what the cycle does day after day; one lasting excursion in the history (an incident of
    a few hours, tens of SDs off) would otherwise lift the profile at its time of day on every day, and every
    later day would then show a dip there (docs/quality.md, round 13). Of Gaussian rows about one in two million
    is left out."""
    harmonics = tuple(HARMONICS[p] for p in periods)
    x = features(times, periods, harmonics)
    design = np.concatenate([np.ones((len(times), 1)), x], axis=1)
    gram = design.T @ design + RIDGE * len(times) * np.eye(design.shape[1])
    beta = np.linalg.solve(gram, design.T @ values)  # (1 + F, C)
    out = np.zeros(values.shape, dtype=bool)  # the rows left out of each channel's current fit
    for _ in range(REFITS):
        far = _far(values - design @ beta)
        for c in np.flatnonzero((far != out).any(axis=0)):  # refit a channel whose far rows changed
            rows = ~far[:, c]
            if rows.sum() < design.shape[1] + 1:  # too few rows would remain: it keeps its fit
                far[:, c] = out[:, c]
                continue
            dropped = design[~rows]
            beta[:, c] = np.linalg.solve(gram - dropped.T @ dropped, design[rows].T @ values[rows, c])
        if (far == out).all():
            break
        out = far
    return np.asarray(beta[1:].T)


def _far(residual: np.ndarray) -> np.ndarray:
    """Which residuals (n, C) lie more than ``REJECT`` robust SDs off their channel's median residual."""
    centre = np.median(residual, axis=0)
    spread = robust_sd(residual)
    far: np.ndarray = (np.abs(residual - centre) > REJECT * np.maximum(spread, 1e-12)) & (spread > 1e-12)
    return far


def _r2(times: np.ndarray, values: np.ndarray, periods: tuple[float, ...], coef: np.ndarray) -> np.ndarray:
    """Share of each channel's variance (around its own mean) that the profile explains: (C,)."""
    harmonics = tuple(HARMONICS[p] for p in periods)
    pred = features(times, periods, harmonics) @ coef.T
    centred = values - values.mean(axis=0)
    pred = pred - pred.mean(axis=0)
    total = (centred**2).sum(axis=0)
    resid = ((centred - pred) ** 2).sum(axis=0)
    return np.where(total > 1e-12, 1.0 - resid / np.maximum(total, 1e-12), 0.0)


def fit_seasonality(times: np.ndarray, values: np.ndarray) -> Seasonality | None:
    """Fit the profiles of ``values`` (n_rows, n_channels) at ``times`` (n_rows,) seconds; None when no
    channel has a cycle that is seen and predictive (see the module doc)."""
    t = np.asarray(times, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    if len(t) < 2 * MIN_ROWS_PER_CYCLE or not np.isfinite(x).all():
        return None
    distinct = np.unique(t)  # a fleet's rows share their times: the step is between distinct times
    step = float(np.median(np.diff(distinct))) if len(distinct) > 1 else 0.0
    span = float(t[-1] - t[0]) + step  # n rows cover n row periods: two days of 5-minute rows are 2 cycles
    candidates = [p for p in PERIODS if span >= MIN_CYCLES * p and 0 < step <= p / MIN_ROWS_PER_CYCLE]
    if not candidates:
        return None
    half = len(t) // 2
    # Out-of-sample R2 of each candidate set, per channel: the first half fits, the second half judges.
    options: list[tuple[tuple[float, ...], np.ndarray]] = []
    for periods in [(p,) for p in candidates] + ([tuple(candidates)] if len(candidates) > 1 else []):
        if t[half - 1] - t[0] + step < periods[-1]:  # the fitting half must hold a whole cycle of the longest period
            continue
        coef = _fit(t[:half], x[:half], periods)  # trimmed; judged on every row of the second half (round 13)
        options.append((periods, _r2(t[half:], x[half:], periods, coef)))
    if not options:
        return None
    chosen: list[tuple[float, ...] | None] = []
    for c in range(x.shape[1]):
        best: tuple[float, ...] | None = None
        best_r2 = MIN_R2
        for periods, r2 in sorted(options, key=lambda o: len(o[0])):  # simpler first: more periods must gain
            need = best_r2 + (MIN_GAIN if best is not None else 0.0)
            if r2[c] >= need:
                best, best_r2 = periods, float(r2[c])
        chosen.append(best)
    if all(p is None for p in chosen):
        return None
    periods = tuple(p for p in candidates if any(ch is not None and p in ch for ch in chosen))
    harmonics = tuple(HARMONICS[p] for p in periods)
    coef = np.zeros((x.shape[1], 2 * sum(harmonics)))
    for c, kept in enumerate(chosen):
        if kept is not None:  # refit on the channel's own periods alone, so unused periods add no noise
            mask = np.repeat([p in kept for p in periods], [2 * h for h in harmonics])
            coef[c, mask] = _fit(t, x[:, [c]], kept)[0]
    return Seasonality(periods, harmonics, coef)


def row_times(starts: np.ndarray, ends: np.ndarray, window_len: int) -> np.ndarray:
    """Each row's time inside windows given by their first and last row's times (n,) each -> (n, window_len),
    evenly spaced (the window contract carries only its first and last time)."""
    frac = np.linspace(0.0, 1.0, window_len) if window_len > 1 else np.zeros(1)
    s = np.asarray(starts, dtype=np.float64)[:, None]
    e = np.asarray(ends, dtype=np.float64)[:, None]
    return s + (e - s) * frac[None, :]
