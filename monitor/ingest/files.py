"""Reading a wide CSV (a timestamp column + numeric channels) into a frame: the file adapter of `monitor train`,
`monitor backtest`, `monitor retrain --from-file`, the CSV replay and the benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from monitor.errors import DataError

Unordered = Literal["stop", "sort", "drop"]


def read_wide_csv(
    path: Path | str,
    *,
    sep: str = ",",
    time_column: str | None = "timestamp",
    ignore: Sequence[str] = (),
    ignore_missing_ok: bool = False,
    unordered: Unordered = "stop",
) -> pd.DataFrame:
    """Read a wide CSV (a timestamp column + numeric channels) into a frame indexed by aware UTC time.

    Non-numeric columns other than the timestamp are an error that names them; ``ignore`` drops columns
    (labels, for example). An ``ignore`` name the file lacks is an error (a typo would otherwise turn a label
    column into an input channel) unless ``ignore_missing_ok`` (the names were already checked on another file).
    Timestamps must not go backwards (thresholds and alerts are sequential). ``unordered`` says what to do with
    rows whose time is earlier than a row before them (a clock stepped back, rows appended late): ``stop`` (the
    default) is an error naming the first such line (the header is line 1); ``sort`` sorts the rows by time
    (stable: equal times keep their file order); ``drop`` drops every row earlier than the latest time before
    it. The frame's ``attrs["unordered"]`` holds how many rows were moved or dropped. Equal timestamps are
    allowed and keep their file order.
    Without a time column, a 1 s clock from the Unix epoch is used.
    """
    try:
        frame = pd.read_csv(path, sep=sep)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in ignore if c not in frame.columns]
    if missing and not ignore_missing_ok:
        raise DataError(f"{path}: --ignore names columns that do not exist: {missing}; columns are {list(frame.columns)}")
    frame = frame.drop(columns=[c for c in dict.fromkeys(ignore) if c in frame.columns])
    if time_column:
        if time_column not in frame.columns:
            raise DataError(f"{path}: no time column {time_column!r}; columns are {list(frame.columns)}")
        index = pd.to_datetime(frame.pop(time_column), utc=True, errors="coerce")
        if index.isna().any():
            raise DataError(f"{path}: {int(index.isna().sum())} unparseable timestamps in {time_column!r}")
        backwards = int((index.to_numpy()[1:] < np.maximum.accumulate(index.to_numpy())[:-1]).sum())
        if unordered == "stop":
            _check_time_order(path, time_column, index)
        elif backwards and unordered == "sort":
            order = np.argsort(index.to_numpy(), kind="stable")
            frame, index = frame.iloc[order], index.iloc[order]
        elif backwards and unordered == "drop":
            values = index.to_numpy()
            keep = np.concatenate([[True], values[1:] >= np.maximum.accumulate(values)[:-1]])
            frame, index = frame[keep], index[keep]
        elif unordered not in ("sort", "drop"):
            raise DataError(f"unordered={unordered!r}: one of stop, sort, drop")
        frame = frame.reset_index(drop=True)
        index = index.reset_index(drop=True)
        frame.attrs["unordered"] = backwards if unordered != "stop" else 0
    else:
        index = pd.to_datetime(np.arange(len(frame)), unit="s", utc=True)
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise DataError(f"{path}: non-numeric columns {bad}; drop them with --ignore")
    if frame.shape[1] == 0:
        raise DataError(f"{path}: no numeric channels")
    frame.index = pd.DatetimeIndex(index, name="timestamp")
    out = frame.astype(np.float32)
    out.attrs["unordered"] = frame.attrs.get("unordered", 0)
    return out


def _check_time_order(path: Path | str, time_column: str, index: pd.Series) -> None:
    """DataError at the first row whose timestamp is earlier than the previous row's (ties are allowed)."""
    stamps = index.to_numpy()
    backwards = np.flatnonzero(stamps[1:] < stamps[:-1])
    if backwards.size:
        row = int(backwards[0]) + 1  # 0-based data row; its line counts the header as line 1
        raise DataError(
            f"{path}: {time_column!r} goes backwards at line {row + 2} ({index.iloc[row].isoformat()} after "
            f"{index.iloc[row - 1].isoformat()} on line {row + 1}); rows must be in time order: sort the file, or choose --unordered sort|drop"
        )
