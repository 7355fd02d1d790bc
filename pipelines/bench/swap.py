"""Alert rates across a model swap (`make bench-swap`): do the thresholds survive a retrain?

Per SKAB file (the `make bench-skab` protocol): model A is trained on rows [0, 400), as in bench-skab; model B,
like a scheduled retrain, on rows [0, swap-at - shadow) less those under A's alerts; at row ``--swap-at`` (650) the engine hot-swaps
(``Engine.swap``, the consumers' path) to B. The file streams four ways: A throughout (no swap); the swap with
each sensor's thresholds re-warmed from B's calibration (``threshold.carry_on_swap=false``); carried to B's scale
(the default); and with B run as the shadow over the ``--shadow`` (150) rows before the swap, its contexts taken
at the swap. Per mode: the false-alarm rate on normal rows in the ``--after`` rows following the swap (and, for
reference, in as many rows before it) and F1 / FAR over the whole test part (rows 400..end), pooled over files.
The Tennessee Eastman normal run gets the same treatment (A on train_normal; B on train_normal plus the test
run's first 360 rows; shadow from there; swap at row 600 of 960): false alarms after the swap. Labels are read
only for scoring.

SKAB's own anomaly-free run (9,405 normal rows) is where "the alert rate across a swap" is measured cleanly (in
the labelled files the rows after row 650 are mostly the labelled anomaly: the FAR after the swap there pools the
normal rows of a few files): model A trained on its first 400 rows streams it throughout; at each of
``--free-swaps`` (1500, 3000, 4500, 6000, 7500) a separate stream swaps to a model B trained like a scheduled
retrain on the ``--lookback`` (2000) rows before its shadow period, and the false-alarm rate in the ``--free-after``
(500) rows after the swap is compared with A's over the same rows.

Ends with ``swap: far_before=<%> far_after_<mode>=<%>... f1_<mode>=<n>... tep_far_after_<mode>=<%>...
free_far_<mode>=<%>... free_worst_<mode>=<points>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from monitor.core.backtest import window_records
from monitor.core.engine import Engine
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer
from monitor.core.scoring.train import train
from monitor.ingest.files import read_wide_csv
from monitor.settings import Settings, ThresholdSettings
from pipelines.bench import skab as bench_skab
from pipelines.bench import tep as bench_tep

MODES = ("none", "rewarm", "carry", "shadow", "gated")


def stream(frame: pd.DataFrame, a: ModelBundle, b: ModelBundle | None, swap_at: int, cfg: ThresholdSettings,
           settings: Settings, shadow_from: int | None = None, opened: list[int] | None = None) -> np.ndarray:
    """Alarm flag per row (alert active after the window ending there), swapping to ``b`` at row ``swap_at``;
    ``shadow_from``: ``b`` judges the same windows as a shadow from that row, and the swap takes its contexts;
    ``opened`` gets, over the shadow period, the alerts each model opened and the windows each had in an alert
    ([opened active, opened shadow, in-alert active, in-alert shadow])."""
    engine = Engine(Scorer(a), cfg, settings.alert)
    shadow: Engine | None = None
    flags = np.zeros(len(frame), dtype=np.int8)
    batch: list[Any] = []
    swapped = b is None
    counts = opened if opened is not None else [0, 0, 0, 0]
    counts[:] = [0, 0, 0, 0]

    def run() -> None:
        for record, decision in engine.process(batch).decisions:
            flags[record.offset] = int(decision.active)
            if shadow is not None:
                counts[0] += decision.opened
                counts[2] += decision.active
        if shadow is not None:
            for _, d in shadow.process(batch).decisions:
                counts[1] += d.opened
                counts[3] += d.active
        batch.clear()

    for record in window_records(frame, a.meta.window_len, 1):
        if b is not None and shadow is None and shadow_from is not None and not swapped and \
                record.offset >= shadow_from:
            run()
            shadow = Engine(Scorer(b), cfg, settings.alert)
        if not swapped and record.offset >= swap_at:
            run()
            assert b is not None
            engine.swap(b, shadow.sensors if shadow is not None else None)
            shadow = None
            swapped = True
        batch.append(record)
        if len(batch) >= 256:
            run()
    run()
    return flags


def modes(settings: Settings) -> dict[str, ThresholdSettings]:
    return {"none": settings.threshold,
            "rewarm": settings.threshold.model_copy(update={"carry_on_swap": False}),
            "carry": settings.threshold.model_copy(update={"carry_on_swap": True}),
            "shadow": settings.threshold, "gated": settings.threshold}


def far(alarm: np.ndarray, normal: np.ndarray) -> float:
    return 100.0 * float(alarm[normal].mean()) if normal.any() else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skab", type=Path, default=None, help="SKAB folder (default ../shared/data/skab)")
    parser.add_argument("--tep", type=Path, default=None, help="TEP folder (default ../shared/data/tep)")
    parser.add_argument("--limit", type=int, default=None, help="Only the first N SKAB files.")
    parser.add_argument("--swap-at", type=int, default=650, help="SKAB row at which model B is swapped in.")
    parser.add_argument("--shadow", type=int, default=150,
                        help="Rows B runs as the shadow before the swap (B is trained on the rows before those).")
    parser.add_argument("--after", type=int, default=150, help="Rows after (and before) the swap that are compared.")
    parser.add_argument("--free-swaps", default="1500,3000,4500,6000,7500",
                        help="Rows of the anomaly-free run at which B is swapped in (one stream each; '' skips it).")
    parser.add_argument("--free-after", type=int, default=500, help="Rows after each anomaly-free swap compared.")
    parser.add_argument("--lookback", type=int, default=2000, help="Rows a model B of the anomaly-free run is "
                        "trained on (those before its shadow period).")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = Settings()
    chosen = settings.model.model_fields_set
    skab_model = settings.model.model_copy(update={k: v for k, v in bench_skab.SKAB_MODEL.items() if k not in chosen})
    cfgs = modes(settings)
    started = time.monotonic()
    files = bench_skab.labelled_files((args.skab or bench_skab.default_data_dir()).resolve())[: args.limit]
    start, stop = args.swap_at, args.swap_at + args.after
    before: list[np.ndarray] = []
    after: dict[str, list[np.ndarray]] = {m: [] for m in MODES}
    results: dict[str, list[bench_skab.FileResult]] = {m: [] for m in MODES}
    promoted = 0  # files whose shadow period would have promoted B
    opened = [0, 0, 0, 0]
    for i, path in enumerate(files, 1):
        frame = read_wide_csv(path, sep=";", time_column="datetime")
        labels = frame[list(bench_skab.LABELS)].to_numpy(dtype=np.int8)
        frame = frame.drop(columns=list(bench_skab.LABELS))
        a = train(frame.iloc[: bench_skab.TRAIN_ROWS], skab_model, version="a")
        # B, like a scheduled retrain, learns from the history without the rows under A's alerts
        # (monitor.training.exclusion); A's own training rows stay in
        cut = start - args.shadow
        alone = stream(frame.iloc[:cut], a, None, cut, cfgs["none"], settings).astype(bool)
        alone[: bench_skab.TRAIN_ROWS] = False
        b = train(frame.iloc[:cut][~alone], skab_model, version="b")
        normal = labels[:, 0] == 0
        flags: dict[str, np.ndarray] = {}
        for mode in MODES:
            if mode == "gated":  # registry.shadow_min_windows + the scheduler: promoted only if no noisier
                quiet = opened[1] <= opened[0] and opened[3] <= opened[2]  # as monitor.registry.shadow.settle
                alarm = flags["shadow"] if quiet else flags["none"]
                promoted += quiet
            else:
                opened = [0, 0, 0, 0]
                alarm = flags[mode] = stream(frame, a, None if mode == "none" else b, start, cfgs[mode], settings,
                                             shadow_from=start - args.shadow if mode == "shadow" else None,
                                             opened=opened)
            if mode == "none":
                before.append(np.stack([alarm[start - args.after : start], normal[start - args.after : start]]))
            after[mode].append(np.stack([alarm[start:stop], normal[start:stop]]))
            t = bench_skab.TRAIN_ROWS
            results[mode].append(bench_skab.FileResult(path.name, frame.index[t:], labels[t:, 0], labels[t:, 1],
                                                       alarm[t:]))
        print(f"[{i}/{len(files)}] {path.parent.name}/{path.name} {time.monotonic() - started:.0f}s", file=sys.stderr,
              flush=True)

    def pooled(parts: list[np.ndarray]) -> float:
        joined = np.concatenate(parts, axis=1)
        return far(joined[0], joined[1].astype(bool))

    far_before = pooled(before)
    print(f"SKAB, {len(files)} files, swap at row {start}: false alarms on normal rows")
    print("| mode | FAR in the 150 rows before | FAR in the rows after | F1 (rows 400..) | FAR (rows 400..) |")
    print("|---|---|---|---|---|")
    figures: dict[str, tuple[float, float]] = {}
    for mode in MODES:
        f1, far_all, _ = bench_skab.pointwise(results[mode])
        figures[mode] = (pooled(after[mode]), f1)
        print(f"| {mode} | {far_before:.1f} % | {figures[mode][0]:.1f} % | {f1:.3f} | {far_all:.1f} % |")

    tep_dir = (args.tep or bench_tep.default_data_dir()).resolve()
    train_frame = read_wide_csv(tep_dir / "train_normal.csv", ignore=["anomaly"])
    test_frame = read_wide_csv(tep_dir / "test_normal.csv", ignore=["anomaly"])
    model = settings.model
    a = train(train_frame, model, version="a")
    middle = len(test_frame) * 5 // 8
    trained_to = middle - len(test_frame) // 4  # B: trained on the rows before its shadow period
    # the retrain's history: the training rows, then the test run's rows up to there moved to follow them in time
    shifted = test_frame.iloc[:trained_to].copy()
    shifted.index = train_frame.index[-1] + (shifted.index - shifted.index[0]) + (train_frame.index[1] - train_frame.index[0])
    seen = pd.concat([train_frame, shifted])
    b = train(seen, model, version="b")
    tep_after: dict[str, float] = {}
    tep_flags: dict[str, np.ndarray] = {}
    tep_promoted = False
    for mode in MODES:
        if mode == "gated":
            tep_promoted = opened[1] <= opened[0] and opened[3] <= opened[2]
            alarm = tep_flags["shadow"] if tep_promoted else tep_flags["none"]
        else:
            opened = [0, 0, 0, 0]
            alarm = tep_flags[mode] = stream(test_frame, a, None if mode == "none" else b, middle, cfgs[mode],
                                             settings, shadow_from=trained_to if mode == "shadow" else None,
                                             opened=opened)
        tep_after[mode] = far(alarm[middle:], np.ones(len(test_frame) - middle, dtype=bool))
    print(f"gated: the shadow period (no more alerts opened, no more windows in an alert than the active model) "
          f"promoted B in {promoted} of "
          f"{len(files)} SKAB files")
    print(f"\nTEP normal run, swap at row {middle} of {len(test_frame)}: false alarms after the swap: "
          + ", ".join(f"{m} {v:.1f} %" for m, v in tep_after.items())
          + f" (gated: B {'promoted' if tep_promoted else 'not promoted'})")
    free = anomaly_free(args, skab_model, cfgs, settings,
                        (args.skab or bench_skab.default_data_dir()).resolve() / "anomaly-free" / "anomaly-free.csv")
    print(f"({time.monotonic() - started:.0f}s)")
    print(f"swap: far_before={far_before:.1f}% " + " ".join(f"far_after_{m}={figures[m][0]:.1f}%" for m in MODES)
          + " " + " ".join(f"f1_{m}={figures[m][1]:.3f}" for m in MODES) + " "
          + " ".join(f"tep_far_after_{m}={tep_after[m]:.1f}%" for m in MODES) + f" gated_promoted={promoted} "
          + " ".join(f"free_far_{m}={v[0]:.1f}%" for m, v in free.items()) + " "
          + " ".join(f"free_worst_{m}={v[1]:+.1f}" for m, v in free.items() if m != "none"))
    return 0


def anomaly_free(args: argparse.Namespace, model: Any, cfgs: dict[str, ThresholdSettings], settings: Settings,
                 path: Path) -> dict[str, tuple[float, float]]:
    """The anomaly-free leg: per mode, (pooled FAR in the rows after the swaps, worst difference in percentage
    points from A's FAR over the same rows at one swap); {} when the file or the swap list is absent."""
    points = [int(p) for p in str(args.free_swaps).split(",") if p.strip()]
    if not points or not path.is_file():
        if points:
            print(f"anomaly-free run: {path} not found, skipped", file=sys.stderr)
        return {}
    frame = read_wide_csv(path, sep=";", time_column="datetime")
    frame = frame.drop(columns=[c for c in bench_skab.LABELS if c in frame.columns])
    a = train(frame.iloc[: bench_skab.TRAIN_ROWS], model, version="a")
    base = stream(frame, a, None, len(frame), cfgs["none"], settings)
    rows: dict[str, list[float]] = {m: [] for m in MODES}
    print(f"\nSKAB anomaly-free run ({len(frame)} rows), A on rows [0, {bench_skab.TRAIN_ROWS}), B on the "
          f"{args.lookback} rows before its {args.shadow}-row shadow period: false alarms in the {args.free_after} "
          "rows after the swap")
    print("| swap at | " + " | ".join(MODES) + " |")
    print("|---|" + "---|" * len(MODES))
    for point in points:
        if point + args.free_after > len(frame) or point - args.shadow <= bench_skab.TRAIN_ROWS:
            continue
        b = train(frame.iloc[max(0, point - args.shadow - args.lookback) : point - args.shadow], model, version="b")
        after = slice(point, point + args.free_after)
        flags = {"none": base}
        opened = [0, 0, 0, 0]
        for mode in ("rewarm", "carry", "shadow"):
            counts = [0, 0, 0, 0]
            flags[mode] = stream(frame, a, b, point, cfgs[mode], settings,
                                 shadow_from=point - args.shadow if mode == "shadow" else None, opened=counts)
            if mode == "shadow":
                opened = counts
        quiet = opened[1] <= opened[0] and opened[3] <= opened[2]
        flags["gated"] = flags["shadow"] if quiet else base
        for mode in MODES:
            rows[mode].append(100.0 * float(flags[mode][after].mean()))
        print(f"| {point} | " + " | ".join(f"{rows[m][-1]:.1f} %" for m in MODES) + " |", flush=True)
    if not rows["none"]:
        return {}
    none = np.asarray(rows["none"])
    return {m: (float(np.mean(v)), float((np.asarray(v) - none).max())) for m, v in rows.items()}


if __name__ == "__main__":
    sys.exit(main())
