"""`monitor backtest`: offline detection on a wide CSV through the streaming scorer, thresholds and alerts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from monitor.errors import DataError, MonitorError


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
) -> None:
    """Score every row of INPUT with the streaming path's scorer, thresholds and alert state machine.

    A row's score is the score of the window ending at that row; rows before the first full window get an
    empty score and is_anomaly 0. Prints a summary of the alerts found.
    """
    from monitor.commands.common import fail, load_settings, screened_line
    from monitor.core.backtest import run_backtest
    from monitor.core.scoring.train import train
    from monitor.ingest.files import read_wide_csv
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
        frame = read_wide_csv(input_csv, sep=sep, time_column=time_column or None, ignore=ignore or [],
                              unordered=unordered)  # type: ignore[arg-type]
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
                                        ignore_missing_ok=True, unordered=unordered)  # type: ignore[arg-type]
                history = history[[c for c in frame.columns if c in history.columns]]
                if list(history.columns) != list(frame.columns):
                    raise DataError(f"{train_csv} lacks channels of {input_csv}: {list(frame.columns)}")
            else:
                assert train_rows is not None
                if not 0 < train_rows < len(frame):
                    raise DataError(f"--train-rows {train_rows}: the input has {len(frame)} rows")
                history = frame.iloc[:train_rows]
            typer.echo(f"training on {len(history)} rows x {history.shape[1]} channels", err=True)
            with Bar("train", "epoch") as bar:
                bundle = train(history, cfg, source=str(train_csv or input_csv), version="backtest",
                               on_epoch=bar.epoch)
            if bundle.meta.training.get("screened_rows") or bundle.meta.training.get("incidents"):
                typer.echo(screened_line(bundle.meta.training), err=True)
        with Bar("backtest", "win") as bar:
            result = run_backtest(
                frame, bundle, settings.threshold, settings.alert, stride=stride, retrain_every=retrain_every,
                model_cfg=cfg, progress=bar.count,
            )
    except MonitorError as exc:
        fail(exc)
    table = result.table.copy()
    table.index = table.index.map(lambda t: t.isoformat())
    table["score"] = table["score"].map(lambda v: "" if np.isnan(v) else f"{v:.6g}")
    table["threshold"] = table["threshold"].map(lambda v: "" if np.isnan(v) else f"{v:.6g}")
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index_label="timestamp")
    _summary(result, len(table), out)


def _summary(result: object, n_rows: int, out: Path) -> None:
    from monitor.core.backtest import BacktestResult

    assert isinstance(result, BacktestResult)
    typer.echo(f"{n_rows} rows, {result.flagged_rows} flagged, {len(result.alerts)} alerts "
               f"(models: {', '.join(result.models)}); rows written to {out}")
    for a in result.alerts:
        closed = a.closed_at.isoformat() if a.closed_at else "still open"
        typer.echo(f"  alert {a.opened_at.isoformat()} -> {closed}  windows={a.window_count} "
                   f"severity={a.severity} peak={a.peak_score:.3g} (threshold {a.threshold_at_peak:.3g}) "
                   f"channels={','.join(a.top_channels)}")
    sys.stdout.flush()
