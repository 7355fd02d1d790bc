"""Model artifacts: one file holding the weights and JSON metadata, loaded without unpickling objects.

File layout (``torch.save`` of a dict of plain types, read back with ``torch.load(weights_only=True)``):
``{"format": FORMAT, "meta": <JSON string>, "state_dict": {name: tensor}}``. The metadata carries the
architecture, channel names, window length, scaler, score calibration, training range and validation metrics,
and a SHA-256 of the weights so a corrupt file is named as such.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from monitor.core.scoring.linear import Linear
from monitor.core.scoring.model import LSTMAutoencoder
from monitor.core.scoring.scaler import RobustScaler
from monitor.core.scoring.seasonal import Seasonality
from monitor.errors import ArtifactError

FORMAT = "monitor-lstm-ae/1"


@dataclass
class Calibration:
    """Score scale measured on the training data.

    ``channel_error``: per-channel mean reconstruction error (the larger of the validation and the training
    windows'; normalises contributions); ``log_score_mean`` / ``log_score_std``: distribution of their log window scores (warm-starts
    thresholds); ``level_weight`` / ``level_centre`` / ``level_scale``: the level term of the score (median and
    robust scale of each channel's window-mean residual over the training windows; weight 0, the default of
    artifacts made before it, leaves the score the reconstruction error alone); ``drifting``: channels whose
    level the sensor baseline follows fast (empty: none); ``linear`` / ``linear_weight`` / ``linear_scale``: the
    linear (PCA residual) term, monitor/core/scoring/linear.py (empty: none, as in artifacts made before it);
    ``drift_speed``: per drifting channel the fastest its level moved in training (baseline.py; empty: none);
    ``channel_weight``: per channel, the factor (0 <= w <= 1) of its value in the score: 0 for an event channel
    (not judged, train.py ``event_channels``), below 1 for a channel whose normal values have an
    event-like tail (``balance_tails``); empty: all 1, as in artifacts made before it. ``jump_scale``: per drifting
    channel of a model with ``centre_drifting``, the typical change of its level between the halves of a training
    window (baseline.py ``jump_scales``; empty or 0: no jump term). ``muted``: per channel, fed to the model as 0
    (its training median): the event channels of a model trained with ``mute_events`` (empty: none, as in
    artifacts made before it). ``fit_quantiles``: the training windows' log-score quantiles
    (``threshold.train_quantile``). ``resolution``: per channel, the least change that is signal, in scaler units
    (scaler.py ``resolution_floor``): a window's error counts as at least its square (empty: none, as in artifacts
    made before it). ``spike_scale`` / ``spike_limit`` / ``spike_runs`` / ``spike_bound``: the spikes each channel's
    history showed recurring, removed before scoring (monitor/core/scoring/spikes.py ``Allowance``; empty: none, as
    in artifacts made before it). ``calm_floor`` / ``calm_scale`` / ``calm_least``: the stillness term, a window
    far calmer than any the history showed (a stuck sensor: scorer.py ``calm_values``; empty: none, as in artifacts
    made before it). ``move_floor`` / ``move_top`` / ``move_ratio``: the move allowance, windows holding a step of
    the kind the history showed recurring scored against such windows (scorer.py ``move_factors``; empty: none, as
    in artifacts made before it). ``range_low`` / ``range_high`` / ``range_scale``: per drifting channel of a model
    with ``centre_drifting``, the levels its history showed (baseline.py ``level_ranges``): a window level beyond
    them is judged (scorer.py ``range_values``; empty or scale 0: none, as in artifacts made before it). See
    monitor/core/scoring/scorer.py and baseline.py.
    """

    channel_error: list[float]
    log_score_mean: float
    log_score_std: float
    log_score_quantiles: dict[str, float] = field(default_factory=dict)
    level_weight: float = 0.0
    level_centre: list[float] = field(default_factory=list)
    level_scale: list[float] = field(default_factory=list)
    drifting: list[bool] = field(default_factory=list)
    seasonal: dict[str, Any] = field(default_factory=dict)  # monitor/core/scoring/seasonal.py (empty: no cycle)
    centre_drifting: bool = False  # drifting channels enter the model without their window mean (scorer.py)
    combine: str = "mean"  # how the per-channel values make the window score: mean, max, rms, topK (scorer.py)
    tail: dict[str, float] = field(default_factory=dict)  # peaks-over-threshold fit of the log scores (thresholds.py)
    linear: dict[str, Any] = field(default_factory=dict)  # PCA residual term (linear.py; empty: none)
    linear_weight: float = 0.0
    linear_scale: list[float] = field(default_factory=list)  # per channel: typical window residual of the linear term
    drift_speed: list[float] = field(default_factory=list)  # per channel, scaler units per row (baseline.py; empty: 0)
    channel_weight: list[float] = field(default_factory=list)  # per channel, in [0, 1] (scorer.py; empty: all 1)
    jump_scale: list[float] = field(default_factory=list)  # per channel, scaler units (scorer.py; empty/0: no jump term)
    fit_quantiles: dict[str, float] = field(default_factory=dict)  # training windows' log-score quantiles ("q990")
    muted: list[bool] = field(default_factory=list)  # per channel: fed to the model as 0 (scorer.py; empty: none)
    resolution: list[float] = field(default_factory=list)  # per channel, scaler units (scorer.py; empty: none)
    spike_scale: list[float] = field(default_factory=list)  # per channel, raw units (spikes.py; empty: no allowance)
    spike_limit: list[float] = field(default_factory=list)  # per channel, raw units (spikes.py; 0: none)
    spike_runs: list[int] = field(default_factory=list)  # per channel (spikes.py)
    spike_bound: float = 0.0  # spikes.py Allowance.bound
    calm_floor: list[float] = field(default_factory=list)  # per channel, log scaler units (scorer.py; empty: none)
    calm_scale: list[float] = field(default_factory=list)  # per channel, log units (scorer.py; 0: the channel has none)
    calm_least: list[float] = field(default_factory=list)  # per channel, scaler units (scorer.py)
    move_floor: list[float] = field(default_factory=list)  # per channel, scaler units (scorer.py; empty: none)
    move_top: list[float] = field(default_factory=list)  # per channel, scaler units (scorer.py)
    move_ratio: list[float] = field(default_factory=list)  # per channel (scorer.py; 1: the channel has none)
    range_low: list[float] = field(default_factory=list)  # per channel, scaler units (scorer.py; empty: none)
    range_high: list[float] = field(default_factory=list)  # per channel, scaler units (scorer.py)
    range_scale: list[float] = field(default_factory=list)  # per channel, scaler units (scorer.py; 0: no range term)


@dataclass
class ModelMeta:
    channels: list[str]
    window_len: int
    hidden_size: int
    latent_size: int
    num_layers: int
    dropout: float
    scaler: dict[str, list[float]]
    calibration: Calibration
    version: str = ""
    created_at: str = ""
    training: dict[str, Any] = field(default_factory=dict)  # rows, range, source, epochs, seed
    metrics: dict[str, float] = field(default_factory=dict)  # train/val loss

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMeta:
        """Parse and validate; ``ArtifactError`` names the first problem (see ``_check_meta``)."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ArtifactError(f"metadata is not a JSON text ({type(exc).__name__}: {str(exc)[:200]})") from exc
        try:
            data = _checked_fields(cls, data, "meta")
            cal = data["calibration"] = Calibration(**_checked_fields(Calibration, data["calibration"], "calibration"))
            _check_meta(data, cal)
        except RecursionError as exc:
            raise ArtifactError("metadata is nested too deeply") from exc
        n = len(data["channels"])
        try:
            Seasonality.from_dict(cal.seasonal, n)  # ValueError when it does not fit the channels
        except Exception as exc:  # noqa: BLE001 - any failure to read the profile is a damaged artifact
            raise ArtifactError(f"calibration.seasonal is damaged ({type(exc).__name__}: {str(exc)[:200]})") from exc
        try:
            Linear.from_dict(cal.linear, n)
        except Exception as exc:  # noqa: BLE001 - any failure to read the term is a damaged artifact
            raise ArtifactError(f"calibration.linear is damaged ({type(exc).__name__}: {str(exc)[:200]})") from exc
        return cls(**data)


@dataclass
class ModelBundle:
    """A loaded model: the module in eval mode, its scaler and its metadata."""

    module: LSTMAutoencoder
    scaler: RobustScaler
    meta: ModelMeta


def build_module(meta: ModelMeta) -> LSTMAutoencoder:
    return LSTMAutoencoder(len(meta.channels), meta.hidden_size, meta.latent_size, meta.num_layers, meta.dropout)


def _weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        digest.update(name.encode())
        digest.update(state_dict[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def to_bytes(bundle: ModelBundle) -> bytes:
    state = {k: v.detach().cpu() for k, v in bundle.module.state_dict().items()}
    meta = json.loads(bundle.meta.to_json())
    meta["weights_sha256"] = _weights_digest(state)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "meta": json.dumps(meta, sort_keys=True), "state_dict": state}, buffer)
    return buffer.getvalue()


def _payload(data: bytes, source: str) -> dict[str, Any]:
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for garbage input
        raise ArtifactError(f"{source}: not a readable model artifact ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ArtifactError(f"{source}: unknown artifact format {str(found)[:100]!r}, expected {FORMAT!r}")
    if set(payload) != _PAYLOAD_KEYS:
        raise ArtifactError(f"{source}: artifact holds {_names(payload)}, expected {_names(_PAYLOAD_KEYS)}")
    return payload


_PAYLOAD_KEYS = {"format", "meta", "state_dict"}


def _meta_of(payload: dict[str, Any], source: str) -> tuple[ModelMeta, str]:
    """The validated metadata of a payload and the SHA-256 of the weights it names."""
    text = payload["meta"]
    if not isinstance(text, str):
        raise ArtifactError(f"{source}: metadata is damaged (a {_kind(text)}, not a JSON text)")
    try:
        raw_meta = json.loads(text)
        if not isinstance(raw_meta, dict):
            raise ArtifactError(f"metadata is {_kind(raw_meta)}, not an object")
        digest = raw_meta.pop("weights_sha256", None)
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise ArtifactError("no weights_sha256 (every artifact is written with the SHA-256 of its weights: "
                                "this one was edited or not made by monitor)")
        return ModelMeta.from_json(json.dumps(raw_meta)), digest
    except ArtifactError as exc:
        raise ArtifactError(f"{source}: metadata is damaged: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - json's RecursionError/ValueError and anything unforeseen
        raise ArtifactError(f"{source}: metadata is damaged ({type(exc).__name__}: {str(exc)[:200]})") from exc


_SHA256 = re.compile("[0-9a-f]{64}")


def meta_from_bytes(data: bytes, source: str = "<bytes>") -> ModelMeta:
    """The validated metadata of an artifact (no module is built; the weights are not checked)."""
    return _meta_of(_payload(data, source), source)[0]


def from_bytes(data: bytes, source: str = "<bytes>") -> ModelBundle:
    """Load an artifact; ``ArtifactError`` (never another exception) when it is damaged, crafted or mismatched:
    metadata as in ``ModelMeta.from_json``, then weights of the shapes and dtypes its architecture has, all
    finite, whose SHA-256 is the one in the metadata."""
    payload = _payload(data, source)
    meta, expected_digest = _meta_of(payload, source)
    state = _checked_state(payload["state_dict"], meta, source)
    if _weights_digest(state) != expected_digest:
        raise ArtifactError(f"{source}: weights checksum mismatch (file corrupt or edited)")
    try:
        module = build_module(meta)
        module.load_state_dict(state)
        module.eval()
        return ModelBundle(module, RobustScaler.from_dict(meta.scaler), meta)
    except Exception as exc:  # noqa: BLE001 - not expected after the checks above; still the artifact's fault
        raise ArtifactError(f"{source}: weights do not match the architecture in its metadata "
                            f"({type(exc).__name__}: {str(exc)[:300]})") from exc


# --- validation of what an artifact holds (outside input: a file or a registry row may be damaged or crafted)

def _checked_fields(cls: type, data: object, where: str) -> dict[str, Any]:
    """``data`` as the keyword arguments of dataclass ``cls``: a JSON object without unknown keys, with every
    field that has no default, each value of the field's annotated type (``_type_problem``)."""
    if not isinstance(data, dict):
        raise ArtifactError(f"{where} is {_kind(data)}, not an object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ArtifactError(f"{where} has unknown fields {_names(unknown)} (made by a newer monitor, or edited)")
    missing = [name for name, f in fields.items() if name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ArtifactError(f"{where} lacks the fields {_names(missing)}")
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        problem = _type_problem(value, hints[name])
        if problem is not None:
            raise ArtifactError(f"{where}.{name}{problem}")
    return data


def _type_problem(value: object, hint: Any) -> str | None:
    """None when ``value`` (parsed JSON) has the type ``hint`` (bool, int, float, str, list[...], dict[str, ...],
    unions, dataclasses as objects, Any); else what is wrong, as a suffix of the field's name. A number may be
    an int where a float is expected; a bool is never a number. Types this check does not know pass."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return None
    if origin is list:
        if not isinstance(value, list):
            return f" must be a list, not {_kind(value)}"
        for i, item in enumerate(value):
            if (problem := _type_problem(item, args[0] if args else Any)) is not None:
                return f"[{i}]{problem}"
        return None
    if origin is dict:
        if not isinstance(value, dict):
            return f" must be an object, not {_kind(value)}"
        for key, item in value.items():
            if (problem := _type_problem(item, args[1] if len(args) == 2 else Any)) is not None:
                return f"[{str(key)[:40]!r}]{problem}"
        return None
    if origin in (typing.Union, types.UnionType):
        if any(_type_problem(value, arg) is None for arg in args):
            return None
        return f" must be {' or '.join(_type_name(a) for a in args)}, not {_kind(value)}"
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is str:
        ok = isinstance(value, str)
    elif hint is type(None):
        ok = value is None
    elif dataclasses.is_dataclass(hint):
        ok = isinstance(value, dict)
    else:
        return None
    return None if ok else f" must be {_type_name(hint)}, not {_kind(value)}"


def _check_meta(data: dict[str, Any], cal: Calibration) -> None:
    """What the types do not say: sizes positive, channels distinct, every number the scorer computes with
    finite (scaler: in float32, its type there; scale > 0), and every flat list of the calibration (and the
    scaler) either empty or one entry per channel. Calibration fields added later are covered as long as
    their per-channel lists are flat lists of numbers or booleans; a flat list that is NOT per channel would
    be refused here, and belongs in ``_NOT_PER_CHANNEL``."""
    channels = data["channels"]
    n = len(channels)
    if n == 0 or not all(channels) or len(set(channels)) != n:
        raise ArtifactError("channels must be a non-empty list of distinct non-empty names")
    for name in ("window_len", "hidden_size", "latent_size", "num_layers"):
        if data[name] < 1:
            raise ArtifactError(f"{name} must be a positive integer, not {data[name]}")
    dropout = data["dropout"]
    if not (_finite(dropout) and 0 <= dropout < 1):
        raise ArtifactError(f"dropout must lie in [0, 1), not {dropout}")
    scaler = data["scaler"]
    if set(scaler) != {"center", "scale"}:
        raise ArtifactError(f"scaler holds {_names(scaler)}, expected 'center' and 'scale'")
    for key, values in scaler.items():
        _per_channel(values, n, f"scaler.{key}", required=True)
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused just below
            as32 = np.asarray(values, dtype=np.float64).astype(np.float32) if _all_finite(values) else None
        if as32 is None or not np.isfinite(as32).all():
            raise ArtifactError(f"scaler.{key} must hold finite float32 numbers")
        if key == "scale" and not (as32 > 0).all():
            raise ArtifactError("scaler.scale must be positive")
    hints = typing.get_type_hints(Calibration)
    for f in dataclasses.fields(Calibration):
        value = getattr(cal, f.name)
        if not _all_finite(value):
            raise ArtifactError(f"calibration.{f.name} holds a non-finite number (NaN or Infinity)")
        if f.name not in _NOT_PER_CHANNEL and _is_flat_list(hints[f.name]):
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            _per_channel(value, n, f"calibration.{f.name}", required=required)
    if cal.level_weight < 0 or cal.log_score_std < 0:
        raise ArtifactError("calibration.level_weight and log_score_std must not be negative")
    if cal.level_weight > 0:
        _per_channel(cal.level_centre, n, "calibration.level_centre", required=True)
        _per_channel(cal.level_scale, n, "calibration.level_scale", required=True)
        if not all(v > 0 for v in cal.level_scale):
            raise ArtifactError("calibration.level_scale must be positive")
    if cal.linear_weight < 0:
        raise ArtifactError("calibration.linear_weight must not be negative")
    if any(v < 0 for v in cal.drift_speed):
        raise ArtifactError("calibration.drift_speed must not be negative")
    if any(v < 0 for v in cal.jump_scale):
        raise ArtifactError("calibration.jump_scale must not be negative")
    if any(not (math.isfinite(v) and v >= 0) for v in cal.resolution):
        raise ArtifactError("calibration.resolution must be finite and not negative")
    if any(v < 0 for v in [*cal.spike_scale, *cal.spike_limit, *cal.spike_runs, cal.spike_bound]):
        raise ArtifactError("calibration.spike_scale, spike_limit, spike_runs and spike_bound must not be negative")
    if any(v < 0 for v in [*cal.calm_scale, *cal.calm_least]):
        raise ArtifactError("calibration.calm_scale and calm_least must not be negative")
    if len({len(cal.calm_floor), len(cal.calm_scale), len(cal.calm_least)}) > 1:
        raise ArtifactError("calibration.calm_floor, calm_scale and calm_least must be given together")
    if any(v < 0 for v in [*cal.move_floor, *cal.move_top, *cal.move_ratio]):
        raise ArtifactError("calibration.move_floor, move_top and move_ratio must not be negative")
    if len({len(cal.move_floor), len(cal.move_top), len(cal.move_ratio)}) > 1:
        raise ArtifactError("calibration.move_floor, move_top and move_ratio must be given together")
    if len({len(cal.range_low), len(cal.range_high), len(cal.range_scale)}) > 1:
        raise ArtifactError("calibration.range_low, range_high and range_scale must be given together")
    if any(v < 0 for v in cal.range_scale):
        raise ArtifactError("calibration.range_scale must not be negative")
    if any(s > 0 and lo > hi for lo, hi, s in zip(cal.range_low, cal.range_high, cal.range_scale, strict=True)):
        raise ArtifactError("calibration.range_low must not lie above range_high")
    if len({len(cal.spike_scale), len(cal.spike_limit), len(cal.spike_runs)}) > 1:
        raise ArtifactError("calibration.spike_scale, spike_limit and spike_runs must be given together")
    if not all(0 <= v <= 1 for v in cal.channel_weight) or (cal.channel_weight and not any(cal.channel_weight)):
        raise ArtifactError("calibration.channel_weight must lie in [0, 1], with at least one above 0")
    if cal.muted and all(cal.muted):
        raise ArtifactError("calibration.muted must leave at least one channel fed to the model")
    if any(m and not (cal.channel_weight and cal.channel_weight[i] == 0) for i, m in enumerate(cal.muted)):
        raise ArtifactError("calibration.muted must name event channels only (channel_weight 0): a muted channel "
                            "is not fed to the model, so it cannot be judged")
    if cal.linear:
        _per_channel(cal.linear_scale, n, "calibration.linear_scale", required=True)
        if not all(v > 0 for v in cal.linear_scale):
            raise ArtifactError("calibration.linear_scale must be positive")


_NOT_PER_CHANNEL: frozenset[str] = frozenset()  # flat Calibration lists that do not hold one entry per channel


def _is_flat_list(hint: Any) -> bool:
    args = typing.get_args(hint)
    return typing.get_origin(hint) is list and len(args) == 1 and args[0] in (float, int, bool)


def _per_channel(values: list[Any], n: int, where: str, *, required: bool) -> None:
    if len(values) != n and (required or values):
        raise ArtifactError(f"{where} has {len(values)} entries, not one per channel ({n} channels)")


def _finite(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True  # not a number
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        return False


def _all_finite(value: object) -> bool:
    """Every number in ``value`` (nested lists and dicts of parsed JSON) is finite."""
    if isinstance(value, (list, tuple)):
        return all(_all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    return _finite(value)


def _checked_state(state: object, meta: ModelMeta, source: str) -> dict[str, torch.Tensor]:
    """``state`` as the module's state_dict: exactly its names, each a dense CPU tensor of the shape and dtype
    the metadata's architecture has, all values finite. The expected shapes come from a module built on the
    meta device (no memory for the weights), so absurd sizes in the metadata cost nothing."""
    if not isinstance(state, dict):
        raise ArtifactError(f"{source}: state_dict is {_kind(state)}, not a dict of tensors")
    if meta.num_layers > len(state):  # every layer has weights: and building a billion layers would never end
        raise ArtifactError(f"{source}: weights do not match the architecture in its metadata ({len(state)} "
                            f"tensors for {meta.num_layers} layers)")
    try:
        with torch.device("meta"):
            expected = {k: (tuple(v.shape), v.dtype) for k, v in build_module(meta).state_dict().items()}
    except Exception as exc:  # noqa: BLE001 - sizes torch cannot build (overflow) are the metadata's fault
        raise ArtifactError(f"{source}: the architecture in its metadata cannot be built "
                            f"({type(exc).__name__}: {str(exc)[:200]})") from exc
    if set(state) != set(expected):
        extra = [k for k in state if k not in expected]
        missing = [k for k in expected if k not in state]
        raise ArtifactError(f"{source}: weights do not match the architecture in its metadata "
                            f"(unexpected {_names(extra)}; missing {_names(missing)})")
    for name, (shape, dtype) in expected.items():
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor) or tensor.layout != torch.strided or tensor.device.type != "cpu":
            raise ArtifactError(f"{source}: weight {name} is {_kind(tensor)}, not a dense tensor")
        if tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise ArtifactError(f"{source}: weight {name} is {tensor.dtype} {tuple(tensor.shape)}, the architecture "
                                f"in its metadata needs {dtype} {shape}")
        if not bool(torch.isfinite(tensor).all()):
            raise ArtifactError(f"{source}: weight {name} holds NaN or Infinity")
    return state


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


def _names(keys: typing.Iterable[object]) -> str:
    shown = ", ".join(repr(k)[:60] for k in list(keys)[:10])
    return f"[{shown}]"[:400]


def incompatibility(serving: ModelMeta, candidate: ModelMeta) -> str | None:
    """Why ``candidate`` cannot replace ``serving`` on the same window stream, or None when it can.

    A consumer validates every window against its model's channels and window length: a model that expects
    other ones would send every window of the fleet to the dead-letter topic.
    """
    problems: list[str] = []
    if list(serving.channels) != list(candidate.channels):
        added = [c for c in candidate.channels if c not in serving.channels]
        missing = [c for c in serving.channels if c not in candidate.channels]
        if added or missing:
            parts = [f"adds {', '.join(added)}"] if added else []
            parts += [f"lacks {', '.join(missing)}"] if missing else []
            problems.append(f"channels differ ({' and '.join(parts)})")
        else:
            problems.append("channels are in another order")
    if serving.window_len != candidate.window_len:
        problems.append(f"window_len {candidate.window_len} != {serving.window_len}")
    if not problems:
        return None
    return (f"model {candidate.version or '?'} does not fit the windows of serving model {serving.version or '?'}: "
            + "; ".join(problems))
