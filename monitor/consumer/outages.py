"""Outages seen by the consumer loop. Database: retry one store call with exponential backoff, or pause every
partition and wait (polling to keep the group membership) until the database answers again. Dead-letter
producer (a broker-side failure): pause every partition for one backoff step, then the caller re-reads.

Backoff starts at 0.5 s and doubles up to ``MAX_BACKOFF_S``; waits go through the runner's interruptible
``sleep``, and ``stop`` ends them, so a shutdown never waits out a backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from kafka import KafkaConsumer
from sqlalchemy import Engine as DbEngine

from monitor.consumer.batches import RunStats
from monitor.errors import StoreError
from monitor.observe import health, metrics
from monitor.store.database import ping

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 10.0

T = TypeVar("T")


def _count_retry(stats: RunStats) -> None:
    stats.db_retries += 1
    metrics.DB_RETRIES.inc()


def retry_store(action: Callable[[], T], *, stop: threading.Event, sleep: Callable[[float], Any],
                stats: RunStats) -> T:
    """``action()``, retried while it raises StoreError; re-raises once ``stop`` is set."""
    delay = 0.5
    while True:
        try:
            return action()
        except StoreError as exc:
            if stop.is_set():
                raise
            health.batch_failed(f"database call failing: {exc}")
            _count_retry(stats)
            health.beat()
            log.warning("database unreachable; retrying in %.1f s", delay)
            sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)


def wait_for_database(db: DbEngine, consumer: KafkaConsumer, *, stop: threading.Event,
                      sleep: Callable[[float], Any], stats: RunStats, keep_alive: Callable[[], Any]) -> None:
    """Pause fetching, keep the group membership alive, and retry with backoff until the DB answers.

    ``keep_alive`` runs after each membership poll (the runner applies queued rebalances there). Records
    returned by those polls are dropped: the caller rewinds every partition afterwards.
    """
    delay = 0.5
    try:
        while not stop.is_set():
            health.beat()  # waiting out an outage is the loop at work (/healthz)
            consumer.pause(*consumer.assignment())
            _count_retry(stats)
            sleep(delay)
            consumer.poll(timeout_ms=0)
            keep_alive()
            try:
                ping(db)
                return
            except StoreError:
                delay = min(delay * 2, MAX_BACKOFF_S)
                log.warning("database still unreachable; next try in %.1f s", delay)
    finally:
        consumer.resume(*consumer.paused())


def back_off(consumer: KafkaConsumer, delay_s: float, *, sleep: Callable[[float], Any],
             keep_alive: Callable[[], Any]) -> None:
    """Pause fetching for ``delay_s`` seconds while keeping the group membership alive (``keep_alive`` as in
    ``wait_for_database``). Records returned meanwhile are dropped: the caller rewinds every partition."""
    health.beat()
    consumer.pause(*consumer.assignment())
    try:
        sleep(delay_s)
        consumer.poll(timeout_ms=0)
        keep_alive()
    finally:
        consumer.resume(*consumer.paused())
