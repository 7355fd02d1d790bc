"""Training an LSTM autoencoder on normal data: time-ordered validation split, early stopping, seeds."""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypedDict, Unpack

import numpy as np
import pandas as pd
import torch
from torch import nn

from monitor.core.scoring.artifact import Calibration, ModelBundle, ModelMeta, build_module
from monitor.core.scoring.baseline import (
    drift_speeds,
    drifting_channels,
    jump_scales,
    level_ranges,
    stepping_channels,
)
from monitor.core.scoring.device import resolve_device
from monitor.core.scoring.excursions import excursions
from monitor.core.scoring.linear import Linear
from monitor.core.scoring.scaler import RobustScaler, count_runs, resolution_floor, robust_sd
from monitor.core.scoring.scorer import (
    calm_values,
    channel_residuals,
    channel_values,
    deseasonalise,
    linear_of,
    model_input,
    move_factors,
    move_values,
    moved_windows,
    normalise,
)
from monitor.core.scoring.seasonal import Seasonality, fit_seasonality, row_times
from monitor.core.scoring.spikes import HALF, ROOM, Allowance, allowance, combine, despike, explained, medians
from monitor.core.thresholds import fit_tail
from monitor.core.windows import sliding_windows, windows_straddling, windows_touching
from monitor.errors import CancelledRunError, DataError
from monitor.settings import ModelSettings

log = logging.getLogger(__name__)

MIN_TRAIN_WINDOWS = 8
MIN_VAL_WINDOWS = 4
MAX_LEVEL_FIT_WINDOWS = 20_000  # training windows the level term's centre and scale are measured on, at most
LEVEL_RESOLUTIONS = 3.0  # the level term's scale is at least this many of the channel's resolution (calibrate)
MIN_LEVEL_SCALE = 1e-3  # scaler units: a channel whose training residual never moves still gets a finite scale
MIN_WINDOW_LEN = 4  # auto_shape: the shortest window
HISTORY_PER_WINDOW = 32  # auto_shape: a window is at most this fraction of the training rows
TARGET_TRAIN_WINDOWS = 256  # auto_shape: the stride shrinks until about this many training windows


def _seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)


EpochCallback = Callable[[int, int, float, float], None]
"""Called after each epoch with (epoch (1-based), max epochs, train loss, validation loss)."""


class FitOptions(TypedDict, total=False):
    """Keywords ``train`` and ``train_on_windows`` hand to the training loop (defaults in ``_fit``).

    ``version``: the artifact's version (default: its creation time); ``warm_start``: start from this model's
    weights and scaler; ``on_epoch``: called after each epoch (progress is the caller's to show); ``cancel``:
    checked between epochs; ``clock``: the creation time of the artifact (default: now, UTC)."""

    version: str | None
    warm_start: ModelBundle | None
    on_epoch: EpochCallback | None
    cancel: threading.Event | None
    clock: Callable[[], datetime]


def train(
    frame: pd.DataFrame,
    cfg: ModelSettings,
    *,
    source: str = "",
    sensors: int = 1,
    seams: Sequence[int] = (),
    **options: Unpack[FitOptions],
) -> ModelBundle:
    """Fit a model on ``frame`` (time-indexed, numeric channels only, ONE continuous series) and calibrate it.
    ``sensors``: how many sensors' histories the frame holds end to end (one model for a fleet); with
    ``model.centre_drifting`` ``auto`` it decides how drifting channels are judged (``centring``). ``seams``: where
    they meet, when known (the row where each history after the first begins: ``read_wide_csv``'s
    ``attrs["seams"]``; then ``sensors`` is at least one more than their number): no window is cut across a seam,
    the history screen reads each history on its own, and the daily / weekly profile is fitted on the rows in
    time order.

    Windows are cut every ``cfg.stride`` rows. The last ``val_fraction`` of the rows (in time) is the
    validation part; windows never straddle the split. Data that is not one continuous series (several
    sensors, gaps) goes through ``train_on_windows`` instead. Trains and calibrates on ``cfg.device``; the
    returned module is on the CPU (where artifacts live). Raises ``DataError`` when either part is too short
    for the window length, ``ConfigError`` when the device is not available, ``CancelledRunError`` when
    ``cancel`` is set (checked between epochs).
    """
    if sensors < 1:
        raise DataError(f"a history holds at least one sensor's rows, not {sensors}")
    device = resolve_device(cfg.device)
    seams = sorted({int(b) for b in seams})
    if seams and (seams[0] <= 0 or seams[-1] >= len(frame) or sensors < len(seams) + 1):
        raise DataError(f"seams {seams} do not split {len(frame)} rows into {sensors} sensors' histories")
    if seams:
        frame, seams = _validation_last(frame, seams, cfg.val_fraction)
    values = frame.to_numpy(dtype=np.float32)
    _check_finite(values)
    blocks = list(zip([0, *seams], [*seams, len(values)]))  # each sensor's rows (one block without seams)
    n_val_rows = int(len(values) * cfg.val_fraction)
    n_train_rows = len(values) - n_val_rows
    window_len, stride = fit_shape(n_train_rows, cfg)
    if (window_len, stride) != (cfg.window_len, cfg.stride):
        log.info("short history: %d training rows, so windows of %d rows every %d (settings: %d every %d; "
                 "model.window_len is the longest window)", n_train_rows, window_len, stride, cfg.window_len,
                 cfg.stride)
        cfg = cfg.model_copy(update={"window_len": window_len, "stride": stride})
    # Anomalies the history holds (spikes, bursts): their rows are filled with their neighbourhood's median for
    # what is fitted on rows (the daily profile, the scaler, which channels drift) and the windows around them are
    # left out of training and calibration, so they are never learned as normal (``screen_rows``).
    on_off = event_channels(values, cfg.event_share)
    flagged = np.concatenate([screen_rows(values[a:b], cfg.history_screen, on_off) for a, b in blocks])
    spikes = allowance(values, cfg.history_screen, cfg.window_len, on_off)  # spikes.py: what recurs is normal
    # One lasting incident (a level entered and left once, that no other channel explains: excursions.py): its
    # windows are left out of every fit and of the training quantile too (it is no behaviour that recurs), and its
    # rows, less their lift, are what the row statistics see.
    incidents = [dataclasses.replace(i, start=i.start + a, end=i.end + a) for a, b in blocks
                 for i in excursions(values[a:b], on_off)] if cfg.history_screen > 0 else []
    lasting = np.zeros(len(values), dtype=bool)
    for incident in incidents:
        lasting[incident.start : incident.end] = True
    screened: np.ndarray = np.asarray(flagged.any(axis=1)) | lasting
    keep_train = keep_val = None
    raw = values  # as given (the screened rows unfilled)
    if screened.any():
        keep_train = ~windows_touching(screened[:n_train_rows], window_len, stride)
        keep_val = ~windows_touching(screened[n_train_rows:], window_len, _val_stride(window_len, stride))
        if keep_train.sum() >= MIN_TRAIN_WINDOWS and keep_val.sum() >= MIN_VAL_WINDOWS:
            log.info("history screen: %d row(s) far off their neighbourhood, %d lasting incident(s) (%d rows): %d "
                     "training and %d validation window(s) left out of the fit", int(flagged.any(axis=1).sum()),
                     len(incidents), int(lasting.sum()), int((~keep_train).sum()), int((~keep_val).sum()))
            values = np.where(flagged, medians(values[None])[2][0], values).astype(np.float32)
            for incident in incidents:  # values is a new array here (np.where)
                values[incident.start : incident.end, incident.channel] -= np.float32(incident.lift)
        else:
            log.warning("history screen: %d row(s) far off their neighbourhood or in a lasting incident, but leaving "
                        "them out would leave too few windows: they are trained on", int(screened.sum()))
            flagged[:], keep_train, keep_val, incidents = False, None, None, []
            lasting[:] = False
    if spikes.active:  # the spikes scoring will remove (spikes.py), removed from what every fit sees
        values = despike(values[None], spikes, dense=False)[0]
    times = _epoch_seconds(frame.index) if cfg.seasonal else None
    # The profile is fitted on every row given, the validation part included: a short history (the first 15 % of
    # two weeks of 5-minute data is ~2 days) holds two whole cycles only with it, and fit_seasonality keeps a
    # period only when a profile fitted on the first half of these rows predicts the second half. Its dozen
    # coefficients per channel cannot learn the validation windows' short-term behaviour, which calibrates the
    # scores (docs/quality.md, round 9: 2 days of training, taxonomy recall 0.79 -> 0.93).
    floor = resolution_floor(values[:n_train_rows])
    if times is not None and seams:  # several sensors' rows: fitted in time order (their times overlap)
        order = np.argsort(times, kind="stable")
        seasonality = fit_seasonality(times[order], values[order])
    else:
        seasonality = fit_seasonality(times, values) if times is not None else None
    if seasonality is not None:
        assert times is not None
        profile = seasonality.component(times)
        values = (values.astype(np.float64) - profile).astype(np.float32)
        if keep_train is not None:  # the screened windows, as they were, for the training quantile
            raw = (raw.astype(np.float64) - profile).astype(np.float32)
    train_rows, val_rows = values[:n_train_rows], values[n_train_rows:]
    train_windows = sliding_windows(train_rows, cfg.window_len, cfg.stride)
    val_windows = sliding_windows(val_rows, cfg.window_len, _val_stride(cfg.window_len, cfg.stride))
    # windows cut across a seam hold two sensors' rows: never trained, calibrated or held
    whole_train = ~windows_straddling(n_train_rows, seams, cfg.window_len, cfg.stride)
    whole_val = ~windows_straddling(len(values) - n_train_rows, [b - n_train_rows for b in seams], cfg.window_len,
                             _val_stride(cfg.window_len, cfg.stride))
    held = None  # the training windows the screen left out, as they were: only the training quantile sees them
    if keep_train is not None and keep_val is not None:
        # the windows of a lasting incident are not held: the quantile asks how high a history's recurring
        # behaviour reaches, and an incident seen once is none
        burst_only = ~keep_train & ~windows_touching(lasting[:n_train_rows], cfg.window_len, cfg.stride) & whole_train
        held = sliding_windows(raw[:n_train_rows], cfg.window_len, cfg.stride)[burst_only]
        held = despike(held, spikes)  # scored as scoring will: without the spikes the allowance removes
        train_windows, val_windows = train_windows[keep_train & whole_train], val_windows[keep_val & whole_val]
    elif seams:
        train_windows, val_windows = train_windows[whole_train], val_windows[whole_val]
    if len(train_windows) < MIN_TRAIN_WINDOWS or len(val_windows) < MIN_VAL_WINDOWS:
        raise DataError(
            f"too little data: {len(values)} rows give {len(train_windows)} training and {len(val_windows)} "
            f"validation windows of {cfg.window_len} rows (need >= {MIN_TRAIN_WINDOWS} and >= {MIN_VAL_WINDOWS}, "
            f"val_fraction={cfg.val_fraction}); provide at least {min_rows(cfg)} rows"
        )
    training = {
        "source": source,
        "rows": int(len(values)),
        "start": (frame.index.min() if seams else frame.index[0]).isoformat() if len(frame) else None,
        "end": (frame.index.max() if seams else frame.index[-1]).isoformat() if len(frame) else None,
        "stride": cfg.stride,
        "windows": int(len(train_windows) + len(val_windows)),
        "seasonal_periods_s": list(seasonality.periods) if seasonality is not None else [],
        "screened_rows": int(flagged.any(axis=1).sum()),
        "incidents": [{"from": frame.index[i.start].isoformat(), "to": frame.index[i.end - 1].isoformat(),
                       "channel": str(frame.columns[i.channel]), "lift": float(i.lift)}
                      for i in incidents[:MAX_SCREENED_SHOWN]],
        "screened": [{"at": frame.index[r].isoformat(), "channels": [str(frame.columns[c])
                                                                     for c in np.flatnonzero(flagged[r])]}
                     for r in np.flatnonzero(flagged.any(axis=1))[:MAX_SCREENED_SHOWN]],
    }
    return _fit(train_windows, val_windows, train_rows, [str(c) for c in frame.columns], cfg, training, device,
                seasonality=seasonality, event_rows=values, held_windows=held, scale_floor=floor, spikes=spikes,
                sensors=sensors, **options)


def _validation_last(frame: pd.DataFrame, seams: list[int], val_fraction: float) -> tuple[pd.DataFrame, list[int]]:
    """Several sensors' histories end to end (``seams``: where each after the first begins) reordered so that the
    last ``val_fraction`` of EVERY sensor's rows comes after all the training parts: the validation windows, which
    calibrate the thresholds, are each sensor's latest rows, not the last sensor's alone. Returns the frame and
    the seams between its parts (each sensor's training part, then each one's validation part)."""
    bounds = list(zip([0, *seams], [*seams, len(frame)]))
    splits = [b - int((b - a) * val_fraction) for a, b in bounds]
    parts = [np.arange(a, m) for (a, _), m in zip(bounds, splits, strict=True)]
    parts += [np.arange(m, b) for (_, b), m in zip(bounds, splits, strict=True)]
    parts = [p for p in parts if len(p)]
    lengths = np.cumsum([len(p) for p in parts])[:-1]
    return frame.iloc[np.concatenate(parts)], [int(v) for v in lengths]


def fit_shape(n_train_rows: int, cfg: ModelSettings) -> tuple[int, int]:
    """Window length and stride for ``n_train_rows`` training rows (settings ``model.auto_shape``).

    A short history is trained on as it is: the window is at most 1/``HISTORY_PER_WINDOW`` of the training rows
    (at least ``MIN_WINDOW_LEN``), and the stride shrinks so that there are about ``TARGET_TRAIN_WINDOWS``
    windows; ``model.window_len`` and ``model.stride`` are the largest values used. Off: the settings as they are.
    """
    if not cfg.auto_shape:
        return cfg.window_len, cfg.stride
    window_len = min(cfg.window_len, max(MIN_WINDOW_LEN, n_train_rows // HISTORY_PER_WINDOW))
    stride = min(cfg.stride, max(1, (n_train_rows - window_len + 1) // TARGET_TRAIN_WINDOWS))
    return window_len, stride


def _val_stride(window_len: int, stride: int) -> int:
    return max(1, min(stride, window_len // 4))


def _count(rows: int, window_len: int, stride: int) -> int:
    return 0 if rows < window_len else (rows - window_len) // stride + 1


def min_rows(cfg: ModelSettings) -> int:
    """The fewest rows ``train`` accepts with these settings (the number its error message gives)."""
    for n in range(2, 10_000_000):
        n_val = int(n * cfg.val_fraction)
        w, st = fit_shape(n - n_val, cfg)
        if _count(n - n_val, w, st) >= MIN_TRAIN_WINDOWS and _count(n_val, w, _val_stride(w, st)) >= MIN_VAL_WINDOWS:
            return n
    raise DataError("no row count is enough with these settings")  # pragma: no cover - val_fraction < 0.9


def _epoch_seconds(index: pd.Index) -> np.ndarray | None:
    """Seconds since the epoch of a DatetimeIndex (None for any other index: no seasonal profile)."""
    if not isinstance(index, pd.DatetimeIndex):
        return None
    stamps = index.tz_convert("UTC") if index.tz is not None else index.tz_localize("UTC")
    return np.asarray((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1), dtype=np.float64)


def train_on_windows(
    windows: np.ndarray,
    channels: Sequence[str],
    cfg: ModelSettings,
    *,
    source: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
    groups: Sequence[str] | None = None,
    times: tuple[Sequence[datetime], Sequence[datetime]] | None = None,
    **options: Unpack[FitOptions],
) -> ModelBundle:
    """Fit a model on pre-cut windows ``(n_windows, window_len, n_channels)`` given in time order.

    The windows are used as they are (never re-cut), so no training window mixes two sensors or spans a gap
    between them. The last ``val_fraction`` of the windows is the validation part; the scaler is fitted on the
    training windows' rows. ``cfg.stride`` plays no part; ``start``/``end`` (the windows' time span) are
    recorded in the model's metadata. ``groups`` (one per window, e.g. its sensor id): which channels drift is
    told from each group's own rows around the group's own mean (``_drift_rows``), so sensors of one fleet that
    sit at different levels do not make a noisy channel look like a slow wander. ``times`` (each window's first
    and last row time): with ``cfg.seasonal`` the daily / weekly profile is fitted on every window's rows at their
    times, sensors together, and removed before the model sees them, as ``train`` does for one series (without
    it a model retrained from a topic would lose the profile its predecessor had). Raises like ``train``.
    """
    device = resolve_device(cfg.device)
    arr = np.asarray(windows, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[1] != cfg.window_len or arr.shape[2] != len(channels):
        raise DataError(f"training windows of shape {arr.shape} do not match (n, window_len={cfg.window_len}, "
                        f"channels={len(channels)})")
    _check_finite(arr)
    seasonality = None
    floor = resolution_floor(arr.reshape(-1, arr.shape[2]))  # the rows as measured, as ``train`` takes it
    spikes = None
    if (times is not None and len(times[0]) == len(times[1]) == len(arr)
            and (groups is None or len(groups) == len(arr))):  # each sensor's rows once each, in time order
        spikes = _fleet_allowance(arr, list(groups or [""] * len(arr)), np.array([t.timestamp() for t in times[0]]),
                                  np.array([t.timestamp() for t in times[1]]), cfg)
        arr = despike(arr, spikes)  # as scoring will see them (spikes.py)
    if cfg.seasonal and times is not None:
        if not len(times[0]) == len(times[1]) == len(arr):
            raise DataError(f"{len(times[0])} window starts and {len(times[1])} ends for {len(arr)} training windows")
        starts = np.array([t.timestamp() for t in times[0]])
        ends = np.array([t.timestamp() for t in times[1]])
        row_t = row_times(starts, ends, arr.shape[1]).ravel()
        order = np.argsort(row_t, kind="stable")
        seasonality = fit_seasonality(row_t[order], arr.reshape(-1, arr.shape[2])[order])
        arr = deseasonalise(seasonality, arr, starts, ends)  # the very transform scoring applies
    n_val = int(len(arr) * cfg.val_fraction)
    train_windows, val_windows = arr[: len(arr) - n_val], arr[len(arr) - n_val :]
    if len(train_windows) < MIN_TRAIN_WINDOWS or len(val_windows) < MIN_VAL_WINDOWS:
        raise DataError(
            f"too little data: {len(arr)} windows give {len(train_windows)} training and {len(val_windows)} "
            f"validation windows (need >= {MIN_TRAIN_WINDOWS} and >= {MIN_VAL_WINDOWS}, val_fraction="
            f"{cfg.val_fraction})"
        )
    training = {
        "source": source,
        "rows": int(arr.shape[0] * arr.shape[1]),
        "windows": int(len(arr)),
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        "stride": None,  # pre-cut windows
        "seasonal_periods_s": list(seasonality.periods) if seasonality is not None else [],
    }
    if groups is not None and len(groups) != len(arr):
        raise DataError(f"{len(groups)} groups for {len(arr)} training windows")
    drift_rows = None if groups is None else _drift_rows(train_windows, list(groups)[: len(train_windows)])
    return _fit(train_windows, val_windows, train_windows.reshape(-1, arr.shape[2]), [str(c) for c in channels],
                cfg, training, device, drift_rows=drift_rows, event_rows=arr.reshape(-1, arr.shape[2]),
                seasonality=seasonality, scale_floor=floor, spikes=spikes,
                sensors=1 if groups is None else max(1, len(set(groups))), **options)


def centring(setting: bool | str, sensors: int, warm_start: ModelBundle | None = None) -> bool:
    """Whether the model takes its drifting channels in centred (``model.centre_drifting``), judging their level
    by the range of levels its history showed (scorer.py ``range_values``). ``"auto"``: yes for the history of ONE
    sensor (``train`` with ``sensors=1``; ``train_on_windows`` with one group or none), whose range is that sensor's
    own; no for a fleet's (several sensors' histories end to end, or windows of several sensors), whose levels span
    every sensor's, so that a sensor's shift to a level another sensor holds would be seen at its ends only
    (docs/quality.md, round 26). A warm start keeps its model's choice (its weights were fitted on that input)."""
    if isinstance(setting, bool):
        return setting
    if warm_start is not None:
        return bool(warm_start.meta.calibration.centre_drifting)
    return sensors <= 1


def _fleet_allowance(windows: np.ndarray, groups: list[str], starts: np.ndarray, ends: np.ndarray,
                     cfg: ModelSettings) -> Allowance:
    """The spike allowance (spikes.py) of pre-cut windows (n, window_len, C) of several sensors (``groups``) at
    their first and last times: each sensor's rows rebuilt once each in time order (windows overlap), each one's
    allowance found as ``train`` finds a history's, and combined (``spikes.combine``)."""
    times = row_times(starts, ends, windows.shape[1])
    parts = []
    for group in dict.fromkeys(groups):
        members = [i for i, g in enumerate(groups) if g == group]
        t = times[members].ravel()
        rows = windows[members].reshape(-1, windows.shape[2])
        _, first = np.unique(t, return_index=True)  # sorted by time
        parts.append(allowance(rows[first], cfg.history_screen, cfg.window_len))
    return combine(parts, windows.shape[2], cfg.history_screen)


def _drift_rows(windows: np.ndarray, groups: list[str]) -> np.ndarray:
    """The rows of ``windows`` (n, window_len, C) grouped (each group's windows in their given order, so in time
    order) and each group's rows minus that group's mean: the rows that tell drifting channels apart when the
    windows come from several sensors interleaved in time. Concatenated as they are, every window boundary is a
    seam between two sensors, and a channel whose sensors sit at different levels keeps that spread in its moving
    average: a channel of pure noise was marked drifting (docs/quality.md, round 8)."""
    codes = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    labels = np.array([codes[g] for g in groups], dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    parts = []
    for members in np.split(order, np.flatnonzero(np.diff(labels[order])) + 1):
        rows = windows[members].reshape(-1, windows.shape[2]).astype(np.float64)
        parts.append(rows - rows.mean(axis=0))
    return np.concatenate(parts) if parts else windows.reshape(-1, windows.shape[2]).astype(np.float64)


def _check_finite(values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        raise DataError("training data contains NaN or Infinity; clean or drop those rows first")


def _fit(
    train_windows: np.ndarray,
    val_windows: np.ndarray,
    train_rows: np.ndarray,
    channels: list[str],
    cfg: ModelSettings,
    training: dict[str, Any],
    device: torch.device,
    *,
    version: str | None = None,
    warm_start: ModelBundle | None = None,
    on_epoch: EpochCallback | None = None,
    cancel: threading.Event | None = None,
    seasonality: Seasonality | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    drift_rows: np.ndarray | None = None,
    event_rows: np.ndarray | None = None,
    held_windows: np.ndarray | None = None,
    scale_floor: np.ndarray | None = None,
    spikes: Allowance | None = None,
    sensors: int = 1,
) -> ModelBundle:
    """The training loop: windows (n, window_len, n_channels); ``train_rows`` (n_rows, n_channels) fit the scaler.
    With ``seasonality`` the windows and rows are given without their profile, which the artifact stores.
    ``event_rows``: every row of the history, each once, the validation part included (default ``train_rows``):
    what a channel is (an on/off event channel) is read from the whole history. A command seen once in two days
    may fall in the validation part, and a channel constant in the rest would be judged, each of its later events
    scoring ten times the threshold (docs/quality.md, round 9). Not the validation windows' rows: they overlap,
    and would count each of their rows several times. ``held_windows``: training windows the history screen left
    out (``screen_rows``), as they were; nothing is fitted on them, only the training quantile counts their scores
    (``calibrate``). ``sensors``: how many sensors' histories the windows come from (``centring``)."""
    centred = centring(cfg.centre_drifting, sensors, warm_start)
    training = {**training, "centre_drifting": centred, "sensors": sensors}
    generator = _seed_everything(cfg.seed)
    scaler = warm_start.scaler if warm_start else RobustScaler.fit(train_rows, scale_floor)
    if warm_start is not None:
        if warm_start.meta.channels != channels or warm_start.meta.window_len != cfg.window_len:
            raise DataError("warm start model has other channels or window length than the training data")
        module = copy.deepcopy(warm_start.module)
    else:
        module = build_module(
            ModelMeta(channels, cfg.window_len, cfg.hidden_size, cfg.latent_size, cfg.num_layers, cfg.dropout,
                      scaler.to_dict(), Calibration([], 0.0, 1.0))
        )
    module.to(device)
    stepping = stepping_channels(train_windows)
    drift_source = train_rows if drift_rows is None else drift_rows  # see train_on_windows ``groups``
    drifting = [d and not s for d, s in zip(drifting_channels(drift_source, cfg.drift_span, cfg.drift_ratio), stepping,
                                           strict=True)]
    if warm_start is not None:
        drifting = list(warm_start.meta.calibration.drifting) or drifting
    history = train_rows if event_rows is None else event_rows
    # A channel with a cycle is not an event channel, however few values its remainder takes: a cycle removed
    # exactly (a timer's square wave, seasonal.py's per-phase table) leaves a constant remainder, and any departure
    # from the cycle is to be judged (docs/quality.md, round 15).
    cycled = [False] * len(channels) if seasonality is None else seasonality.cycled()
    constant = [k and not y for k, y in zip(constant_channels(history), cycled, strict=True)]
    training = {**training, "stepping_channels": [c for c, s in zip(channels, stepping, strict=True) if s],
                "constant_channels": [c for c, k in zip(channels, constant, strict=True) if k]}
    events = [e and not y for e, y in zip(event_channels(history, cfg.event_share), cycled, strict=True)]
    muted = list(events) if cfg.mute_events and any(events) else []
    shape = Calibration([], 0.0, 1.0, drifting=drifting, centre_drifting=centred, muted=muted)
    scaled_train = scaler.transform(train_windows)  # also the jump scales' input, below
    x_train = torch.from_numpy(model_input(scaled_train, shape)).to(device)
    scaled_val = scaler.transform(val_windows)  # also the level ranges' input, below
    x_val = torch.from_numpy(model_input(scaled_val, shape)).to(device)
    optimiser = torch.optim.Adam(module.parameters(), lr=cfg.learning_rate)
    loss_fn = nn.MSELoss()

    best_state, best_val, stale, epochs_run = copy.deepcopy(module.state_dict()), float("inf"), 0, 0
    train_loss = float("nan")
    for _epoch in range(cfg.epochs):
        if cancel is not None and cancel.is_set():
            raise CancelledRunError(f"training cancelled after {epochs_run} of at most {cfg.epochs} epochs")
        module.train()
        order = torch.randperm(len(x_train), generator=generator).to(device)  # seeded on the CPU on any device
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            batch = x_train[order[start : start + cfg.batch_size]]
            optimiser.zero_grad()
            loss = loss_fn(module(batch), batch)
            loss.backward()
            nn.utils.clip_grad_norm_(module.parameters(), 1.0)
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        train_loss = total / len(x_train)
        module.eval()
        with torch.inference_mode():
            val_loss = float(loss_fn(module(x_val), x_val))
        epochs_run += 1
        if on_epoch is not None:
            on_epoch(epochs_run, cfg.epochs, train_loss, val_loss)
        if val_loss < best_val - 1e-6:
            best_val, best_state, stale = val_loss, copy.deepcopy(module.state_dict()), 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    module.load_state_dict(best_state)
    module.eval()

    created = clock()
    meta = ModelMeta(
        channels=channels,
        window_len=cfg.window_len,
        hidden_size=cfg.hidden_size,
        latent_size=cfg.latent_size,
        num_layers=cfg.num_layers,
        dropout=cfg.dropout,
        scaler=scaler.to_dict(),
        calibration=shape,  # the input transform calibrate() must score with
        version=version or created.strftime("%Y%m%dT%H%M%SZ"),
        created_at=created.isoformat(),
        training={**training, "epochs": epochs_run, "seed": cfg.seed},
        metrics={"train_loss": train_loss, "val_loss": best_val},
    )
    bundle = ModelBundle(module, scaler, meta)
    meta.calibration = calibrate(
        bundle, val_windows, error_floor=cfg.error_floor, level_weight=cfg.level_weight, fit_windows=train_windows,
        drifting=drifting, centre_drifting=centred, combine=cfg.combine,
        linear_weight=cfg.linear_weight, linear_variance=cfg.linear_variance, tail_balance=cfg.tail_balance,
        events=events, muted=muted, held_windows=held_windows,
        resolution=None if scale_floor is None else np.asarray(scale_floor) / scaler.scale.astype(np.float64),
        calm=cfg.stillness, moves=cfg.move_allowance,
    )
    meta.calibration.drift_speed = drift_speeds(scaler.transform(drift_source), drifting, cfg.drift_span)
    if spikes is not None and spikes.active:  # spikes.py: stored only where a channel has an allowance
        muted_events = events if any(events) else [False] * len(channels)
        limit = [0.0 if e else float(v) for v, e in zip(spikes.limit, muted_events, strict=True)]
        if any(limit):
            meta.calibration.spike_scale = [float(v) for v in spikes.scale]
            meta.calibration.spike_limit = limit
            meta.calibration.spike_runs = [int(v) for v in spikes.runs]
            meta.calibration.spike_bound = spikes.bound
    if centred and cfg.level_weight > 0:  # their level is not judged: their jumps are (scorer.py),
        meta.calibration.jump_scale = jump_scales(scaled_train, drifting)  # and a level beyond their history's
        low, high, scale = level_ranges([scaled_train, scaled_val], drifting)
        if any(scale):
            meta.calibration.range_low, meta.calibration.range_high, meta.calibration.range_scale = low, high, scale
    if seasonality is not None:
        meta.calibration.seasonal = seasonality.to_dict()
    module.to("cpu")
    return bundle


FIT_QUANTILES = (0.9, 0.95, 0.98, 0.99, 0.995, 0.999)  # stored for threshold.train_quantile (thresholds.py)


def calibrate(
    bundle: ModelBundle,
    windows: np.ndarray,
    error_floor: float = 0.5,
    *,
    level_weight: float = 0.0,
    fit_windows: np.ndarray | None = None,
    drifting: list[bool] | None = None,
    centre_drifting: bool = False,
    combine: str = "mean",
    linear_weight: float = 0.0,
    linear_variance: float = 0.9,
    tail_balance: float = 0.0,
    events: list[bool] | None = None,
    muted: list[bool] | None = None,
    held_windows: np.ndarray | None = None,
    resolution: np.ndarray | None = None,
    calm: bool = False,
    moves: bool = False,
) -> Calibration:
    """Measure the score scale on (normal) validation windows (batch, window_len, n_channels).

    Each channel's error scale is its **mean** error, the larger of the validation windows' and the training
    windows' (``fit_windows``), floored at ``error_floor`` x the median of these over the channels. The mean, not
    the median: a quantised channel whose windows are flat two times in three and hold a step the third time
    has a median error of the flat windows, and every normal step would then score ~100 times that (issue 15);
    the larger of the two parts: a validation part that shows one operating state only (a few hundred rows)
    must not make the others look anomalous. The floor: a channel the model reconstructs almost perfectly (a
    smooth, slow sensor such as a temperature) would otherwise weigh up to orders of magnitude more than the
    others, and its slow drift would dominate the score (docs/skab.md, round 3). ``error_floor`` 0: no floor.

    With ``level_weight`` > 0 the level term's centre and scale are the median and 1.4826 x MAD of each channel's
    window-mean residual over ``fit_windows`` and the validation windows together; the scale gets the same
    floor and is never narrower than the channel's natural spread of window means (``_window_mean_spread``).
    With ``linear_weight`` > 0 the linear (PCA residual) term is fitted and scaled (``_calibrate_linear``,
    monitor/core/scoring/linear.py). The log-score distribution is measured on the validation windows with every
    term included, its spread never below the training windows' robust spread (1.4826 x MAD of their log scores):
    a validation part that shows one operating state (the last few hundred rows of a plant that switches pumps)
    has a narrow spread, and a threshold built on it alarms on every other normal state (docs/quality.md, round
    7); the tail fit (thresholds.py ``fit_tail``) on the validation and training windows; the training windows'
    log-score quantiles (``fit_quantiles``, for ``threshold.train_quantile``), with ``held_windows`` (training
    windows the history screen left out of every fit) among them: how high a history's scores reach is asked of all
    of it, so a history whose spikes recur lifts the open level within its bound as it did before the screen, while
    nothing else learns from them (docs/quality.md, round 12). ``drifting`` is stored as given
    (see monitor/core/scoring/baseline.py). ``events`` (``event_channels``) marks channels that are not judged:
    weight 0; ``muted`` (the same channels under ``mute_events``) is stored as given. With ``tail_balance`` > 0
    and several judged channels, their normal tails are balanced (``balance_tails``). ``resolution`` (per channel,
    scaler units: scaler.py ``resolution_floor``) is stored; every score, these included, reads an error below its
    square as that square (scorer.py ``channel_values``), and the level term's scale is at least
    ``LEVEL_RESOLUTIONS`` of it: on a channel whose remainder is rounding error (a cycle a profile removes exactly,
    a flat line), the model's own bias on it, which input re-centring then cancels, is no level change.
    With ``moves``, the move allowance (``_calibrate_moves``) is fitted on the same windows, and every score below
    (the tails balanced, the log-score distribution, its quantiles) is measured with it, as the scorer scores.
    """
    errors, means, _ = channel_residuals(bundle, windows)
    channel_error = errors.mean(axis=0)
    fit_errors = fit_means = None  # one pass over the training windows, for the level term and the tail
    fit_sample = None
    if fit_windows is not None and len(fit_windows):
        step = max(1, len(fit_windows) // MAX_LEVEL_FIT_WINDOWS)  # bound the extra pass on huge training sets
        fit_sample = fit_windows[::step]
        fit_errors, fit_means, _ = channel_residuals(bundle, fit_sample)
    if fit_errors is not None:
        channel_error = np.maximum(channel_error, fit_errors.mean(axis=0))
    if error_floor > 0:
        channel_error = np.maximum(channel_error, error_floor * float(np.median(channel_error)))
    cal = Calibration([float(v) for v in channel_error], 0.0, 1.0, drifting=list(drifting or []),
                      centre_drifting=centre_drifting, combine=combine, muted=list(muted or []),
                      resolution=[] if resolution is None else [float(v) for v in resolution])
    if level_weight > 0:
        fit = means if fit_means is None else np.concatenate([fit_means, means])
        centre = np.median(fit, axis=0)
        scale = robust_sd(fit)
        if error_floor > 0:
            scale = np.maximum(scale, error_floor * float(np.median(scale)))
        scale = np.maximum(scale, _window_mean_spread(bundle, cal, fit_sample if fit_sample is not None else windows))
        cal.level_weight = float(level_weight)
        cal.level_centre = [float(v) for v in centre]
        if resolution is not None:  # a level within LEVEL_RESOLUTIONS resolutions of its centre is no change
            scale = np.maximum(scale, LEVEL_RESOLUTIONS * np.asarray(resolution, dtype=np.float64))
        cal.level_scale = [float(v) for v in np.maximum(scale, MIN_LEVEL_SCALE)]
    if calm:
        _calibrate_calm(bundle, cal, windows if fit_sample is None else np.concatenate([fit_sample, windows]))
    val_linear = fit_linear = None
    if linear_weight > 0:
        val_linear, fit_linear = _calibrate_linear(bundle, cal, windows, fit_sample, linear_weight, linear_variance,
                                                   error_floor)
    n_channels = errors.shape[1]
    judged = [c for c in range(n_channels) if not (events and events[c])] or list(range(n_channels))
    val_move = fit_move = None
    if moves:
        val_move = move_values(windows, bundle)
        parts: list[MoveSample] = [(lambda c: channel_values(errors, c, means, val_linear), errors, val_move)]
        if fit_errors is not None and fit_sample is not None:
            fit_move = move_values(fit_sample, bundle)
            parts.append((lambda c: channel_values(fit_errors, c, fit_means, fit_linear), fit_errors, fit_move))
        least = error_floor * float(np.median(cal.channel_error)) if error_floor > 0 else 1e-9
        _calibrate_moves(cal, parts, [c in judged for c in range(n_channels)], least)
    val_factor = move_factors(val_move, cal)
    fit_factor = move_factors(fit_move, cal)
    weights = [1.0 if c in judged else 0.0 for c in range(n_channels)]  # never all 0: then every channel is judged
    if tail_balance > 0 and len(judged) > 1:
        values = channel_values(errors, cal, means, val_linear, factor=val_factor)
        if fit_errors is not None:
            values = np.concatenate([values, channel_values(fit_errors, cal, fit_means, fit_linear, factor=fit_factor)])
        for c, w in zip(judged, balance_tails(values[:, judged], tail_balance), strict=True):
            weights[c] = w
    if any(w < 1.0 for w in weights):
        cal.channel_weight = weights
    log_scores = np.log(normalise(errors, cal, means, val_linear, factor=val_factor).score)
    tail_sample = log_scores
    if fit_errors is not None:
        tail_sample = np.concatenate(
            [log_scores, np.log(normalise(fit_errors, cal, fit_means, fit_linear, factor=fit_factor).score)])
    cal.tail = fit_tail(tail_sample)
    # the threshold's level and spread: the windows without a step (the steps' scores, brought onto the quiet
    # windows' top, spread further below it; scorer.py move_factors)
    steady = _without_steps(log_scores, val_factor)
    fit_steady = _without_steps(tail_sample[len(log_scores):], fit_factor) if fit_errors is not None else None
    cal.log_score_mean = float(steady.mean())
    cal.log_score_std = log_spread(steady, fit_steady)
    cal.log_score_quantiles = {f"q{int(q * 1000)}": float(np.quantile(log_scores, q)) for q in (0.5, 0.9, 0.99, 0.999)}
    if fit_errors is not None and len(tail_sample) > len(log_scores):
        fit_logs = tail_sample[len(log_scores):]
        if held_windows is not None and len(held_windows):
            step = max(1, len(fit_windows) // MAX_LEVEL_FIT_WINDOWS) if fit_windows is not None else 1
            fit_logs = np.concatenate([fit_logs, _log_scores(bundle, cal, held_windows[::step])])
        cal.fit_quantiles = {f"q{round(q * 1000)}": float(np.quantile(fit_logs, q)) for q in FIT_QUANTILES}
    return cal


def _without_steps(logs: np.ndarray, factor: np.ndarray | None) -> np.ndarray:
    """``logs`` less the windows the move allowance lowered (``factor``: their ``move_factors``), when at least
    half of them and ``MIN_MOVE_WINDOWS`` remain; else all of them."""
    moved = moved_windows(factor)
    if moved is None or (~moved).sum() < max(MIN_MOVE_WINDOWS, len(moved) // 2):
        return logs
    out: np.ndarray = logs[~moved]
    return out


def _log_scores(bundle: ModelBundle, cal: Calibration, windows: np.ndarray) -> np.ndarray:
    """The log scores of ``windows`` under ``cal`` (every term it has), as the scorer computes them."""
    errors, means, _ = channel_residuals(bundle, windows)
    linear = linear_of(cal, errors.shape[1]) if cal.linear else None
    residual = None if linear is None else linear.residual(
        model_input(bundle.scaler.transform(np.asarray(windows, dtype=np.float32)), cal))
    factor = move_factors(move_values(windows, bundle), cal) if cal.move_ratio else None
    return np.asarray(np.log(normalise(errors, cal, means, residual, factor=factor).score))


HEAVY_TAIL_RATIO = 20.0  # see balance_tails


def event_channels(rows: np.ndarray, share: float) -> list[bool]:
    """Which channels of the training rows (n, C) are on/off **event channels**: exactly two distinct values, the
    rarer held in at most ``share`` of the rows (a command, alarm, door or valve channel that is off almost
    always), or **one** value in every row (a command the history never used; a spare or idle sensor). They are
    not judged themselves (weight 0): an event at a moment the training rows did not show it is an operator's or a
    controller's action, not a sensor's anomaly, and its effect on the judged channels is still seen; a channel
    that never moved has no scale and no behaviour to judge its first movement against (its scaler unit is a
    placeholder 1, and the model's weights for it are untrained: a first command put every score of a 2-day
    history 10-100 times above its threshold, docs/quality.md, round 11). With ``model.mute_events`` (the default)
    they are not fed to the model either (scorer.py ``model_input``): a few days of history show few arrangements
    of sparse events, and a model fed them reconstructed a sensor worse beside an arrangement it had not seen.
    When every channel is one, only the constant ones stay marked (the model has nothing else to judge: a sensor
    that is itself on/off beside its commands), and none when every channel is constant. ``share`` 0: none."""
    x = np.asarray(rows)
    flags: list[bool] = []
    for c in range(x.shape[1] if x.ndim == 2 else 0):
        values, counts = np.unique(x[:, c], return_counts=True)
        flags.append(share > 0 and (len(values) == 1 or (len(values) == 2 and int(counts.min()) <= share * len(x))))
    if flags and all(flags):
        constant = constant_channels(x)
        return [False] * len(flags) if all(constant) else constant
    return flags


def constant_channels(rows: np.ndarray) -> list[bool]:
    """Channels holding one value in every row of ``rows`` (n, C) (reported at training: they are not judged while
    ``event_channels`` marks them)."""
    x = np.asarray(rows)
    return [bool(x.shape[0]) and bool(np.all(x[:, c] == x[0, c])) for c in range(x.shape[1])] if x.ndim == 2 else []


def balance_tails(values: np.ndarray, quantile: float) -> list[float]:
    """Channel weights (0 < w <= 1) from each channel's values on normal windows (n, C) (``channel_values``): a
    channel whose ``quantile`` lies more than ``HEAVY_TAIL_RATIO`` times above its median is weighted down until
    it lies there; every other channel keeps 1.

    The scales of the three terms make a channel's *typical* value about 1, but not its tail: a channel that
    holds sparse events (a command or valve channel that is 0 almost always and 1 for a row now and then, a
    count that steps) has windows with an event whose level and error terms are tens to hundreds of times its
    typical value, all of them normal. Averaged into the window score, those normal events set the score's
    spread, the threshold follows them, and a change of another channel (a sensor's level shift of 8 of its own
    standard deviations) stays below it: the detector goes deaf. A channel of Gaussian noise has a 99th
    percentile 3-15 times its median (15 when its value is the squared standardised level alone: 6.63 / 0.455
    for one degree of freedom), so 20 leaves every such channel alone and only compresses event-like tails.
    A channel's median is taken no lower than the median over channels of the medians, so a (nearly) constant
    channel, whose values are all close to 0, is not called heavy-tailed (docs/quality.md, round 6).
    """
    v = np.asarray(values, dtype=np.float64)
    tails = np.quantile(v, quantile, axis=0)
    medians = np.median(v, axis=0)
    typical = np.maximum(medians, float(np.median(medians)))
    limit = HEAVY_TAIL_RATIO * typical
    return [float(lim / t) if t > lim > 0 else 1.0 for t, lim in zip(tails, limit, strict=True)]


CALM_LEAST = 1e-3  # of a channel's median stillness: the least stillness told apart (a stuck window reads this)
CALM_MARGIN = 2.0  # robust SDs of log stillness below the calmest window of the history: the stillness floor
MIN_CALM_SCALE = 0.05  # log units: the least robust SD of a channel's log stillness


def _calibrate_calm(bundle: ModelBundle, cal: Calibration, windows: np.ndarray) -> None:
    """The stillness term (scorer.py ``calm_values``) of each channel, from the history's windows (raw, without
    their profile): the floor lies ``CALM_MARGIN`` robust SDs of log stillness below the calmest of them, so no
    window as lively as the history's counts. A channel with a window of the history that did not move at all (a
    quantised channel, an event channel, a setpoint held, a cycle removed exactly) gets none (scale 0): stillness
    is part of its normal behaviour."""
    calm = calm_values(windows, bundle)
    least = CALM_LEAST * np.maximum(np.median(calm, axis=0), 1e-12)
    logs = np.log(calm + least)
    scale = np.maximum(robust_sd(logs), MIN_CALM_SCALE)
    still = (calm <= least).any(axis=0)
    cal.calm_floor = [float(v) for v in logs.min(axis=0) - CALM_MARGIN * scale]
    cal.calm_scale = [0.0 if s else float(v) for v, s in zip(scale, still, strict=True)]
    cal.calm_least = [float(v) for v in least]


MOVE_BOUND = 4.0  # times a channel's median largest move within a window: a window holding a move beyond it moves
MIN_MOVE_EPISODES = 4  # separate runs of moving windows in the history: a move recurring, not one event
MIN_MOVE_WINDOWS = 8  # moving windows in the history: the least from which their typical value is read
MOVE_QUANTILE = 0.9  # moving windows whose scores at this quantile lie out of reach need an allowance
MOVE_OUT_OF_REACH = 20.0  # times the history's median score: out of the threshold's reach (by default
# exp(k_enter * max_std), thresholds.py)
MOVE_TOP = 0.99  # the quantile at which the moving windows' scores are brought onto the quiet windows'

# (channel values with every term under a calibration, errors, largest moves) of a part of the history's windows
MoveSample = tuple[Callable[[Calibration], np.ndarray], np.ndarray, np.ndarray]


def _calibrate_moves(cal: Calibration, parts: list[MoveSample], judged: Sequence[bool], least: float) -> None:
    """The move allowance (scorer.py ``move_factors``) of each channel, from the history's windows: ``parts``
    (``MoveSample``: the validation and the training windows, each in time order); ``judged``: the channels that
    are judged (not event channels); ``least``: the least error scale (``calibrate``'s floor).

    A window **moves** on a channel when its largest change from one row to the next exceeds ``MOVE_BOUND`` times
    the channel's median largest change (noise's largest change stays within about 2 of it); on a channel still in
    most windows (a pump count, a setpoint), when it exceeds half its median step. A judged channel gets an
    allowance when the history shows moving windows in at least ``MIN_MOVE_EPISODES`` separate runs (and
    ``MIN_MOVE_WINDOWS`` windows), and they lie **out of the threshold's reach**: their window scores (the mean of
    the judged channels' values) at ``MOVE_QUANTILE`` beyond ``MOVE_OUT_OF_REACH`` times the history's median
    score. A second mode of scores within reach (a quantised channel's steps, a fifth of the windows) is left to
    the threshold, which covers it (thresholds.py ``train_quantile``): an allowance there would only narrow the
    score distribution the threshold is fitted on, and other normal windows would alert.

    Such a channel's error scale becomes its quiet windows' mean error: the steps' errors, tens to hundreds of
    times larger, set it before, so that its quiet windows' error term was ~0 and their level term, a squared
    normal, alone gave their log scores a spread beyond the threshold's reach. Its ratio then brings the moving
    windows' scores onto the quiet windows' at ``MOVE_TOP`` (quantile matching): normal steps exceed the threshold
    as rarely as quiet windows do. The top is ``ROOM`` (spikes.py) times the largest move seen. Fitted once on
    the history, never online."""
    move = np.concatenate([m for _, _, m in parts])
    on = np.asarray(judged, dtype=bool)

    def log_scores() -> np.ndarray:
        values = np.concatenate([score(cal) for score, _, _ in parts])
        out: np.ndarray = np.log(np.maximum(values[:, on].mean(axis=1), 1e-12))
        return out

    logs = log_scores()
    reach = float(np.median(logs)) + float(np.log(MOVE_OUT_OF_REACH))
    typical = np.median(move, axis=0)
    for c in np.flatnonzero(typical <= 0):  # still in most windows (a pump count, a setpoint): its moves are its steps
        steps = move[move[:, c] > 0, c]
        typical[c] = float(np.median(steps)) / (2 * MOVE_BOUND) if len(steps) else 0.0  # floor: half its step
    floor = MOVE_BOUND * typical
    allowed: dict[int, np.ndarray] = {}
    for j in np.flatnonzero(on).tolist():
        moving = move[:, j] > floor[j]
        if typical[j] <= 0 or moving.sum() < MIN_MOVE_WINDOWS or moving.all():
            continue
        if float(np.quantile(logs[moving], MOVE_QUANTILE)) <= reach:
            continue  # within the threshold's reach
        if sum(int(count_runs(m[:, j] > floor[j])) for _, _, m in parts if len(m)) >= MIN_MOVE_EPISODES:
            allowed[j] = moving
    if not allowed:
        return
    errors = np.concatenate([e for _, e, _ in parts])
    ref = np.asarray(cal.channel_error, dtype=np.float64)
    for k, moving in allowed.items():
        ref[k] = max(float(errors[~moving, k].mean()), least)
    cal.channel_error = [float(v) for v in ref]
    logs = log_scores()
    ratio = np.ones(move.shape[1])
    top = np.zeros(move.shape[1])
    for k, moving in allowed.items():
        ratio[k] = max(1.0, float(np.exp(np.quantile(logs[moving], MOVE_TOP) - np.quantile(logs[~moving], MOVE_TOP))))
        top[k] = ROOM * float(move[moving, k].max())
    cal.move_floor = [float(v) for v in floor]
    cal.move_top = [float(v) for v in top]
    cal.move_ratio = [float(v) for v in ratio]


def _calibrate_linear(
    bundle: ModelBundle, cal: Calibration, windows: np.ndarray, fit_windows: np.ndarray | None, weight: float,
    variance: float, error_floor: float,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Fit the linear term (monitor/core/scoring/linear.py) on the training windows' rows (the validation windows'
    without them), store it in ``cal`` with each channel's scale, and return its residuals on the validation and
    the training windows (None, None when the model has no linear term).

    A channel's scale is the larger of its mean window residual on the validation and on the training windows:
    a validation part that shows one operating state only (a few hundred rows) must not make every other normal
    state look anomalous; it gets the same floor as the error scale, and is at least the square of the channel's
    resolution (``cal.resolution``): a channel whose remainder is rounding error has no principal component, and
    the smallest shift of its input (re-centring learns the model's bias on it) would otherwise count millions."""
    source = fit_windows if fit_windows is not None and len(fit_windows) else windows
    scaled_fit = model_input(bundle.scaler.transform(np.asarray(source, dtype=np.float32)), cal)
    linear = Linear.fit(scaled_fit.reshape(-1, scaled_fit.shape[2]), variance)
    if linear is None:
        return None, None
    val = linear.residual(model_input(bundle.scaler.transform(np.asarray(windows, dtype=np.float32)), cal))
    fit = linear.residual(scaled_fit)
    scale = np.maximum(val.mean(axis=0), fit.mean(axis=0))
    if error_floor > 0:
        scale = np.maximum(scale, error_floor * float(np.median(scale)))
    cal.linear = linear.to_dict()
    cal.linear_weight = float(weight)
    if cal.resolution:  # a mean squared residual below the channel's resolution squared is no residual
        scale = np.maximum(scale, np.square(np.asarray(cal.resolution, dtype=np.float64)))
    cal.linear_scale = [float(v) for v in np.maximum(scale, MIN_LEVEL_SCALE**2)]
    return val, fit


SCREEN_HALF = HALF  # rows on each side of a row that make its neighbourhood (the row itself left out)
SCREEN_MAX_SHARE = 0.01  # a channel with more bursts (runs of flagged rows) per row than this is not screened
MAX_SCREENED_SHOWN = 20  # screened rows named in the artifact's training record


def screen_rows(values: np.ndarray, bound: float, events: Sequence[bool] | None = None) -> np.ndarray:
    """(n_rows, n_channels): where a channel of ``values`` (n_rows, n_channels) lies more than ``bound`` robust
    SDs (1.4826 x MAD of every row's distance from the median of the 5 rows before and the 5 after it) from the
    median of the 5 rows before it and from that of the 5 rows after it: a spike or a burst of a few rows (up to
    3 flagged whole, the edges of one up to 5). A step that lasts is not flagged (the rows after it agree with
    it), nor is a row where another channel (an event channel included) moves off its own neighbourhood too (more
    than ``spikes.MOVED`` robust SDs, or at all for a channel that mostly holds its value: ``spikes.explained``):
    the burst is then explained. A channel with more bursts (runs of flagged rows) than ``SCREEN_MAX_SHARE`` of
    its rows, an event channel and a channel whose distances have no spread are not screened."""
    v = np.asarray(values, dtype=np.float64)
    out = np.zeros(v.shape, dtype=bool)
    if bound <= 0 or len(v) < 2 * SCREEN_HALF + 1:
        return out
    before, after, both = (m[0] for m in medians(v[None]))
    with np.errstate(all="ignore"):  # values near the float64 limit overflow to inf: never flagged then
        signed = v - both
        spread = robust_sd(signed)
        # Off both sides: the first row of a step that lasts is off the rows before it, not off those after it.
        dist = np.fmin(np.abs(v - before), np.abs(v - after))
    # Where a channel moves off its neighbourhood too (a step of a count, a command), a burst beside it is
    # explained (a pump switched on for a few rows, and its flow with it): only a burst no other channel shares
    # is screened.
    others = explained(dist[None], spread)[0]
    for c in range(v.shape[1]):
        if (events is not None and events[c]) or not spread[c] > 0:
            continue
        with np.errstate(all="ignore"):
            flagged = dist[:, c] > bound * spread[c]
        bursts = int(count_runs(flagged))  # runs of flagged rows
        if bursts <= SCREEN_MAX_SHARE * len(v):
            out[:, c] = flagged & ~others[:, c]
    return out


def log_spread(val_logs: np.ndarray, fit_logs: np.ndarray | None) -> float:
    """The calibration's log-score spread: the validation windows' standard deviation, never below the training
    windows' robust spread (see ``calibrate``)."""
    spread = float(max(np.std(val_logs), 1e-3))
    if fit_logs is None or not len(fit_logs):
        return spread
    return max(spread, float(robust_sd(fit_logs)))


def _window_mean_spread(bundle: ModelBundle, cal: Calibration, windows: np.ndarray) -> np.ndarray:
    """Each channel's natural spread of window means (1.4826 x MAD over ``windows``, in the scaled units the model
    sees): the level term's scale is never narrower. An autoencoder reproduces the window means of its training
    rows almost exactly, so their residuals alone give a scale far narrower than what new normal windows show;
    a residual of one natural spread is then one unit, and the level term can only be large when the window's
    mean itself is far outside what the channel does (on white noise, 0 false alerts instead of ~1 per day)."""
    scaled = model_input(bundle.scaler.transform(np.asarray(windows, dtype=np.float32)), cal)
    means = scaled.mean(axis=1)
    return robust_sd(means)
