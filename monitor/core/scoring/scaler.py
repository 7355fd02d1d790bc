"""Robust per-channel scaling: (x - median) / (IQR / 1.349), fitted on training data (or the 1-99 % range for a
channel with a recurring second state, below); ``robust_sd``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WIDE = 3.0  # a 1-99 % range this many times the IQR's Gaussian one sets the scale (a second state of the channel)
WIDE_SPAN = 4.653  # the 1-99 % range of a Gaussian, in SDs
GAUSS_99 = 2.576  # half the 99 % range of a Gaussian, in SDs
MIN_DISTINCT = 50  # values a channel takes at least for the rule: a quantised one (a few levels) keeps the IQR's
MIN_EPISODES = 4  # separate runs of rows in the second state that make it recurring (one start-up is not)


@dataclass(frozen=True)
class RobustScaler:
    center: np.ndarray  # (n_channels,)
    scale: np.ndarray  # (n_channels,), > 0

    @classmethod
    def fit(cls, values: np.ndarray, floor: np.ndarray | None = None) -> RobustScaler:
        """``values``: (n_rows, n_channels). Constant channels get scale 1 (their deviations still count).
        ``floor`` (n_channels,): the least scale per channel (``resolution_floor``)."""
        center = np.median(values, axis=0)
        q99, q75, q25, q01 = np.percentile(values, [99, 75, 25, 1], axis=0)
        scale = (q75 - q25) / 1.349
        # A channel whose rows spend a few percent in a second state far off the first (a job that runs for half
        # an hour every six, a mode of a telemetry channel) has an IQR of its quiet state's noise only: scaled by
        # it, the other state lies tens of units away, beyond what the model learns to reconstruct from a few
        # days (docs/quality.md, round 19). Where the 1-99 % range is more than WIDE times what the IQR implies
        # for a Gaussian, the channel takes at least MIN_DISTINCT values (a quantised one's "second state" is its
        # next level) and the rows beyond WIDE times the IQR's 99 % reach form at least MIN_EPISODES separate runs
        # (one start-up is no state), that range sets the scale. Gaussian and Laplace-like channels keep the IQR's.
        wide = (q99 - q01) / WIDE_SPAN
        second = (scale > 1e-9) & (wide > WIDE * scale)
        for c in np.flatnonzero(second):
            beyond = np.abs(values[:, c] - center[c]) > WIDE * GAUSS_99 * scale[c]
            many = len(np.unique(values[:, c])) >= MIN_DISTINCT
            second[c] = many and int(count_runs(beyond)) >= MIN_EPISODES
        scale = np.where(second, wide, scale)
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


def count_runs(flags: np.ndarray, axis: int = 0) -> np.ndarray:
    """The number of runs of True along ``axis`` of a bool array (that axis removed): a channel's episodes here,
    bursts of flagged rows in spikes.py and the history screen."""
    f = np.moveaxis(np.asarray(flags, dtype=bool), axis, 0)
    out: np.ndarray = f[0].astype(np.int64) + (f[1:] & ~f[:-1]).sum(axis=0)
    return out


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
