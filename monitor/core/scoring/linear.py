"""A linear detector beside the autoencoder: the PCA residual (the Q statistic) of each channel. Pure: numpy only.

The LSTM autoencoder sees a window of every channel at once, but nothing makes it learn how channels move
*together*: with a latent space as wide as the channels' slow levels it reconstructs each channel from
itself, so a sensor pair that always moved together and now parts (a correlation break, TEP's faults that
only a multivariate monitor sees) leaves its error unchanged. Principal components of the training rows
capture exactly that: the directions the channels share. A row's residual outside the ``k`` leading
components (enough to keep ``variance`` of the training variance) is small while the relations hold and grows
when they break, the Q (squared prediction error) statistic of classical multivariate process monitoring
(Jackson & Mudholkar 1979; MacGregor & Kourti 1995).

Per window, :meth:`Linear.residual` gives each channel's mean squared residual over the window's rows (in
the scaler's units, on the same inputs the model sees); the scorer divides it by that channel's typical value
on the training data and adds it, weighted, to the channel's error (monitor/core/scoring/scorer.py). A model with
one channel, or whose channels need every component, has no linear term.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_ROWS_PER_CHANNEL = 2  # fewer training rows than 2 x channels: the components are not estimated


@dataclass(frozen=True)
class Linear:
    centre: np.ndarray  # (C,) mean of the training rows (scaled units)
    components: np.ndarray  # (k, C), orthonormal rows, 1 <= k < C

    @classmethod
    def fit(cls, rows: np.ndarray, variance: float) -> Linear | None:
        """Leading components of ``rows`` (n, C), scaled, keeping at least ``variance`` (0-1) of their variance;
        None when there is no residual to watch (one channel, constant rows, too few rows, ``variance`` >= 1,
        or every component needed)."""
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] < 2 or variance <= 0 or variance >= 1:
            return None
        if x.shape[0] < MIN_ROWS_PER_CHANNEL * x.shape[1] or not np.isfinite(x).all():
            return None
        centre = x.mean(axis=0)
        _, singular, vt = np.linalg.svd(x - centre, full_matrices=False)
        explained = singular**2
        total = float(explained.sum())
        if total <= 1e-12:
            return None
        k = int(np.searchsorted(np.cumsum(explained) / total, variance) + 1)
        if k >= x.shape[1]:
            return None
        return cls(centre, vt[:k].copy())

    def residual(self, scaled: np.ndarray) -> np.ndarray:
        """Windows (n, window_len, C), scaled -> (n, C): each channel's mean squared residual outside the
        components over the window's rows."""
        x = np.asarray(scaled, dtype=np.float64) - self.centre
        inside = (x @ self.components.T) @ self.components
        r = x - inside
        out: np.ndarray = (r * r).mean(axis=1)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"centre": self.centre.tolist(), "components": self.components.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, n_channels: int) -> Linear | None:
        """``data`` from :meth:`to_dict` (empty or None: no linear term); ValueError when it does not fit
        ``n_channels`` channels or holds non-finite numbers."""
        if not data:
            return None
        centre = np.asarray(data["centre"], dtype=np.float64)
        components = np.asarray(data["components"], dtype=np.float64)
        if centre.shape != (n_channels,) or components.ndim != 2 or components.shape[1] != n_channels:
            raise ValueError(f"linear term of shape {centre.shape} / {components.shape} for {n_channels} channels")
        if not 1 <= components.shape[0] < n_channels:
            raise ValueError(f"{components.shape[0]} components for {n_channels} channels")
        if not (np.isfinite(centre).all() and np.isfinite(components).all()):
            raise ValueError("linear term holds non-finite numbers")
        return cls(centre, components)
