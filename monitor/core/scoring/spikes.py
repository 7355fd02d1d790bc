"""Spikes that a channel's history shows again and again are its normal behaviour: removed before scoring.

A CPU that idles at 20 % and jumps to 60 % for a row now and then, a request counter with bursts, a pressure
line with water hammer: the history shows these spikes recurring, isolated, at any time. The model cannot
reconstruct a spike (nothing in the window foretells it), and its score is hundreds of times the typical window's,
beyond the reach of any threshold that stays within reach of the data (thresholds.py), so each later spike alerted
(docs/quality.md, round 16: 2 false alerts a day on such a CPU). The history screen (train.py ``screen_rows``)
already finds these spikes and keeps them out of every fit; what it finds is also what a channel's normal spikes
look like.

So, per channel, when the history shows at least ``MIN_BURSTS`` separate bursts (runs of at most ``MAX_RUN`` rows
off both their neighbourhoods by more than the screen's bound, that no other channel shares) and at most
``MAX_SHARE`` of its rows off their neighbourhood (on a smooth noise-free cycle every steep stretch is: no spikes
there, and none to allow), the channel gets an
**allowance** (:class:`Allowance`): at scoring, a row of a window that lies off both its neighbourhoods by more than
``LOWER`` of the bound (a spike smaller than those the history showed is no less normal) and by at most ``ROOM``
times the largest spike of the history, and off its window's median by more than that share of the bound too (beside
two bursts a few rows apart, a normal row's neighbourhood is a burst's), while no other channel moves, is replaced by
the median of its neighbourhood (a Hampel filter), as the screen filled it in training. What stays visible:

* a spike larger than ``ROOM`` times any the history showed;
* a window with more bursts than the history ever showed in a window's length, or than their rate puts in one by
  chance but once in a thousand windows (``DENSE``): spikes grown dense are all left in;
* everything that is not a spike of a few rows: a step, a drift, a changed variance or shape.

A channel whose history shows fewer bursts (one incident, a glitch or two) gets none: a spike there is judged.

Pure: numpy only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from monitor.core.scoring.scaler import count_runs, robust_sd

HALF = 5  # rows on each side that make a row's neighbourhood (the history screen's)
MIN_BURSTS = 4  # separate bursts a channel's history must show for its spikes to be its normal behaviour
ROOM = 1.5  # a spike up to this many times the history's largest is removed; a larger one is judged
MAX_RUN = 3  # rows: a longer run off its neighbourhood is no spike
MAX_SHARE = 0.05  # a channel with more of its history's rows off their neighbourhood gets no allowance
MOVED = 3.0  # robust SDs off its neighbourhood at which another channel explains a burst (the screen's)
LOWER = 0.5  # at scoring, a row off by more than this share of the bound is a spike (smaller than the history's)
DENSE = 1e-3  # a window holding more bursts than chance gives it this often holds dense spikes (1e-4 to round 17)


@dataclass(frozen=True)
class Allowance:
    """Per channel: ``scale`` (n_channels,), the robust SD of its rows' distance from their neighbourhood (raw
    units, 0: no spread); ``limit`` (n_channels,), the largest spike it may remove (raw units; 0: none, the channel
    has no allowance); ``runs`` (n_channels,), the most bursts one window may hold and still be filtered; ``bound``:
    the distance, in ``scale`` units, beyond which a row is a spike (the history screen's)."""

    scale: np.ndarray
    limit: np.ndarray
    runs: np.ndarray
    bound: float

    @property
    def active(self) -> bool:
        return bool(np.any(self.limit > 0))


def neighbourhood(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``windows`` (n, T, C) -> (distance, median), each (n, T, C): a row's distance from its neighbourhood, the
    smaller of its distances from the median of the ``HALF`` rows before it and of those after it (the first row of
    a step that lasts is off the rows before it, not off those after it), and the median of both sides (the row
    itself left out; fewer rows at the window's ends, inf distance where a side has none)."""
    x = np.asarray(windows, dtype=np.float64)
    before, after, both = medians(x)
    with np.errstate(all="ignore"):
        distance = np.fmin(np.abs(x - before), np.abs(x - after))
    return np.where(np.isnan(distance), np.inf, distance), both


def medians(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``windows`` (n, T, C) -> each row's median of the ``HALF`` rows before it, of the ``HALF`` rows after it, and
    of both, each (n, T, C) (the row itself left out; NaN rows left out, NaN where none is left). On a trend or a
    cycle the last lies near the row's own value without being it, so a row's distance from it is its noise, not 0.
    The history screen (train.py ``screen_rows``) reads a history's rows as one window.

    Near a window's ends a side holds fewer than ``HALF`` rows, and a burst of two or three rows there could be
    most of it: the first row of a window whose next rows are a burst would read as far off the rows after it, and
    the second row of a burst at a window's end would agree with the one row after it. So within ``HALF`` rows of
    an end, the short side's median and the median of both are those of the ``2 x HALF`` rows nearest the row that
    the window holds (the row left out), where a burst of up to ``MAX_RUN`` rows is a minority."""
    x = np.asarray(windows, dtype=np.float64)
    n, t, c = x.shape
    pad = np.full((n, HALF, c), np.nan)
    padded = np.concatenate([pad, x, pad], axis=1)
    sides = np.stack([padded[:, HALF + k : HALF + k + t] for k in range(-HALF, HALF + 1) if k != 0], axis=-1)
    before, after, both = _median(sides[..., :HALF]), _median(sides[..., HALF:]), _median(sides)
    if t > 1:
        rows, others, short_before, short_after = _edges(t)
        nearest = _median(np.moveaxis(x[:, others], 2, -1))  # (n, rows, c)
        both[:, rows] = nearest
        before[:, rows[short_before]] = nearest[:, short_before]
        after[:, rows[short_after]] = nearest[:, short_after]
    return before, after, both


@functools.lru_cache(maxsize=64)
def _edges(t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For windows of ``t`` > 1 rows: the rows within ``HALF`` of either end, the ``2 x HALF`` rows nearest each
    (the row itself left out; all the others where the window is shorter), and which of them have fewer than
    ``HALF`` rows before / after them."""
    edge = min(HALF, t)
    rows = np.r_[0:edge, max(t - edge, edge):t]
    span = min(2 * HALF + 1, t)
    start = np.clip(rows - HALF, 0, t - span)
    others = np.array([[j for j in range(s, s + span) if j != i][: span - 1] for s, i in zip(start, rows)])
    return rows, others, rows < HALF, rows > t - 1 - HALF


def _median(a: np.ndarray) -> np.ndarray:
    """The median along the last axis, NaN left out (NaN where all are): np.nanmedian's result, several times
    faster on these short axes (it is on the scoring path)."""
    ranked = np.sort(a, axis=-1)  # NaN sort last
    count = (~np.isnan(a)).sum(axis=-1, keepdims=True)
    low = np.take_along_axis(ranked, np.maximum(count - 1, 0) // 2, axis=-1)[..., 0]
    high = np.take_along_axis(ranked, np.maximum(count, 1) // 2 - (count == 0), axis=-1)[..., 0]
    # halved before the sum: the same bits as (low + high) / 2, without overflowing to inf beside values near the
    # float limit (which the hypothesis tests feed); inf and NaN inputs still give inf / NaN, silently
    with np.errstate(invalid="ignore"):
        out: np.ndarray = np.where(count[..., 0] > 0, low / 2 + high / 2, np.nan)
    return out


def _short(flagged: np.ndarray) -> np.ndarray:
    """(n, T, C) -> the flagged rows that lie in runs of at most ``MAX_RUN`` rows along axis 1: a spike or a burst
    of a few rows. A longer run is no spike (on a smooth noise-free cycle every steep stretch lies off its
    neighbourhood's median)."""
    t = flagged.shape[1]
    ahead = np.zeros(flagged.shape, dtype=np.int64)  # run length up to and including each row, from the left
    behind = np.zeros(flagged.shape, dtype=np.int64)  # ... from the right
    for i in range(t):
        ahead[:, i] = np.where(flagged[:, i], (ahead[:, i - 1] if i else 0) + 1, 0)
        j = t - 1 - i
        behind[:, j] = np.where(flagged[:, j], (behind[:, j + 1] if i else 0) + 1, 0)
    out: np.ndarray = flagged & (ahead + behind - 1 <= MAX_RUN)
    return out


def explained(distance: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(n, T, C): whether another channel moves off its own neighbourhood at that row (more than ``MOVED`` of its
    scale, or at all where it has none; a distance that is not finite moves nothing): a burst beside it is the
    effect of a change it shows, not a spike. The history screen (train.py ``screen_rows``) asks the same."""
    with np.errstate(all="ignore"):
        moved = np.where(scale > 0, distance > MOVED * scale, distance > 0) & np.isfinite(distance)
    count = moved.sum(axis=-1, keepdims=True)
    out: np.ndarray = (count - moved) > 0
    return out


def allowance(values: np.ndarray, bound: float, window_len: int, events: list[bool] | None = None) -> Allowance:
    """The allowance of each channel of a history ``values`` (n_rows, n_channels) as measured (see the module
    doc); ``bound``: the history screen's (model.history_screen; 0: no channel gets one); ``events``: channels
    that never get one (on/off event channels)."""
    x = np.asarray(values, dtype=np.float64)
    channels = x.shape[1]
    none = Allowance(np.zeros(channels), np.zeros(channels), np.zeros(channels, dtype=np.int64), float(bound))
    if bound <= 0 or len(x) < 2 * HALF + 1:
        return none
    distance, both = neighbourhood(x[None])
    with np.errstate(all="ignore"):
        scale = np.nan_to_num(robust_sd(x - both[0]), nan=0.0, posinf=0.0)
        flagged = (distance > bound * scale) & np.isfinite(distance) & (scale > 0)
    flagged &= ~explained(distance, scale)
    share = flagged[0].mean(axis=0)  # spikes are rare: a channel mostly off its neighbourhood has none to allow
    flagged = _short(flagged)
    bursts = count_runs(flagged, axis=1)[0]
    limit = np.zeros(channels)
    runs = np.zeros(channels, dtype=np.int64)
    for c in range(channels):
        if bursts[c] < MIN_BURSTS or share[c] > MAX_SHARE or (events is not None and events[c]):
            continue
        limit[c] = ROOM * float(distance[0, flagged[0, :, c], c].max())
        starts = np.flatnonzero(np.diff(np.concatenate([[0], flagged[0, :, c].astype(np.int8)])) == 1)
        per_window = np.searchsorted(starts, starts + window_len, side="left") - np.arange(len(starts))
        runs[c] = max(1, int(per_window.max()), _chance_runs(bursts[c] / len(x) * window_len))
    return Allowance(scale, limit, runs, float(bound))


def _chance_runs(expected: float) -> int:
    """The most bursts a window holds by chance when it holds ``expected`` on average (Poisson): the least k with
    P(more than k) <= ``DENSE``. A few days of history rarely show two spikes in one window even where, at their
    rate, one window in ten has two."""
    k, term = 0, math.exp(-expected)
    cumulative = term
    while 1.0 - cumulative > DENSE and k < 1000:
        k += 1
        term *= expected / k
        cumulative += term
    return k


def despike(windows: np.ndarray, spikes: Allowance, dense: bool = True) -> np.ndarray:
    """``windows`` (n, T, C) raw with each allowed spike (see the module doc) replaced by its neighbourhood's
    median; ``windows`` itself when no channel has an allowance or none is found. ``dense`` False: no window is
    judged to hold spikes grown dense (a whole history given as one window, before training)."""
    allowed = np.flatnonzero(spikes.limit > 0)
    if not len(allowed):
        return windows
    x = np.asarray(windows)
    # The allowed channels first (the scoring path: most windows hold no spike), the others' movement only for
    # the windows that do.
    distance, both = neighbourhood(x[:, :, allowed])
    with np.errstate(all="ignore"):
        found = ((distance > LOWER * spikes.bound * spikes.scale[allowed]) & (distance <= spikes.limit[allowed]))
    hit = np.flatnonzero(found.any(axis=(1, 2)))
    if not len(hit):
        return windows
    # A row within reach of its window's median is no spike, whatever its neighbourhood says: beside two bursts in
    # a few rows (a busy disk), the median of a row's neighbourhood is a burst's and a normal row would read as off.
    # (A history despiked before training is one window: its median is the history's.)
    sub = x[hit][:, :, allowed].astype(np.float64)
    typical = _median(np.moveaxis(sub, 1, -1))[:, None, :]
    with np.errstate(all="ignore"):
        found[hit] &= np.abs(sub - typical) > LOWER * spikes.bound * spikes.scale[allowed]
    flagged = np.zeros(x.shape, dtype=bool)
    flagged[np.ix_(hit, np.arange(x.shape[1]), allowed)] = found[hit]
    if x.shape[2] > 1:
        everywhere, _ = neighbourhood(x[hit])
        flagged[hit] &= ~explained(everywhere, spikes.scale)
    flagged = _short(flagged)
    if dense:
        flagged &= (count_runs(flagged, axis=1) <= spikes.runs)[:, None, :]  # spikes grown dense are all left in
    if not flagged.any():
        return windows
    filled = np.zeros(x.shape)
    filled[:, :, allowed] = both
    out: np.ndarray = np.where(flagged, filled, x).astype(np.float32)
    return out


def combine(parts: list[Allowance], channels: int, bound: float) -> Allowance:
    """The allowance of a model shared by several sensors, from each one's (a fleet's history): a channel spiky in
    any sensor's history gets the largest limit and runs any of them has, and the median of their scales."""
    if not parts:
        return Allowance(np.zeros(channels), np.zeros(channels), np.zeros(channels, dtype=np.int64), float(bound))
    scale = np.median(np.stack([p.scale for p in parts]), axis=0)
    limit = np.max(np.stack([p.limit for p in parts]), axis=0)
    runs = np.max(np.stack([p.runs for p in parts]), axis=0)
    return Allowance(scale, np.where(scale > 0, limit, 0.0), runs, float(bound))
