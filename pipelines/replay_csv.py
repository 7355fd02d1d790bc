"""Replay a wide CSV (a time column + numeric channels) as sensor windows on Kafka.

    python -m pipelines.replay_csv data.csv --sensor-id pump-1 --sep ';' --time-column datetime \
        --ignore anomaly --ignore changepoint --window-len 64 --stride 64
    python -m pipelines.replay_csv fleet.csv --sensor-column sensor_id   # a fleet's rows, one column naming each sensor

With ``--sensor-column`` each sensor's rows (in any interleaving in the file) are cut into that sensor's own
windows, keyed by its name, and the fleet's windows are sent in the order of their last row's time, as the sensors
would have sent them. Without it, a file whose rows mostly repeat the time of the row before, or nearly (several
sensors' rows with the column that names them dropped, their clocks the same or milliseconds apart), is refused:
its windows would mix sensors.

Without ``--window-len`` the windows have the length the monitor scores: that of the model artifact at
settings ``model.path`` when it exists, else settings ``model.window_len`` (windows of another length are
dead letters with reason ``shape``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import pandas as pd
import typer

from monitor.core.windows import sliding_windows, window_starts
from monitor.errors import DataError, MonitorError
from monitor.ingest.files import read_wide_csv, refuse_interleaved, sensor_parts
from monitor.ingest.kafka import ensure_topics, make_producer
from monitor.registry import model_files
from monitor.settings import ModelSettings, Settings
from pipelines.produce import send_windows

app = typer.Typer(add_completion=False)


def default_window_len(model: ModelSettings) -> tuple[int, str]:
    """(rows per window, where that came from): the window length of the artifact at ``model.path`` when that
    file exists, else ``model.window_len``. Raises ArtifactError for an unreadable artifact."""
    if model.path.is_file():
        return model_files.read_meta(model.path).window_len, f"model {model.path}"
    return model.window_len, "settings model.window_len"


Window = tuple[str, datetime, datetime, np.ndarray]


def fleet_windows(parts: list[tuple[str, pd.DataFrame]], window_len: int, stride: int) -> tuple[list[Window], dict[str, int]]:
    """The windows of each (sensor, its rows) part, cut from that part alone, merged in the order of their last
    row's time (stable: at equal times, the sensors' order in ``parts``, and each sensor's own order); and how many
    windows each sensor got (0 for one with fewer rows than a window)."""
    flat: list[Window] = []
    ends: list[np.ndarray] = []
    ranks: list[np.ndarray] = []
    counts: dict[str, int] = {}
    for rank, (sensor, rows) in enumerate(parts):
        starts = window_starts(len(rows), window_len, stride)
        counts[sensor] = len(starts)
        index = rows.index
        last = index[starts + window_len - 1]
        flat += [(sensor, index[s].to_pydatetime(), e.to_pydatetime(), w)
                 for s, e, w in zip(starts, last, sliding_windows(rows.to_numpy(), window_len, stride))]
        ends.append(last.asi8)
        ranks.append(np.full(len(starts), rank))
    order = np.lexsort((np.concatenate(ranks), np.concatenate(ends)))  # by end time, then by sensor (stable)
    return [flat[i] for i in order], counts


@app.command()
def main(
    csv_path: Annotated[Path, typer.Argument(help="Wide CSV file.")],
    sensor_id: Annotated[str, typer.Option(help="Sensor id (the record key).")] = "",
    sep: Annotated[str, typer.Option(help="CSV separator.")] = ",",
    time_column: Annotated[str, typer.Option(help="Time column ('' for none: 1 s steps).")] = "timestamp",
    ignore: Annotated[Optional[list[str]], typer.Option(help="Columns to drop (repeatable).")] = None,
    window_len: Annotated[Optional[int], typer.Option(
        min=1, help="Rows per window (default: the window length of the model at settings model.path, "
        "else settings model.window_len).")] = None,
    stride: Annotated[Optional[int], typer.Option(help="Rows between window starts (default: window_len).")] = None,
    topic: Annotated[Optional[str], typer.Option(help="Topic (default: settings kafka.topic).")] = None,
    rate: Annotated[Optional[float], typer.Option(help="Windows per second (default: as fast as possible).")] = None,
    sensor_column: Annotated[Optional[str], typer.Option(
        help="The column that names each row's sensor: the CSV holds a fleet's rows, in any interleaving. Each "
        "sensor's rows (in time order on their own) are cut into its own windows, keyed by its name, and the "
        "fleet's windows are sent in the order of their last row's time. Not with --sensor-id.")] = None,
    unordered: Annotated[str, typer.Option(
        help="Rows whose time is earlier than a row before them (of the same sensor, with --sensor-column): "
        "'stop' (an error naming the line), 'sort' (sort them into place) or 'drop' (leave them out).")] = "stop",
) -> None:
    """Cut the CSV into windows and produce them, keyed by sensor id."""
    settings = Settings()
    try:
        if window_len is None:
            window_len, origin = default_window_len(settings.model)
            typer.echo(f"window length {window_len} (from {origin})", err=True)
        if unordered not in ("stop", "sort", "drop"):
            raise DataError(f"--unordered {unordered!r}: one of stop, sort, drop")
        if sensor_column and sensor_id:
            raise DataError("--sensor-id names the one sensor of a file: not with --sensor-column, whose values "
                            "name each row's sensor")
        frame = read_wide_csv(csv_path, sep=sep, time_column=time_column or None, ignore=ignore or [],
                              unordered=unordered, sensor_column=sensor_column or None)  # type: ignore[arg-type]
        refuse_interleaved(csv_path, frame)
        if frame.attrs.get("unordered"):
            verb = "sorted into place" if unordered == "sort" else "dropped"
            typer.echo(f"{frame.attrs['unordered']} rows earlier than a row before them: {verb} (--unordered)",
                       err=True)
        sid = sensor_id or csv_path.stem
        parts = [(name or sid, rows) for name, rows in sensor_parts(frame)]
        items, counts = fleet_windows(parts, window_len, stride or window_len)
        short = [name for name, n in counts.items() if n == 0]
        if not items:
            raise typer.BadParameter(
                f"no sensor in {sensor_column!r} has the {window_len} rows of one window" if sensor_column
                else f"{len(frame)} rows are fewer than one window of {window_len}")
        if short:
            typer.echo(f"{len(short)} sensor(s) with fewer rows than one window of {window_len}, not sent: "
                       + ", ".join(repr(n) for n in short[:10]) + (" ..." if len(short) > 10 else ""), err=True)
        topic_name = topic or settings.kafka.topic
        ensure_topics(settings.kafka, [topic_name, settings.kafka.dlq_topic])
        producer = make_producer(settings.kafka)
        sent = send_windows(producer, topic_name, items, list(frame.columns), total=len(items), rate_per_s=rate)
        producer.close()
    except MonitorError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    who = f"{len(counts) - len(short)} sensors ({sensor_column!r})" if sensor_column else sid
    typer.echo(f"sent {sent} windows of {window_len} x {frame.shape[1]} from {csv_path} as {who} to {topic_name}")


if __name__ == "__main__":
    app()
