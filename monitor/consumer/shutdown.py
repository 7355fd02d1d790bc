"""The shutdown deadline of a `monitor run` process.

SIGTERM/SIGINT ask the consumer loop to stop after the batch in flight and to close its clients, each Kafka call
bounded by ``run.close_timeout_s``. Some waits cannot be interrupted from the loop: a database driver waiting
for the answer of a black-holed server (TCP accepts, nothing comes back, so neither ``connect_timeout`` nor the
server-side ``statement_timeout`` ends it), a Kafka client waiting on its network thread. So the first signal
also arms a deadline (``run.shutdown_timeout_s``); past it the process ends at once with ``os._exit``,
exit status 0, after an ERROR line that says so.

Ending there loses nothing: offsets move only in the database transaction that stores the batch's output (and
Kafka's copy is committed after it), so an exit anywhere leaves the stored offsets pointing at the first window
whose output is not stored; that batch is read again on restart (its dead letters possibly sent twice, as after
any crash). An unfinished transaction is rolled back by the database when the connection goes away.

The watcher thread starts before any signal (``start``): the signal handler only sets an event, it never creates
a thread or takes a lock the interrupted code may hold.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

FORCED_EXIT_STATUS = 0  # the stop that was asked for happened and nothing was lost (see the module docstring)


class ShutdownDeadline:
    """``arm()`` (from a signal handler) starts a countdown of ``timeout_s`` seconds; ``finish()`` stops it.
    At zero the process exits with ``FORCED_EXIT_STATUS`` (``exit`` is injectable for tests)."""

    def __init__(self, timeout_s: float, *, exit: Callable[[int], Any] = os._exit) -> None:
        self.timeout_s = timeout_s
        self.reason = "stop requested"
        self.forced = False
        self._exit = exit
        self._armed = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the (idle) watcher thread; call before installing the signal handlers."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="monitor-shutdown-deadline", daemon=True)
            self._thread.start()

    def arm(self, reason: str = "stop requested") -> None:
        """Begin the countdown (idempotent: a second signal does not restart it). Safe in a signal handler."""
        if not self._armed.is_set():
            self.reason = reason
            self._armed.set()

    def finish(self) -> None:
        """The process is done (tests; a real process simply exits)."""
        self._finished.set()
        self._armed.set()

    def join(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _watch(self) -> None:
        self._armed.wait()
        if self._finished.is_set():
            return
        started = time.monotonic()
        log.info("%s: stopping; the batch in flight is finished or dropped, exit within %.1f s",
                    self.reason, self.timeout_s)
        if self._finished.wait(max(self.timeout_s - (time.monotonic() - started), 0.0)):
            return
        self.forced = True
        log.error("shutdown deadline of %.1f s passed (a database or Kafka call is not answering): exiting now "
                  "with status %d; nothing past the stored output was committed, the batch in flight is read again "
                  "on restart", self.timeout_s, FORCED_EXIT_STATUS)
        for handler in logging.getLogger().handlers:
            try:
                handler.flush()
            except Exception:  # noqa: BLE001 - exiting anyway
                pass
        sys.stderr.flush()
        self._exit(FORCED_EXIT_STATUS)
