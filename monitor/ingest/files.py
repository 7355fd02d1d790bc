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
    sensor_column: str | None = None,
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

    ``sensor_column``: the file holds several sensors' rows (in any interleaving), and this column names each
    row's sensor. Each sensor's rows are taken in file order and checked (``unordered``) on their own; the frame
    holds the sensors' histories end to end, in the order the sensors first appear, with ``attrs["sensors"]``
    (their names) and ``attrs["seams"]`` (the row where each history after the first begins). A row without a
    sensor is an error naming its line.
    """
    try:
        frame = pd.read_csv(path, sep=sep, dtype=None if sensor_column is None else {sensor_column: str})
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    except ValueError as exc:  # an argument pandas refuses for this file (a separator it cannot use)
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in ignore if c not in frame.columns]
    if missing and not ignore_missing_ok:
        raise DataError(f"{path}: --ignore names columns that do not exist: {missing}; columns are {list(frame.columns)}")
    frame = frame.drop(columns=[c for c in dict.fromkeys(ignore) if c in frame.columns])
    if sensor_column is None:
        return _timed(path, frame, np.arange(len(frame)) + 2, time_column, unordered)
    if sensor_column not in frame.columns:
        raise DataError(f"{path}: no sensor column {sensor_column!r}; columns are {list(frame.columns)}")
    if sensor_column == time_column:
        raise DataError(f"{path}: {sensor_column!r} cannot be both the time and the sensor column")
    sensors = frame.pop(sensor_column)
    blank = sensors.isna() | (sensors.astype(str).str.strip() == "")
    if blank.any():
        row = int(np.flatnonzero(blank.to_numpy())[0])
        raise DataError(f"{path}: line {row + 2} names no sensor in {sensor_column!r} ({int(blank.sum())} such rows)")
    codes, names = pd.factorize(sensors.astype(str).str.strip())  # names in the order they first appear
    order = np.argsort(codes, kind="stable")  # each sensor's rows together, in file order: O(n log n)
    parts: list[pd.DataFrame] = []
    seams: list[int] = []
    rows_so_far = moved = 0
    for name, rows in zip(names, np.split(order, np.flatnonzero(np.diff(codes[order])) + 1), strict=True):
        part = _timed(path, frame.iloc[rows].reset_index(drop=True), rows + 2, time_column, unordered,
                      f" (sensor {name!r})")
        if parts:
            seams.append(rows_so_far)
        rows_so_far += len(part)
        moved += int(part.attrs.get("unordered", 0))
        parts.append(part)
    out = pd.concat(parts)
    out.attrs.update(unordered=moved, sensors=[str(n) for n in names], seams=seams)
    return out


def sensor_parts(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """A frame of ``read_wide_csv`` as (sensor, its rows) pairs, from its ``attrs["sensors"]`` and
    ``attrs["seams"]``; one pair ``("", frame)`` for a frame read without a sensor column."""
    names = frame.attrs.get("sensors")
    if not names:
        return [("", frame)]
    bounds = [0, *frame.attrs["seams"], len(frame)]
    return [(name, frame.iloc[a:b]) for name, a, b in zip(names, bounds[:-1], bounds[1:], strict=True)]


REPEATED_SHARE = 0.5  # see refuse_interleaved
NEAR_STEP = 0.1  # see refuse_interleaved: a step this share of the mean step or less is "the same time"
NEAR_MIN_ROWS = 20  # see refuse_interleaved: fewer rows are judged by equal times only (a few random gaps could be short)


def refuse_interleaved(path: Path | str, frame: pd.DataFrame) -> None:
    """A DataError when more than half the rows of a frame read without a sensor column repeat the time of the
    row before (``REPEATED_SHARE``), or come so soon after it (within ``NEAR_STEP`` of the file's mean step, in a
    file of ``NEAR_MIN_ROWS`` rows or more: each sensor's clock a few milliseconds off the others', as a historian
    exports them): rows of several sensors interleaved in time, the column that tells them apart dropped, would be
    judged or trained on as one sensor's rows, each window a mix of sensors. One sensor's rows, regular or randomly
    spaced, have few such steps (Poisson arrivals: about a tenth). For the commands that train, judge or replay a
    file (a frame read without a time column has a made-up clock, one second a row)."""
    if frame.attrs.get("sensors") or len(frame) < 4:
        return
    seconds = np.asarray((frame.index - frame.index[0]).total_seconds(), dtype=np.float64)
    steps = np.diff(seconds)
    mean = float(seconds[-1]) / (len(seconds) - 1)
    close = steps <= mean * NEAR_STEP if len(frame) >= NEAR_MIN_ROWS else steps == 0
    if close.mean() <= REPEATED_SHARE:
        return
    first = int(np.flatnonzero(close)[0]) + 3
    repeated = int((steps == 0).sum())
    what = (f"{repeated} of {len(frame)} rows repeat the time of the row before" if repeated == close.sum() else
            f"{int(close.sum())} of {len(frame)} rows follow the row before within {NEAR_STEP:.0%} of the file's mean "
            f"step of {mean:.3g} s" + (f" ({repeated} at the same time)" if repeated else ""))
    raise DataError(
        f"{path}: {what} (first at line {first}): rows of several sensors? Name the column that tells them apart "
        "with --sensor-column; a clock coarser than the rows: --time-column ''")


def _timed(path: Path | str, frame: pd.DataFrame, lines: np.ndarray, time_column: str | None,
           unordered: Unordered, whose: str = "") -> pd.DataFrame:
    """``frame`` (as read; ``lines``: each row's line in the file) indexed by its time column, as
    ``read_wide_csv`` describes."""
    if time_column:
        if time_column not in frame.columns:
            raise DataError(f"{path}: no time column {time_column!r}; columns are {list(frame.columns)}")
        index = pd.to_datetime(frame.pop(time_column), utc=True, errors="coerce")
        if index.isna().any():
            raise DataError(f"{path}: {int(index.isna().sum())} unparseable timestamps in {time_column!r}{whose}")
        backwards = int((index.to_numpy()[1:] < np.maximum.accumulate(index.to_numpy())[:-1]).sum())
        if unordered == "stop":
            _check_time_order(path, time_column, index, lines, whose)
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
        raise DataError(f"{path}: non-numeric columns {bad}; drop them with --ignore" + (
            "" if whose else ", or, where one names each row's sensor, say so with --sensor-column (train, backtest, "
            "retrain --from-file)"))
    if frame.shape[1] == 0:
        raise DataError(f"{path}: no numeric channels")
    frame.index = pd.DatetimeIndex(index, name="timestamp")
    out = frame.astype(np.float32)
    out.attrs["unordered"] = frame.attrs.get("unordered", 0)
    return out


def _check_time_order(path: Path | str, time_column: str, index: pd.Series, lines: np.ndarray,
                      whose: str = "") -> None:
    """DataError at the first row whose timestamp is earlier than the previous row's (ties are allowed);
    ``lines``: each row's line in the file (the header is line 1)."""
    stamps = index.to_numpy()
    backwards = np.flatnonzero(stamps[1:] < stamps[:-1])
    if backwards.size:
        row = int(backwards[0]) + 1  # 0-based data row
        raise DataError(
            f"{path}: {time_column!r} goes backwards at line {int(lines[row])}{whose} ({index.iloc[row].isoformat()} "
            f"after {index.iloc[row - 1].isoformat()} on line {int(lines[row - 1])}); rows must be in time order: sort "
            "the file, or choose --unordered sort|drop"
        )
