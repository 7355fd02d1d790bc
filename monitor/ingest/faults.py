"""TEST ONLY: fault injection points of the consumer loop, used by the fault suite (`make chaos`).

Off unless ``run.fault`` is set (``MONITOR_RUN__FAULT``). The spec is one or more comma-separated items, each
``<point>:<probability>[:<action>[:<seed>]]`` or the word ``break_fence``:

* ``point``: ``mid_batch`` (records decoded, dead letters sent but not flushed, nothing scored),
  ``before_db_commit`` (dead letters durable, database transaction not begun), ``in_db_commit`` (inside the
  batch transaction, the offset rows updated and locked, nothing committed), ``after_db_commit`` (batch
  durable in the database, Kafka offsets not committed), ``after_kafka_commit``, or ``any``;
* ``probability``: chance per batch and point (0..1);
* ``action``: ``kill`` (SIGKILL this process, the default), ``term`` (SIGTERM this process, which asks for a
  clean shutdown and carries on with the batch) or ``stop`` (SIGSTOP, taken by the thread at the point before it
  goes a step further, and by the rest of the process with it: a zombie, until the suite
  sends SIGCONT; fires once per process, so the resumed zombie carries on with the batch it held);
* ``seed``: seeds the draws (default: the process id);
* ``break_fence``: the suite's self-test only. The batch commit takes the offsets and sensor revisions stored at
  that moment as the ones it started from, so a stale batch (a zombie's) is written instead of refused: the
  fault suite must fail.

Each firing logs ``FAULT <action> at <point>`` on the ``monitor.faults`` logger before it acts.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading

from monitor.errors import ConfigError

POINTS = ("mid_batch", "before_db_commit", "in_db_commit", "after_db_commit", "after_kafka_commit")
ACTIONS = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "stop": signal.SIGSTOP}
BREAK_FENCE = "break_fence"

log = logging.getLogger("monitor.faults")


class FaultInjector:
    """Fires the configured action at the configured point with the configured probability."""

    def __init__(self, spec: str | None) -> None:
        self.point: str | None = None
        self.probability = 0.0
        self.action = "kill"
        self.fence_broken = False
        self._rng = random.Random(os.getpid())
        if not spec:
            return
        items = [item.strip() for item in spec.split(",") if item.strip()]
        self.fence_broken = BREAK_FENCE in items
        points = [item for item in items if item != BREAK_FENCE]
        if len(points) > 1:
            raise ConfigError(f"run.fault {spec!r}: one injection point at most (and optionally {BREAK_FENCE})")
        if points:
            self._parse(points[0], spec)
        log.warning("TEST-ONLY fault injection armed: %s", spec)

    def _parse(self, item: str, spec: str) -> None:
        parts = item.split(":")
        try:
            self.point = parts[0]
            self.probability = float(parts[1]) if len(parts) > 1 else 1.0
            if len(parts) > 2 and parts[2]:
                self.action = parts[2]
            if len(parts) > 3 and parts[3]:
                self._rng = random.Random(int(parts[3]))
        except ValueError as exc:
            raise ConfigError(f"run.fault {spec!r}: expected <point>:<probability>[:<action>[:<seed>]]") from exc
        if self.point not in (*POINTS, "any") or self.action not in ACTIONS or not 0 <= self.probability <= 1:
            raise ConfigError(f"run.fault {spec!r}: point one of {POINTS + ('any',)}, action one of {tuple(ACTIONS)}")

    def at(self, point: str) -> None:
        """Called by the loop at each point; a no-op unless armed for it."""
        if self.point is None or (self.point != "any" and self.point != point):
            return
        if self._rng.random() >= self.probability:
            return
        action = self.action
        if action == "stop":
            self.point = None  # once: the resumed zombie carries on with the batch it held
        log.warning("FAULT %s at %s", action, point)
        for handler in logging.getLogger().handlers:
            handler.flush()
        if action == "stop":
            # Directed at this thread: it takes the stop itself on leaving the call, and the rest of the process
            # with it. Sent to the process (os.kill), the stop is taken by the main thread, and this one runs on
            # until that has happened: into the transaction the point is before (a SQLite zombie holding the
            # write lock, its heir locked out for as long as it stays paused).
            signal.pthread_kill(threading.get_ident(), ACTIONS[action])
        else:
            os.kill(os.getpid(), ACTIONS[action])
