"""The `monitor` command line: the one place (with the pipelines) where settings are read and wired."""

from __future__ import annotations

import csv
import gc
import json
import logging
import os
import sys
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from monitor.commands.backtest import backtest
from monitor.commands.common import apply_threads, fail, load_settings, open_db, parse_time_option, screened_line
from monitor.commands.config import config_app
from monitor.commands.db import db_app
from monitor.commands.models import models_app
from monitor.commands.retrain import retrain_command, scheduler_command
from monitor.commands.serve import apikey_app, serve
from monitor.errors import DataError, MonitorError
from monitor.settings import Settings

app = typer.Typer(help="Streaming anomaly monitor for sensor fleets.", no_args_is_help=True, add_completion=False)
topics_app = typer.Typer(help="Kafka topics of the monitor.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")

app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(models_app, name="models")
app.command("retrain")(retrain_command)
app.command("scheduler")(scheduler_command)
app.command("backtest")(backtest)

log = logging.getLogger("monitor")


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


@app.command()
def train(
    csv_path: Annotated[Path, typer.Argument(
        help="Wide CSV of normal data: a time column + numeric channels, rows in time order (a timestamp earlier "
        "than the row before it is an error naming its line).")],
    out: Annotated[Path, typer.Option(help="Where to write the model artifact.")] = Path("model.pt"),
    sep: Annotated[str, typer.Option(help="CSV separator.")] = ",",
    time_column: Annotated[str, typer.Option(help="Name of the time column ('' for none).")] = "timestamp",
    ignore: Annotated[Optional[list[str]], typer.Option(help="Columns to drop (repeatable); a name the CSV lacks is an error.")] = None,
    window_len: Annotated[Optional[int], typer.Option(help="Rows per window.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs at most.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    sensors: Annotated[int, typer.Option(
        min=1, help="How many sensors' histories the CSV holds, end to end in time (one model for a fleet). With "
        "model.centre_drifting auto, a fleet's model judges each drifting channel against a centre that follows "
        "each sensor, not against the range of levels the history showed, which spans every sensor's.")] = 1,
    sensor_column: Annotated[Optional[str], typer.Option(
        help="The column that names each row's sensor: the CSV holds a fleet's rows, in any interleaving. Each "
        "sensor's rows are its history (in time order on their own); one model is trained on them all, no window "
        "mixes two sensors, and --sensors is the number of sensors found.")] = None,
) -> None:
    """Fit an LSTM autoencoder on normal data and write a model artifact."""
    from monitor.core.scoring.train import train as fit
    from monitor.ingest.files import read_wide_csv, refuse_interleaved
    from monitor.observe.progress import Bar
    from monitor.registry import model_files

    settings = load_settings()
    apply_threads(settings)
    updates = {k: v for k, v in {"window_len": window_len, "epochs": epochs, "seed": seed}.items() if v is not None}
    cfg = settings.model.model_copy(update=updates)
    try:
        frame = read_wide_csv(csv_path, sep=sep, time_column=time_column or None, ignore=ignore or [],
                              sensor_column=sensor_column or None)
        seams: list[int] = list(frame.attrs.get("seams") or [])
        if sensor_column:
            found = len(frame.attrs["sensors"])
            if sensors not in (1, found):
                raise DataError(f"--sensors {sensors}, but {csv_path} names {found} sensors in {sensor_column!r}")
            sensors = found
            typer.echo(f"training on {len(frame)} rows x {frame.shape[1]} channels of {found} sensor(s) "
                       f"({sensor_column!r}) from {csv_path}", err=True)
        else:
            refuse_interleaved(csv_path, frame)
            typer.echo(f"training on {len(frame)} rows x {frame.shape[1]} channels from {csv_path}", err=True)
        with Bar("train", "epoch") as bar:
            bundle = fit(frame, cfg, source=str(csv_path), sensors=sensors, seams=seams, on_epoch=bar.epoch)
        model_files.save(bundle, out)
    except MonitorError as exc:
        fail(exc)
    cal = bundle.meta.calibration
    typer.echo(
        f"model {bundle.meta.version} written to {out}: val_loss={bundle.meta.metrics['val_loss']:.4f} "
        f"epochs={bundle.meta.training['epochs']} log_score mean={cal.log_score_mean:.3f} std={cal.log_score_std:.3f}"
    )
    drifting = [c for c, flag in zip(bundle.meta.channels, cal.drifting) if flag]
    how = ("judged by shape, jumps and the range of levels the history showed, one sensor's (several sensors' "
           "histories end to end: --sensors N); see model.centre_drifting"
           if cal.centre_drifting else "level followed outside alerts; see model.drift_ratio, model.centre_drifting")
    typer.echo(f"drifting channels ({how}): {', '.join(drifting) or 'none'}")
    stepping = bundle.meta.training.get("stepping_channels") or []
    typer.echo(f"channels that move by steps (never followed as drifting): {', '.join(stepping) or 'none'}")
    events = [c for c, w in zip(bundle.meta.channels, cal.channel_weight) if w == 0.0]
    role = "not judged, not fed to the model; see model.event_share, model.mute_events" if cfg.mute_events else \
        "inputs only, not judged; see model.event_share"
    typer.echo(f"event channels ({role}): {', '.join(events) or 'none'}")
    constant = [c for c in bundle.meta.training.get("constant_channels") or [] if c in events]
    if constant:
        typer.echo(f"  of them constant in every training row (never judged until a model is trained on a history "
                   f"where they move): {', '.join(constant)}")
    weighted = [f"{c} x{w:.2g}" for c, w in zip(bundle.meta.channels, cal.channel_weight) if 0.0 < w < 1.0]
    typer.echo(f"channels with event-like tails, weighted down (see model.tail_balance): {', '.join(weighted) or 'none'}")
    typer.echo(f"windows of {bundle.meta.window_len} rows, training stride {bundle.meta.training.get('stride')}"
               + (f" (shortened for {len(frame)} rows; model.window_len={cfg.window_len} is the longest)"
                  if bundle.meta.window_len < cfg.window_len else ""))
    if cfg.history_screen > 0:
        typer.echo(screened_line(bundle.meta.training))
        typer.echo(f"channels whose recurring spikes are their normal behaviour (removed before scoring, up to the "
                   f"size given; model.history_screen): {spikes_line(bundle.meta.channels, cal.spike_limit)}")
    typer.echo(f"cycles removed before the model (model.seasonal): {cycles_line(cal.seasonal)}")
    if cfg.move_allowance:
        typer.echo("channels whose recurring steps are scored against the history's steps (model.move_allowance): "
                   + moves_line(bundle.meta.channels, cal.move_floor, cal.move_top, cal.move_ratio,
                                [float(v) for v in bundle.scaler.scale]))


def spikes_line(channels: list[str], limits: list[float]) -> str:
    """The channels with a spike allowance (monitor/core/scoring/spikes.py), as `monitor train` prints them:
    "cpu (up to 83.7)", or "none"."""
    return ", ".join(f"{c} (up to {v:.3g})" for c, v in zip(channels, limits) if v > 0) or "none"


def moves_line(channels: list[str], floor: list[float], top: list[float], ratio: list[float],
               scale: list[float]) -> str:
    """The channels with a move allowance (train.py ``_calibrate_moves``), as `monitor train` prints them, with the
    steps it covers in the channel's own units: "valve (steps of 0.13 to 0.94)", or "none"."""
    return ", ".join(f"{c} (steps of {f * s:.3g} to {t * s:.3g})"
                     for c, f, t, r, s in zip(channels, floor, top, ratio, scale, strict=False) if r > 1) or "none"


def cycles_line(seasonal: dict[str, Any] | None) -> str:
    """The profiles a model removes, as `monitor train` prints them: "daily (72 harmonics), weekly (6 harmonics)"
    (a cycle with sharp edges gets more than six: monitor/core/scoring/seasonal.py), with the channels whose
    remainder repeats exactly ("daily (72 harmonics, a per-phase table on 1 channel)"), or "none"."""
    names = {86400.0: "daily", 604800.0: "weekly"}
    periods, harmonics = (seasonal or {}).get("periods") or [], (seasonal or {}).get("harmonics") or []
    tables = [float(e["period"]) for e in (seasonal or {}).get("phase") or [] if e is not None]

    def tabled(period: float) -> str:
        n = tables.count(period)
        return f", a per-phase table on {n} channel{'s' if n > 1 else ''}" if n else ""

    return ", ".join(f"{names.get(float(p), f'{float(p):g} s')} ({int(h)} harmonics{tabled(float(p))})"
                     for p, h in zip(periods, harmonics)) or "none"


def threads_warning(threads: int, omp_wait_policy: str | None) -> str | None:
    """The warning `monitor run` logs for ``model.threads`` > 1 with sleeping OpenMP workers, else None
    (the measurement behind it: docs/benchmarks.md, round 4)."""
    if threads > 1 and (omp_wait_policy or "").upper() == "PASSIVE":
        return (f"model.threads={threads} with OMP_WAIT_POLICY=PASSIVE: measured up to 7x slower end to end than "
                "one thread; prefer one consumer process per core (or OMP_WAIT_POLICY=ACTIVE on dedicated cores)")
    return None


@app.command()
def run(
    model: Annotated[Optional[Path], typer.Option(
        help="Pin this model artifact (no hot swap). Default: the registry's active model, else settings model.path."
    )] = None,
    idle_exit_s: Annotated[Optional[float], typer.Option(help="Exit after this many seconds without records.")] = None,
    metrics_port: Annotated[Optional[int], typer.Option(help="Serve Prometheus metrics on this port.")] = None,
    workers: Annotated[Optional[int], typer.Option(
        min=1, help="Consumer processes to start on this host, one per core (default: settings run.workers, 1)."
    )] = None,
    worker_index: Annotated[Optional[int], typer.Option(hidden=True)] = None,  # set by the --workers supervisor
    supervisor_pid: Annotated[Optional[int], typer.Option(hidden=True)] = None,  # likewise: the child stops with it
) -> None:
    """Consume sensor windows, score them, and write alerts (Ctrl-C or SIGTERM stops cleanly)."""
    # Before torch loads libgomp: OpenMP workers that spin-wait collapse throughput when the cores are shared
    # (docs/benchmarks.md). An explicit OMP_WAIT_POLICY in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    settings = load_settings(worker_index)
    port = metrics_port if metrics_port is not None else settings.run.metrics_port
    processes = workers or settings.run.workers
    from monitor.consumer.parallelism import resolve

    par = resolve(settings.run.decode_process, settings.run.overlap, workers=processes,
                  threads=settings.model.threads or 1)
    if worker_index is None:
        log.info("decode process %s, overlap %s (%s)", "on" if par.decode_process else "off",
                 "on" if par.overlap else "off", par.reason)
    if processes > 1:  # a child sees one worker: an auto the supervisor resolved off is passed as off
        os.environ.update(par.environment())
        _supervise(settings, processes, model=model, idle_exit_s=idle_exit_s, metrics_port=port)
    from monitor.consumer.runner import build_runner
    from monitor.registry.serving import serving_model

    try:
        db = open_db(settings)
        bundle, watcher = serving_model(db, settings.registry, settings.model.path, model)
        import torch

        # One intra-op thread unless set: the loop thread needs the other core (docs/benchmarks.md, round 2);
        # scale out with more consumer processes in the group instead.
        torch.set_num_threads(settings.model.threads or 1)
        if warning := threads_warning(settings.model.threads, os.environ.get("OMP_WAIT_POLICY")):
            log.warning("%s", warning)
        # The hot path allocates many short-lived objects per window (records, decisions): freeze what is loaded
        # now and collect less often (the A/B behind it: docs/benchmarks.md, round 3).
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        runner = build_runner(
            settings.kafka, settings.run, settings.threshold, settings.alert, bundle, db, idle_exit_s=idle_exit_s,
            device=settings.model.device, parallelism=par,
        )
        runner.watcher = watcher
    except MonitorError as exc:
        fail(exc)
    if port:
        from monitor.observe import health

        health.start(port, settings.run.liveness_timeout_s, failing_limit_s=settings.run.failing_batch_timeout_s)
        log.info("metrics on http://127.0.0.1:%d/metrics, liveness on /healthz", port)
    from monitor.consumer.shutdown import ShutdownDeadline

    runner.install_signal_handlers(ShutdownDeadline(settings.run.shutdown_timeout_s))
    if supervisor_pid is not None:  # a child of `--workers N`: it stops with its supervisor (even a kill -9 of it)
        from monitor.consumer.workers import exit_with_supervisor

        exit_with_supervisor(supervisor_pid)
    log.info("model %s; consuming %s as group %s", bundle.meta.version, settings.kafka.topic, settings.kafka.group_id)
    stats = runner.run()
    typer.echo(
        f"consumed={stats.consumed} scored={stats.scored} dead_letters={stats.dead_letters} "
        f"alert_updates={stats.alerts_written} batches={stats.batches}",
        err=True,
    )


def _supervise(settings: Settings, workers: int, *, model: Path | None, idle_exit_s: float | None,
               metrics_port: int | None) -> None:
    """`monitor run --workers N` (N > 1): migrate/check the schema once, then run N consumer processes."""
    from monitor.consumer.workers import Supervisor, WorkerArgs, child_commands

    try:
        open_db(settings).dispose()  # the schema checked (or migrated) once, not raced by the children
    except MonitorError as exc:
        fail(exc)
    supervisor = Supervisor(child_commands(workers, WorkerArgs(model, idle_exit_s, metrics_port)))
    supervisor.install_signal_handlers()
    if metrics_port:
        log.info("metrics and /healthz of worker i on port %d + i", metrics_port)
    raise typer.Exit(supervisor.run())


@app.command()
def alerts(
    sensor: Annotated[Optional[str], typer.Option(help="Only this sensor.")] = None,
    since: Annotated[Optional[str], typer.Option(help="Alerts active at or after this time: ISO-8601 with a zone, or before now (1h, 2d).")] = None,
    until: Annotated[Optional[str], typer.Option(help="Alerts opened before this time: ISO-8601 with a zone, or before now (30m).")] = None,
    status: Annotated[Optional[str], typer.Option(help="open, acknowledged or resolved.")] = None,
    severity: Annotated[Optional[str], typer.Option(help="minor, major or critical.")] = None,
    model_version: Annotated[Optional[str], typer.Option(help="Only alerts of this model version.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows at most.")] = 100,
    format: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
) -> None:
    """List alerts from the database, newest first."""
    from monitor.core.contract import format_time
    from monitor.core.incidents import SEVERITIES, STATUSES
    from monitor.store.alerts_api import AlertFilter, query_alerts

    for value, allowed, name in ((status, STATUSES, "--status"), (severity, SEVERITIES, "--severity")):
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint=name)
    since_at, until_at = parse_time_option(since, "--since"), parse_time_option(until, "--until")  # arguments first
    settings = load_settings()
    try:
        db = open_db(settings, read_only=True)
        rows = query_alerts(db, AlertFilter(
            sensor_ids=[sensor] if sensor else (), statuses=[status] if status else (),
            severities=[severity] if severity else (), model_versions=[model_version] if model_version else (),
            since=since_at, until=until_at), limit=limit)
    except MonitorError as exc:
        fail(exc)
    columns = ["id", "sensor_id", "opened_at", "closed_at", "status", "severity", "peak_score",
               "threshold_at_peak", "window_count", "top_channels", "model_version"]
    plain = [{c: _plain(r[c], format_time) for c in columns} for r in rows]
    if format is OutputFormat.json:
        typer.echo(json.dumps(plain, indent=2))
    elif format is OutputFormat.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=columns)
        writer.writeheader()
        for row in plain:
            writer.writerow({k: (";".join(v) if isinstance(v, list) else v) for k, v in row.items()})
    else:
        _print_table(plain, columns)


def _plain(value: Any, format_time: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, float):
        return round(value, 4)
    return value


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        typer.echo("no alerts")
        return
    cells = [[("," .join(v) if isinstance(v, list) else ("" if v is None else str(v))) for v in (r[c] for c in columns)]
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)))


@topics_app.command("create")
def topics_create(
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of the window topic.")] = 3,
    replication: Annotated[int, typer.Option(min=1, help="Replication factor.")] = 1,
) -> None:
    """Create the window topic and the dead-letter topic if missing."""
    from monitor.ingest.kafka import ensure_topics

    settings = load_settings()
    try:
        created = ensure_topics(settings.kafka, [settings.kafka.topic, settings.kafka.dlq_topic], partitions, replication)
    except MonitorError as exc:
        fail(exc)
    typer.echo(f"created: {', '.join(created) or 'nothing (all exist)'}")


app.add_typer(apikey_app, name="apikey")
app.command()(serve)

if __name__ == "__main__":
    app()
