"""Batch scoring: windows -> reconstruction-error score and per-channel contributions.

Per window and channel, up to four terms are added:

* the **error**: the mean squared reconstruction error over time of the scaled values, divided by that
  channel's mean error on the training data (so channels with different predictability weigh alike);
* the **level** (weight ``level_weight`` of the calibration): the channel's mean signed residual over the
  window, standardised by the median and robust scale (1.4826 x MAD) it has over the training windows (never
  narrower than the channel's natural spread of window means), squared.
  On a noisy or quantised channel (a flow meter toggling between two counts) the squared error is dominated by
  the noise, and a shift of the channel's level by one step barely moves it, while the window mean shifts by
  many of its own standard deviations (docs/skab.md, round 5);
* for a model with several channels whose training rows share directions, the **linear** term (weight
  ``linear_weight``): the channel's mean squared residual outside the principal components of the training
  rows (the Q statistic), over its typical value on the training data (monitor/core/scoring/linear.py): a break in
  how the channels move together, which the autoencoder (reconstructing each channel from itself) misses;
* for a drifting channel of a model that takes them in centred (``centre_drifting``: their level is not judged,
  so nothing has to be learned for them), the **jump** (weight ``level_weight``): the change of the channel's
  window mean since the sensor's previous window, over its typical change of level within a training window
  (``jump_scale``, baseline.py ``jump_scales``), squared (``jump_values``). Without it a step that starts exactly where a window starts
  (non-overlapping windows) would never be inside any window, and never seen;
* for the same channels, the **range** (weight ``level_weight``): how far the window's level lies beyond every
  level the channel's history showed (``range_low`` / ``range_high``: baseline.py ``level_ranges``), over the SD
  of those levels, squared (``range_values``); 0 within them. A slow variable
  wandering among the levels it held is not judged by its level, so nothing has to be learned for it and its drift
  cannot hold an alert open; a level it never held is judged for as long as it lasts, so a lasting shift is not
  accepted at its onset's end.

The model's input is ``model_input``'s (drifting channels centred, event channels muted, where the artifact
says so). Each channel's value is then weighted (1, unless it is an on/off event channel, not judged: 0, or its
normal values have an event-like tail: below 1; monitor/core/scoring/train.py ``event_channels``,
``balance_tails``). The window score is the mean over channels of these weighted values; contributions are
their shares (sum to 1), so an alert names the channels whose error, level or linear residual explains it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from monitor.core.scoring.artifact import Calibration, ModelBundle
from monitor.core.scoring.device import resolve_device
from monitor.core.scoring.linear import Linear
from monitor.core.scoring.seasonal import Seasonality, row_times
from monitor.core.scoring.spikes import Allowance, despike
from monitor.errors import DataError


@dataclass(frozen=True)
class Scores:
    score: np.ndarray  # (batch,), > 0
    contributions: np.ndarray  # (batch, n_channels), rows sum to 1
    residual_mean: np.ndarray | None = None  # (batch, n_channels) mean of (scaled input - reconstruction); for a
    # channel with a range term, its level relative to the middle of that range (range_residuals)
    level: np.ndarray | None = None  # (batch, n_channels) raw window means, for a model with a jump or range term
    moved: np.ndarray | None = None  # (batch,) bool: the window holds a move its model's allowance scored (scorer.py
    # move_factors); such a window teaches the input centres nothing (its mean residual is the step's, not a drift)


def channel_residuals(
    bundle: ModelBundle, windows: np.ndarray, batch_size: int = 512, bf16: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Raw values (batch, window_len, n_channels) -> (mean squared error, mean signed residual, linear residual),
    each (batch, n_channels); the residual is scaled input - reconstruction, averaged over time; the linear
    residual is the mean squared residual outside the model's principal components (None for a model without a
    linear term, see monitor/core/scoring/linear.py).

    Inference runs on the module's device (see ``Scorer``) in chunks of ``batch_size`` windows under
    ``torch.inference_mode``; ``bf16`` runs the model under bfloat16 autocast (the errors themselves are computed
    in float32). On the CPU no tensor is copied (``.to`` and ``.cpu`` return the tensor itself).
    """
    scaled = model_input(bundle.scaler.transform(np.asarray(windows, dtype=np.float32)), bundle.meta.calibration)
    out = np.empty((scaled.shape[0], scaled.shape[2]), dtype=np.float64)
    mean = np.empty_like(out)
    device = next(bundle.module.parameters()).device
    with torch.inference_mode():
        for start in range(0, scaled.shape[0], batch_size):
            chunk = torch.from_numpy(scaled[start : start + batch_size]).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                recon = bundle.module(chunk)
            residual = chunk - recon.float()
            out[start : start + batch_size] = (residual**2).mean(dim=1).double().cpu().numpy()
            mean[start : start + batch_size] = residual.mean(dim=1).double().cpu().numpy()
    linear = linear_of(bundle.meta.calibration, scaled.shape[2])
    return out, mean, (linear.residual(scaled) if linear is not None else None)


_LINEAR: dict[int, tuple[Calibration, dict[str, Any], Linear | None]] = {}


def linear_of(calibration: Calibration, n_channels: int) -> Linear | None:
    """The calibration's linear term, parsed once per calibration (scoring is the hot path)."""
    cached = _LINEAR.get(id(calibration))
    if cached is not None and cached[0] is calibration and cached[1] is calibration.linear:
        return cached[2]
    if len(_LINEAR) > 256:  # models come and go (hot swaps): keep the cache small
        _LINEAR.clear()
    linear = Linear.from_dict(calibration.linear, n_channels)
    _LINEAR[id(calibration)] = (calibration, calibration.linear, linear)
    return linear


def model_input(scaled: np.ndarray, calibration: Calibration) -> np.ndarray:
    """What the model sees of scaled windows (n, window_len, C), in training and in scoring alike.

    * Each drifting channel's window mean removed (artifacts with ``centre_drifting``): a slow process variable
      is judged by its short-term shape and its relation to the other channels, never by its distance from a
      training level that a few hundred rows show only in part, so no offset has to be learned for it (nothing
      is learned during an anomaly).
    * Each **muted** channel (``calibration.muted``: the on/off event channels of a model trained with
      ``mute_events``) at 0, its training median: an event channel is not judged (weight 0), and fed in it let
      an arrangement of events the history did not show (two commands in one window, a command seen once in
      training) move the reconstruction of the judged channels, so normal events raised false alerts
      (docs/quality.md, round 11). The judged channels are reconstructed from the judged channels, and a
      sensor's response to a command is judged by its shape, as any other movement of the sensor is.

    Returns ``scaled`` itself when neither applies."""
    muted = any(calibration.muted)
    if not muted and (not calibration.centre_drifting or not any(calibration.drifting)):
        return scaled
    out = np.array(scaled, dtype=np.float32, copy=True)
    if calibration.centre_drifting and any(calibration.drifting):
        flags = np.asarray(calibration.drifting, dtype=bool)
        out[:, :, flags] -= out[:, :, flags].mean(axis=1, keepdims=True)
    if muted:
        out[:, :, np.asarray(calibration.muted, dtype=bool)] = 0.0
    return out


def range_values(z: np.ndarray, cal: Calibration) -> np.ndarray:
    """Each window's distance beyond its channel's range of history levels (batch, n_channels), in units of the
    channel's ``range_scale``: 0 within ``[range_low, range_high]`` and for a channel without a range (scale 0).
    ``z``: the window levels in scaler units (the scaler's ``transform`` of ``Scores.level``)."""
    scale = np.asarray(cal.range_scale, dtype=np.float64)
    beyond = np.maximum(z - np.asarray(cal.range_high), 0.0) + np.maximum(np.asarray(cal.range_low) - z, 0.0)
    with np.errstate(invalid="ignore"):
        out = np.where(scale > 0, beyond / np.where(scale > 0, scale, 1.0), 0.0)
    return np.where(np.isfinite(out), out, 0.0)


def range_residuals(residual_mean: np.ndarray, z: np.ndarray, cal: Calibration) -> np.ndarray:
    """``residual_mean`` with each channel that has a range (``range_scale`` > 0) replaced by its window level
    relative to the middle of that range (scaler units): where the sensor's level is, for what the input centres do
    with it (``InputBaseline``: the verdict ``new_normal`` and the explicit horizon move the centre by it, so the
    adopted level sits in the middle of the range of levels the history showed). A centred channel's own mean
    residual says nothing of its level. ``z`` as for ``range_values``."""
    has = np.asarray(cal.range_scale, dtype=np.float64) > 0
    middle = (np.asarray(cal.range_low, dtype=np.float64) + np.asarray(cal.range_high, dtype=np.float64)) / 2
    out: np.ndarray = np.where(has, z - middle, np.asarray(residual_mean, dtype=np.float64))
    return out


def jump_values(level: np.ndarray, previous: np.ndarray, bundle: ModelBundle) -> np.ndarray:
    """Each window's jump per channel (batch, n_channels): the change of its raw window mean ``level`` since
    ``previous`` (its sensor's previous window), in scaler units, over the channel's ``jump_scale``; 0 where the
    channel has no jump scale or there is no previous level (NaN)."""
    scale = np.asarray(bundle.meta.calibration.jump_scale, dtype=np.float64)
    unit = np.asarray(bundle.scaler.scale, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        z = (np.asarray(level, dtype=np.float64) - np.asarray(previous, dtype=np.float64)) / unit
        z = np.where(scale > 0, z / np.where(scale > 0, scale, 1.0), 0.0)
    return np.where(np.isfinite(z), z, 0.0)


def row_changes(windows: np.ndarray, bundle: ModelBundle) -> np.ndarray:
    """The absolute change from one row to the next (batch, window_len - 1, n_channels), in the scaler's units, of
    raw windows (batch, window_len, n_channels) (without their profile, if any)."""
    scaled = bundle.scaler.transform(np.asarray(windows, dtype=np.float32))
    out: np.ndarray = np.abs(np.diff(scaled.astype(np.float64), axis=1))
    return out


def calm_values(windows: np.ndarray, bundle: ModelBundle, changes: np.ndarray | None = None) -> np.ndarray:
    """Each window's stillness per channel (batch, n_channels): the mean absolute change from one row to the next,
    in the scaler's units, of raw windows (batch, window_len, n_channels) (without their profile, if any);
    ``changes``: their ``row_changes``, when already computed."""
    out: np.ndarray = (row_changes(windows, bundle) if changes is None else changes).mean(axis=1)
    return out


def move_values(windows: np.ndarray, bundle: ModelBundle, changes: np.ndarray | None = None) -> np.ndarray:
    """Each window's largest move per channel (batch, n_channels): the largest absolute change from one row to the
    next, in the scaler's units (``row_changes``), for the move allowance (``move_factors``)."""
    out: np.ndarray = (row_changes(windows, bundle) if changes is None else changes).max(axis=1)
    return out


MOVE_RAMP = 2.0  # a move between 1 / MOVE_RAMP of the floor and the floor is allowed in part (log-linear in between)


def move_factors(move: np.ndarray | None, calibration: Calibration) -> np.ndarray | None:
    """The move allowance (train.py ``_calibrate_moves``): per window and channel (batch, n_channels), 1 over the
    channel's ``move_ratio`` where the window holds a move from one row to the next of the kind the channel's
    history showed recurring (larger than ``move_floor``, at most ``move_top``), else 1; None without one. A move
    between half the floor and the floor gets part of the ratio (log-linear in the move): a window whose step the
    profile or the sampling cut short scores as its neighbours do, not at once in full.

    A sensor that steps between operating states as part of its normal work (a valve, a mode switch, a sensor's
    excursions on command) has windows holding a step scored by the same error and level scales as its quiet
    windows, and the autoencoder, however well trained, reconstructs a step at an arbitrary row of a window far
    less closely than noise: those windows score tens to hundreds of times the quiet ones, beyond the threshold's
    ceiling, and every normal step alerts (docs/quality.md, round 20). The allowance scores such a window against
    the history's windows of its own kind: its error and level terms over the ratio that brought the history's
    moving windows' scores onto its quiet windows' at their 99th percentile. A move larger than any the history
    showed (by ``ROOM``) is judged in full, and a window without a move (a sensor stuck between its states, a level
    shift once the step has passed) is judged as before."""
    if move is None or not calibration.move_ratio:
        return None
    ratio = np.maximum(np.asarray(calibration.move_ratio, dtype=np.float64), 1.0)
    floor = np.asarray(calibration.move_floor, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.clip(np.log(move * MOVE_RAMP / floor) / np.log(MOVE_RAMP), 0.0, 1.0)
    inside = (floor > 0) & (move <= np.asarray(calibration.move_top)) & (ratio > 1) & np.isfinite(share)
    out: np.ndarray = np.where(inside, ratio ** -np.where(inside, share, 0.0), 1.0)
    return out


def moved_windows(factor: np.ndarray | None) -> np.ndarray | None:
    """Which windows the move allowance lowers on some channel (batch,) bool, from its ``move_factors``; None
    without an allowance (``Scores.moved``)."""
    return None if factor is None else np.asarray((factor < 1).any(axis=1))


def channel_values(
    errors: np.ndarray, calibration: Calibration, residual_mean: np.ndarray | None = None,
    linear: np.ndarray | None = None, jump: np.ndarray | None = None, calm: np.ndarray | None = None,
    factor: np.ndarray | None = None, beyond: np.ndarray | None = None,
) -> np.ndarray:
    """Per-channel errors, mean residuals and linear residuals (batch, n_channels) -> each channel's value
    (batch, n_channels): its error, linear and level terms with ``calibration``'s scales, before the channel
    weights. The level term needs ``residual_mean``, the linear term ``linear``; without them (or with their weight
    0) the value is the error alone. ``factor`` (``move_factors``, per window and channel): the move allowance, by
    which the error and level terms of a window holding a step of the kind the history showed are multiplied.
    ``beyond`` (``range_values``): the range term's distances, added squared with the level weight."""
    ref = np.maximum(np.asarray(calibration.channel_error, dtype=np.float64), 1e-9)
    if calibration.resolution:  # an error below the channel's resolution is no error (scaler.py resolution_floor)
        least = np.square(np.asarray(calibration.resolution, dtype=np.float64))
        errors, ref = np.maximum(errors, least), np.maximum(ref, least)
    normed: np.ndarray = errors / ref
    if factor is not None:
        normed = normed * factor
    if linear is not None and calibration.linear_weight > 0 and calibration.linear_scale:
        normed = normed + calibration.linear_weight * linear / np.asarray(calibration.linear_scale)
    if calibration.level_weight > 0 and calibration.level_scale and residual_mean is not None:
        z = (residual_mean - np.asarray(calibration.level_centre)) / np.asarray(calibration.level_scale)
        if calibration.centre_drifting and any(calibration.drifting):
            z = z * ~np.asarray(calibration.drifting, dtype=bool)  # their level is not judged
        level = calibration.level_weight * z * z
        normed = normed + (level if factor is None else level * factor)
    if jump is not None and calibration.level_weight > 0:  # jump_values: a drifting channel's change of level
        normed = normed + calibration.level_weight * jump * jump
    if beyond is not None and calibration.level_weight > 0:  # range_values: a level its history never showed
        normed = normed + calibration.level_weight * beyond * beyond
    if calm is not None and calibration.calm_floor:
        # The stillness term: a window whose rows change far less than any window of the history did (a sensor
        # stuck at a value, its noise gone) is judged however well the model reconstructs it. 0 above the floor,
        # so every window as lively as the history's scores as without it.
        scale = np.asarray(calibration.calm_scale, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            below = (np.asarray(calibration.calm_floor) - np.log(calm + np.asarray(calibration.calm_least))) / scale
        below = np.where((scale > 0) & np.isfinite(below) & (below > 0), below, 0.0)
        normed = normed + below * below
    return normed


def normalise(
    errors: np.ndarray, calibration: Calibration, residual_mean: np.ndarray | None = None,
    linear: np.ndarray | None = None, jump: np.ndarray | None = None, calm: np.ndarray | None = None,
    factor: np.ndarray | None = None, beyond: np.ndarray | None = None,
) -> Scores:
    """Per-channel errors, mean residuals and linear residuals (batch, n_channels) -> Scores, with
    ``calibration``'s scales (``channel_values``) and channel weights (``channel_weight``: an event channel
    weighs 0, not judged, and a channel whose normal values have an event-like tail weighs less, so that
    normal events do not hide a change of another channel; see train.py ``event_channels`` and ``balance_tails``)."""
    normed = channel_values(errors, calibration, residual_mean, linear, jump, calm, factor, beyond)
    if calibration.channel_weight:
        normed = normed * np.asarray(calibration.channel_weight, dtype=np.float64)
    total = normed.sum(axis=1)
    combine = calibration.combine
    if combine == "max":
        score = normed.max(axis=1)
    elif combine == "rms":
        score = np.sqrt((normed * normed).mean(axis=1))
    elif combine.startswith("top"):
        k = min(int(combine[3:]), normed.shape[1])
        score = np.sort(normed, axis=1)[:, -k:].mean(axis=1)
    else:
        score = total / errors.shape[1]
    contributions = normed / np.maximum(total, 1e-12)[:, None]
    return Scores(np.maximum(score, 1e-12), contributions, residual_mean)


def seasonality_of(bundle: ModelBundle) -> Seasonality | None:
    return Seasonality.from_dict(bundle.meta.calibration.seasonal, len(bundle.meta.channels))


def spikes_of(calibration: Calibration) -> Allowance | None:
    """The calibration's spike allowance (spikes.py), None when no channel has one."""
    if not calibration.spike_limit or not any(v > 0 for v in calibration.spike_limit):
        return None
    return Allowance(np.asarray(calibration.spike_scale, dtype=np.float64),
                     np.asarray(calibration.spike_limit, dtype=np.float64),
                     np.asarray(calibration.spike_runs, dtype=np.int64), float(calibration.spike_bound))


def deseasonalise(
    seasonality: Seasonality | None, windows: np.ndarray, starts: np.ndarray | None, ends: np.ndarray | None
) -> np.ndarray:
    """Raw windows (n, window_len, n_channels) minus the model's daily/weekly profile at each row's time (from
    each window's first and last time, seconds since the epoch); the windows as they are without a profile.
    A model with a profile needs the times (DataError without them: the score would be another judge's)."""
    if seasonality is None:
        return windows
    if starts is None or ends is None:
        raise DataError("this model removes a daily/weekly profile: scoring needs each window's start and end time")
    profile = seasonality.component(row_times(starts, ends, windows.shape[1]))
    out: np.ndarray = (np.asarray(windows, dtype=np.float64) - profile).astype(np.float32)
    return out


class Scorer:
    """Scores batches of raw windows with one loaded model, on ``device`` (settings ``model.device``; the
    bundle's module is moved there). Raises ConfigError for a device this machine does not have."""

    def __init__(self, bundle: ModelBundle, batch_size: int = 256, bf16: bool = False,
                 device: str | torch.device = "cpu") -> None:
        self.device = resolve_device(device)
        self.bundle = bundle
        bundle.module.to(self.device)  # a no-op on the CPU, where artifacts are loaded
        self.batch_size = batch_size
        self.bf16 = bf16  # bfloat16 autocast: off in production (no decision-identical speed-up measured)
        self.seasonality = seasonality_of(bundle)
        self.spikes = spikes_of(bundle.meta.calibration)

    @property
    def version(self) -> str:
        return self.bundle.meta.version

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.bundle.meta.channels)

    @property
    def window_len(self) -> int:
        return self.bundle.meta.window_len

    def score(self, windows: np.ndarray, starts: np.ndarray | None = None, ends: np.ndarray | None = None,
              previous: np.ndarray | None = None) -> Scores:
        """``windows``: (batch, window_len, n_channels) raw values; ``starts``/``ends`` (batch,): each window's
        first and last time in seconds since the epoch (needed by a model with a daily/weekly profile).
        ``previous`` (batch, n_channels): each window's sensor's previous window level (``Scores.level``; NaN rows
        where there is none or it is too long ago), for a model with a jump term; None: no jump judged."""
        if self.spikes is not None:  # a spike the sensor's history showed recurring is its normal behaviour
            windows = despike(np.asarray(windows), self.spikes)
        windows = deseasonalise(self.seasonality, windows, starts, ends)
        errors, residual_mean, linear = channel_residuals(self.bundle, windows, self.batch_size, self.bf16)
        cal = self.bundle.meta.calibration
        changes = row_changes(windows, self.bundle) if cal.calm_floor or cal.move_ratio else None
        calm = calm_values(windows, self.bundle, changes) if cal.calm_floor else None
        move = move_values(windows, self.bundle, changes) if cal.move_ratio else None
        factor = move_factors(move, cal)
        moved = moved_windows(factor)
        level = jump = beyond = z = None
        if self.jumps or self.ranges:
            level = np.asarray(windows, dtype=np.float64).mean(axis=1)
            jump = None if previous is None or not self.jumps else jump_values(level, previous, self.bundle)
            if self.ranges:
                z = self.bundle.scaler.transform(level).astype(np.float64)
                beyond = range_values(z, cal)
        scores = normalise(errors, cal, residual_mean, linear, jump, calm, factor, beyond)
        if level is None and moved is None:
            return scores
        if z is not None:
            residual_mean = range_residuals(residual_mean, z, cal)
        return Scores(scores.score, scores.contributions, residual_mean, level, moved)

    @property
    def ranges(self) -> bool:
        """Whether the model judges its drifting channels' levels beyond the range their history showed."""
        return any(v > 0 for v in self.bundle.meta.calibration.range_scale)

    @property
    def jumps(self) -> bool:
        """Whether the model judges its drifting channels' jumps between windows (``Scores.level`` is then set)."""
        return any(v > 0 for v in self.bundle.meta.calibration.jump_scale)
