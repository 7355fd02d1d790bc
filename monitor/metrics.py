"""Prometheus metrics of the monitor (one registry per process; names are part of the public surface).

`monitor run --metrics-port N` serves them at http://127.0.0.1:N/metrics.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from monitor.contract import ALL_REASONS

WINDOWS_CONSUMED = Counter("monitor_windows_consumed_total", "Records read from the window topic.")
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
RETRAIN_RUNS = Counter("monitor_retrain_runs_total", "Retraining runs by outcome.", ["outcome"])
for _outcome in ("promoted", "rejected", "failed"):
    RETRAIN_RUNS.labels(_outcome)
RETRAIN_LAST_SUCCESS = Gauge(
    "monitor_retrain_last_success_timestamp", "Unix time of the last retraining run that completed (promoted or rejected)."
)
DRIFT_DETECTIONS = Counter("monitor_drift_detections_total", "Score drift detected by the scheduler's ADWIN.")

for _reason in ALL_REASONS:  # every reason is exported from the start, at 0
    DECODE_FAILURES.labels(_reason)

def show_model(version: str) -> None:
    """The model info gauge names only ``version`` (the model scoring now)."""
    MODEL_INFO.clear()
    MODEL_INFO.labels(version).set(1)


def forget_partition(partition: int) -> None:
    """Drop the per-partition series of a partition this process no longer owns."""
    try:
        CONSUMER_LAG.remove(str(partition))
    except KeyError:
        pass
