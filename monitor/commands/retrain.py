"""`monitor retrain` (one run now) and `monitor scheduler` (calendar + drift, single flight)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any, Optional

import typer


def _config(settings: Any, **model_updates: Any) -> Any:
    from monitor.training.retrain import RetrainConfig

    updates = {k: v for k, v in model_updates.items() if v is not None}
    return RetrainConfig(settings.kafka, settings.model.model_copy(update=updates), settings.threshold,
                         settings.alert, settings.retrain, settings.registry)


def retrain_command(
    start: Annotated[Optional[str], typer.Option(help="Range start, ISO-8601 (default: end - retrain.lookback_s).")] = None,
    end: Annotated[Optional[str], typer.Option(help="Range end, exclusive, ISO-8601 (default: now).")] = None,
    from_file: Annotated[Optional[Path], typer.Option(
        help="Train on a wide CSV/Parquet file instead of Kafka (Parquet: pip install 'sensor-monitor\\[parquet]').")] = None,
    sep: Annotated[str, typer.Option(help="CSV separator (--from-file).")] = ",",
    time_column: Annotated[str, typer.Option(help="Time column (--from-file; '' for none).")] = "timestamp",
    ignore: Annotated[Optional[list[str]], typer.Option(help="Columns to drop (--from-file, repeatable).")] = None,
    sensors: Annotated[int, typer.Option(
        min=1, help="How many sensors' histories the file holds, end to end in time (--from-file; see `monitor "
        "train --sensors`).")] = 1,
    sensor_column: Annotated[Optional[str], typer.Option(
        help="The CSV column that names each row's sensor (--from-file; see `monitor train --sensor-column`): each "
        "sensor's rows are cut into its own windows, none mixes two sensors.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs at most.")] = None,
    warm_start: Annotated[Optional[bool], typer.Option("--warm-start/--no-warm-start",
                                                       help="Start from the active model's weights.")] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded with the version).")] = "manual retrain",
    force: Annotated[bool, typer.Option(
        help="Train even when fewer than retrain.min_new_windows windows are newer than the active model's "
             "training range (otherwise the run is skipped).")] = False,
) -> None:
    """Retrain now: read history, exclude alerts, train, gate against the active model; a passing candidate becomes
    the shadow (registry.shadow_min_windows; 0: promoted at once), a failing one is rejected. A complete shadow
    period is ended first."""
    from monitor.commands.common import apply_threads, fail, load_settings, open_db, parse_time_option
    from monitor.errors import DataError, MonitorError
    from monitor.training.retrain import FAILED, RetrainRequest, retrain

    if sensor_column and sensors > 1:
        fail(DataError("--sensor-column counts the sensors itself: give it or --sensors, not both"))
    settings = load_settings()
    if warm_start is not None:
        settings.retrain = settings.retrain.model_copy(update={"warm_start": warm_start})
    request = RetrainRequest(
        start=parse_time_option(start, "--start"), end=parse_time_option(end, "--end"), path=from_file, sep=sep,
        time_column=time_column or None, ignore=tuple(ignore or ()), triggered_by="cli", reason=reason,
        force=force, sensor_count=sensors, sensor_column=sensor_column or None,
    )
    try:
        db = open_db(settings)
    except MonitorError as exc:
        fail(exc)
    apply_threads(settings)
    outcome = retrain(db, _config(settings, epochs=epochs), request,
                      progress=lambda text: typer.echo(f"[retrain] {text}", err=True), progress_bars=True)
    typer.echo(outcome.line())
    if outcome.outcome == FAILED:
        raise typer.Exit(1)


def scheduler_command(
    schedule: Annotated[Optional[str], typer.Option(help="Seconds or a cron expression (default: retrain.schedule).")] = None,
    tick_s: Annotated[Optional[float], typer.Option(help="Loop period in seconds (default: retrain.tick_s).")] = None,
    max_runs: Annotated[Optional[int], typer.Option(help="Exit after this many retrains by this replica.")] = None,
    max_ticks: Annotated[Optional[int], typer.Option(help="Exit after this many ticks (tests).")] = None,
    metrics_port: Annotated[Optional[int], typer.Option(help="Serve Prometheus metrics on this port.")] = None,
) -> None:
    """Retrain on a schedule and on score drift; one replica at a time (database lease)."""
    from monitor.commands.common import apply_threads, fail, load_settings, open_db
    from monitor.errors import MonitorError
    from monitor.training.retrain import RetrainRequest, retrain
    from monitor.training.scheduler import Schedule, Scheduler, ScoreDrift

    settings = load_settings()
    apply_threads(settings)
    cfg = _config(settings)
    try:
        db = open_db(settings)
        plan = Schedule(schedule or settings.retrain.schedule)
    except MonitorError as exc:
        fail(exc)
    port = metrics_port if metrics_port is not None else settings.run.metrics_port
    if port:
        from prometheus_client import start_http_server

        start_http_server(port)
    from monitor.observe import metrics

    metrics.scheduler_metrics()  # exported from the start (at 0), by this process only

    def job(trigger: str, reason: str, cancel: Any) -> Any:
        # No bars in a long-running service: progress lines (records read every ~10 s, one per epoch) go to
        # the log; ``cancel`` is set when the scheduler loses its lease.
        return retrain(db, cfg, RetrainRequest(triggered_by=trigger, reason=reason), cancel=cancel)

    drift = ScoreDrift(db, settings.registry.model_name, settings.retrain.drift_delta) if settings.retrain.drift else None
    from monitor.registry import shadow

    def settle() -> str | None:
        return shadow.settle(db, settings.registry.model_name, settings.registry.shadow_min_windows, by="scheduler")

    scheduler = Scheduler(db, job, name=settings.registry.model_name, schedule=plan, lease_s=settings.retrain.lease_s,
                          settle=settle,
                          tick_s=tick_s or settings.retrain.tick_s, drift=drift,
                          drift_min_gap_s=settings.retrain.drift_min_gap_s)
    signal.signal(signal.SIGTERM, scheduler.stop)
    signal.signal(signal.SIGINT, scheduler.stop)
    typer.echo(f"scheduler {scheduler.owner}: schedule {plan.text!r}, drift {'on' if drift else 'off'}", err=True)
    runs = scheduler.run(max_runs=max_runs, max_ticks=max_ticks)
    typer.echo(f"scheduler: runs={runs}")
