"""The torch device of training and scoring (settings ``model.device``), checked before any work starts."""

from __future__ import annotations

import torch

from monitor.errors import ConfigError


def resolve_device(name: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` -> a ``torch.device`` this machine has.

    Raises ConfigError for a name torch does not know or a device that is not available here."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"model.device {str(name)!r} is not a torch device (cpu, cuda, cuda:N, mps): {exc}") from exc
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"model.device {str(name)!r}: CUDA is not available on this machine (use 'cpu')")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"model.device {str(name)!r}: this machine has {count} CUDA device(s)")
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"model.device {str(name)!r}: MPS is not available on this machine (use 'cpu')")
        return device
    raise ConfigError(f"model.device {str(name)!r}: device type {device.type!r} is not supported (cpu, cuda, mps)")
