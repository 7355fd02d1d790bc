"""Replay a wide CSV (a time column + numeric channels) as sensor windows on Kafka.

    python -m pipelines.replay_csv data.csv --sensor-id pump-1 --sep ';' --time-column datetime \
        --ignore anomaly --ignore changepoint --window-len 64 --stride 64

Without ``--window-len`` the windows have the length the monitor scores: that of the model artifact at
settings ``model.path`` when it exists, else settings ``model.window_len`` (windows of another length are
dead letters with reason ``shape``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from monitor.core.windows import sliding_windows, window_starts
from monitor.errors import MonitorError
from monitor.ingest.files import read_wide_csv
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
) -> None:
    """Cut the CSV into windows and produce them, keyed by sensor id."""
    settings = Settings()
    try:
        if window_len is None:
            window_len, origin = default_window_len(settings.model)
            typer.echo(f"window length {window_len} (from {origin})", err=True)
        frame = read_wide_csv(csv_path, sep=sep, time_column=time_column or None, ignore=ignore or [])
        values = frame.to_numpy()
        step = stride or window_len
        windows = sliding_windows(values, window_len, step)
        starts = window_starts(len(values), window_len, step)
        if len(windows) == 0:
            raise typer.BadParameter(f"{len(values)} rows are fewer than one window of {window_len}")
        sid = sensor_id or csv_path.stem
        topic_name = topic or settings.kafka.topic
        ensure_topics(settings.kafka, [topic_name, settings.kafka.dlq_topic])
        producer = make_producer(settings.kafka)
        index = frame.index
        items = ((sid, index[s].to_pydatetime(), index[s + window_len - 1].to_pydatetime(), w)
                 for s, w in zip(starts, windows))
        sent = send_windows(producer, topic_name, items, list(frame.columns), total=len(windows), rate_per_s=rate)
        producer.close()
    except MonitorError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    typer.echo(f"sent {sent} windows of {window_len} x {frame.shape[1]} from {csv_path} as {sid} to {topic_name}")


if __name__ == "__main__":
    app()
