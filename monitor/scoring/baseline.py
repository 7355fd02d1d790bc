"""Per-sensor re-centring: each channel's input centre follows drift the model cannot explain, never a step.

The scaler centres every channel on the median of the training rows. A sensor whose process settles slowly at
a new level (a temperature drifting after a maintenance; SKAB's post-anomaly state) would otherwise look
anomalous for ever. :class:`InputBaseline` keeps one offset per channel, in scaler units, starting at 0; a
window is scored as ``raw - offset * scaler.scale`` (the model sees it relative to the learned centre). After
each window the offset moves by ``rate`` x the window's mean signed reconstruction residual of that channel
(an exponentially weighted mean of what the model cannot explain: half-life ~ 0.69 / rate windows), **only**
when that residual is below ``k`` scaler units (channel-wise protection): gradual drift is learned, a step or a
large excursion is not, and normal variation the model reconstructs (cycles, load changes) leaves the residual
near 0 and the offset alone. Because the update needs the window's reconstruction, a sensor's windows are
scored in order (:class:`~monitor.engine.Engine` batches the k-th window of every sensor together), so the
result does not depend on how records are batched. ``rate`` 0 turns it off. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.scoring.scaler import RobustScaler


class InputBaseline:
    """Learned per-channel offset of one sensor's inputs (scaler units)."""

    def __init__(self, scaler: RobustScaler, rate: float, k: float, offset: np.ndarray | None = None) -> None:
        self.scale = np.asarray(scaler.scale, dtype=np.float64)
        self.rate = rate
        self.k = k
        self.offset = np.zeros_like(self.scale) if offset is None else np.asarray(offset, dtype=np.float64).copy()
        if self.offset.shape != self.scale.shape:
            raise ValueError(f"baseline has {self.offset.shape} channels, the model {self.scale.shape}")

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    @staticmethod
    def shift_many(baselines: list[InputBaseline], windows: np.ndarray) -> np.ndarray:
        """Windows relative to their sensors' learned centres: ``windows`` (n, window_len, n_channels) raw ->
        (n, window_len, n_channels) raw units, float32 (``windows`` itself while every offset is 0);
        ``baselines`` one per window (of one model: same scale)."""
        offsets = np.stack([b.offset for b in baselines])
        if not offsets.any():
            return windows
        shift = offsets * baselines[0].scale  # (n, n_channels), raw units
        return (windows.astype(np.float64) - shift[:, None, :]).astype(np.float32)

    @staticmethod
    def learn_many(baselines: list[InputBaseline], residual_mean: np.ndarray) -> None:
        """Move each sensor's offset by ``rate`` x its residual, channel-wise where ``|residual| < k``.

        ``residual_mean`` (n, n_channels): row i is the mean of (scaled input - reconstruction) of the window
        shifted by ``baselines[i]`` (of one model and settings: same rate and k). No-op when rate is 0.
        """
        if not baselines or not baselines[0].enabled:
            return
        first = baselines[0]
        residual = np.asarray(residual_mean, dtype=np.float64)
        step = np.where(np.abs(residual) < first.k, first.rate * residual, 0.0)
        updated = np.stack([b.offset for b in baselines]) + step
        for baseline, row in zip(baselines, updated):
            baseline.offset = row

    def snapshot(self) -> dict[str, Any]:
        return {"offset": self.offset.tolist()}

    @classmethod
    def restore(cls, scaler: RobustScaler, rate: float, k: float, data: dict[str, Any] | None) -> InputBaseline:
        """``data`` from :meth:`snapshot`; None or another channel count starts fresh (offset 0)."""
        offset = None if not data else np.asarray(data.get("offset", []), dtype=np.float64)
        if offset is not None and offset.shape != np.asarray(scaler.scale).shape:
            offset = None
        return cls(scaler, rate, k, offset)
