"""Robust per-channel scaling: (x - median) / (IQR / 1.349), fitted on training data; ``robust_sd``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RobustScaler:
    center: np.ndarray  # (n_channels,)
    scale: np.ndarray  # (n_channels,), > 0

    @classmethod
    def fit(cls, values: np.ndarray, floor: np.ndarray | None = None) -> RobustScaler:
        """``values``: (n_rows, n_channels). Constant channels get scale 1 (their deviations still count).
        ``floor`` (n_channels,): the least scale per channel (``resolution_floor``)."""
        center = np.median(values, axis=0)
        q75, q25 = np.percentile(values, [75, 25], axis=0)
        scale = (q75 - q25) / 1.349
        std = values.std(axis=0)
        # An IQR of 0 on a mostly-constant channel: fall back to the std, then to 1.
        scale = np.where(scale > 1e-9, scale, np.where(std > 1e-9, std, 1.0))
        if floor is not None:
            scale = np.maximum(scale, floor)
        return cls(center.astype(np.float32), scale.astype(np.float32))

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Any array whose last axis is the channels."""
        out: np.ndarray = ((values - self.center) / self.scale).astype(np.float32)
        return out

    def to_dict(self) -> dict[str, list[float]]:
        return {"center": self.center.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> RobustScaler:
        return cls(np.asarray(data["center"], dtype=np.float32), np.asarray(data["scale"], dtype=np.float32))


def robust_sd(values: np.ndarray) -> np.ndarray:
    """1.4826 x the median absolute deviation from the median, along the first axis: the standard deviation of
    Gaussian data, unmoved by a few extreme values."""
    v = np.asarray(values)  # in its own dtype: the figures calibrated so far stay bit for bit
    spread: np.ndarray = 1.4826 * np.median(np.abs(v - np.median(v, axis=0)), axis=0)
    return spread


RESOLUTION = 1e-3  # of a channel's spread as measured: the least scale of what the model sees (resolution_floor)


def resolution_floor(raw: np.ndarray) -> np.ndarray:
    """The least scale of each channel of ``raw`` (n_rows, n_channels), as measured, before any cycle is removed:
    ``RESOLUTION`` x its robust spread (the scaler's rule). A channel whose cycle a profile removes exactly (a
    noise-free square wave) leaves a remainder of rounding error; scaled by that error's own spread, rounding would
    be read as signal (docs/quality.md, round 15). A change below a thousandth of what the channel spans is not."""
    return RESOLUTION * RobustScaler.fit(raw).scale.astype(np.float64)
