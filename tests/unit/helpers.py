"""Shared builders for the unit tests (pure: no services)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from monitor.core.contract import SensorWindow
from monitor.core.engine import Record
from monitor.core.scoring.artifact import ModelBundle
from pipelines.synthetic import EPOCH


def records_of(bundle: ModelBundle, values: np.ndarray, sensor_id: str = "s1", partition: int = 0) -> list[Record]:
    """Cut ``values`` (n * window_len, n_channels) into n consecutive windows of one sensor, one second per
    sample from ``EPOCH``, with the model's channels; offsets 0..n-1 on ``partition``."""
    wl = bundle.meta.window_len
    out = []
    for i in range(len(values) // wl):
        start = EPOCH + timedelta(seconds=i * wl)
        w = SensorWindow(sensor_id, start, start + timedelta(seconds=wl - 1), tuple(bundle.meta.channels),
                         values[i * wl : (i + 1) * wl])
        out.append(Record(partition, i, w))
    return out
