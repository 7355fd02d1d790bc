"""Prometheus metrics of the monitor (one registry per process; names are part of the public surface).

`monitor run --metrics-port N` serves them at http://127.0.0.1:N/metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from monitor.core.contract import ALL_REASONS
from monitor.core.incidents import SEVERITIES

WINDOWS_CONSUMED = Counter(
    "monitor_windows_consumed_total", "Records read from the window topic (durable: a batch read again counts once)."
)
WINDOWS_SCORED = Counter("monitor_windows_scored_total", "Windows scored and judged (durable).")
DECODE_FAILURES = Counter(
    "monitor_decode_failures_total", "Records sent to the dead-letter topic (durable), by reason.", ["reason"]
)
BATCH_SECONDS = Histogram(
    "monitor_batch_seconds", "Time from poll return to durable commit of one batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ALERTS_OPENED = Counter("monitor_alerts_opened_total", "Alerts opened.")
ALERTS_CLOSED = Counter("monitor_alerts_closed_total", "Alerts closed.")
DB_RETRIES = Counter("monitor_db_retries_total", "Database retries while it was unreachable (backoff steps).")
LOOP_HEARTBEAT = Gauge("monitor_loop_heartbeat_timestamp_seconds", "Unix time of the poll loop's last iteration.")
CONSUMER_REPLACEMENTS = Counter(
    "monitor_consumer_replacements_total", "Kafka consumers replaced after their network thread stalled."
)
DUPLICATE_WINDOWS = Counter(
    "monitor_duplicate_windows_total",
    "Windows skipped because their sensor had just judged the same window (same start and end: a re-send).",
)
FAILING_BATCH_SINCE = Gauge(
    "monitor_failing_batch_since_timestamp_seconds",
    "Unix time since which batches keep failing without one becoming durable (0: the last batch was durable).",
)
RECORDS_LOST = Counter(
    "monitor_records_lost_total",
    "Records that expired from the log (retention) before they were read: data loss, also in consumer_offsets.",
)
STALE_BATCHES = Counter("monitor_stale_batches_total", "Batches dropped because a partition moved elsewhere.")
CONSUMER_LAG = Gauge(
    "monitor_consumer_lag", "Records between the offset stored with the output and the partition's end.", ["partition"]
)
MODEL_INFO = Gauge("monitor_model_info", "Active model version (value 1).", ["version"])
MODEL_SWAPS_REFUSED = Counter(
    "monitor_model_swaps_refused_total",
    "Promoted model versions not hot-swapped in: their channels or window length differ from the serving model's, "
    "or their artifact is refused (damaged).",
)
ASSIGNED_PARTITIONS = Gauge("monitor_assigned_partitions", "Partitions owned by this consumer.")
SENSORS_IN_MEMORY = Gauge("monitor_sensors_in_memory", "Sensors whose state this consumer holds in memory.")
SENSORS_EVICTED = Counter(
    "monitor_sensors_evicted_total",
    "Sensor states dropped from memory (run.max_sensors_in_memory; read back from the database when needed).",
)
OPEN_ALERTS = Gauge("monitor_open_alerts", "Alerts open on the sensors this consumer owns, by severity.", ["severity"])
EVENT_LAG_SECONDS = Gauge(
    "monitor_event_lag_seconds",
    "Event-time lag per partition: now minus the end time of the newest window judged (durable) from it.",
    ["partition"],
)
STAGES = ("fetch", "decode", "state_load", "scoring", "judge", "dead_letters", "store", "kafka_commit")
STAGE_SECONDS = Counter(
    "monitor_stage_seconds_total",
    "Seconds spent per pipeline stage: fetch (Kafka poll), decode, state_load (sensor state read), scoring (the "
    "model), judge (thresholds, incidents, evidence), dead_letters (flush), store (the one transaction), "
    "kafka_commit. Their rate is the share of a core each stage takes.",
    ["stage"],
)
_STAGE = {stage: STAGE_SECONDS.labels(stage) for stage in STAGES}


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Adds the time spent in the block to ``monitor_stage_seconds_total{stage}``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        _STAGE[stage].inc(time.perf_counter() - started)


def add_stage(stage: str, seconds: float) -> None:
    _STAGE[stage].inc(max(seconds, 0.0))


for _severity in SEVERITIES:
    OPEN_ALERTS.labels(_severity)


class SchedulerMetrics:
    """The retraining scheduler's metrics, registered only by the process that runs it (`monitor scheduler`):
    a consumer does not export them as permanent zeros."""

    def __init__(self) -> None:
        self.runs = Counter("monitor_retrain_runs_total", "Retraining runs by outcome.", ["outcome"])
        for outcome in ("promoted", "shadowed", "rejected", "skipped", "failed"):
            self.runs.labels(outcome)
        self.last_success = Gauge("monitor_retrain_last_success_timestamp",
                                  "Unix time of the last retraining run that completed (promoted, rejected, or skipped "
                                  "for want of new data).")
        self.drift = Counter("monitor_drift_detections_total", "Score drift detected by the scheduler's ADWIN.")


_scheduler: SchedulerMetrics | None = None


def scheduler_metrics() -> SchedulerMetrics:
    """The scheduler's metrics, created (registered) on first use."""
    global _scheduler
    if _scheduler is None:
        _scheduler = SchedulerMetrics()
    return _scheduler

for _reason in ALL_REASONS:  # every reason is exported from the start, at 0
    DECODE_FAILURES.labels(_reason)

def show_model(version: str) -> None:
    """The model info gauge names only ``version`` (the model scoring now)."""
    MODEL_INFO.clear()
    MODEL_INFO.labels(version).set(1)


def forget_partition(partition: int) -> None:
    """Drop the per-partition series of a partition this process no longer owns."""
    for gauge in (CONSUMER_LAG, EVENT_LAG_SECONDS):
        try:
            gauge.remove(str(partition))
        except KeyError:
            pass


def observe_alerts(
    contexts: Iterable[Any], decisions: Iterable[tuple[Any, Any]], newest_end: dict[int, float]
) -> None:
    """After a durable batch: open alerts by severity over the sensors held (``SensorContext``s), and each
    partition's event-time lag from the newest window judged (``(Record, Decision)`` pairs of the batch;
    ``newest_end``, partition -> unix end time of the newest window judged so far, is updated in place)."""
    counts = dict.fromkeys(SEVERITIES, 0)
    for ctx in contexts:
        current = ctx.incidents.current
        if current is not None:
            counts[current.severity] = counts.get(current.severity, 0) + 1
    for severity, n in counts.items():
        OPEN_ALERTS.labels(severity).set(n)
    judged: set[int] = set()
    for record, _ in decisions:
        end = record.window.window_end.timestamp()
        newest_end[record.partition] = max(newest_end.get(record.partition, end), end)
        judged.add(record.partition)
    refresh_event_lag(newest_end, judged)


def refresh_event_lag(newest_end: dict[int, float], partitions: Iterable[int]) -> None:
    """Set the event-lag gauge of the partitions owned whose newest judged window is known. Refreshed after every
    poll, not only when a window arrives: a partition whose producers went silent shows a growing lag instead of
    the value frozen at its last batch. A partition revoked and assigned back shows the newest window this process
    judged from it (another consumer may have judged newer ones meanwhile: corrected by the next batch)."""
    now = time.time()
    for partition in partitions:
        end = newest_end.get(partition)
        if end is not None:
            EVENT_LAG_SECONDS.labels(str(partition)).set(max(now - end, 0.0))
