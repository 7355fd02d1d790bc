"""One lasting incident in a history: a level a channel entered and left once, that nothing else explains.

The history screen (train.py ``screen_rows``) keeps spikes and bursts of a few rows out of every fit. A lasting
incident is not such a burst: a pressure held 4 standard deviations high for six hours of a four-day history
agrees with its own neighbourhood on every row but the first and the last. Trained on, it teaches the model that
level (an autoencoder reconstructs it), lifts the error scales its windows set, and stops early stopping on a
validation loss it dominates: a later incident of the same kind is then missed, and the model fitted around it
alerts on normal data (docs/quality.md, rounds 13 and 22: `--spoil-shift` recall 0.867 and 0.176 false alerts
per clean sensor-day without this screen, 0.933 and 0.038 with it).

:func:`excursions` finds such an incident per channel, from the history alone. It is a run of rows that:

* begins and ends with an **edge**: the median of the ``SIDE`` rows after a row minus that of the ``SIDE`` rows
  before it lies beyond ``EDGE_K`` of the channel's robust spread of such steps, one up and one down (or the
  reverse), each at least ``ABRUPT`` of the run's lift: a level entered and left within a few rows, not a slow
  wander (a random walk's level at a stretch of a long history is often one it never holds again, but it
  reaches it gradually);
* is **lifted** and **returns**: the run's median lies more than ``LIFT_K`` step spreads from the median of the
  ``SIDE`` rows on both sides of it, the medians of those two sides differ by at most half that lift (the level
  the run left is the one it returns to: a count that steps down twice, or a level that settles elsewhere, is a
  change of state), and three quarters of its rows lie more than half its lift off the level outside;
* holds a level **the rest of the history never shows**: no stretch of the same length anywhere else has a median
  within half the lift of the run's (a state that recurs, a pump's second level, a schedule's on period, is the
  channel's normal behaviour, not an incident);
* is **not explained** by another channel: none moves by more than ``EXPLAIN_K`` of its step spread near both
  ends, or by more than ``LIFT_K`` near either (a setpoint changed on purpose moves its process value, a pump
  count moves its flow; several channels that leave their levels together are a change of the process, which the
  model is to learn);
* lies **inside** the history (not at its first or last ``SIDE`` rows: a start-up transient is how a plant
  starts) and covers at most a sixth of it (``MAX_SHARE``: a longer state is an operating state);
* is **no habit** of the channel: it does not step by ``ABRUPT`` of the lift or more elsewhere in the history
  (``HABIT_EDGES`` such edges: a count, a valve or a schedule moves between its levels again and again, and a level
  it holds once is one of its states).

Event channels and channels with no spread of steps are never screened; they still explain. The screen errs on
the side of keeping rows: on every clean series of the fault taxonomy (six seeds: their histories, the halves of
their histories and their test parts), SKAB's anomaly-free file, the Tennessee Eastman process's normal and fault
runs and long synthetic histories (AR, random walks, heavy tails, 5,000-60,000 rows) it finds nothing to leave
out; on the taxonomy's histories with one incident (``--spoil-shift``, six seeds) it finds 93 of 162, the rest
too close to the process's own moves, or to its cycle, to tell (docs/quality.md, round 22). Work and memory are
bounded: the ``MAX_EDGES`` largest edges per channel are paired, and the sliding medians are taken ``CHUNK`` rows
at a time (200,000 rows x 8 channels: under a second, 55 MB). Pure: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from monitor.core.scoring.scaler import robust_sd

SIDE = 20  # rows on each side of an edge whose medians are compared
EDGE_K = 2.5  # step spreads: a step this large is an edge (of the channel itself, or of another that explains one)
LIFT_K = 4.0  # step spreads: the least lift of a run that is screened
EXPLAIN_K = 3.0  # step spreads: another channel moving this much at both ends of a run explains it
MAX_SHARE = 1 / 6  # of the history's rows: a longer run is an operating state, not an incident
MAX_EDGES = 32  # the largest edges per channel that are paired (bounds the work on a long history)
CHUNK = 4096  # rows per slice of the sliding medians and maxima (bounds the memory on a long history)
ABRUPT = 0.75  # each edge of a run moves at least this share of its lift within SIDE rows
HABIT_EDGES = 2  # edges as large elsewhere that make a channel's steps its habit (see _habit)


@dataclass(frozen=True)
class Excursion:
    """Rows ``start`` (first) to ``end`` (exclusive) of ``channel`` (its index), lifted by ``lift`` (raw units)
    over the level on both sides."""

    channel: int
    start: int
    end: int
    lift: float


def steps(values: np.ndarray, side: int = SIDE) -> np.ndarray:
    """(n, C) -> (n, C): at each row, the median of the ``side`` rows from it on minus that of the ``side`` rows
    before it; NaN within ``side`` rows of either end."""
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    out = np.full(v.shape, np.nan)
    if n < 2 * side + 1:
        return out
    view = sliding_window_view(v, side, axis=0)  # view[i] = rows i .. i + side - 1
    med = np.concatenate([np.median(view[i : i + CHUNK], axis=-1) for i in range(0, len(view), CHUNK)])
    rows = np.arange(side, n - side + 1)
    out[rows] = med[rows] - med[rows - side]
    return out


def excursions(values: np.ndarray, events: list[bool] | None = None) -> list[Excursion]:
    """The lasting incidents of a history ``values`` (n_rows, n_channels), in time order (module doc); at most one
    run is screened per pair of edges, runs of one channel do not overlap."""
    v = np.asarray(values, dtype=np.float64)
    n, n_channels = v.shape
    if n < 6 * SIDE or not np.isfinite(v).all():
        return []
    step = steps(v)
    inner = step[SIDE : n - SIDE + 1]
    spread = robust_sd(inner)
    found: list[Excursion] = []
    edges = [_edges(step[:, c], spread[c]) for c in range(n_channels)]
    for c in range(n_channels):
        if (events is not None and events[c]) or not spread[c] > 0:
            continue
        paired = edges[c] if len(edges[c]) <= MAX_EDGES else np.sort(
            edges[c][np.argsort(-np.abs(step[edges[c], c]))[:MAX_EDGES]])
        taken = -1
        for s in paired:
            if s <= taken:
                continue
            for e in paired:
                run = _check(v[:, c], step[:, c], spread[c], s, e)
                if run is None:
                    continue
                if not _habit(step[:, c], edges[c], (s, e), run) and not _explained(step, spread, c, (s, e)):
                    found.append(Excursion(c, int(s), int(e), run))
                    taken = e
                break
    return sorted(found, key=lambda x: (x.start, x.channel))


def _edges(step: np.ndarray, spread: float) -> np.ndarray:
    """The rows where a channel's step is an edge, in time order: beyond ``EDGE_K`` spreads (any step, for a
    channel whose steps have no spread: one that mostly holds its value, a setpoint) and the largest within
    ``SIDE`` rows around it."""
    size = np.nan_to_num(np.abs(step))
    view = sliding_window_view(np.pad(size, SIDE), 2 * SIDE + 1)
    largest = np.concatenate([view[i : i + CHUNK].max(axis=-1) for i in range(0, len(view), CHUNK)])
    return np.flatnonzero((size > EDGE_K * spread) & (size >= largest) & (size > 0))


def _check(x: np.ndarray, step: np.ndarray, spread: float, s: int, e: int) -> float | None:
    """The lift of the run ``x[s:e]`` when it is a lasting incident by the module doc's tests (edges at ``s`` and
    ``e``), else None."""
    n = len(x)
    sign = np.sign(step[s])
    if e <= s + SIDE or e - s > MAX_SHARE * n or np.sign(step[e]) != -sign or sign == 0:
        return None
    before, after = x[s - SIDE : s], x[e : e + SIDE]
    inside = float(np.median(x[s:e]))
    lift = inside - float(np.median(np.r_[before, after]))
    size = abs(lift)
    if np.sign(lift) != sign or size <= LIFT_K * spread or min(abs(step[s]), abs(step[e])) < ABRUPT * size:
        return None
    if abs(np.median(before) - np.median(after)) > 0.5 * size:  # the level it left is the one it returns to
        return None
    if np.mean(sign * (x[s:e] - (inside - lift)) > 0.5 * size) < 0.75:
        return None
    length = e - s
    for part in (x[: max(0, s - SIDE)], x[e + SIDE :]):
        if len(part) >= length:
            blocks = sliding_window_view(part, length)[:: max(1, length // 2)]
            if (sign * np.median(blocks, axis=-1)).max() > sign * inside - 0.5 * size:
                return None
    return lift


def _habit(step: np.ndarray, edges: np.ndarray, ends: tuple[int, int], lift: float) -> bool:
    """Whether the channel steps by as much elsewhere in its history: at least ``HABIT_EDGES`` edges outside the run
    (and ``SIDE`` rows around it) of at least ``ABRUPT`` of its lift. A count, a schedule or a valve moves between
    its levels again and again; a level such a channel holds once is one of its states."""
    s, e = ends
    outside = edges[(edges < s - SIDE) | (edges > e + SIDE)]
    return int((np.abs(step[outside]) >= ABRUPT * abs(lift)).sum()) >= HABIT_EDGES


def _explained(step: np.ndarray, spread: np.ndarray, channel: int, ends: tuple[int, int]) -> bool:
    """Whether another channel moves with the run: within ``SIDE`` / 2 rows of both its ends by more than
    ``EXPLAIN_K`` of its step spread, or of either end by more than ``LIFT_K`` (any move at all, for a channel whose
    steps have no spread: a setpoint, a mode, a count that mostly holds its value). Chance moves of the size of an
    edge happen every few hundred rows on a wandering channel; both ends at once, or one this large, do not."""
    half = SIDE // 2
    near = [np.nan_to_num(np.abs(step[max(0, end - half) : end + half + 1])).max(axis=0) for end in ends]
    with np.errstate(divide="ignore", invalid="ignore"):
        size = [np.where(spread > 0, m / spread, np.where(m > 0, np.inf, 0.0)) for m in near]
    moved = ((size[0] > EXPLAIN_K) & (size[1] > EXPLAIN_K)) | (size[0] > LIFT_K) | (size[1] > LIFT_K)
    moved[channel] = False
    return bool(moved.any())
