"""Compute-side figures of `make bench`: FLOPs per window, the matmul ceiling, scoring-only rate, bf16 check."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from monitor.core.scoring.scorer import Scorer

if TYPE_CHECKING:
    from pipelines.bench.throughput import Workload


def flops_per_window(module: torch.nn.Module, window_len: int) -> float:
    """Multiply-adds x 2 of one window through the model, from its layers' weight shapes.

    Each LSTM layer costs 2 * (4h x in + 4h x h) per time step (input and recurrent projections; torch
    computes the decoder's input projection at every step although its input is the repeated latent), each
    Linear applied per step 2 * out x in per step, the latent projection once. Gate nonlinearities and the
    error are elementwise and left out (well under 5 %)."""
    total = 0.0
    for name, layer in module.named_children():
        if isinstance(layer, torch.nn.LSTM):
            for k in range(layer.num_layers):
                w_ih, w_hh = getattr(layer, f"weight_ih_l{k}"), getattr(layer, f"weight_hh_l{k}")
                total += 2 * window_len * (w_ih.numel() + w_hh.numel())
        elif isinstance(layer, torch.nn.Linear):
            total += 2 * layer.weight.numel() * (1 if name == "to_latent" else window_len)
    return total


def matmul_gflops(threads: int, size: int = 1024, reps: int = 30) -> float:
    """fp32 GFLOP/s of a square matmul with ``threads`` intra-op threads (restores the thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        for _ in range(3):
            a @ b
        started = time.perf_counter()
        for _ in range(reps):
            a @ b
        return reps * 2 * size**3 / (time.perf_counter() - started) / 1e9
    finally:
        torch.set_num_threads(before)


def scoring_wps(scorer: Scorer, sample: np.ndarray, threads: int) -> float:
    """Windows/s of Scorer.score over ``sample`` with ``threads`` intra-op threads (best of 2 passes)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        scorer.score(sample[:1024])
        best = 0.0
        for _ in range(2):
            started = time.perf_counter()
            scorer.score(sample)
            best = max(best, len(sample) / (time.perf_counter() - started))
        return best
    finally:
        torch.set_num_threads(before)


_barrier: "multiprocessing.synchronize.Barrier | None" = None  # set in each scoring child by _init


def _init(barrier: "multiprocessing.synchronize.Barrier") -> None:
    global _barrier
    _barrier = barrier


def _score_in_child(args: tuple[str, np.ndarray]) -> tuple[float, float, int]:
    """One single-thread scoring process: (start, end, windows) of two passes over ``sample``."""
    model_path, sample = args
    torch.set_num_threads(1)
    from monitor.registry import model_files
    scorer = Scorer(model_files.load(Path(model_path)))
    scorer.score(sample[:1024])  # warm-up
    assert _barrier is not None
    _barrier.wait()
    started = time.time()
    scorer.score(sample)
    scorer.score(sample)
    return started, time.time(), 2 * len(sample)


def scoring_wps_processes(model_path: str, sample: np.ndarray, processes: int) -> float:
    """Windows/s of ``processes`` single-thread scoring processes at once (how `monitor run` scales out:
    one single-thread consumer per core): all windows scored / wall time from the common start to the last end."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    with ctx.Pool(processes, initializer=_init, initargs=(barrier,)) as pool:
        spans = pool.map(_score_in_child, [(model_path, sample)] * processes)
    start, end = min(s for s, _, _ in spans), max(e for _, e, _ in spans)
    return sum(n for _, _, n in spans) / (end - start)


def alerts_of(scorer: Scorer, load: "Workload", count: int, batch: int = 2000) -> list[tuple[str, object, object, int]]:
    """Alerts (sensor, opened, closed, windows) of the first ``count`` workload windows through the engine."""
    from monitor.core.contract import SensorWindow, decode_batch
    from monitor.core.engine import Engine, Record
    from monitor.settings import AlertSettings, ThresholdSettings

    engine = Engine(scorer, ThresholdSettings(), AlertSettings())
    final: dict[tuple[str, object], object] = {}
    pending: list[bytes] = []

    def run(values: list[bytes], offset: int) -> None:
        decoded = decode_batch(values, window_len=scorer.window_len, channels=scorer.channels)
        records = [Record(0, offset + i, w) for i, w in enumerate(decoded) if isinstance(w, SensorWindow)]
        for key, alert in engine.process(records).alerts.items():
            final[key] = alert

    done = 0
    for _, _, value in load.records(count):
        pending.append(value)
        if len(pending) == batch:
            run(pending, done)
            done += len(pending)
            pending = []
    if pending:
        run(pending, done)
    return sorted((a.sensor_id, a.opened_at, a.closed_at, a.window_count) for a in final.values())  # type: ignore[attr-defined]


def bf16_check(
    make_scorer: Callable[[bool], Scorer], sample: np.ndarray, threads: int, alerts: Callable[[Scorer], object]
) -> tuple[float | None, bool | None, str]:
    """The bfloat16 autocast figures: (windows/s, alerts identical to fp32, ""), or (None, None, why skipped).
    ``make_scorer(bf16)`` builds a scorer of the benchmark's model.

    oneDNN has no bfloat16 LSTM without AVX-512 (seen on an AVX2-only AMD EPYC: "could not create a primitive
    descriptor for the LSTM forward propagation primitive"): a CPU without it skips the figure with the reason
    instead of ending the benchmark."""
    scorer = make_scorer(True)
    try:
        scorer.score(sample[:8])  # the probe: the first bf16 LSTM forward is where an unsupported CPU fails
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, None, f"skipped: this CPU's torch cannot run it ({reason})"
    wps = scoring_wps(scorer, sample, threads)
    same = alerts(make_scorer(True)) == alerts(make_scorer(False))
    return wps, same, ""
