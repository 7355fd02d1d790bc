"""Windowing: cutting a series into the model's windows (pure; the CSV reader is monitor.ingest.files)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def sliding_windows(values: np.ndarray, window_len: int, stride: int) -> np.ndarray:
    """(n_rows, n_channels) -> (n_windows, window_len, n_channels), windows starting every ``stride`` rows."""
    if values.shape[0] < window_len:
        return np.empty((0, window_len, values.shape[1]), dtype=values.dtype)
    view = np.lib.stride_tricks.sliding_window_view(values, window_len, axis=0)  # (n, C, T)
    return np.ascontiguousarray(view[::stride].transpose(0, 2, 1))


def window_starts(n_rows: int, window_len: int, stride: int) -> np.ndarray:
    """Row index of the first row of each window that ``sliding_windows`` cuts."""
    if n_rows < window_len:
        return np.empty(0, dtype=np.int64)
    return np.arange(0, n_rows - window_len + 1, stride)


def windows_touching(rows: np.ndarray, window_len: int, stride: int) -> np.ndarray:
    """For the windows ``sliding_windows`` cuts from ``len(rows)`` rows, whether each holds a row set in ``rows``."""
    starts = window_starts(len(rows), window_len, stride)
    csum = np.concatenate([[0], np.cumsum(rows.astype(np.int64))])
    return np.asarray((csum[starts + window_len] - csum[starts]) > 0)


def windows_straddling(n_rows: int, seams: Sequence[int], window_len: int, stride: int) -> np.ndarray:
    """For the windows ``sliding_windows`` cuts from ``n_rows`` rows, whether each holds the rows on both sides of
    one of ``seams`` (a row where another sensor's history begins)."""
    starts = window_starts(n_rows, window_len, stride)
    out = np.zeros(len(starts), dtype=bool)
    for seam in seams:
        if 0 < seam < n_rows:
            out |= (starts < seam) & (starts + window_len > seam)
    return out


HISTORY_PARTS = 6  # see without_any_episode


def without_any_episode(n: int, least: int = 1) -> list[np.ndarray]:
    """Index sets of ``n`` items in time order (rows, windows): all but any two neighbouring sixths
    (``HISTORY_PARTS``), each kept when it has at least ``least`` items; none for fewer than ``HISTORY_PARTS``
    items. One lasting episode of a history (an incident of a few hours) lies within two neighbouring sixths when
    it is shorter than a sixth, so a property required of all these sets is one the rest of the history shows
    too; behaviour that recurs through the history (a pump's steps, a daily peak, a random walk's wander) is in
    every set (docs/quality.md, round 13)."""
    if n < HISTORY_PARTS:
        return []
    parts = np.array_split(np.arange(n), HISTORY_PARTS)
    kept = [np.concatenate(parts[:i] + parts[i + 2:]) for i in range(HISTORY_PARTS - 1)]
    return [k for k in kept if len(k) >= least]
