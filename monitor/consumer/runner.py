"""`monitor run`: the consumer loop. Wires Kafka, the pure engine and the SQL store.

Order of I/O per batch (the delivery guarantee):
  1. poll raw records; decode them as one batch (bad ones -> dead-letter producer);
  2. score and judge the good ones (pure engine);
  3. flush the dead letters and wait for their acks (durable before the offset moves);
  4. ONE database transaction: alert upserts + their evidence + sensor state + next offset per partition (fenced);
  5. commit the same offsets to Kafka (for lag monitoring only; the database is the source of truth).
With ``run.overlap`` (by default on with the decode process: ``monitor.consumer.parallelism``) steps 2-4 of
batch N run on a worker thread while the loop polls and decodes batch N+1 (torch and the database drivers
release the GIL). The loop waits for batch N before it sends N+1's dead letters, hands N+1 over, applies a
rebalance or a model swap, or exits; if batch N failed, N+1 is dropped unsent and re-read after the rewind.
So at most one batch is in flight and every step keeps its order.
A crash anywhere before 4 replays the batch from the stored offsets; a crash after 4 replays nothing,
because on assignment the consumer seeks to the offsets stored in the database (to the beginning, or the
end per ``auto_offset_reset``, where the database has none: Kafka's committed offsets are never trusted).
Dead letters are at-least-once: a crash between 3 and 4 sends them again (same dlq.* coordinate headers).
"Unknown model for the sensor": one fleet model serves every sensor, so a sensor whose channel set differs
from the model's is a ``channels`` dead letter.

The in-memory sensor state is only a cache of the database: after any failed or fenced commit the loop
forgets it, seeks every owned partition back to its stored offset and reloads state lazily.

Rebalance callbacks run on kafka-python's network thread, where blocking consumer calls raise: the listener
only queues the change; the loop applies it (read offsets, seek, load state) on its own thread, and drops
the records of a newly assigned partition that the same poll returned (they came from before the seek).

Outages: a database error pauses every partition (memory stays bounded by one batch), retries with
exponential backoff while polling to keep the group membership, then rewinds and resumes. Dead letters that
cannot be delivered (send or flush: a BrokerError) pause likewise for one backoff step (growing while they keep
failing), then rewind: the batch is read again, and its offsets never move before its dead letters are acked.
Other broker outages are absorbed by the client's reconnects; every Kafka call of the loop has a bounded
timeout, and waits are interruptible, so SIGTERM/SIGINT end the process within a few seconds; a call that
cannot be interrupted (a black-holed database or broker) is cut short by the shutdown deadline of
``monitor.consumer.shutdown`` (``run.shutdown_timeout_s``), which exits without committing anything more.

The loop owns the order; the pieces live in monitor.consumer.batches (steps 1-4 of one batch, RunStats),
monitor.ingest.membership (client, listener, owned partitions, stalled-client replacement), monitor.consumer.outages.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata
from sqlalchemy import Engine as DbEngine

from monitor.consumer import outages
from monitor.consumer.batches import Batch, RunStats, make_durable
from monitor.consumer.decoder import DecodeProcess
from monitor.consumer.parallelism import Parallelism, resolve
from monitor.consumer.shutdown import ShutdownDeadline
from monitor.core.contract import decode_batch
from monitor.core.engine import BatchOutcome, Engine
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer
from monitor.errors import BrokerError, StaleOffsetError, StoreError
from monitor.ingest.faults import FaultInjector
from monitor.ingest.kafka import DeadLetters, make_consumer, make_producer
from monitor.ingest.membership import Assignment, GroupMember
from monitor.ingest.netguard import NetWaitStalled, has_stalled
from monitor.observe import health, metrics
from monitor.registry.shadow import Shadow
from monitor.registry.watcher import ModelWatcher
from monitor.settings import AlertSettings, KafkaSettings, RunSettings, ThresholdSettings
from monitor.store import repository, retention

log = logging.getLogger(__name__)

__all__ = ["Runner", "RunStats", "build_runner"]

T = TypeVar("T")

DLQ_MAX_BLOCK_MS = 10_000  # bound of a dead-letter send waiting for topic metadata or buffer space
KAFKA_RESYNC_S = 2.0  # least seconds between two retries of a failed Kafka offset commit while idle
POLL_RETRY_S = 0.5  # pause after a retriable error escaped the client's poll (the broker unreachable)


@dataclass(frozen=True)
class RunnerConfig:
    """What the consumer loop is told: the Kafka and run settings it uses (``RunnerConfig.of``)."""

    topic: str
    group_id: str
    poll_timeout_ms: int = 500
    max_poll_records: int = 2000
    live_poll_records: int | None = None
    max_record_bytes: int = 1_000_000
    idle_exit_s: float | None = None
    auto_offset_reset: str = "earliest"
    close_timeout_s: float = 2.0
    overlap: bool = False
    stall_timeout_s: float = 60.0
    max_sensors: int = 0
    decode_process: bool = False
    overlap_when_behind: bool = False  # overlap / decode process only while behind ("auto": parallelism.py)
    decode_when_behind: bool = False

    @classmethod
    def of(cls, kafka: KafkaSettings, run: RunSettings, *, idle_exit_s: float | None = None,
           parallelism: Parallelism | None = None) -> RunnerConfig:
        """``parallelism``: ``run.decode_process`` / ``run.overlap`` resolved (`monitor run` resolves them for its
        worker count and logs why); default: resolved here for ``run.workers`` consumers of one scoring thread."""
        par = parallelism or resolve(run.decode_process, run.overlap, workers=run.workers, threads=1)
        return cls(
            topic=kafka.topic, group_id=kafka.group_id, poll_timeout_ms=kafka.poll_timeout_ms,
            max_poll_records=kafka.max_poll_records, live_poll_records=kafka.live_poll_records,
            max_record_bytes=run.max_record_bytes, idle_exit_s=idle_exit_s if idle_exit_s is not None else
            run.idle_exit_s, auto_offset_reset=kafka.auto_offset_reset, close_timeout_s=run.close_timeout_s,
            overlap=par.overlap, stall_timeout_s=kafka.stall_timeout_s, max_sensors=run.max_sensors_in_memory,
            decode_process=par.decode_process, overlap_when_behind=par.overlap_when_behind,
            decode_when_behind=par.decode_when_behind)


class Runner:
    """One consumer-group member. ``stop()`` (or SIGTERM/SIGINT) ends it after the current batch."""

    def __init__(
        self,
        config: RunnerConfig,
        *,
        consumer: KafkaConsumer,
        dead_letters: DeadLetters,
        db: DbEngine,
        engine: Engine,
        faults: FaultInjector | None = None,
        on_batch: Callable[[RunStats], None] | None = None,
        sleep: Callable[[float], Any] | None = None,
        consumer_factory: Callable[[], KafkaConsumer] | None = None,
    ) -> None:
        self.config = config
        self.stall_timeout_s = config.stall_timeout_s  # a client not a stable group member this long is replaced
        self.member = GroupMember(consumer, config.topic, factory=consumer_factory,
                                  close_timeout_s=config.close_timeout_s)
        self.dead_letters = dead_letters
        self.db = db
        self.engine = engine
        self.topic = config.topic
        self.group_id = config.group_id
        self.poll_timeout_ms = config.poll_timeout_ms
        self.max_poll_records = config.max_poll_records
        # Adaptive batch size: live_poll_records while caught up (latency), max_poll_records with a backlog.
        self.live_poll_records = min(config.live_poll_records or config.max_poll_records, config.max_poll_records)
        self._behind = False  # set from the lag after every poll
        self._lag = 0  # records behind on the owned partitions, from the last poll
        self.heartbeat_s = 60.0  # one INFO line this often: throughput, lag, counters
        self._last_heartbeat = (time.monotonic(), 0)  # (when, stats.consumed then)
        self.max_record_bytes = config.max_record_bytes
        self.idle_exit_s = config.idle_exit_s
        self.auto_offset_reset = config.auto_offset_reset
        self.close_timeout_s = config.close_timeout_s
        self.faults = faults or FaultInjector(None)
        self.on_batch = on_batch
        self.stats = RunStats()
        self._stop = threading.Event()
        self.sleep = sleep or self._stop.wait  # interruptible by stop(): shutdown never waits out a backoff
        self.assignment = Assignment()  # owned partitions and their offsets stored in the database
        self._event_ends: dict[int, float] = {}  # partition -> end of the newest window judged (event-lag gauge)
        # partitions whose Kafka offset commit failed (e.g. mid-rebalance): committed again once idle and on exit,
        # so the group's lag seen by Kafka tools does not stay behind the database for good
        self._kafka_unsynced: set[int] = set()
        self._kafka_resync_at = 0.0  # monotonic time of the next try (at most one per KAFKA_RESYNC_S)
        self.watcher: ModelWatcher | None = None  # hot swap (monitor.registry.watcher), set by the wiring
        self.shadow: Shadow | None = None  # shadow mode (monitor.registry.shadow), from the watcher
        self.shadow_flush_s = 30.0  # how often the shadow's counts are written to `shadow_reports`
        self.overlap = config.overlap
        self.decode_process = config.decode_process
        self.overlap_when_behind = config.overlap_when_behind
        self.decode_when_behind = config.decode_when_behind
        # run.decode_process: started by the first batch that asks for it (with "auto", the first one read while
        # behind: a consumer that is never behind never starts it); a start that fails turns decode_process off
        self._decoder: DecodeProcess | None = None
        self.max_sensors = config.max_sensors  # sensors held in memory at most (0: no bound); Engine.evict
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[Batch, Future[BatchOutcome]] | None = None  # the batch in flight
        self._rewinds = 0  # counts rewinds: records polled before one are stale

    # -- lifecycle -------------------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        self._stop.set()

    @property
    def assigned(self) -> set[int]:
        return set(self.assignment.owned)

    @property
    def consumer(self) -> KafkaConsumer:
        """The current Kafka client (a new one after a stall replacement)."""
        return self.member.consumer

    def install_signal_handlers(self, deadline: ShutdownDeadline | None = None) -> None:
        """SIGTERM/SIGINT stop the loop; with ``deadline`` they also arm it (monitor.consumer.shutdown): a call that
        cannot be interrupted (a black-holed database or broker) never holds the exit past it."""
        def handle(signum: int, _frame: Any) -> None:
            self.stop()
            if deadline is not None:
                deadline.arm(signal.Signals(signum).name)

        if deadline is not None:
            deadline.start()
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def run(self) -> RunStats:
        try:
            self.member.subscribe()
        except NetWaitStalled as exc:
            self._replace_consumer(exc)
        metrics.show_model(self.engine.scorer.version)
        last_data = time.monotonic()
        if self.overlap:
            # Signals go to the loop thread only (its handlers stop the loop; a signal landing in the worker
            # could interrupt a driver's system call mid-transaction).
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="monitor-batch", initializer=signal.pthread_sigmask,
                                            initargs=(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT}))
        try:
            while not self._stop.is_set():
                health.beat()
                if self.watcher and (bundle := self.watcher.poll()):  # hot swap between batches
                    self._settle()
                    # the shadow promoted: its contexts of sensors the active model judged normal throughout
                    warmed = self.shadow.warmed() if self.shadow and self.shadow.version == bundle.meta.version \
                        else None
                    self.engine.swap(bundle, warmed)
                    metrics.show_model(bundle.meta.version)
                if self.watcher and self.watcher.shadow_change is not None:  # shadow mode set or stopped
                    self._settle()
                    self._set_shadow(*self.watcher.shadow_change)
                    self.watcher.shadow_change = None
                rewinds = self._rewinds
                try:
                    limit = self.max_poll_records if self._behind else self.live_poll_records
                    with metrics.timed("fetch"):
                        batch = self.consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=limit)
                    wedged = self._wedged()
                except KafkaTimeoutError as exc:  # NetWaitStalled, or a later kafka-python's own bound
                    wedged = exc
                except KafkaError as exc:
                    if not exc.retriable:
                        raise
                    # kafka-python 3.0.12 lets a retriable error escape poll() while the broker is unreachable:
                    # the coordinator lookup fails, and so does the metadata refresh it then asks for
                    # (KafkaConnectionError, ECONNREFUSED: the fault suite's broker kill, scenario 2, seed 3838).
                    # Nothing was fetched and the client's state is intact: an empty poll, after a pause.
                    log.warning("poll: %s (%s); polling again", exc, type(exc).__name__)
                    self._stop.wait(POLL_RETRY_S)
                    batch, wedged = {}, self._wedged()
                if wedged is not None:
                    self._replace_consumer(wedged)
                    last_data = time.monotonic()
                    continue
                self._watch_broker(time.monotonic())
                fresh = self._apply_rebalances()  # may settle the batch in flight, which may rewind
                is_new = self.assignment.is_new
                records = [r for tp, rs in batch.items() if tp.partition not in fresh
                           for r in rs if is_new(tp.partition, r.offset)] if rewinds == self._rewinds else []
                self._update_lag()
                self._heartbeat()
                if records:
                    last_data = time.monotonic()
                    self._process(records)
                    continue
                self._settle()  # nothing new: make the batch in flight durable now (latency)
                self._resync_kafka(now=time.monotonic())
                if self.idle_exit_s is not None and self.assignment.owned and (
                    time.monotonic() - last_data > self.idle_exit_s
                ):
                    log.info("no records for %.1f s: exiting (idle_exit_s)", self.idle_exit_s)
                    break
            self._settle()
        except StoreError as exc:
            if not self._stop.is_set():
                raise
            log.warning("stopped during a database outage (%s): nothing past the durable output was committed", exc)
        finally:
            self._abandon()
            try:
                self._resync_kafka()
            except Exception as exc:  # noqa: BLE001 - exiting anyway; the stored offsets are the truth
                log.info("Kafka offsets not synced on exit: %s", exc)
            self._set_shadow(None, None)  # its last counts written
            if self._decoder is not None:
                self._decoder.close()
                self._decoder = None
            self._close()
        return self.stats

    def _set_shadow(self, version: str | None, bundle: ModelBundle | None) -> None:
        if self.shadow is not None:
            self.shadow.flush()
        self.shadow = None
        if bundle is not None and self.watcher is not None:
            scorer = self.engine.scorer
            self.shadow = Shadow(self.db, self.watcher.name, bundle, self.engine.threshold_cfg, self.engine.alert_cfg,
                                 flush_s=self.shadow_flush_s, batch_size=scorer.batch_size, device=scorer.device)

    def _close(self) -> None:
        self.member.close()
        for p in self.assignment.owned:  # owned no more: their per-partition series end with the client
            metrics.forget_partition(p)
        metrics.ASSIGNED_PARTITIONS.set(0)
        try:
            self.dead_letters.producer.close(timeout=self.close_timeout_s)
        except (KafkaError, RuntimeError, OSError) as exc:
            log.info("producer close: %s", exc)

    def _wedged(self) -> Exception | None:
        """Why the current client must be replaced, or None: a call of its network thread hit the stall limit
        (kafka-python swallows some of those timeouts), or it has not been a stable group member for as long."""
        if has_stalled(self.consumer):
            return NetWaitStalled("a call of its network thread hit the stall limit")
        if self.member.unstable_for(time.monotonic()) > self.stall_timeout_s:
            return BrokerError(f"not a stable group member for {self.stall_timeout_s:.0f} s")
        return None

    def _watch_broker(self, now: float) -> None:
        """Tell /healthz whether the broker answers: silent past the session timeout (the broker has dropped the
        member by then) counts as failing from the last answer on; any answer since ends it."""
        silent, answered = self.member.coordinator_silence(now)
        if silent > self.member.session_timeout_s():
            health.kafka_failed(f"no answer from the Kafka group coordinator for {silent:.0f} s", now=now - silent)
        elif answered:
            health.kafka_ok()

    def _replace_consumer(self, exc: Exception) -> None:
        """The consumer's network thread stopped answering (see monitor.ingest.netguard): drop this client and
        join the group with a new one. Nothing is lost or repeated: every partition counts as revoked, and the
        new member resumes each one from the offset stored with the output."""
        if self.member.factory is None:
            raise BrokerError(f"the Kafka consumer stalled and this runner cannot replace it: {exc}") from exc
        log.error("Kafka consumer stalled (%s): replacing it; processing resumes from the stored offsets", exc)
        health.kafka_failed(f"Kafka consumer stalled, replaced: {exc}")
        self.stats.consumer_replacements += 1
        metrics.CONSUMER_REPLACEMENTS.inc()
        self._settle()
        self._revoke(set(self.assignment.owned))
        self.member.replace(self._stop, self.sleep)

    def _revoke(self, partitions: set[int]) -> None:
        self.engine.forget(partitions)
        if self.shadow is not None:
            self.shadow.forget(partitions)
        self.assignment.revoke(partitions)
        self._kafka_unsynced -= partitions  # the next owner seeks to the stored offsets and commits them
        for p in partitions:
            metrics.forget_partition(p)
        metrics.ASSIGNED_PARTITIONS.set(len(self.assignment.owned))
        # The failing-batch clock (health) survives a revocation: a consumer whose session expired while its batch
        # kept failing re-joins, gets the partition back and fails again; clearing the clock here kept /healthz
        # green through that loop (seen on PostgreSQL). It ends with the next durable batch, or when caught up.

    # -- rebalance ---------------------------------------------------------------------------------------
    def _apply_rebalances(self) -> set[int]:
        """Apply queued assignment changes; returns the partitions assigned now (their polled records are stale)."""
        fresh: set[int] = set()
        while (change := self.member.next_change()) is not None:
            kind, tps = change
            self._settle()  # the batch in flight finishes under the assignment it was read with
            partitions = {tp.partition for tp in tps if tp.topic == self.topic}
            if kind == "revoked":
                self._revoke(partitions)
                fresh -= partitions
                log.info("partitions revoked: %s", sorted(partitions))
            else:
                health.kafka_ok()  # the group answered
                self.assignment.assign(partitions)
                metrics.ASSIGNED_PARTITIONS.set(len(self.assignment.owned))
                fresh |= partitions
                self._seek_to_durable(partitions)
                log.info("partitions assigned: %s (stored offsets %s)", sorted(partitions),
                         {p: self.assignment.durable.get(p) for p in sorted(partitions)})
        return fresh

    def _seek_to_durable(self, partitions: set[int]) -> None:
        """Seek to the offsets stored with the output and drop cached state of those partitions."""
        stored = self._with_db_retry(lambda: repository.load_offsets(self.db, self.group_id, self.topic))
        stored = retention.skip_expired(self.consumer, self.db, group_id=self.group_id, topic=self.topic,
                                        stored=stored, partitions=partitions, retry=self._with_db_retry)
        self.engine.forget(partitions)
        known: dict[int, int] = {}
        for p in partitions:
            offset = stored.get(p)
            self.assignment.durable[p] = offset
            tp = TopicPartition(self.topic, p)
            if offset is not None:
                self.consumer.seek(tp, offset)
                known[p] = offset
            elif self.auto_offset_reset == "earliest":
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek_to_end(tp)
        if known:
            self._commit_kafka(known)  # Kafka's view (lag) follows the database, e.g. after a manual reset

    # -- one batch ---------------------------------------------------------------------------------------
    def _process(self, raw_records: list[Any]) -> None:
        """Decode a polled batch, wait for the batch in flight, then hand this one over (or run it inline)."""
        # Records still in the broker past this poll and the batch in flight ("auto": the decode process and the
        # overlap only while at least one more full poll waits; caught up, a batch at a time in this thread)
        waiting = self._lag - len(raw_records) - (self._pending[0].size if self._pending is not None else 0)
        behind = waiting >= self.max_poll_records
        batch = self._prepare(raw_records, behind or not self.decode_when_behind)
        if not self._settle() or self._stop.is_set():
            return  # the previous batch failed and rewound (these records come again), or shutting down
        try:
            for raw, failure in batch.dead:
                self.dead_letters.send(raw, failure)
        except BrokerError as exc:
            self._dead_letters_failed(exc)
            return
        self.faults.at("mid_batch")
        batch.expected = {p: self.assignment.durable.get(p) for p in batch.next_offsets}
        if self._pool is not None and (behind or not self.overlap_when_behind):
            self._pending = (batch, self._pool.submit(self._execute, batch))
            return
        future: Future[BatchOutcome] = Future()
        try:
            future.set_result(self._execute(batch))
        except Exception as exc:  # noqa: BLE001 - handled (or re-raised) by _settle like a worker's error
            future.set_exception(exc)
        self._pending = (batch, future)
        self._settle()

    def _prepare(self, raw_records: list[Any], child: bool) -> Batch:
        """Step 1 (loop thread): decode (``child``: in the decode process, if there is one); nothing is sent or scored yet (nor
        counted: a batch read again after a rewind counts once, when it is durable)."""
        scorer = self.engine.scorer
        decoder = self._start_decoder() if child else None
        with metrics.timed("decode"):
            batch = Batch.decode(raw_records, window_len=scorer.window_len, channels=scorer.channels,
                                 max_bytes=self.max_record_bytes, decode=decoder.decode if decoder else decode_batch)
        self.stats.child_decodes += decoder is not None and decoder.alive  # not a poll it failed on (decoded here)
        return batch

    def _start_decoder(self) -> DecodeProcess | None:
        """The decode process, started on first use (``run.decode_process``); None when it is off, or failed."""
        if self._decoder is None and self.decode_process:
            try:
                self._decoder = DecodeProcess()
            except RuntimeError as exc:  # a helper never stops the consumer
                self.decode_process = False  # tried once
                log.error("%s; decoding in the consumer's own thread", exc)
            else:
                log.info("decode process started (pid %d)%s", self._decoder.pid,
                         f": {self._lag} records behind" if self.decode_when_behind else "")
        return self._decoder if self._decoder is not None and self._decoder.alive else None

    def _execute(self, batch: Batch) -> BatchOutcome:
        """Steps 2-4 (worker thread with ``overlap``): state, scoring, dead-letter flush, one transaction."""
        return make_durable(batch, engine=self.engine, db=self.db, dead_letters=self.dead_letters, faults=self.faults,
                            group_id=self.group_id, topic=self.topic)

    def _settle(self) -> bool:
        """Wait for the batch in flight and finish it (step 5); False when it failed and the loop rewound."""
        if self._pending is None:
            return True
        batch, future = self._pending
        self._pending = None
        try:
            outcome = future.result()
        except StaleOffsetError as exc:
            health.batch_failed(f"batch dropped: {exc}")
            log.warning("batch dropped: %s; re-reading state", exc)
            self.stats.stale_batches += 1
            metrics.STALE_BATCHES.inc()
            self._rewind()
            return False
        except BrokerError as exc:  # make_durable's only Kafka call: the dead-letter flush
            self._dead_letters_failed(exc)
            return False
        except StoreError as exc:
            health.batch_failed(f"batch not durable: {exc}")
            log.warning("batch not durable (%s); pausing and retrying from the stored offsets", exc)
            self.stats.failed_batches += 1
            outages.wait_for_database(self.db, self.consumer, stop=self._stop, sleep=self.sleep, stats=self.stats,
                                      keep_alive=self._apply_rebalances)
            self._rewind()
            return False
        self._complete(batch, outcome)
        return True

    def _dead_letters_failed(self, exc: BrokerError) -> None:
        """Dead letters not delivered: nothing of the batch is durable. Back off, then re-read it from the
        stored offsets (its dead letters are sent again)."""
        delay = self.dead_letters.backoff_s()
        health.batch_failed(f"dead letters not delivered: {exc}")
        log.error("Kafka: %s; batch not durable, re-reading it from the stored offsets in %.1f s", exc, delay)
        self.stats.failed_batches += 1
        outages.back_off(self.consumer, delay, sleep=self.sleep, keep_alive=self._apply_rebalances)
        self._rewind()

    def _abandon(self) -> None:
        """On exit: let the batch in flight end (durable or not: the database decides) and stop the worker."""
        if self._pending is not None:
            try:
                self._settle()
            except Exception as exc:  # noqa: BLE001 - exiting anyway; the stored offsets are the truth
                log.warning("last batch not finished on exit (%s): it will be read again", exc)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _complete(self, batch: Batch, outcome: BatchOutcome) -> None:
        """Step 5 (loop thread) and bookkeeping of a durable batch."""
        next_offsets = batch.next_offsets
        self.assignment.durable.update(next_offsets)
        self.stats.committed.extend((p, batch.first[p], o) for p, o in next_offsets.items())
        health.batch_durable()
        # before the count a scraper waits on
        metrics.observe_alerts(self.engine.held().values(), outcome.decisions, self._event_ends)
        self.stats.consumed += batch.size
        metrics.WINDOWS_CONSUMED.inc(batch.size)
        if self.shadow is not None:
            try:
                self.shadow.observe(outcome.decisions, self.engine.scorer.version)
            except Exception as exc:  # noqa: BLE001 - a shadow never stops the consumer
                log.error("shadow %s: stopped scoring (%s)", self.shadow.version, exc)
                self.shadow = None
        for _, failure in (*batch.dead, *batch.late_dead):
            metrics.DECODE_FAILURES.labels(failure.reason).inc()
        metrics.DUPLICATE_WINDOWS.inc(batch.duplicates)
        metrics.ALERTS_OPENED.inc(sum(1 for _, d in outcome.decisions if d.opened))
        metrics.ALERTS_CLOSED.inc(sum(1 for _, d in outcome.decisions if d.closed))
        self._commit_kafka(next_offsets)
        self.faults.at("after_kafka_commit")
        self.stats.dead_letters += len(batch.dead) + len(batch.late_dead)
        self.stats.duplicates += batch.duplicates
        self.stats.scored += len(outcome.decisions)
        self.stats.alerts_written += len(outcome.alerts)
        self.stats.batches += 1
        metrics.WINDOWS_SCORED.inc(len(outcome.decisions))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - batch.started)
        self._bound_memory()
        if self.on_batch:
            self.on_batch(self.stats)

    def _bound_memory(self) -> None:
        """Between batches (this one durable, the next not begun): keep at most ``max_sensors`` sensor states in
        memory, the shadow's too."""
        if self.max_sensors:
            dropped = self.engine.evict(self.max_sensors)
            if self.shadow is not None:
                self.shadow.engine.evict(self.max_sensors)
            if dropped:
                metrics.SENSORS_EVICTED.inc(dropped)
                self.stats.evicted += dropped
        metrics.SENSORS_IN_MEMORY.set(len(self.engine.held()))

    def _commit_kafka(self, offsets: dict[int, int]) -> None:
        with metrics.timed("kafka_commit"):
            self._commit_offsets(offsets)

    def _commit_offsets(self, offsets: dict[int, int]) -> None:
        try:
            self.consumer.commit(
                {TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()},
                timeout_ms=int(self.close_timeout_s * 1000),
            )
        except (KafkaError, RuntimeError) as exc:  # informational only: the database holds the truth
            log.info("Kafka offset commit skipped: %s", exc)
            said = str(exc) if str(exc) not in ("", "None") else "no answer in time"
            health.kafka_failed(f"Kafka offset commit failed: {exc.__class__.__name__}: {said}")
            self._kafka_unsynced |= offsets.keys()
        else:
            health.kafka_ok()
            self._kafka_unsynced -= offsets.keys()

    def _resync_kafka(self, *, now: float | None = None) -> None:
        """Commit the stored offsets of owned partitions whose last Kafka commit failed: when idle (at most once
        per KAFKA_RESYNC_S, a broker outage must not turn every idle poll into a commit timeout) and on exit."""
        offsets = {p: o for p in self._kafka_unsynced & self.assignment.owned
                   if (o := self.assignment.durable.get(p)) is not None}
        if not offsets or (now is not None and now < self._kafka_resync_at):
            return
        if now is not None:
            self._kafka_resync_at = now + KAFKA_RESYNC_S
        self._commit_kafka(offsets)

    def _rewind(self) -> None:
        """Forget every cached sensor state and seek every owned partition back to its stored offset."""
        self._rewinds += 1
        self.engine.forget()
        if self.shadow is not None:
            self.shadow.engine.forget()
        self._seek_to_durable(set(self.assignment.owned))

    def _update_lag(self) -> None:
        """Records between the stored offset (0 before the first commit) and the partition's high watermark
        (known from the last fetch response: no extra request); their sum picks the next poll's size."""
        total, unknown = 0, False
        for p in self.assignment.owned:
            high = self.consumer.highwater(TopicPartition(self.topic, p))
            if high is not None:
                lag = self.assignment.lag(p, high)
                total += lag
                metrics.CONSUMER_LAG.labels(str(p)).set(lag)
            else:
                unknown = True
        metrics.refresh_event_lag(self._event_ends, self.assignment.owned)
        self._behind = total > self.max_poll_records
        self._lag = total
        if self.assignment.owned and total == 0 and not unknown and self._pending is None:
            health.batch_durable()  # caught up: no batch is failing

    def _heartbeat(self, now: float | None = None) -> None:
        """Every ``heartbeat_s``: one INFO line with the records consumed since the last one, the lag and the
        run's counters (a silent consumer is indistinguishable from a stuck one)."""
        now = time.monotonic() if now is None else now
        since, consumed = self._last_heartbeat
        if now - since < self.heartbeat_s:
            return
        s = self.stats
        self._last_heartbeat = (now, s.consumed)
        log.info("running: %d records in %.0f s (%.1f/s), lag %d records on %d partition(s); totals: %d consumed, "
                 "%d judged, %d dead letters, %d duplicates, %d alert writes, %d stale / %d failed batches",
                 s.consumed - consumed, now - since, (s.consumed - consumed) / max(now - since, 1e-9), self._lag,
                 len(self.assignment.owned), s.consumed, s.scored, s.dead_letters, s.duplicates, s.alerts_written,
                 s.stale_batches, s.failed_batches,
                 extra={"event": "heartbeat", "records": s.consumed - consumed, "seconds": now - since,
                        "lag_records": self._lag, "partitions": len(self.assignment.owned)})

    def _with_db_retry(self, action: Callable[[], T]) -> T:
        return outages.retry_store(action, stop=self._stop, sleep=self.sleep, stats=self.stats)


def build_runner(
    kafka: KafkaSettings,
    run: RunSettings,
    threshold: ThresholdSettings,
    alert: AlertSettings,
    bundle: ModelBundle,
    db: DbEngine,
    *,
    idle_exit_s: float | None = None,
    device: str = "cpu",
    parallelism: Parallelism | None = None,
) -> Runner:
    """Wire a Runner from settings sections, a loaded model (scored on ``device``: settings model.device) and a
    database engine; ``parallelism``: see ``RunnerConfig.of``."""
    return Runner(
        RunnerConfig.of(kafka, run, idle_exit_s=idle_exit_s, parallelism=parallelism),
        consumer=make_consumer(kafka),
        dead_letters=DeadLetters(make_producer(kafka, max_block_ms=DLQ_MAX_BLOCK_MS), kafka.dlq_topic),
        db=db,
        engine=Engine(Scorer(bundle, device=device), threshold, alert),
        faults=FaultInjector(run.fault),
        consumer_factory=lambda: make_consumer(kafka),
    )
