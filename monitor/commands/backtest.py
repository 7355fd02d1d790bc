"""`monitor backtest`: offline detection on a wide CSV through the streaming scorer, thresholds and alerts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import numpy as np
import typer

from monitor.errors import DataError, MonitorError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from monitor.core.backtest import BacktestResult


def backtest(
    input_csv: Annotated[Path, typer.Argument(
        help="Wide CSV: a time column + numeric channels, rows in time order (a timestamp earlier than the row "
        "before it is an error naming its line; equal timestamps are allowed).")],
    out: Annotated[Path, typer.Option(help="Output CSV: timestamp, score, threshold, is_anomaly per input row.")],
    train_rows: Annotated[Optional[int], typer.Option(help="Train on the first N rows of the input.")] = None,
    train_csv: Annotated[Optional[Path], typer.Option("--train", help="Train on this CSV instead.")] = None,
    model: Annotated[Optional[Path], typer.Option(help="Use this model artifact instead of training.")] = None,
    sep: Annotated[str, typer.Option(help="CSV separator.")] = ",",
    time_column: Annotated[str, typer.Option(help="Name of the time column ('' for none: 1 s clock).")] = "timestamp",
    ignore: Annotated[Optional[list[str]], typer.Option(help="Columns to drop, e.g. labels (repeatable); a name INPUT lacks is an error.")] = None,
    stride: Annotated[int, typer.Option(min=1, help="Rows between scored windows (1: every row).")] = 1,
    retrain_every: Annotated[Optional[int], typer.Option(min=1, help="Retrain on all rows seen, every N rows (same window length and architecture as the model).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed of training.")] = None,
    unordered: Annotated[str, typer.Option(
        help="Rows whose time is earlier than a row before them (a clock stepped back): 'stop' (an error naming "
        "the line), 'sort' (sort the rows by time; the output is in time order) or 'drop' (drop them; they get no "
        "output row).")] = "stop",
    sensor_column: Annotated[Optional[str], typer.Option(
        help="The column that names each row's sensor: INPUT (and --train FILE) hold a fleet's rows, in any "
        "interleaving. One model (a fleet's: --train-rows N takes each sensor's first N rows) judges each sensor's "
        "rows on their own; the output keeps the column, one sensor's rows after another's.")] = None,
) -> None:
    """Score every row of INPUT with the streaming path's scorer, thresholds and alert state machine.

    A row's score is the score of the window ending at that row; rows before the first full window get an
    empty score and is_anomaly 0. Prints a summary of the alerts found.
    """
    import pandas as pd

    from monitor.commands.common import fail, load_settings, screened_line
    from monitor.core.backtest import run_backtest
    from monitor.core.scoring.train import train
    from monitor.ingest.files import read_wide_csv, refuse_interleaved, sensor_parts
    from monitor.observe.progress import Bar
    from monitor.registry import model_files

    settings = load_settings()
    cfg = settings.model if seed is None else settings.model.model_copy(update={"seed": seed})
    if sum(x is not None for x in (train_rows, train_csv, model)) != 1:
        typer.secho("error: give exactly one of --train-rows N, --train FILE.csv or --model M.pt", fg="red", err=True)
        raise typer.Exit(2)
    try:
        if unordered not in ("stop", "sort", "drop"):
            raise DataError(f"--unordered {unordered!r}: one of stop, sort, drop")
        if sensor_column and retrain_every is not None:
            raise DataError("--retrain-every retrains on one sensor's rows: not with --sensor-column")
        frame = read_wide_csv(input_csv, sep=sep, time_column=time_column or None, ignore=ignore or [],
                              unordered=unordered, sensor_column=sensor_column or None)  # type: ignore[arg-type]
        refuse_interleaved(input_csv, frame)
        parts = sensor_parts(frame)
        if frame.attrs.get("unordered"):
            verb = "sorted into place" if unordered == "sort" else "dropped"
            typer.echo(f"{frame.attrs['unordered']} rows earlier than a row before them: {verb} (--unordered)",
                       err=True)
        if model is not None:
            bundle = model_files.load(model)
        else:
            if train_csv is not None:
                # --ignore names were checked against INPUT; a clean training file may lack the label columns.
                history = read_wide_csv(train_csv, sep=sep, time_column=time_column or None, ignore=ignore or [],
                                        ignore_missing_ok=True, unordered=unordered,  # type: ignore[arg-type]
                                        sensor_column=sensor_column or None)
                seams = list(history.attrs.get("seams") or [])
                sensors = len(history.attrs.get("sensors") or [None])
                history = history[[c for c in frame.columns if c in history.columns]]
                if list(history.columns) != list(frame.columns):
                    raise DataError(f"{train_csv} lacks channels of {input_csv}: {list(frame.columns)}")
            else:
                assert train_rows is not None
                short = [(name, len(part)) for name, part in parts if not 0 < train_rows < len(part)]
                if short:
                    name, n = short[0]
                    raise DataError(f"--train-rows {train_rows}: the input has {n} rows"
                                    + (f" of sensor {name!r}" if sensor_column else ""))
                firsts = [part.iloc[:train_rows] for _, part in parts]
                history = pd.concat(firsts)
                seams = [train_rows * k for k in range(1, len(firsts))]
                sensors = len(firsts)
            typer.echo(f"training on {len(history)} rows x {history.shape[1]} channels"
                       + (f" of {sensors} sensor(s)" if sensor_column else ""), err=True)
            with Bar("train", "epoch") as bar:
                bundle = train(history, cfg, source=str(train_csv or input_csv), version="backtest",
                               sensors=sensors, seams=seams, on_epoch=bar.epoch)
            if bundle.meta.training.get("screened_rows") or bundle.meta.training.get("incidents"):
                typer.echo(screened_line(bundle.meta.training), err=True)
        windows = [max(0, (len(part) - bundle.meta.window_len) // stride + 1) for _, part in parts]
        results = []
        with Bar("backtest", "win") as bar:  # one bar over every sensor's windows
            for k, (name, part) in enumerate(parts):
                results.append((name, run_backtest(
                    part, bundle, settings.threshold, settings.alert, stride=stride, retrain_every=retrain_every,
                    model_cfg=cfg, progress=lambda d, _n, before=sum(windows[:k]): bar.count(before + d, sum(windows)),  # type: ignore[misc]
                )))
    except MonitorError as exc:
        fail(exc)
    tables = []
    for name, result in results:
        table = result.table.copy()
        table.index = table.index.map(lambda t: t.isoformat())
        table["score"] = table["score"].map(lambda v: "" if np.isnan(v) else f"{v:.6g}")
        table["threshold"] = table["threshold"].map(lambda v: "" if np.isnan(v) else f"{v:.6g}")
        if sensor_column:
            table.insert(0, sensor_column, name)
        tables.append(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(tables).to_csv(out, index_label="timestamp")
    _summary(results, sensor_column or None, out)


def _summary(results: Sequence[tuple[str, BacktestResult]], sensor_column: str | None, out: Path) -> None:
    for name, result in results:
        whose = f"sensor {name!r}: " if sensor_column else ""
        typer.echo(f"{whose}{len(result.table)} rows, {result.flagged_rows} flagged, {len(result.alerts)} alerts "
                   f"(models: {', '.join(result.models)})" + ("" if sensor_column else f"; rows written to {out}"))
        for a in result.alerts:
            closed = a.closed_at.isoformat() if a.closed_at else "still open"
            typer.echo(f"  alert {a.opened_at.isoformat()} -> {closed}  windows={a.window_count} "
                       f"severity={a.severity} peak={a.peak_score:.3g} (threshold {a.threshold_at_peak:.3g}) "
                       f"channels={','.join(a.top_channels)}")
    if sensor_column:
        typer.echo(f"rows of {len(results)} sensors written to {out} (column {sensor_column!r})")
    sys.stdout.flush()
