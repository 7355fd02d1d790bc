"""`monitor scheduler`: retrain on a calendar (interval or cron) and when the score stream drifts.

Each tick (``tick_s``):
  1. drift: new ``sensor_state`` scores (of the active model only) feed river's ADWIN on log scores;
  2. due?  the persisted ``next_due_at`` has passed, or drift was seen after the last run started (and the
     last run finished at least ``drift_min_gap_s`` ago);
  3. single flight: take the database lease (one conditional UPDATE); re-read the row under the lease,
     because another replica may have just run the job; advance ``next_due_at`` with the start (so a failed
     release cannot make this replica run again at once); run the retrain while a thread renews the lease;
     release it with the outcome and the next due time in one statement (retried once).
  4. a lost lease (taken over after expiry) or renewals failing until it may expire sets the job's ``cancel``
     event: the retrain stops between steps/polls/epochs and the run is reported ``failed``.
A job with no row yet is due at once for an interval schedule, at the next fire time for a cron expression.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from river.drift import ADWIN
from sqlalchemy import Engine as DbEngine
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import ConfigError, MonitorError, StoreError
from monitor.observe import metrics
from monitor.registry import versions
from monitor.store.schema import SensorState, utcnow
from monitor.training import lease
from monitor.training.retrain import FAILED, PROMOTED, REJECTED, SHADOWED, SKIPPED, RetrainOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """An interval in seconds (``"3600"``) or a cron expression (``"0 3 * * *"``, UTC)."""

    text: str

    def __post_init__(self) -> None:
        if not self._interval():
            from croniter import croniter

            if not croniter.is_valid(self.text):
                raise ConfigError(f"schedule {self.text!r} is neither seconds (e.g. 3600) nor a cron expression")

    def _interval(self) -> float | None:
        try:
            value = float(self.text)
        except ValueError:
            return None
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"schedule interval must be > 0 seconds, got {self.text!r}")
        return value

    def first(self, now: datetime) -> datetime:
        return now if self._interval() else self.next_after(now)

    def next_after(self, when: datetime) -> datetime:
        interval = self._interval()
        if interval:
            return when + timedelta(seconds=interval)
        from croniter import croniter

        result: datetime = croniter(self.text, when).get_next(datetime)
        return result


class ScoreDrift:
    """ADWIN on log scores of the active model, fed by polling ``sensor_state`` (one score per sensor update)."""

    def __init__(self, db: DbEngine, model_name: str, delta: float = 0.002) -> None:
        self.db = db
        self.model_name = model_name
        self.delta = delta
        self.detector = ADWIN(delta=delta)  # type: ignore[no-untyped-call]  # river is untyped here
        self.version: str | None = None
        self.since: datetime | None = None
        self.seen = 0

    def poll(self) -> bool:
        """Read new scores; True when ADWIN detected a change in their mean since the last poll."""
        active = versions.active_version(self.db, self.model_name)
        if active != self.version:  # a new model has another score scale: start over
            self.version, self.detector, self.seen = active, ADWIN(delta=self.delta), 0  # type: ignore[no-untyped-call]
        stmt = select(SensorState.last_score, SensorState.updated_at).where(SensorState.last_score.is_not(None))
        if active is not None:
            stmt = stmt.where(SensorState.model_version == active)
        if self.since is not None:
            stmt = stmt.where(SensorState.updated_at > self.since)
        try:
            with self.db.connect() as conn:
                rows = conn.execute(stmt.order_by(SensorState.updated_at)).all()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read sensor scores: {exc.__class__.__name__}") from exc
        drift = False
        for score, updated_at in rows:
            self.detector.update(math.log(max(float(score or 0.0), 1e-12)))  # type: ignore[no-untyped-call]
            self.seen += 1
            drift = drift or self.detector.drift_detected
            self.since = updated_at
        return drift


class Scheduler:
    """One scheduler replica. ``job(trigger, reason, cancel)`` runs one retrain and returns its outcome; it
    should stop soon after ``cancel`` is set (the lease is lost or about to be)."""

    def __init__(
        self,
        db: DbEngine,
        job: Callable[[str, str, threading.Event], RetrainOutcome],
        *,
        name: str,
        schedule: Schedule,
        lease_s: float = 120.0,
        tick_s: float = 5.0,
        drift: ScoreDrift | None = None,
        drift_min_gap_s: float = 3600.0,
        settle: Callable[[], str | None] | None = None,
        owner: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.job = job
        self.name = f"retrain:{name}"
        self.schedule = schedule
        self.lease_s = lease_s
        self.tick_s = tick_s
        self.drift = drift
        self.drift_min_gap_s = drift_min_gap_s
        self.settle = settle  # ends a complete shadow period (monitor.registry.shadow.settle), each tick
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.clock = clock
        self.drift_at: datetime | None = None
        self.runs = 0
        self._stop = threading.Event()

    def stop(self, *_: object) -> None:
        self._stop.set()

    def run(self, *, max_runs: int | None = None, max_ticks: int | None = None) -> int:
        """Tick until stopped (or ``max_runs`` retrains by this replica / ``max_ticks`` ticks); returns runs."""
        state = lease.ensure_job(self.db, self.name, self.schedule.first(self.clock()))
        log.info("scheduler %s: job %s next due %s (schedule %r)", self.owner, self.name,
                 state.next_due_at.isoformat() if state.next_due_at else "-", self.schedule.text)
        ticks = 0
        while not self._stop.is_set():
            try:
                self.tick()
            except MonitorError as exc:
                log.warning("scheduler tick failed: %s; retrying next tick", exc)
            ticks += 1
            if (max_runs is not None and self.runs >= max_runs) or (max_ticks is not None and ticks >= max_ticks):
                break
            self._stop.wait(self.tick_s)
        return self.runs

    def _due(self, state: lease.JobState, now: datetime) -> str | None:
        if state.next_due_at is not None and state.next_due_at <= now:
            return "schedule"
        if self.drift_at is not None and (state.last_started_at is None or state.last_started_at < self.drift_at) and (
            state.last_finished_at is None
            or (now - state.last_finished_at).total_seconds() >= self.drift_min_gap_s
        ):
            return "drift"
        return None

    def tick(self) -> RetrainOutcome | None:
        """One pass: drift poll, due check, and the retrain if this replica wins the lease."""
        now, ticked = self.clock(), time.monotonic()  # the lease expires lease_s after ``now``
        if self.settle is not None and (settled := self.settle()):
            log.info("scheduler: %s", settled)
        if self.drift is not None and self.drift.poll():
            self.drift_at = now
            metrics.scheduler_metrics().drift.inc()
            log.info("scheduler: drift detected in the score stream (ADWIN)")
        if self._due(lease.read(self.db, self.name), now) is None:
            return None
        if not lease.acquire(self.db, self.name, self.owner, self.lease_s, now):
            log.info("scheduler: another replica holds the lease; not running")
            return None
        state = lease.read(self.db, self.name)  # fresh, under the lease: another replica may have just run
        trigger = self._due(state, now)
        if trigger is None:
            lease.release(self.db, self.name, self.owner)
            return None
        next_due = self.schedule.next_after(now) if trigger == "schedule" else state.next_due_at
        lease.mark_started(self.db, self.name, self.owner, now, next_due_at=next_due)
        log.info("scheduler: retraining (trigger: %s)", trigger)
        done, cancel = threading.Event(), threading.Event()
        renewer = threading.Thread(target=self._renew, args=(done, cancel, ticked), daemon=True)
        renewer.start()
        started = time.monotonic()
        try:
            outcome = self.job(f"scheduler:{trigger}", f"{trigger} retrain", cancel)
        except Exception as exc:  # noqa: BLE001 - the job reports failures itself; this is the last guard
            log.exception("retrain job crashed")
            outcome = RetrainOutcome(FAILED, None, f"{type(exc).__name__}: {exc}")
        finally:
            done.set()
            renewer.join()
        if cancel.is_set() and outcome.outcome not in (FAILED, PROMOTED, SHADOWED):  # done: report it
            outcome = RetrainOutcome(FAILED, outcome.version, f"cancelled: the lease was lost ({outcome.reason})",
                                     outcome.gate, outcome.counts)
        self.runs += 1
        metrics.scheduler_metrics().runs.labels(outcome.outcome).inc()
        if outcome.outcome in (PROMOTED, SHADOWED, REJECTED, SKIPPED):
            metrics.scheduler_metrics().last_success.set(time.time())
        log.info("scheduler: %s in %.1f s; next due %s", outcome.line(), time.monotonic() - started,
                 next_due.isoformat() if next_due else "-")
        if not self._release(last_finished_at=self.clock(), last_outcome=outcome.outcome,
                             last_version=outcome.version, last_reason=outcome.reason[:4000], next_due_at=next_due):
            log.warning("scheduler: the lease was taken over meanwhile; this run's outcome is not recorded in %s",
                        self.name)
        return outcome

    def _release(self, **values: object) -> bool:
        """Release with ``values``, retrying once on a database error (the schedule already moved on)."""
        try:
            return lease.release(self.db, self.name, self.owner, **values)
        except StoreError as exc:
            log.warning("scheduler: releasing the lease failed (%s); retrying once", exc)
            self._stop.wait(min(self.tick_s, 5.0))
            return lease.release(self.db, self.name, self.owner, **values)

    def _renew(self, done: threading.Event, cancel: threading.Event, acquired: float) -> None:
        """Renew every ``lease_s / 3`` until ``done``; set ``cancel`` when the lease is lost, or when a renewal
        failed and the lease (as last renewed) could expire before the next try."""
        interval = self.lease_s / 3
        expires = acquired + self.lease_s
        while not done.wait(interval):
            attempt = time.monotonic()
            try:
                if lease.renew(self.db, self.name, self.owner, self.lease_s, self.clock()):
                    expires = attempt + self.lease_s
                    continue
                log.error("scheduler: lease lost while retraining (expired and taken over?); cancelling the run")
            except StoreError as exc:
                if time.monotonic() + interval < expires - 1.0:
                    log.warning("scheduler: lease renewal failed: %s; retrying in %.0f s", exc, interval)
                    continue
                log.error("scheduler: lease renewal failed: %s; the lease may expire before the next try: "
                          "cancelling the run", exc)
            cancel.set()
            return
