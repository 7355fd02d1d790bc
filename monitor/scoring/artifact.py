"""Model artifacts: one file holding the weights and JSON metadata, loaded without unpickling objects.

File layout (``torch.save`` of a dict of plain types, read back with ``torch.load(weights_only=True)``):
``{"format": FORMAT, "meta": <JSON string>, "state_dict": {name: tensor}}``. The metadata carries the
architecture, channel names, window length, scaler, score calibration, training range and validation metrics,
and a SHA-256 of the weights so a corrupt file is named as such.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from monitor.errors import ArtifactError
from monitor.scoring.model import LSTMAutoencoder
from monitor.scoring.scaler import RobustScaler

FORMAT = "monitor-lstm-ae/1"


@dataclass
class Calibration:
    """Score scale measured on the training data.

    ``channel_error``: per-channel median reconstruction error on the validation windows (normalises
    contributions); ``log_score_mean`` / ``log_score_std``: distribution of their log window scores (warm-starts
    thresholds); ``level_weight`` / ``level_centre`` / ``level_scale``: the level term of the score (median and
    robust scale of each channel's window-mean residual over the training windows; weight 0, the default of
    artifacts made before it, leaves the score the reconstruction error alone); ``drifting``: channels whose
    level the sensor baseline follows fast (empty: none). See monitor/scoring/scorer.py and baseline.py.
    """

    channel_error: list[float]
    log_score_mean: float
    log_score_std: float
    log_score_quantiles: dict[str, float] = field(default_factory=dict)
    level_weight: float = 0.0
    level_centre: list[float] = field(default_factory=list)
    level_scale: list[float] = field(default_factory=list)
    drifting: list[bool] = field(default_factory=list)


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
        data = json.loads(text)
        cal = data["calibration"] = Calibration(**data["calibration"])
        n = len(data["channels"])
        level = (cal.level_centre, cal.level_scale) if cal.level_weight > 0 else ()
        if any(len(values) != n for values in level) or (cal.drifting and len(cal.drifting) != n):
            raise ValueError(f"calibration's per-channel lists do not match the {n} channels")
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


def save(bundle: ModelBundle, path: Path) -> Path:
    """Write atomically (temp file + rename), so a reader never sees half a model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(to_bytes(bundle))
    tmp.replace(path)
    return path


def _payload(data: bytes, source: str) -> dict[str, Any]:
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for garbage input
        raise ArtifactError(f"{source}: not a readable model artifact ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ArtifactError(f"{source}: unknown artifact format {found!r}, expected {FORMAT!r}")
    return payload


def read_meta(path: Path) -> ModelMeta:
    """The metadata of the artifact at ``path`` (no module is built; the weights are not checked)."""
    path = Path(path)
    payload = _payload(path.read_bytes(), str(path))
    try:
        raw_meta = json.loads(payload["meta"])
        raw_meta.pop("weights_sha256", None)
        return ModelMeta.from_json(json.dumps(raw_meta))
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: metadata is damaged ({exc})") from exc


def from_bytes(data: bytes, source: str = "<bytes>") -> ModelBundle:
    payload = _payload(data, source)
    try:
        raw_meta = json.loads(payload["meta"])
        expected_digest = raw_meta.pop("weights_sha256", None)
        meta = ModelMeta.from_json(json.dumps(raw_meta))
        state = payload["state_dict"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{source}: metadata is damaged ({exc})") from exc
    if expected_digest is not None and _weights_digest(state) != expected_digest:
        raise ArtifactError(f"{source}: weights checksum mismatch (file corrupt or edited)")
    module = build_module(meta)
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtifactError(f"{source}: weights do not match the architecture in its metadata ({exc})") from exc
    module.eval()
    return ModelBundle(module, RobustScaler.from_dict(meta.scaler), meta)


def load(path: Path) -> ModelBundle:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"model artifact {path} does not exist (train one with `monitor train`)")
    return from_bytes(path.read_bytes(), str(path))


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
