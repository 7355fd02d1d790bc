"""SKAB benchmark (`make bench-skab`): the published outlier-detection protocol, through `monitor backtest`'s path.

For each of the 34 labelled files: a model is trained on the first 400 rows with the product's
``ModelSettings``; the whole file then runs through :func:`monitor.core.backtest.run_backtest` (the streaming
Engine: scorer, per-sensor online thresholds, alert state machine) with the product's ``ThresholdSettings``
and ``AlertSettings``; a row is predicted anomalous when an alert is active after the window ending at it.
Metrics are computed on the test parts (rows 400..end) only, pooled point-wise over all files (F1, FAR, MAR),
plus NAB changepoint scores (edges of the alarm, 60 s right window). Labels are read only for scoring.

Usage: ``python -m pipelines.bench.skab [--data DIR] [--limit N] [--threads 1]``. Settings come from the
environment like every entry point (``MONITOR_THRESHOLD__K_ENTER=...``) so variants are measured without
code changes.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from monitor.core.backtest import run_backtest
from monitor.core.scoring.train import train
from monitor.errors import DataError
from monitor.ingest.files import read_wide_csv
from monitor.settings import Settings
from pipelines.bench.nab import NabResult, nab_scores

TRAIN_ROWS = 400
# Model shape for 400 training rows (the product default, window 32 with stride 4, leaves ~70 training windows
# per file and measured worse: docs/skab.md). Fields set in the environment (MONITOR_MODEL__...) win.
SKAB_MODEL = {"window_len": 10, "stride": 1, "hidden_size": 32, "latent_size": 8, "epochs": 30, "batch_size": 32}
LABELS = ("anomaly", "changepoint")
REPO_ROOT = Path(__file__).resolve().parents[2]

# The published leaderboard (SOURCE.md of the data set): F1, FAR %, MAR %, NAB standard, lowFP, lowFN.
LEADERBOARD: list[tuple[str, float, float, float, float, float, float]] = [
    ("Conv-AE", 0.78, 13.55, 28.02, 23.61, 21.54, 27.55),
    ("MSET", 0.78, 39.73, 14.13, 13.84, 10.22, 17.37),
    ("T-squared+Q (PCA)", 0.76, 26.62, 24.92, 25.35, 14.51, 31.33),
    ("LSTM-AE", 0.74, 29.96, 25.92, 23.51, 20.11, 25.91),
    ("T-squared", 0.66, 19.21, 42.6, 19.54, 10.2, 24.31),
    ("Vanilla LSTM", 0.54, 12.54, 59.53, 11.31, -3.8, 17.25),
    ("MSCRED", 0.36, 49.94, 69.88, 32.42, 16.53, 40.28),
    ("Vanilla AE", 0.39, 2.59, 75.15, 11.41, 6.53, 13.91),
    ("Isolation Forest", 0.29, 2.56, 82.89, 26.16, 19.5, 30.82),
]


@dataclass
class FileResult:
    name: str
    times: pd.DatetimeIndex  # test part
    anomaly: np.ndarray  # (n_test,) true labels
    changepoint: np.ndarray
    alarm: np.ndarray  # (n_test,) predicted 0/1


def default_data_dir() -> Path:
    """../shared/data/skab relative to the repository root (a git worktree's root works alike)."""
    candidates = [REPO_ROOT.parent / "shared" / "data" / "skab", Path.cwd().parent / "shared" / "data" / "skab"]
    for path in candidates:
        if path.is_dir():
            return path
    return candidates[0]


def labelled_files(data: Path) -> list[Path]:
    files = sorted(p for p in data.glob("*/*.csv") if p.parent.name != "anomaly-free")
    if not files:
        raise DataError(f"no SKAB files under {data} (expected <dir>/valve1/0.csv ...); pass --data DIR")
    return sorted(files, key=lambda p: (p.parent.name, int(p.stem) if p.stem.isdigit() else p.stem))


def run_file(path: Path, settings: Settings) -> FileResult:
    frame = read_wide_csv(path, sep=";", time_column="datetime")
    labels = frame[list(LABELS)].to_numpy(dtype=np.int8)
    frame = frame.drop(columns=list(LABELS))
    bundle = train(frame.iloc[:TRAIN_ROWS], settings.model, source=str(path), version="skab")
    result = run_backtest(frame, bundle, settings.threshold, settings.alert, stride=1)
    alarm = result.table["is_anomaly"].to_numpy(dtype=np.int8)
    return FileResult(f"{path.parent.name}/{path.name}", frame.index[TRAIN_ROWS:], labels[TRAIN_ROWS:, 0],
                      labels[TRAIN_ROWS:, 1], alarm[TRAIN_ROWS:])


def reference_z_alarm(values: np.ndarray, *, window: int = 10, alpha: float = 0.01, k_learn: float = 2.0,
                      q: float = 0.99, factor: float = 1.5, hold: int = 3) -> np.ndarray:
    """NOT the product: the no-model reference of docs/skab.md (robust z of inputs, per-channel re-centring).

    ``values`` (n_rows, n_channels) raw. Each channel's deviation is the ``window``-row mean minus a centre
    (median of the training rows), divided by the training rows' std. The centre follows the input with EW
    weight ``alpha`` only while that channel's own |z| < ``k_learn`` (gradual drift is learned, steps are not;
    ``alpha`` 0 = static). Score = RMS of the z's; alarm above ``factor`` x its ``q`` quantile on the training
    windows, held ``hold`` windows. Returns (n_rows,) 0/1 alarms.
    """
    train_part = values[:TRAIN_ROWS]
    centre = np.median(train_part, axis=0)
    scale = np.maximum(train_part.std(axis=0), 1e-3 * np.abs(centre) + 1e-9)
    n, c = values.shape
    csum = np.cumsum(np.vstack([np.zeros(c), values]), axis=0)
    means = (csum[window:] - csum[:-window]) / window  # row window-1+j for j

    def rms(z: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.sqrt((z * z).mean(axis=-1))
        return out

    limit = float(np.quantile(rms((means[: TRAIN_ROWS - window + 1] - centre) / scale), q)) * factor
    alarm = np.zeros(n, dtype=np.int8)
    active, calm = False, 0
    for j, x in enumerate(means):
        z = (x - centre) / scale
        if rms(z) > limit:
            active, calm = True, 0
        elif active:
            calm += 1
            active = calm < hold
        alarm[j + window - 1] = active
        learn = np.abs(z) < k_learn
        centre[learn] += alpha * (x[learn] - centre[learn])
    return alarm


def pointwise(results: list[FileResult]) -> tuple[float, float, float]:
    """Pooled F1 = TP / (TP + (FP + FN) / 2), FAR % and MAR %."""
    y = np.concatenate([r.anomaly for r in results]).astype(bool)
    p = np.concatenate([r.alarm for r in results]).astype(bool)
    tp, fp, fn, tn = int((y & p).sum()), int((~y & p).sum()), int((y & ~p).sum()), int((~y & ~p).sum())
    f1 = tp / (tp + (fp + fn) / 2) if tp + fp + fn else 0.0
    return f1, 100.0 * fp / max(fp + tn, 1), 100.0 * fn / max(fn + tp, 1)


def print_leaderboard(results: list[FileResult]) -> tuple[float, float, float, NabResult]:
    """Print this run beside the published leaderboard (sorted by F1); return (F1, FAR %, MAR %, NAB)."""
    f1, far, mar = pointwise(results)
    nab = nab_scores([(r.times, r.changepoint, r.alarm) for r in results])
    rows = [("monitor (this run)", round(f1, 3), far, mar, nab.standard, nab.lowFP, nab.lowFN), *LEADERBOARD]
    rows.sort(key=lambda r: -r[1])
    print(f"\n{'Algorithm':20s} {'F1':>6s} {'FAR %':>7s} {'MAR %':>7s} {'NAB std':>8s} {'lowFP':>7s} {'lowFN':>7s}")
    for name, *vals in rows:
        print(f"{name:20s} {vals[0]:6.3f} {vals[1]:7.2f} {vals[2]:7.2f} {vals[3]:8.2f} {vals[4]:7.2f} {vals[5]:7.2f}")
    return f1, far, mar, nab


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="SKAB data folder (default ../shared/data/skab)")
    parser.add_argument("--limit", type=int, default=None, help="Only the first N files (quick look).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared).")
    parser.add_argument("--per-file", action="store_true", help="Print per-file counts.")
    parser.add_argument("--reference-z", action="store_true",
                        help="Only the no-model robust-z references of docs/skab.md (seconds; not the product).")
    args = parser.parse_args(argv)
    settings = Settings()
    chosen = settings.model.model_fields_set
    settings.model = settings.model.model_copy(update={k: v for k, v in SKAB_MODEL.items() if k not in chosen})
    torch.set_num_threads(args.threads)
    data = (args.data or default_data_dir()).resolve()
    try:
        files = labelled_files(data)[: args.limit]
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"SKAB: {len(files)} files from {data}; model {settings.model.model_dump(exclude={'path'})}", flush=True)
    print(f"thresholds {settings.threshold.model_dump()}; alerts {settings.alert.model_dump()}", flush=True)
    if args.reference_z:
        return reference_z(files)
    started = time.monotonic()
    results = []
    for i, path in enumerate(files, 1):
        results.append(run_file(path, settings))
        r = results[-1]
        if args.per_file:
            tp = int((r.anomaly & r.alarm).sum())
            fp = int(((1 - r.anomaly) & r.alarm).sum())
            print(f"  {r.name:14s} tp={tp:4d} fp={fp:4d} fn={int(r.anomaly.sum()) - tp:4d}", flush=True)
        print(f"[{i}/{len(files)}] {r.name} {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    f1, far, mar, nab = print_leaderboard(results)
    print(f"\n{len(results)} files, {sum(len(r.alarm) for r in results)} test rows, "
          f"{time.monotonic() - started:.0f}s")
    print(f"SKAB F1={f1:.3f} FAR={far:.1f}% MAR={mar:.1f}% NAB_std={nab.standard:.1f}")
    return 0


def reference_z(files: list[Path]) -> int:
    """Print pooled F1/FAR/MAR of the static and the re-centring robust-z references (not the product)."""
    loaded = []
    for path in files:
        frame = read_wide_csv(path, sep=";", time_column="datetime")
        loaded.append((frame[list(LABELS)].to_numpy(dtype=np.int8), frame.drop(columns=list(LABELS)).to_numpy(float)))
    variants = {"static z (alpha 0)": 0.0, "re-centring z (alpha 0.01)": 0.01}
    for name, alpha in variants.items():
        results = [FileResult(str(i), pd.DatetimeIndex([]), lab[TRAIN_ROWS:, 0], lab[TRAIN_ROWS:, 1],
                              reference_z_alarm(vals, alpha=alpha)[TRAIN_ROWS:]) for i, (lab, vals) in enumerate(loaded)]
        f1, far, mar = pointwise(results)
        print(f"reference {name:28s} F1={f1:.3f} FAR={far:.1f}% MAR={mar:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
