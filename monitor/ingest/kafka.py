"""Thin Kafka adapters (kafka-python 3.x). Clients are built here from ``KafkaSettings``; nothing else in the
package imports kafka directly except the runner (with monitor.ingest.membership and monitor.consumer.outages) and the
pipelines that receive these clients."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from monitor.core.contract import DecodeFailure
from monitor.errors import BrokerError
from monitor.ingest import netguard
from monitor.settings import KafkaSettings

log = logging.getLogger(__name__)


def make_consumer(cfg: KafkaSettings, **overrides: Any) -> KafkaConsumer:
    """A group consumer that never auto-commits and parses no bytes (the runner decodes raw values)."""
    options: dict[str, Any] = {
        **cfg.client_options(),
        "group_id": cfg.group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": cfg.auto_offset_reset,
        "metadata_max_age_ms": cfg.metadata_max_age_ms,
        "max_poll_records": cfg.max_poll_records,
        "session_timeout_ms": cfg.session_timeout_ms,
        "heartbeat_interval_ms": max(300, cfg.session_timeout_ms // 4),
        "allow_auto_create_topics": False,
        "max_partition_fetch_bytes": cfg.max_partition_fetch_bytes,
        "fetch_max_bytes": cfg.fetch_max_bytes,
    }
    options.update(overrides)
    netguard.install(cfg.stall_timeout_s)
    try:
        return KafkaConsumer(**options)
    except KafkaError as exc:
        raise BrokerError(f"cannot connect to Kafka at {cfg.bootstrap_servers}: {exc}") from exc


def make_producer(cfg: KafkaSettings, **overrides: Any) -> KafkaProducer:
    """An idempotent producer (acks=all) with batching for throughput."""
    options: dict[str, Any] = {
        **cfg.client_options(),
        "acks": "all",
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "max_request_size": 8 * 1024 * 1024,
    }
    options.update(overrides)
    netguard.install(cfg.stall_timeout_s)
    try:
        return KafkaProducer(**options)
    except KafkaError as exc:
        raise BrokerError(f"cannot connect to Kafka at {cfg.bootstrap_servers}: {exc}") from exc


def ensure_topics(cfg: KafkaSettings, names: Sequence[str], partitions: int = 3, replication: int = 1) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    try:
        admin = KafkaAdminClient(**cfg.client_options())
    except KafkaError as exc:
        raise BrokerError(f"cannot connect to Kafka at {cfg.bootstrap_servers}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        wanted = [n for n in names if n not in existing]
        if wanted:
            try:
                admin.create_topics([NewTopic(n, partitions, replication) for n in wanted])
            except TopicAlreadyExistsError:
                pass
        return wanted
    except KafkaError as exc:
        raise BrokerError(f"cannot create topics {list(names)}: {exc}") from exc
    finally:
        admin.close()


class DeadLetters:
    """Sends undecodable records to the dead-letter topic with the reason and the original coordinates.

    Every Kafka failure (``send`` can block ``max_block_ms`` and raise, e.g. when the topic does not exist and
    the broker does not create topics; ``flush`` waits for the acks) is a ``BrokerError`` naming the topic.
    The caller then must not commit the batch: it backs off ``backoff_s()`` and re-reads it, which sends its
    dead letters again (at-least-once). ``backoff_s`` doubles with every failure in a row, from 0.5 s up to
    ``MAX_BACKOFF_S``, and starts over after a delivered flush.
    """

    MAX_BACKOFF_S = 10.0
    LOG_EVERY_S = 10.0  # per reason, at most one INFO line this often (with the count of those not logged)

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self._pending: list[Any] = []
        self.failures = 0  # failed sends or flushes in a row
        self._said: dict[str, tuple[float, int]] = {}  # reason -> (monotonic time of its last line, not logged since)

    def send(self, record: Any, failure: DecodeFailure) -> None:
        headers = [
            ("dlq.reason", failure.reason.encode()),
            ("dlq.detail", failure.detail.encode("utf-8", "replace")[:1000]),
            ("dlq.topic", record.topic.encode()),
            ("dlq.partition", str(record.partition).encode()),
            ("dlq.offset", str(record.offset).encode()),
            ("dlq.timestamp", str(record.timestamp).encode()),
        ]
        try:
            future = self.producer.send(self.topic, key=record.key, value=record.value, headers=headers)
        except KafkaError as exc:
            self._pending = []  # the whole batch is re-read and its dead letters sent again
            raise self._failed("send", exc) from exc
        self._pending.append(future)
        self._say(record, failure)

    def _say(self, record: Any, failure: DecodeFailure, now: float | None = None) -> None:
        """Log a dead letter (reason, coordinates, detail), rate-limited per reason."""
        now = time.monotonic() if now is None else now
        last, quiet = self._said.get(failure.reason, (-math.inf, 0))
        if now - last < self.LOG_EVERY_S:
            self._said[failure.reason] = (last, quiet + 1)
            return
        self._said[failure.reason] = (now, 0)
        more = f" (+{quiet} more with this reason since the last line)" if quiet else ""
        log.info("dead letter: reason=%s at %s[%s]@%s: %s%s", failure.reason, record.topic, record.partition,
                 record.offset, failure.detail[:200], more,
                 extra={"event": "dead_letter", "reason": failure.reason, "topic": record.topic,
                        "partition": record.partition, "offset": record.offset, "not_logged_since": quiet})

    def flush(self, timeout_s: float = 10.0) -> int:
        """Block until every dead letter is acknowledged; raises BrokerError if any failed."""
        if not self._pending:
            return 0
        pending, self._pending = self._pending, []
        try:
            self.producer.flush(timeout=timeout_s)
            for future in pending:
                future.get(timeout=timeout_s)
        except KafkaError as exc:
            raise self._failed("write", exc) from exc
        self.failures = 0
        return len(pending)

    def backoff_s(self) -> float:
        """How long to wait before the batch is read again after the latest failure (seconds)."""
        return min(0.5 * 2.0 ** max(self.failures - 1, 0), self.MAX_BACKOFF_S)

    def _failed(self, step: str, exc: KafkaError) -> BrokerError:
        self.failures += 1
        return BrokerError(f"dead-letter {step} to topic {self.topic!r} failed: {exc}")
