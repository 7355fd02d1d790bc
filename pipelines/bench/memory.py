"""Memory per sensor held by a consumer (`python -m pipelines.bench.memory`): what `run.max_sensors_in_memory` bounds.

Trains the bench model shape (window 64 x 8 channels, hidden 64; one epoch: the state's size does not depend on
the weights), then judges ``--windows`` windows of each of ``--sensors`` sensors through the pure engine, one
batch per round with every sensor in it, every 50th round shifted by 6 standard deviations so that alerts open,
close and keep evidence. Measures with tracemalloc the memory the engine's sensor states hold (after a garbage
collection, against the state before the first round) and the size of one state as stored (JSON). Ends with
``memory: per_sensor_kib=<n> per_1000_sensors_mb=<n> stored_state_bytes=<n>``.
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from datetime import datetime, timedelta, timezone
from typing import Annotated

import numpy as np
import torch
import typer

from monitor.core.contract import SensorWindow
from monitor.core.engine import Engine, Record
from monitor.core.scoring.scorer import Scorer
from monitor.core.scoring.train import train
from monitor.settings import AlertSettings, ModelSettings, ThresholdSettings
from pipelines.synthetic import history_frame

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def main(
    sensors: Annotated[int, typer.Option(help="Sensors held.")] = 2000,
    windows: Annotated[int, typer.Option(help="Windows judged per sensor.")] = 60,
    window_len: Annotated[int, typer.Option(help="Rows per window.")] = 64,
    n_channels: Annotated[int, typer.Option(help="Channels.")] = 8,
) -> None:
    torch.set_num_threads(1)
    bundle = train(history_frame(3000, n_channels=n_channels, sensors=2),
                   ModelSettings(window_len=window_len, hidden_size=64, stride=8, epochs=1, batch_size=128),
                   version="memory", sensors=2)
    engine = Engine(Scorer(bundle), ThresholdSettings(), AlertSettings())
    rng = np.random.default_rng(0)
    names = [f"sensor-{i:06d}" for i in range(sensors)]
    channels = tuple(bundle.meta.channels)

    def round_of(k: int) -> list[Record]:
        out = []
        start = EPOCH + timedelta(seconds=k * window_len)
        end = start + timedelta(seconds=window_len - 1)
        for name in names:
            values = rng.normal(size=(window_len, n_channels)).astype(np.float32)
            if k % 50 == 7:
                values += 6.0
            out.append(Record(0, k, SensorWindow(name, start, end, channels, values)))
        return out

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for k in range(windows):
        batch = round_of(k)
        engine.process(batch)
        del batch
        if k % 10 == 0:
            typer.echo(f"  round {k + 1}/{windows}", err=True)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    stored = [len(json.dumps(ctx.snapshot())) for ctx in engine.sensors.values()]
    per_sensor = held / sensors
    typer.echo(f"{sensors} sensors x {windows} windows of {window_len} x {n_channels}: {held / 1e6:.1f} MB held by "
               f"their states ({per_sensor / 1024:.1f} KiB per sensor); stored state {int(np.median(stored))} bytes "
               f"(median, JSON)")
    typer.echo(f"memory: per_sensor_kib={per_sensor / 1024:.1f} per_1000_sensors_mb={per_sensor * 1000 / 2**20:.1f} "
               f"stored_state_bytes={int(np.median(stored))}")


if __name__ == "__main__":
    typer.run(main)
