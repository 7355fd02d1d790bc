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
scored in order (:class:`~monitor.core.engine.Engine` batches the k-th window of every sensor together), so the
result does not depend on how records are batched. ``rate`` 0 turns it off.

**Drifting channels** (:func:`drifting_channels`, less those that move by steps, :func:`stepping_channels`;
decided once from the training rows and stored in the artifact) get their own, faster rate and wider gate (settings ``threshold.drift_rate`` / ``drift_k``). A slow
process variable (a temperature, a thermocouple) wanders over hours; a few hundred training rows show a small
part of its range, so its distance from the training level says little, and a monitor that judges it by that
distance keeps alarming long after a real incident ended (SKAB: most false alarms, docs/skab.md round 5).
Following its level lets the model judge it by its short-term behaviour and its relation to the other
channels. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from monitor.core.scoring.scaler import RobustScaler
from monitor.core.windows import without_any_episode

MAX_OFFSET = 1e6  # scaler units: a learned or adopted centre stays within reach of float32 inputs


EPISODE_SHARE = 0.5  # see drifting_channels


def drifting_channels(rows: np.ndarray, span: int, ratio: float) -> list[bool]:
    """Which channels of ``rows`` (n_rows, n_channels), in time order, drift: the moving average over ``span``
    rows keeps more than ``ratio`` of the channel's variance (white noise keeps ~1/span, a slow wander nearly
    all) **throughout the history**: with any two neighbouring sixths of the rows left out (``without_any_episode``),
    it still keeps more than half that share (``EPISODE_SHARE``).
    A drift is a property of the channel, seen in every part of its history; one lasting excursion (an incident
    of a few hours in the history, a level held for a while) puts most of a noisy channel's variance into its
    moving average too, and marking the channel drifting for it would re-centre it fast enough to follow the next
    incident (docs/quality.md, round 13). Constant channels do not drift; with fewer than ``2 * span`` rows, or
    ``ratio`` 0, none does. Rows cut from windows (retraining on the topic) are their concatenation: a few seams
    do not move the ratio."""
    values = np.asarray(rows, dtype=np.float64)
    n_rows, n_channels = values.shape
    if ratio <= 0 or n_rows < 2 * span:
        return [False] * n_channels
    subsets = without_any_episode(n_rows, least=2 * span)
    return [_smooth_share(values[:, c], span) > ratio
            and all(_smooth_share(values[k, c], span) > ratio * EPISODE_SHARE for k in subsets)
            for c in range(n_channels)]


def _smooth_share(x: np.ndarray, span: int) -> float:
    """The share of ``x``'s variance its ``span``-row moving average keeps (0 for a constant)."""
    total = float(x.var())
    if not total > 1e-12:
        return 0.0
    return float(np.convolve(x, np.ones(span) / span, mode="valid").var()) / total


STEP_SHARE = 0.5  # see stepping_channels
STEP_TOP = 0.01  # the share of a channel's row-to-row changes that are its largest ones
STEP_MAX_WINDOWS = 4096  # windows read at most (evenly spaced): bounds the work on a huge training set


def stepping_channels(windows: np.ndarray) -> list[bool]:
    """Which channels of the training ``windows`` (n, window_len, n_channels) move by **steps**: their largest
    1 % of row-to-row changes (``STEP_TOP``) carry more than half (``STEP_SHARE``) of the channel's squared
    change. A pump count, a mode, a setpoint, or a flow that follows them switches between levels; a slow process
    variable wanders by many small changes (for Gaussian changes the top 1 % carry 8.5 %). Such a channel is
    never re-centred as drifting, although its moving average keeps most of its variance: following its level
    would learn each switch, which re-centring is built never to do, and the model would then judge the next
    state by the last one's centre (the quantised taxonomy base sat in alerts for most of its normal rows,
    docs/quality.md round 7). Changes are taken inside each window only: windows cut from several sensors or
    from a topic meet at seams that are not steps of the process. A constant channel does not step."""
    x = np.asarray(windows)
    if x.ndim != 3 or x.shape[1] < 2:
        return [False] * (x.shape[-1] if x.ndim else 0)
    x = _evenly(x)
    changes = np.diff(x, axis=1).reshape(-1, x.shape[2]) ** 2
    total = changes.sum(axis=0)
    largest = -np.sort(-changes, axis=0)[: max(1, int(len(changes) * STEP_TOP))].sum(axis=0)
    return [bool(np.isfinite(t) and t > 1e-12 and big > STEP_SHARE * t) for t, big in zip(total, largest, strict=True)]


def drift_speeds(scaled_rows: np.ndarray, drifting: list[bool], span: int) -> list[float]:
    """Per channel, the fastest its level moved in the training rows (scaled, in time order): the largest change
    of its ``span``-row moving average over ``span`` rows, per row. 0 for channels not ``drifting``, and for all
    with fewer than ``3 * span`` rows."""
    values = np.asarray(scaled_rows, dtype=np.float64)
    n_rows, n_channels = values.shape
    if not any(drifting) or n_rows < 3 * span:
        return [0.0] * n_channels
    kernel = np.ones(span) / span
    out = []
    for c in range(n_channels):
        if not drifting[c]:
            out.append(0.0)
            continue
        smooth = np.convolve(values[:, c], kernel, mode="valid")
        moves = np.abs(smooth[span:] - smooth[:-span]) / span
        out.append(float(moves.max()) if moves.size and np.isfinite(moves).all() else 0.0)
    return out


def _evenly(windows: np.ndarray) -> np.ndarray:
    """At most ``STEP_MAX_WINDOWS`` evenly spaced of ``windows``, as float64: bounds the work on a huge training set."""
    return windows[:: max(1, len(windows) // STEP_MAX_WINDOWS)].astype(np.float64)


MIN_JUMP = 1e-3  # scaler units: the smallest jump scale (a channel whose window means never move)
RANGE_SDS = 1.0  # see level_ranges: a level beyond the history's range is measured in SDs of its levels


def level_ranges(scaled_windows: Sequence[np.ndarray], drifting: list[bool]) -> tuple[list[float], list[float],
                                                                                     list[float]]:
    """Per drifting channel, the range of levels its history showed: ``(low, high, scale)``, scaler units, where
    ``low`` / ``high`` are the least and the greatest window mean over every window of ``scaled_windows`` (arrays
    (n, window_len, n_channels): the training and the validation windows) and ``scale`` is ``RANGE_SDS`` x the SD
    of those window means (at least ``MIN_JUMP``). 0, 0, 0 for the other channels.

    The range term of a model that takes its drifting channels in centred (``centre_drifting``; scorer.py
    ``range_values``): such a channel's level is not judged against a centre (none has to be learned, so none is
    learned during an anomaly, and a slow variable's drift cannot hold an alert open), but a level **beyond any
    its history showed** still is, by its distance beyond them, for as long as it lasts, and nothing moves them but
    an operator's verdict; wandering within the levels it held is its normal behaviour.
    The unit, one SD of its levels (a z-score beyond the range), measured as two SDs did on the fault taxonomy, and
    holds a lasting shift beyond the range that two SDs let close (docs/quality.md, round 23)."""
    parts = [np.asarray(w, dtype=np.float64).mean(axis=1) for w in scaled_windows
             if np.asarray(w).ndim == 3 and len(w)]
    if not parts or not any(drifting):
        zero = [0.0] * len(drifting)
        return zero, list(zero), list(zero)
    means = np.concatenate(parts)
    take = np.asarray(drifting, dtype=bool) & np.isfinite(means).all(axis=0)
    low = np.where(take, means.min(axis=0), 0.0)
    high = np.where(take, means.max(axis=0), 0.0)
    scale = np.where(take, RANGE_SDS * np.maximum(means.std(axis=0), MIN_JUMP), 0.0)
    return low.tolist(), high.tolist(), scale.tolist()


def jump_scales(scaled_windows: np.ndarray, drifting: list[bool]) -> list[float]:
    """Per drifting channel, the typical change of its level within a window: the mean of each training window's
    second half minus that of its first half (scaled; at most ``STEP_MAX_WINDOWS`` evenly spaced windows),
    1.4826 x the median absolute change, at least ``MIN_JUMP``. Taken inside each window, so windows of several
    sensors (a topic's history, in time order across sensors) or at any stride measure the same thing. 0 for the
    other channels, and for all with windows shorter than 2 rows. The scale of the jump term (scorer.py
    ``jump_values``) of a model whose drifting channels enter it centred (``centre_drifting``): between two
    neighbouring windows of a stream the natural change is of this size (within a factor ~1.4: smaller for noise,
    larger for a wander)."""
    x = np.asarray(scaled_windows)
    n_channels = x.shape[-1] if x.ndim else 0
    if x.ndim != 3 or x.shape[1] < 2 or not len(x) or not any(drifting):
        return [0.0] * n_channels
    x = _evenly(x)
    half = x.shape[1] // 2
    changes = x[:, -half:].mean(axis=1) - x[:, :half].mean(axis=1)
    typical = 1.4826 * np.median(np.abs(changes), axis=0)
    return [max(float(t), MIN_JUMP) if flag and np.isfinite(t) else 0.0 for t, flag in zip(typical, drifting, strict=True)]


class InputBaseline:
    """Learned per-channel offset of one sensor's inputs (scaler units).

    ``rate`` / ``k`` apply to every channel, except the ``drifting`` ones (a flag per channel), which use
    ``drift_rate`` / ``drift_k``."""

    def __init__(
        self, scaler: RobustScaler, rate: float, k: float, offset: np.ndarray | None = None, *,
        drifting: list[bool] | None = None, drift_rate: float = 0.0, drift_k: float = 1.0,
        speed: list[float] | None = None,
    ) -> None:
        self.scale = np.asarray(scaler.scale, dtype=np.float64)
        flags = np.zeros(self.scale.shape, dtype=bool) if not drifting else np.asarray(drifting, dtype=bool)
        if flags.shape != self.scale.shape:
            raise ValueError(f"{flags.shape} drifting flags for a model of {self.scale.shape} channels")
        self.drifting = flags
        self.rate = np.where(flags, drift_rate, rate)
        self.k = np.where(flags, drift_k, k)
        # set when this model took the sensor over from another one (a hot swap): the drifting channels' centres
        # are placed at their current level (inside the gate) by the first window judged outside an alert
        # (:meth:`settle`); cleared then
        self.settling = False
        self.enabled = bool((self.rate > 0).any())  # read per window on the hot path: computed once
        # per channel, how far its centre may move per row during an alert (scaler units; 0: not at all):
        # threshold.drift_pace x the fastest its level moved in the training rows
        self.speed = np.zeros_like(self.scale) if not speed else np.asarray(speed, dtype=np.float64)
        if self.speed.shape != self.scale.shape:
            raise ValueError(f"{self.speed.shape} drift speeds for a model of {self.scale.shape} channels")
        self.offset = np.zeros_like(self.scale) if offset is None else np.asarray(offset, dtype=np.float64).copy()
        if self.offset.shape != self.scale.shape:
            raise ValueError(f"baseline has {self.offset.shape} channels, the model {self.scale.shape}")
        # the last judged window's mean residual per channel (scaler units, 0 until one is judged): where the
        # sensor's level is now, relative to its centre; "new normal" feedback adopts it (monitor.core.feedback)
        self.residual = np.zeros_like(self.scale)
        # the last judged window's level per channel (its raw mean, NaN until one is judged) and end (seconds since
        # the epoch): what the jump term of a model with centred drifting channels compares the next window with
        # (scorer.py ``jump_values``)
        self.level = np.full(self.scale.shape, np.nan)
        self.level_end = math.nan

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
        baselines: list[InputBaseline], residual_mean: np.ndarray, normal: np.ndarray | None = None,
        adopt: np.ndarray | None = None, rows: np.ndarray | None = None,
    ) -> None:
        """Move each sensor's offset by ``rate`` x its residual, channel-wise where ``|residual| < k``.

        ``residual_mean`` (n, n_channels): row i is the mean of (scaled input - reconstruction) of the window
        shifted by ``baselines[i]`` (of one model and settings: same rates and gates). ``normal`` (n,) bools: only
        these windows teach (the windows judged normal outside an alert); None: all. ``adopt`` (n,) bools: these
        windows' levels become the centre at once in every channel outside its gate (``|residual| >= k``: the
        channels whose level changed) while an alert outlasts the explicit horizon ``threshold.adopt_after_s``.
        ``rows`` (n,): rows elapsed since the sensor's previous window; a window that is not ``normal`` (one in an
        alert) still moves a drifting channel's centre, inside its gate, by at most its natural ``speed`` x
        ``rows``: a slow process variable keeps its pace during an alert (it is not what the alert learns), a
        step or a faster move is not followed. Non-finite residuals never teach; centres stay within ``MAX_OFFSET``. Every window's finite residual is
        kept as the sensor's current level (``residual``).
        """
        if not baselines:
            return
        first = baselines[0]
        residual = np.asarray(residual_mean, dtype=np.float64)
        finite = np.isfinite(residual)
        for baseline, row, good in zip(baselines, residual, finite):
            baseline.residual = np.where(good, row, baseline.residual)
        if not first.enabled and (adopt is None or not np.any(adopt)):
            return
        gated = finite & (np.abs(residual) < first.k)
        ok = gated if normal is None else gated & np.asarray(normal, dtype=bool)[:, None]
        step = np.where(ok, first.rate * np.where(ok, residual, 0.0), 0.0)
        if rows is not None and first.speed.any():
            paced = gated & ~ok & (first.speed > 0)
            bound = first.speed[None, :] * np.maximum(np.nan_to_num(np.asarray(rows, dtype=np.float64)), 0.0)[:, None]
            step = np.where(paced, np.clip(first.rate * np.where(paced, residual, 0.0), -bound, bound), step)
        if adopt is not None:
            taken = finite & np.asarray(adopt, dtype=bool)[:, None] & (np.abs(residual) >= first.k)
            step = np.where(taken, np.where(taken, residual, 0.0), step)
        updated = np.clip(np.stack([b.offset for b in baselines]) + step, -MAX_OFFSET, MAX_OFFSET)
        for baseline, row in zip(baselines, updated):
            baseline.offset = row

    def settle(self, residual_mean: np.ndarray) -> None:
        """Place each drifting channel's centre at the level of ``residual_mean`` (one window's mean residual,
        scaler units, scored with the current offsets) where it lies inside the channel's gate; ends the
        settling. A new model took this sensor over while it was normal: a slow process variable has wandered
        since the new model's training rows, and at offset 0 its distance would open an alert that, learning
        nothing during alerts, never closes (docs/retraining.md, "A defect this leg found"). Steps (outside the gate) and the other channels are left to the usual slow learning."""
        residual = np.asarray(residual_mean, dtype=np.float64)
        take = self.drifting & (self.rate > 0) & np.isfinite(residual) & (np.abs(residual) < self.k)
        self.offset = np.clip(np.where(take, self.offset + np.where(take, residual, 0.0), self.offset),
                              -MAX_OFFSET, MAX_OFFSET)
        self.settling = False

    def snapshot(self) -> dict[str, Any]:
        state: dict[str, Any] = {"offset": self.offset.tolist(), "residual": self.residual.tolist()}
        if self.settling:
            state["settling"] = True
        if math.isfinite(self.level_end) and np.isfinite(self.level).all():
            state["level"], state["level_end"] = self.level.tolist(), self.level_end
        return state

    @classmethod
    def restore(
        cls, scaler: RobustScaler, rate: float, k: float, data: dict[str, Any] | None, *,
        drifting: list[bool] | None = None, drift_rate: float = 0.0, drift_k: float = 1.0,
        speed: list[float] | None = None,
    ) -> InputBaseline:
        """``data`` from :meth:`snapshot`; None, another channel count or a damaged value starts fresh (offset 0)."""
        shape = np.asarray(scaler.scale).shape
        offset = _floats(data.get("offset") if data else None, shape)
        baseline = cls(scaler, rate, k, offset, drifting=drifting, drift_rate=drift_rate, drift_k=drift_k,
                       speed=speed)
        if offset is None or not data:
            return baseline
        residual = _floats(data.get("residual"), shape)
        if residual is not None:
            baseline.residual = residual
        baseline.settling = bool(data.get("settling")) and bool(baseline.drifting.any())
        level, level_end = _floats(data.get("level"), shape), data.get("level_end")
        if level is not None and isinstance(level_end, (int, float)) and math.isfinite(level_end):
            baseline.level, baseline.level_end = level, float(level_end)
        return baseline


def _floats(value: object, shape: tuple[int, ...]) -> np.ndarray | None:
    """``value`` (a stored list) as finite float64 numbers of ``shape``, or None (absent, damaged, another shape)."""
    if not isinstance(value, list):
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    return array if array.shape == shape and np.isfinite(array).all() else None
