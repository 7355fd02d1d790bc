"""Model artifacts for tests of the loader: a small untrained model (no training: milliseconds), and crafted
artifact bytes with any metadata, weights or payload, written the way ``artifact.to_bytes`` writes them."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import torch

from monitor.core.scoring import artifact
from monitor.core.scoring.artifact import Calibration, ModelBundle, ModelMeta
from monitor.core.scoring.scaler import RobustScaler

CHANNELS = ["a", "b", "c"]


def small_bundle(version: str = "small-1", channels: list[str] | None = None, window_len: int = 8) -> ModelBundle:
    """An untrained model with plausible metadata (seeded: the same weights every call)."""
    names = list(channels or CHANNELS)
    n = len(names)
    meta = ModelMeta(
        channels=names, window_len=window_len, hidden_size=4, latent_size=2, num_layers=1, dropout=0.0,
        scaler={"center": [0.5] * n, "scale": [2.0] * n},
        calibration=Calibration([0.1] * n, -1.0, 0.5, {"q500": 0.3, "q990": 0.9}, level_weight=0.5,
                                level_centre=[0.0] * n, level_scale=[0.2] * n, drifting=[False] * n),
        version=version, created_at="2026-01-01T00:00:00Z", training={"rows": 100}, metrics={"val_loss": 0.1},
    )
    torch.manual_seed(0)
    module = artifact.build_module(meta)
    module.eval()
    return ModelBundle(module, RobustScaler.from_dict(meta.scaler), meta)


def crafted(
    bundle: ModelBundle,
    *,
    meta: Callable[[dict[str, Any]], object] | None = None,
    state: Callable[[dict[str, torch.Tensor]], object] | None = None,
    payload: Callable[[dict[str, Any]], object] | None = None,
    digest: bool = True,
) -> bytes:
    """``bundle``'s artifact bytes after ``meta`` (edits the metadata dict, or returns a replacement for its
    JSON text), ``state`` (edits the weights dict, or returns a replacement) and ``payload`` (the same for the
    whole saved object). The weights' SHA-256 is recomputed over the final weights when they are all tensors
    (``digest=False`` leaves it out), so each check is reached on its own."""
    weights: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in bundle.module.state_dict().items()}
    final_state: object = weights
    if state is not None:
        final_state = state(weights)
        final_state = weights if final_state is None else final_state
    data = json.loads(bundle.meta.to_json())
    if digest:
        try:  # over the final weights when they can be digested (tensors under string names)
            data["weights_sha256"] = artifact._weights_digest(final_state)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - not tensors: the untouched weights' digest
            data["weights_sha256"] = artifact._weights_digest(weights)
    text: object = json.dumps(data, sort_keys=True)
    if meta is not None:
        replaced = meta(data)
        text = json.dumps(data, sort_keys=True) if replaced is None else replaced
    saved: dict[str, Any] = {"format": artifact.FORMAT, "meta": text, "state_dict": final_state}
    whole: object = saved
    if payload is not None:
        replaced_payload = payload(saved)
        whole = saved if replaced_payload is None else replaced_payload
    buffer = io.BytesIO()
    torch.save(whole, buffer)
    return buffer.getvalue()
