"""Tennessee Eastman benchmark (a leg of `make bench-quality`): the data set's own protocol and scorer.

One model is trained on ``train_normal.csv`` (500 normal rows) with the product's ``ModelSettings``; each test
file (``test_normal.csv``, ``test_fault_01..21.csv``) then runs through :func:`monitor.core.backtest.run_backtest`
with the product's ``ThresholdSettings`` and ``AlertSettings``, stride 1, and its rows are written in
``monitor backtest``'s output format (timestamp, score, threshold, is_anomaly). The outputs are scored by the
data set's ``score_tep.py`` itself, loaded from the data folder, so the figures follow the published protocol
exactly (SOURCE.md there): FDR per fault on rows 160-959, FAR_pre on rows 0-159, FAR on test_normal, averages
over the 18 faults other than 3, 9 and 15. The same run fits and scores the script's PCA T²/Q baseline
(11 components, 99 % limits) and prints both side by side. The ``anomaly`` column is never a model input.

Usage: ``python -m pipelines.bench.tep [--data DIR] [--out DIR] [--threads 1]``; settings come from the
environment like every entry point.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import torch

from monitor.core.backtest import run_backtest
from monitor.core.scoring.train import train
from monitor.errors import DataError
from monitor.ingest.files import read_wide_csv
from monitor.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
PCA_COMPONENTS = 11  # the script's default (parallel analysis on train_normal.csv)


@dataclass(frozen=True)
class FaultRow:
    fault: int
    fdr: float  # % of rows from the onset on that are flagged
    far_pre: float  # % of rows before the onset that are flagged
    delay: int | None  # rows from the onset to the first flag


@dataclass(frozen=True)
class TepScores:
    """What score_tep.score returns (FDR_avg %, FAR_avg %, FAR on test_normal %) and the per-fault rows."""

    fdr: float
    far: float
    far_normal: float
    faults: list[FaultRow]


@dataclass(frozen=True)
class TepResult:
    product: TepScores
    pca: TepScores
    excluded: tuple[int, ...]
    pca_model: str  # the script's description of its PCA fit


def default_data_dir() -> Path:
    """../shared/data/tep relative to the repository root (a git worktree's root works alike)."""
    candidates = [REPO_ROOT.parent / "shared" / "data" / "tep", Path.cwd().parent / "shared" / "data" / "tep"]
    for path in candidates:
        if path.is_dir():
            return path
    return candidates[0]


def load_scorer(data_dir: Path) -> ModuleType:
    """The data set's ``score_tep.py``, imported from ``data_dir`` (it is not part of this repository)."""
    path = data_dir / "score_tep.py"
    if not path.is_file():
        raise DataError(f"no score_tep.py in {data_dir} (expected the TEP folder of SOURCE.md); pass --data DIR")
    spec = importlib.util.spec_from_file_location("score_tep", path)
    if spec is None or spec.loader is None:
        raise DataError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_output(table: pd.DataFrame, path: Path) -> None:
    """A backtest table in ``monitor backtest``'s CSV format (empty score/threshold before the first window)."""
    out = table.copy()
    out.index = out.index.map(lambda t: t.isoformat())
    out["score"] = out["score"].map(lambda v: "" if np.isnan(v) else f"{v:.6g}")
    out["threshold"] = out["threshold"].map(lambda v: "" if np.isnan(v) else f"{v:.6g}")
    out.to_csv(path, index_label="timestamp")


def run_product(data_dir: Path, out_dir: Path, settings: Settings, scorer: ModuleType) -> None:
    """Train on train_normal.csv, backtest every test file, write one output per file into ``out_dir``."""
    history = read_wide_csv(data_dir / "train_normal.csv", ignore=["anomaly"])
    started = time.monotonic()
    bundle = train(history, settings.model, source=str(data_dir / "train_normal.csv"), version="tep")
    print(f"[tep] trained on {len(history)} rows x {history.shape[1]} channels, window {bundle.meta.window_len}, "
          f"{time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = scorer.test_files(data_dir)
    for i, path in enumerate(files.values(), 1):
        frame = read_wide_csv(path, ignore=["anomaly"])
        result = run_backtest(frame, bundle, settings.threshold, settings.alert, stride=1)
        write_output(result.table, out_dir / path.name)
        print(f"[tep {i}/{len(files)}] {path.name} flagged={result.flagged_rows} alerts={len(result.alerts)} "
              f"{time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)


def scores(scorer: ModuleType, out_dir: Path, data_dir: Path) -> TepScores:
    """Score ``out_dir`` with score_tep.score (its printout is swallowed) plus per-fault rows computed with the
    script's own readers and the same rule (onset = first labelled row)."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            fdr, far, far_normal = scorer.score(out_dir, data_dir)
    except SystemExit as exc:  # the script reports bad outputs by exiting
        raise DataError(f"score_tep.py refused {out_dir}: {exc}") from exc
    faults = []
    for k, path in scorer.test_files(data_dir).items():
        if k == 0:
            continue
        ts, _, labels = scorer.read_data(path)
        flags = scorer.read_flags(scorer.find_output(out_dir, k), ts)
        onset = int(np.argmax(labels == 1))
        post = np.flatnonzero(flags[onset:])
        faults.append(FaultRow(k, 100 * float(flags[onset:].mean()), 100 * float(flags[:onset].mean()),
                               int(post[0]) if post.size else None))
    return TepScores(float(fdr), float(far), 100 * float(far_normal), faults)


def run_tep(data_dir: Path, settings: Settings, out_dir: Path | None = None) -> TepResult:
    """The whole leg: product and PCA baseline on the same files, scored by score_tep.py."""
    scorer = load_scorer(data_dir)
    with tempfile.TemporaryDirectory(prefix="tep_") as tmp:
        root = out_dir or Path(tmp)
        product_dir, pca_dir = root / "monitor", root / "pca"
        run_product(data_dir, product_dir, settings, scorer)
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            scorer.run_pca(data_dir, pca_dir, PCA_COMPONENTS, None, "either")
        pca_model = buffer.getvalue().splitlines()[0] if buffer.getvalue() else "PCA baseline"
        return TepResult(scores(scorer, product_dir, data_dir), scores(scorer, pca_dir, data_dir),
                         tuple(scorer.EXCLUDED), pca_model)


def print_table(result: TepResult) -> None:
    """Per-fault FDR / FAR_pre / delay of the product and the PCA baseline, then the averages."""
    print(f"\n{'':5s} {'monitor':>24s}   {'PCA T2/Q (a=11)':>24s}")
    print(f"{'fault':>5s} {'FDR%':>7s} {'FAR_pre%':>9s} {'delay':>6s}   {'FDR%':>7s} {'FAR_pre%':>9s} {'delay':>6s}")
    for mine, base in zip(result.product.faults, result.pca.faults):
        mark = "*" if mine.fault in result.excluded else " "
        print(f"{mine.fault:>4d}{mark} {mine.fdr:7.1f} {mine.far_pre:9.1f} {_delay(mine.delay):>6s}   "
              f"{base.fdr:7.1f} {base.far_pre:9.1f} {_delay(base.delay):>6s}")
    print(f"(* = excluded from the averages; delay = rows of 3 min from onset to first flag; {result.pca_model})")
    for name, s in (("monitor", result.product), ("PCA T2/Q", result.pca)):
        print(f"{name:9s} FDR_avg={s.fdr:.1f}% FAR_avg={s.far:.1f}% FAR_normal={s.far_normal:.1f}% "
              f"(18 faults, excluding 3, 9, 15)")


def _delay(delay: int | None) -> str:
    return "-" if delay is None else str(delay)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="TEP data folder (default ../shared/data/tep)")
    parser.add_argument("--out", type=Path, default=None, help="Keep the outputs here (monitor/ and pca/).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared).")
    args = parser.parse_args(argv)
    settings = Settings()
    torch.set_num_threads(args.threads)
    data = (args.data or default_data_dir()).resolve()
    print(f"TEP: data {data}; model {settings.model.model_dump(exclude={'path'})}", flush=True)
    started = time.monotonic()
    try:
        result = run_tep(data, settings, args.out)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_table(result)
    print(f"\n{time.monotonic() - started:.0f}s")
    p = result.product
    print(f"TEP FDR_avg={p.fdr:.1f}% FAR_avg={p.far:.1f}% FAR_normal={p.far_normal:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
