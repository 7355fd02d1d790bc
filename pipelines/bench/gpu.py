"""`python -m pipelines.bench.gpu`: training and scoring on ``model.device=cuda`` against this machine's CPU, in one
run (the model of `make bench`: window 64 x 8, hidden 64). Needs a CUDA device; prints what it skipped otherwise.

Ends with ``gpu: train_speedup=<x> score_speedup=<x> max_score_rel_diff=<n> device=<name>``: the ratios are CUDA
against the CPU on the same data in the same run; the difference compares one model's scores on both devices.
"""

from __future__ import annotations

import time
from typing import Annotated

import numpy as np
import torch
import typer

from monitor.core.scoring.scorer import Scorer
from monitor.core.scoring.train import train
from monitor.core.windows import sliding_windows
from monitor.settings import ModelSettings
from pipelines.synthetic import history_frame

app = typer.Typer(add_completion=False)


def _timed_scores(scorer: Scorer, windows: np.ndarray) -> tuple[np.ndarray, float]:
    """Scores of ``windows`` and windows/s (best of 3 passes after a warm-up)."""
    scores = scorer.score(windows[:1024]).score
    best = 0.0
    for _ in range(3):
        if scorer.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        scores = scorer.score(windows).score
        best = max(best, len(windows) / (time.perf_counter() - started))
    return np.asarray(scores), best


@app.command()
def main(
    rows: Annotated[int, typer.Option(help="Training rows (8 channels).")] = 40_000,
    windows: Annotated[int, typer.Option(help="Windows scored on each device.")] = 50_000,
    epochs: Annotated[int, typer.Option(help="Training epochs on each device.")] = 3,
) -> None:
    if not torch.cuda.is_available():
        typer.echo("gpu: skipped: torch sees no CUDA device on this machine")
        raise typer.Exit(0)
    name = torch.cuda.get_device_name(0)
    typer.echo(f"device {name}; CPU threads {torch.get_num_threads()}; torch {torch.__version__}")
    cfg = ModelSettings(window_len=64, hidden_size=64, stride=8, epochs=epochs, batch_size=128, seed=7)
    frame = history_frame(rows, n_channels=8, sensors=8)
    took: dict[str, float] = {}
    bundles = {}
    for device in ("cpu", "cuda"):
        started = time.perf_counter()
        bundles[device] = train(frame, cfg.model_copy(update={"device": device}), sensors=8)
        took[device] = time.perf_counter() - started
        typer.echo(f"train on {device}: {took[device]:.1f} s, val_loss {bundles[device].meta.metrics['val_loss']:.4f}")
    sample = sliding_windows(frame.to_numpy(dtype=np.float32), 64, 8)
    sample = np.concatenate([sample] * (windows // len(sample) + 1))[:windows]
    on_cpu, cpu_wps = _timed_scores(Scorer(bundles["cpu"], device="cpu", batch_size=512), sample)
    on_gpu, gpu_wps = _timed_scores(Scorer(bundles["cpu"], device="cuda", batch_size=4096), sample)
    rel = float(np.max(np.abs(on_gpu - on_cpu) / np.maximum(np.abs(on_cpu), 1e-12)))
    typer.echo(f"score on cpu: {cpu_wps:,.0f} windows/s; on cuda: {gpu_wps:,.0f} windows/s; "
               f"largest relative score difference {rel:.2e}")
    typer.echo(f"gpu: train_speedup={took['cpu'] / took['cuda']:.2f} score_speedup={gpu_wps / cpu_wps:.2f} "
               f"max_score_rel_diff={rel:.1e} device={name.replace(' ', '_')}")


if __name__ == "__main__":
    app()
