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
noise fits no cycle that carries over).

A profile starts with ``HARMONICS`` harmonics of each period: enough for a smooth cycle (a temperature, a daily
load curve). A cycle with **sharp edges** (a schedule that switches a load on and off at the same times every day:
a square wave) leaves, after six harmonics, a ringing remainder and a burst at every edge, twice a day, that the
model learns from a handful of examples and alerts on (docs/quality.md, round 14). So richer profiles
(``MORE_HARMONICS``) are tried in turn, per channel, and one is kept only when it cuts the unexplained variance of
the judging half to at most ``SHARPER`` of the simpler one's: out of sample, the harmonics that fit noise lose, so a
smooth cycle keeps six. A profile with more than ``TABULATE_ABOVE`` harmonics of a period is evaluated from a
table of that period's profile (``TABLE_POINTS_PER_HARMONIC`` points per harmonic, linear interpolation), not from
its cos/sin terms: it is read for every row of every window scored.

A cycle that repeats **exactly** (a noise-free square wave: a digital output a timer drives) still leaves the
richest profile's ringing at its edges, the same every cycle, tens of times the remainder elsewhere; a detector
that has seen it only a few times alerts on it every day (docs/quality.md, round 15). So, last, each channel's
remainder may get a **per-phase table** of the channel's longest period (``phase_table``: the median remainder at
each phase, one point per row step, at most ``MAX_PHASE_BINS``), added to the profile. It is kept by the same
out-of-sample rule, stricter: a table of the fitting half's remainder must cut the judging half's unexplained
variance to ``REPEATS`` of the profile's. A table of one or two cycles carries their noise into every later cycle
(and, fitted on the history it then judges, hides that noise from the calibration); on a noisy square wave it would
win the looser rule on the few edge rows alone and raise false alerts everywhere else, so only a channel whose
remainder repeats nearly exactly gets one.

Pure: no I/O; times are seconds since the Unix epoch (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from monitor.core.scoring.scaler import robust_sd

DAY = 86_400.0
WEEK = 7 * DAY
PERIODS = (DAY, WEEK)
HARMONICS = {DAY: 6, WEEK: 6}  # weekly harmonics that are multiples of 7 would repeat daily ones: skipped
MORE_HARMONICS = (24, 72)  # richer profiles tried in turn (a cycle with sharp edges), within the caps of _caps
SHARPER = 0.75  # a richer profile is kept when the judging half's unexplained variance falls to at most this share
MAX_FIT_ROWS = 200_000  # rows a profile is fitted on, at most (evenly spaced over a longer history)
TABULATE_ABOVE = 6  # periods with more harmonics are evaluated from a table (Seasonality.component)
TABLE_POINTS_PER_HARMONIC = 128  # linear interpolation: at most ~3e-4 of a harmonic's amplitude off
MIN_CYCLES = 2.0
MIN_ROWS_PER_CYCLE = 16
MIN_R2 = 0.2
MIN_GAIN = 0.05  # out-of-sample R2 a second period must add to be kept
RIDGE = 1e-6
REPEATS = 0.1  # a per-phase table is kept when the judging half's unexplained variance falls to at most this share
MAX_PHASE_BINS = 4096  # points of a per-phase table, at most (a weekly cycle of 1-minute rows: bins of 2.5 minutes)


@dataclass(frozen=True)
class Seasonality:
    """The fitted profiles: ``periods`` (seconds) with ``harmonics`` each; ``coef`` (n_channels, n_features):
    per channel the cos/sin weights of :func:`features` (all zero for a channel without a cycle). ``phase``: per
    channel, None or its per-phase table (a period of ``periods`` and the remainder at each of its evenly spaced
    phases, added to the profile: :func:`phase_table`); empty: no channel has one."""

    periods: tuple[float, ...]
    harmonics: tuple[int, ...]
    coef: np.ndarray
    phase: tuple[tuple[float, np.ndarray] | None, ...] = ()

    def component(self, times: np.ndarray) -> np.ndarray:
        """``times`` of any shape (...) -> the profile (..., n_channels), zero mean over whole cycles."""
        t = np.asarray(times, dtype=np.float64)
        out = self._fourier(t)
        for c, entry in enumerate(self.phase):
            if entry is not None:
                period, table = entry
                out[..., c] += table[phase_bins(t, period, len(table))]
        return out

    def cycled(self) -> list[bool]:
        """Per channel: whether it has a profile (a coefficient not 0 or a per-phase table)."""
        tabled = [e is not None for e in self.phase] or [False] * self.coef.shape[0]
        return [bool(np.any(row != 0.0)) or t for row, t in zip(self.coef, tabled, strict=True)]

    def _fourier(self, t: np.ndarray) -> np.ndarray:
        if max(self.harmonics, default=0) <= TABULATE_ABOVE:
            out: np.ndarray = features(t, self.periods, self.harmonics) @ self.coef.T
            return out
        out = np.zeros((*t.shape, self.coef.shape[0]))
        start = 0
        for period, count, table in zip(self.periods, self.harmonics, self._tables):
            cols = self.coef[:, start : start + 2 * count]
            start += 2 * count
            if table is None:
                out += features(t, (period,), (count,)) @ cols.T
                continue
            points = len(table) - 1
            u = np.mod(t, period) / period * points
            i = np.minimum(u.astype(np.int64), points - 1)
            f = (u - i)[..., None]
            out += table[i] * (1.0 - f) + table[i + 1] * f
        return out

    @cached_property
    def _tables(self) -> list[np.ndarray | None]:
        """Per period with more than ``TABULATE_ABOVE`` harmonics, its profile at ``TABLE_POINTS_PER_HARMONIC`` x
        harmonics evenly spaced phases and the first one again ((points + 1, n_channels)); None for the others."""
        tables: list[np.ndarray | None] = []
        start = 0
        for period, count in zip(self.periods, self.harmonics):
            cols = self.coef[:, start : start + 2 * count]
            start += 2 * count
            if count <= TABULATE_ABOVE:
                tables.append(None)
                continue
            points = TABLE_POINTS_PER_HARMONIC * count
            phases = np.arange(points + 1) / points * period
            tables.append(features(phases, (period,), (count,)) @ cols.T)
        return tables

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"periods": list(self.periods), "harmonics": list(self.harmonics),
                               "coef": self.coef.tolist()}
        if self.phase:  # absent when no channel has a table: the artifacts of earlier versions read the same
            out["phase"] = [None if e is None else {"period": e[0], "table": e[1].tolist()} for e in self.phase]
        return out

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
        phase: list[tuple[float, np.ndarray] | None] = []
        for entry in data.get("phase") or []:  # type: ignore[attr-defined]
            if entry is None:
                phase.append(None)
                continue
            period, table = float(entry["period"]), np.asarray(entry["table"], dtype=np.float64)
            if period not in periods or table.ndim != 1 or not 1 <= len(table) <= MAX_PHASE_BINS \
                    or not np.isfinite(table).all():
                raise ValueError(f"seasonal phase table does not fit periods {periods}")
            phase.append((period, table))
        if phase and len(phase) != n_channels:
            raise ValueError(f"seasonal phase tables do not fit {n_channels} channels")
        return cls(periods, harmonics, coef, tuple(phase))


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


def _fit(times: np.ndarray, values: np.ndarray, periods: tuple[float, ...],
         harmonics: tuple[int, ...] | None = None) -> np.ndarray:
    """Least squares (with a small ridge) of ``values`` (n, C) on an intercept + the features: (C, n_features).

    Trimmed: rows whose residual lies more than ``REJECT`` robust SDs (1.4826 x MAD of the channel's residuals)
    from the channel's median residual are left out of that channel's fit, and it is refitted (at most ``REFITS``
    times). A profile is what the cycle does day after day; one lasting excursion in the history (an incident of
    a few hours, tens of SDs off) would otherwise lift the profile at its time of day on every day, and every
    later day would then show a dip there (docs/quality.md, round 13). Of Gaussian rows about one in two million
    is left out. ``harmonics``: per period (default ``HARMONICS``)."""
    harmonics = harmonics or tuple(HARMONICS[p] for p in periods)
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


def _r2(times: np.ndarray, values: np.ndarray, periods: tuple[float, ...], coef: np.ndarray,
        harmonics: tuple[int, ...] | None = None) -> np.ndarray:
    """Share of each channel's variance (around its own mean) that the profile explains: (C,)."""
    harmonics = harmonics or tuple(HARMONICS[p] for p in periods)
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
    if len(t) > MAX_FIT_ROWS:  # a fleet's long history: evenly spaced rows bound the fits' memory (design matrices)
        keep = np.linspace(0, len(t) - 1, MAX_FIT_ROWS).astype(np.int64)
        t, x = t[keep], x[keep]
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
    judged = dict(options)
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
    # Per channel, the harmonics of each of its periods: richer profiles where they predict the judging half
    # markedly better (a cycle with sharp edges); judged on channels grouped by their periods.
    caps = _caps(candidates, step, half)
    counts: list[dict[float, int]] = [{} if ch is None else {p: HARMONICS[p] for p in ch} for ch in chosen]
    for shared in {ch for ch in chosen if ch is not None}:
        group = [c for c, ch in enumerate(chosen) if ch == shared]
        base = tuple(HARMONICS[p] for p in shared)
        unexplained = 1.0 - judged[shared][group]  # the six-harmonic profile's, measured above
        for more in MORE_HARMONICS:
            richer = tuple(max(min(more, caps[p]), HARMONICS[p]) for p in shared)
            if richer == base or 1 + 2 * sum(richer) > half // 2:
                break
            coef = _fit(t[:half], x[:half, group], shared, richer)
            left = 1.0 - _r2(t[half:], x[half:, group], shared, coef, richer)
            better = left <= SHARPER * unexplained
            for j in np.flatnonzero(better):
                counts[group[j]] = dict(zip(shared, richer))
            unexplained = np.where(better, left, unexplained)
            base = richer
    periods = tuple(p for p in candidates if any(ch is not None and p in ch for ch in chosen))
    harmonics = tuple(max(c.get(p, 0) for c in counts) for p in periods)
    coef = np.zeros((x.shape[1], 2 * sum(harmonics)))
    offsets = dict(zip(periods, np.cumsum([0, *(2 * h for h in harmonics)])[:-1].tolist()))
    phase: list[tuple[float, np.ndarray] | None] = [None] * x.shape[1]
    for c, kept in enumerate(chosen):
        if kept is not None:  # refit on the channel's own periods alone, so unused periods add no noise
            own = tuple(counts[c][p] for p in kept)
            fitted = _fit(t, x[:, [c]], kept, own)[0]
            at = 0
            for p, h in zip(kept, own):
                coef[c, offsets[p] : offsets[p] + 2 * h] = fitted[at : at + 2 * h]
                at += 2 * h
            phase[c] = _repeating(t, x[:, c], kept, own, fitted, step, half)
    return Seasonality(periods, harmonics, coef, tuple(phase) if any(e is not None for e in phase) else ())


def _repeating(t: np.ndarray, x: np.ndarray, periods: tuple[float, ...], harmonics: tuple[int, ...],
               fitted: np.ndarray, step: float, half: int) -> tuple[float, np.ndarray] | None:
    """A channel's per-phase table of its longest period, when its remainder repeats (see the module doc): the
    table of the fitting half's remainder must cut the judging half's unexplained variance to ``REPEATS`` of the
    profile's. ``fitted``: the profile's coefficients on every row; None when no table is kept."""
    period = periods[-1]
    bins = int(min(MAX_PHASE_BINS, max(1, round(period / step))))
    early = _fit(t[:half], x[:half, None], periods, harmonics)[0]
    first, left = x[:half] - features(t[:half], periods, harmonics) @ early, x[half:] - features(t[half:], periods,
                                                                                                   harmonics) @ early
    before = float(np.var(left))
    if before <= 1e-12 * max(float(np.var(x)), 1e-300):
        return None  # nothing left to explain
    table = phase_table(t[:half], first, period, bins)
    after = float(np.var(left - table[phase_bins(t[half:], period, bins)]))
    if after > REPEATS * before:
        return None
    return period, phase_table(t, x - features(t, periods, harmonics) @ fitted, period, bins)


def phase_bins(times: np.ndarray, period: float, bins: int) -> np.ndarray:
    """The phase bin of each of ``times`` (seconds): the nearest of ``bins`` evenly spaced phases of ``period``
    (rows on a grid of ``period / bins`` fall on their own bin, whatever rounding of their times)."""
    out: np.ndarray = np.rint(np.mod(times, period) / period * bins).astype(np.int64) % bins
    return out


def phase_table(times: np.ndarray, remainder: np.ndarray, period: float, bins: int) -> np.ndarray:
    """The median of ``remainder`` (n,) at each phase bin less its overall median (bins): a bin without rows is 0."""
    idx = phase_bins(times, period, bins)
    order = np.lexsort((remainder, idx))
    counts = np.bincount(idx, minlength=bins)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ranked = remainder[order]
    seen = counts > 0
    low = ranked[(starts + (counts - 1) // 2)[seen]]
    high = ranked[(starts + counts // 2)[seen]]
    table = np.zeros(bins)
    table[seen] = (low + high) / 2 - np.median(remainder)
    return table


def _caps(periods: list[float], step: float, half: int) -> dict[float, int]:
    """The most harmonics a profile of each period may have: below the rows' Nyquist limit (half the rows a cycle
    holds), and few enough that the fitting half has at least two rows per coefficient."""
    return {p: max(1, min(int(p / step) // 2 - 1, (half // 2 - 1) // 2)) for p in periods}


def row_times(starts: np.ndarray, ends: np.ndarray, window_len: int) -> np.ndarray:
    """Each row's time inside windows given by their first and last row's times (n,) each -> (n, window_len),
    evenly spaced (the window contract carries only its first and last time)."""
    frac = np.linspace(0.0, 1.0, window_len) if window_len > 1 else np.zeros(1)
    s = np.asarray(starts, dtype=np.float64)[:, None]
    e = np.asarray(ends, dtype=np.float64)[:, None]
    return s + (e - s) * frac[None, :]
