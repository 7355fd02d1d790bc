"""Detection quality with ONE configuration on three legs (`make bench-quality`): SKAB, TEP, the fault taxonomy.

Every leg uses ``Settings()`` as read from the environment, unchanged (no per-leg model or threshold
overrides: the product must size itself for each data set). Legs:

* ``skab``: the SKAB protocol of :mod:`pipelines.bench.skab` (train on the first 400 rows of each labelled file,
  backtest the whole file, pooled point-wise F1/FAR on the test parts, NAB scores), with the plain settings;
* ``tep``: the Tennessee Eastman protocol of :mod:`pipelines.bench.tep`, scored by the data set's own script,
  beside its PCA baseline;
* ``taxonomy``: the synthetic series of :mod:`pipelines.bench.taxonomy` (every kind x seed), each trained on its
  training part and backtested over the whole series, scored by :mod:`pipelines.bench.taxonomy_score`.

Each leg prints a table; the last line of the output is ``quality: skab_f1=… skab_far=…% tep_fdr=…% tep_far=…%
tep_far_normal=…% taxonomy_recall=… taxonomy_false_per_day=…`` on one line (``n/a`` for a leg not run or
failed). Progress goes to stderr. See docs/quality.md.

Usage: ``python -m pipelines.bench.quality [--legs skab,tep,taxonomy] [--data-skab DIR] [--data-tep DIR]
[--seeds 2] [--quick] [--threads 1] [--per-series] [--train-share 1.0] [--spoil-history 0] [--spoil-shift]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from monitor.core.backtest import run_backtest
from monitor.core.scoring.train import train
from monitor.errors import MonitorError
from monitor.settings import Settings
from pipelines.bench import skab as bench_skab
from pipelines.bench import tep as bench_tep
from pipelines.bench.taxonomy import Series, taxonomy
from pipelines.bench.taxonomy_score import KindRow, SeriesOutcome, headline, score_series, summarise

LEGS = ("skab", "tep", "taxonomy")
FIGURES = (  # (key, format): the final line, in order
    ("skab_f1", "{:.3f}"), ("skab_far", "{:.1f}%"), ("tep_fdr", "{:.1f}%"), ("tep_far", "{:.1f}%"),
    ("tep_far_normal", "{:.1f}%"), ("taxonomy_recall", "{:.3f}"), ("taxonomy_false_per_day", "{:.3f}"),
)


def quality_line(figures: Mapping[str, float | None]) -> str:
    """The final line; a figure that is missing, None or NaN prints ``n/a``."""
    parts = []
    for key, fmt in FIGURES:
        value = figures.get(key)
        parts.append(f"{key}={'n/a' if value is None or value != value else fmt.format(value)}")
    return "quality: " + " ".join(parts)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- legs
def skab_leg(data: Path, settings: Settings, per_series: bool) -> dict[str, float]:
    files = bench_skab.labelled_files(data)
    print(f"\n== SKAB: {len(files)} files from {data} (train on the first {bench_skab.TRAIN_ROWS} rows of each)")
    started = time.monotonic()
    results = []
    for i, path in enumerate(files, 1):
        r = bench_skab.run_file(path, settings)
        results.append(r)
        if per_series:
            tp = int((r.anomaly & r.alarm).sum())
            fp = int(((1 - r.anomaly) & r.alarm).sum())
            print(f"  {r.name:14s} tp={tp:4d} fp={fp:4d} fn={int(r.anomaly.sum()) - tp:4d}", flush=True)
        _progress(f"[skab {i}/{len(files)}] {r.name} {time.monotonic() - started:.0f}s")
    f1, far, mar, nab = bench_skab.print_leaderboard(results)
    print(f"SKAB F1={f1:.3f} FAR={far:.1f}% MAR={mar:.1f}% NAB_std={nab.standard:.1f} "
          f"({time.monotonic() - started:.0f}s)")
    return {"skab_f1": f1, "skab_far": far}


def tep_leg(data: Path, settings: Settings) -> dict[str, float]:
    print(f"\n== TEP: {data} (train on train_normal.csv, score with its score_tep.py)")
    started = time.monotonic()
    result = bench_tep.run_tep(data, settings)
    bench_tep.print_table(result)
    print(f"TEP ({time.monotonic() - started:.0f}s)")
    p = result.product
    return {"tep_fdr": p.fdr, "tep_far": p.far, "tep_far_normal": p.far_normal}


def run_series(series: Series, settings: Settings) -> SeriesOutcome:
    """Train on the series' training part, backtest the whole series, score it."""
    bundle = train(series.frame.iloc[: series.train_rows], settings.model, source=series.name,
                   version="taxonomy")
    result = run_backtest(series.frame, bundle, settings.threshold, settings.alert, stride=1)
    table = result.table
    return score_series(
        series.name, series.kind, table["is_anomaly"].to_numpy(), table["score"].to_numpy(),
        table["threshold"].to_numpy(), series.frame.index, series.spans, series.train_rows,
        grace=bundle.meta.window_len,
    )


def taxonomy_leg(seeds: int, quick: bool, settings: Settings, per_series: bool,
                 train_share: float = 1.0, spikes: int = 0, shift: bool = False) -> dict[str, float]:
    all_series = [spoil(shorten(s, train_share), spikes, shift) for s in taxonomy(range(seeds), quick=quick)]
    shown = f", training on the last {train_share:.0%} of each training part" if train_share < 1.0 else ""
    shown += f", {spikes} spike(s) in each history" if spikes else ""
    shown += ", a lasting excursion in each history" if shift else ""
    print(f"\n== Taxonomy: {len(all_series)} series ({seeds} seed(s) per kind{', quick' if quick else ''}{shown})")
    started = time.monotonic()
    outcomes: list[SeriesOutcome] = []
    failed: list[tuple[Series, str]] = []
    for i, series in enumerate(all_series, 1):
        try:
            outcome = run_series(series, settings)
        except MonitorError as exc:  # a series the product refuses is reported, and its anomaly is missed
            failed.append((series, str(exc)))
            _progress(f"[taxonomy {i}/{len(all_series)}] {series.name} FAILED: {exc}")
            continue
        outcomes.append(outcome)
        if per_series:
            print_series(outcome)
        _progress(f"[taxonomy {i}/{len(all_series)}] {series.name} {time.monotonic() - started:.0f}s")
    outcomes += [missed(series) for series, _ in failed if not series.clean]
    print_taxonomy(outcomes)
    for series, reason in failed:
        print(f"REFUSED {series.name}: {reason}")
    recall, clean_rate, anomalous_rate = headline(outcomes)
    print(f"taxonomy recall={recall:.3f} (mean over kinds) false alerts per sensor-day: clean series "
          f"{clean_rate:.3f}, anomalous series outside their spans {anomalous_rate:.3f} "
          f"({time.monotonic() - started:.0f}s)")
    return {"taxonomy_recall": recall, "taxonomy_false_per_day": clean_rate}


def missed(series: Series) -> SeriesOutcome:
    """The outcome of an anomalous series the product refused to monitor: nothing found, no ratios."""
    n = len(series.frame)
    nothing, nan = np.zeros(n, dtype=np.int8), np.full(n, np.nan)
    return score_series(series.name, series.kind, nothing, nan, nan, series.frame.index, series.spans,
                        series.train_rows, grace=0)


def print_series(o: SeriesOutcome) -> None:
    spans = " ".join(f"[{s.start},{s.end}):{'found@+' + str(s.delay_rows) if s.found else 'MISSED'}" for s in o.spans)
    r = o.ratios
    print(f"  {o.name:22s} {spans or 'clean':32s} false={o.false_alerts:3d} over {o.test_days:5.2f} d "
          f"alerted={100 * o.alerted_share:5.1f}%  "
          f"thr/score={_ratio(r.median_over_score, 7)} thr/p99=[{_ratio(r.min_over_p99, 0)}, "
          f"{_ratio(r.max_over_p99, 0)}]", flush=True)


def print_taxonomy(outcomes: Sequence[SeriesOutcome]) -> None:
    """Two tables: anomaly kinds (recall, delay, false alerts outside spans), clean kinds (false alerts);
    both with the worst threshold ratios over their series."""
    rows = summarise(outcomes)
    ratio_head = f"{'thr/score':>9s} {'thr/p99 max':>11s} {'thr/p99 min':>11s}"
    print(f"\n{'anomaly kind':18s} {'n':>3s} {'found':>5s} {'recall':>6s} {'delay':>6s} {'delay_min':>9s} "
          f"{'false/day':>9s} {'alert%':>6s} {ratio_head}")
    for r in rows:
        if r.n_spans:
            print(f"{r.kind:18s} {r.n_series:3d} {r.n_found:5d} {r.recall:6.2f} {r.median_delay_rows:6.0f} "
                  f"{r.median_delay_min:9.0f} {r.false_per_day:9.2f} {100 * r.alerted_share:6.1f} {_ratios(r)}")
    print(f"\n{'clean kind':18s} {'n':>3s} {'sensor-days':>11s} {'false':>5s} {'false/day':>9s} {'alert%':>6s} "
          f"{ratio_head}")
    for r in rows:
        if not r.n_spans:
            print(f"{r.kind:18s} {r.n_series:3d} {r.test_days:11.1f} {r.false_alerts:5d} {r.false_per_day:9.3f} "
                  f"{100 * r.alerted_share:6.1f} {_ratios(r)}")
    print("(delay: median rows / minutes from the start to the first alerted row; false/day: alert openings outside"
          " every labelled span + one window, per sensor-day of the test part; alert%: mean share of those normal"
          " test rows under an alert; thr/score: worst median of"
          " threshold / score, thr/p99: highest and lowest threshold / 99th percentile of the normal test scores)")


def _ratios(r: KindRow) -> str:
    return f"{_ratio(r.worst_median_ratio, 9)} {_ratio(r.worst_max_ratio, 11)} {_ratio(r.lowest_min_ratio, 11)}"


def _ratio(value: float, width: int) -> str:
    """Two decimals, or three significant digits once a deaf threshold makes the ratio huge."""
    return f"{value:{width}.2f}" if abs(value) < 1e4 else f"{value:{width}.3g}"


# ---------------------------------------------------------------- entry point
def parse_legs(text: str) -> list[str]:
    legs = [leg.strip() for leg in text.split(",") if leg.strip()]
    unknown = [leg for leg in legs if leg not in LEGS]
    if unknown or not legs:
        raise argparse.ArgumentTypeError(f"legs must be a comma-separated subset of {','.join(LEGS)}; got {text!r}")
    return legs


def shorten(series: Series, share: float) -> Series:
    """``series`` with only the last ``share`` of its training part (the test part as it is): a short history, as
    when a stream's first 15 % is all there is to train on (0.5: 2 days of 5-minute rows, 1.5 weeks of hourly)."""
    if share >= 1.0:
        return series
    cut = series.train_rows - max(1, int(round(series.train_rows * share)))
    return dataclasses.replace(series, frame=series.frame.iloc[cut:], train_rows=series.train_rows - cut,
                               spans=tuple((a - cut, b - cut) for a, b in series.spans))


SPIKE_SDS = 8.0  # --spoil-history: each spike's size in the channel's training SDs
SPIKE_ROWS = 2
SHIFT_SDS = 4.0  # --spoil-shift: the excursion's size in the channel's training SDs
SHIFT_SHARE = 0.06  # --spoil-shift: its length, as a share of the training rows (6 hours of 4 days of 5-minute rows)


def spoil(series: Series, spikes: int, shift: bool = False) -> Series:
    """``series`` with anomalies in its history: ``spikes`` times, one judged channel (not an event channel) lifted
    by 8 of its training SDs, random sign, for 2 rows; with ``shift``, one judged channel lifted by 4 of its
    training SDs for 6 % of the training rows (a lasting incident: 6 hours of a 4-day history). Placed somewhere in
    the training part, seeded by the series' name. The training part is no longer clean, as a real stream's first
    days often are not; the test part and its labels are unchanged."""
    if spikes <= 0 and not shift:
        return series
    rng = np.random.default_rng(zlib.crc32(series.name.encode()))
    values = series.frame.to_numpy(copy=True)
    history = values[: series.train_rows]
    judged = [c for c, name in enumerate(series.frame.columns) if not str(name).startswith("event_")]
    sd = history.std(axis=0)
    for _ in range(spikes):
        row = int(rng.integers(series.train_rows // 8, series.train_rows - SPIKE_ROWS))
        c = judged[int(rng.integers(len(judged)))]
        values[row : row + SPIKE_ROWS, c] += SPIKE_SDS * sd[c] * float(rng.choice([-1.0, 1.0]))
    if shift:
        rows = max(SPIKE_ROWS, int(round(SHIFT_SHARE * series.train_rows)))
        row = int(rng.integers(series.train_rows // 8, series.train_rows - rows))
        c = judged[int(rng.integers(len(judged)))]
        values[row : row + rows, c] += SHIFT_SDS * sd[c]
    frame = pd.DataFrame(values, index=series.frame.index, columns=series.frame.columns)
    return dataclasses.replace(series, frame=frame)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--legs", type=parse_legs, default=list(LEGS), help="Comma-separated legs (default all).")
    parser.add_argument("--data-skab", type=Path, default=None, help="SKAB folder (default ../shared/data/skab).")
    parser.add_argument("--data-tep", type=Path, default=None, help="TEP folder (default ../shared/data/tep).")
    parser.add_argument("--seeds", type=int, default=2, help="Taxonomy seeds: each kind x seed is one series.")
    parser.add_argument("--quick", action="store_true", help="Smaller taxonomy: one seed, shorter test parts.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared).")
    parser.add_argument("--per-series", action="store_true", help="Print one line per file / series.")
    parser.add_argument("--train-share", type=float, default=1.0,
                        help="Taxonomy: train on the last share of each training part (0.5: a 2-day history).")
    parser.add_argument("--spoil-history", type=int, default=0, metavar="N",
                        help="Taxonomy: N spikes (8 SD, 2 rows) in each series' training part: a history that is "
                             "not clean.")
    parser.add_argument("--spoil-shift", action="store_true",
                        help="Taxonomy: one lasting excursion (4 SD, 6 %% of the training rows) in each series' "
                             "training part.")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if not 0.0 < args.train_share <= 1.0:
        parser.error("--train-share must be in (0, 1]")
    settings = Settings()
    torch.set_num_threads(args.threads)
    print(f"model {settings.model.model_dump(exclude={'path'})}")
    print(f"thresholds {settings.threshold.model_dump()}; alerts {settings.alert.model_dump()}", flush=True)
    figures: dict[str, float] = {}
    status = 0
    timings = []
    for leg in args.legs:
        started = time.monotonic()
        try:
            if leg == "skab":
                figures |= skab_leg((args.data_skab or bench_skab.default_data_dir()).resolve(), settings,
                                    args.per_series)
            elif leg == "tep":
                figures |= tep_leg((args.data_tep or bench_tep.default_data_dir()).resolve(), settings)
            else:
                figures |= taxonomy_leg(1 if args.quick else args.seeds, args.quick, settings, args.per_series,
                                        args.train_share, args.spoil_history, args.spoil_shift)
        except MonitorError as exc:
            print(f"error in leg {leg}: {exc}", file=sys.stderr)
            status = 1
        timings.append(f"{leg} {time.monotonic() - started:.0f}s")
    print(f"\nlegs: {', '.join(timings)}")
    print(quality_line(figures), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
