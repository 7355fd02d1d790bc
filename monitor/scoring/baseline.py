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
result does not depend on how records are batched. ``rate`` 0 turns it off.

**Drifting channels** (:func:`drifting_channels`, decided once from the training rows and stored in the
artifact) get their own, faster rate and wider gate (settings ``threshold.drift_rate`` / ``drift_k``). A slow
process variable (a temperature, a thermocouple) wanders over hours; a few hundred training rows show a small
part of its range, so its distance from the training level says little, and a monitor that judges it by that
distance keeps alarming long after a real incident ended (SKAB: most false alarms, docs/skab.md round 5).
Following its level lets the model judge it by its short-term behaviour and its relation to the other
channels. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.scoring.scaler import RobustScaler


def drifting_channels(rows: np.ndarray, span: int, ratio: float) -> list[bool]:
    """Which channels of ``rows`` (n_rows, n_channels), in time order, drift: the moving average over ``span``
    rows keeps more than ``ratio`` of the channel's variance (white noise keeps ~1/span, a slow wander nearly
    all). Constant channels do not drift; with fewer than ``2 * span`` rows, or ``ratio`` 0, none does. Rows
    cut from windows (retraining on the topic) are their concatenation: a few seams do not move the ratio."""
    values = np.asarray(rows, dtype=np.float64)
    n_rows, n_channels = values.shape
    if ratio <= 0 or n_rows < 2 * span:
        return [False] * n_channels
    kernel = np.ones(span) / span
    flags = []
    for c in range(n_channels):
        total = float(values[:, c].var())
        smooth = float(np.convolve(values[:, c], kernel, mode="valid").var())
        flags.append(bool(total > 1e-12 and smooth > ratio * total))
    return flags


class InputBaseline:
    """Learned per-channel offset of one sensor's inputs (scaler units).

    ``rate`` / ``k`` apply to every channel, except the ``drifting`` ones (a flag per channel), which use
    ``drift_rate`` / ``drift_k``."""

    def __init__(
        self, scaler: RobustScaler, rate: float, k: float, offset: np.ndarray | None = None, *,
        drifting: list[bool] | None = None, drift_rate: float = 0.0, drift_k: float = 1.0,
    ) -> None:
        self.scale = np.asarray(scaler.scale, dtype=np.float64)
        flags = np.zeros(self.scale.shape, dtype=bool) if not drifting else np.asarray(drifting, dtype=bool)
        if flags.shape != self.scale.shape:
            raise ValueError(f"{flags.shape} drifting flags for a model of {self.scale.shape} channels")
        self.rate = np.where(flags, drift_rate, rate)
        self.k = np.where(flags, drift_k, k)
        self.enabled = bool((self.rate > 0).any())  # read per window on the hot path: computed once
        self.offset = np.zeros_like(self.scale) if offset is None else np.asarray(offset, dtype=np.float64).copy()
        if self.offset.shape != self.scale.shape:
            raise ValueError(f"baseline has {self.offset.shape} channels, the model {self.scale.shape}")

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
    def learn_many(
        baselines: list[InputBaseline], residual_mean: np.ndarray, normal: np.ndarray | None = None
    ) -> None:
        """Move each sensor's offset by ``rate`` x its residual, channel-wise where ``|residual| < k``.

        ``residual_mean`` (n, n_channels): row i is the mean of (scaled input - reconstruction) of the window
        shifted by ``baselines[i]`` (of one model and settings: same rates and gates). ``normal`` (n,) bools: only
        these windows teach (the windows judged normal outside an alert); None: all. Non-finite residuals never
        teach. No-op when every rate is 0.
        """
        if not baselines or not baselines[0].enabled:
            return
        first = baselines[0]
        residual = np.asarray(residual_mean, dtype=np.float64)
        ok = np.isfinite(residual) & (np.abs(residual) < first.k)
        if normal is not None:
            ok &= np.asarray(normal, dtype=bool)[:, None]
        step = np.where(ok, first.rate * np.where(ok, residual, 0.0), 0.0)
        updated = np.stack([b.offset for b in baselines]) + step
        for baseline, row in zip(baselines, updated):
            baseline.offset = row

    def snapshot(self) -> dict[str, Any]:
        return {"offset": self.offset.tolist()}

    @classmethod
    def restore(
        cls, scaler: RobustScaler, rate: float, k: float, data: dict[str, Any] | None, *,
        drifting: list[bool] | None = None, drift_rate: float = 0.0, drift_k: float = 1.0,
    ) -> InputBaseline:
        """``data`` from :meth:`snapshot`; None or another channel count starts fresh (offset 0)."""
        offset = None if not data else np.asarray(data.get("offset", []), dtype=np.float64)
        if offset is not None and offset.shape != np.asarray(scaler.scale).shape:
            offset = None
        return cls(scaler, rate, k, offset, drifting=drifting, drift_rate=drift_rate, drift_k=drift_k)
