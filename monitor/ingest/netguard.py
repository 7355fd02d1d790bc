"""A bound on kafka-python 3.0.x's cross-thread waits (``NetworkSelector.run``).

kafka-python 3.x runs its network I/O on a thread of its own; a caller (``poll``, ``commit``, ...) schedules a
coroutine on that thread and blocks on ``threading.Event.wait()`` with no timeout. Upstream knows this wait can
last forever (dpkp/kafka-python#3121, fixed by #3123/#3124 after the 3.0.12 release). This project's CI caught
it: a consumer parked inside ``poll()`` for five minutes with 0 records read while its I/O thread stayed alive.
A process in that state looks healthy from outside and stalls its partitions indefinitely.

``install(limit_s)`` replaces the unbounded wait with one that re-wakes the I/O thread every second (harmless
when nothing was lost) and raises ``NetWaitStalled`` (a ``KafkaTimeoutError``) once ``limit_s`` has passed,
marking the client as well (``has_stalled``). The runner answers either signal by replacing its consumer and
resuming from the offsets stored in the database; other callers already treat ``KafkaError`` as a failed call.
Versions whose ``run`` no longer waits without a bound (the upstream fix) are left alone.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from typing import Any

from kafka.errors import KafkaTimeoutError
from kafka.net.selector import NetworkSelector

log = logging.getLogger(__name__)

_limit_s = 60.0  # seconds; install() sets it
_ORIGINAL = NetworkSelector.run


class NetWaitStalled(KafkaTimeoutError):  # type: ignore[misc]  # kafka-python is untyped
    """kafka-python's network thread did not finish a call within the stall limit."""


def has_stalled(client: Any) -> bool:
    """True once any call of this client's network thread (a KafkaConsumer's) hit the stall limit.

    Checked by the runner after every poll: kafka-python catches some timeouts itself (a poll then returns
    nothing, every time, after waiting the limit), so the exception alone would not reveal a wedged client."""
    return bool(getattr(getattr(client, "_net", None), "netguard_stalled", False))


def _has_unbounded_wait() -> bool:
    """True where ``NetworkSelector.run`` blocks on ``event.wait()`` with no timeout (3.0.x up to 3.0.12)."""
    try:
        source = inspect.getsource(_ORIGINAL)
    except (OSError, TypeError):
        return False
    return "event.wait()" in source


def install(limit_s: float) -> bool:
    """Bound every cross-thread wait of kafka-python by ``limit_s`` seconds (process-wide, idempotent).

    Returns True when the bound is in force. The largest limit asked for wins, so one client's short limit
    never cuts another's legitimate wait."""
    global _limit_s
    if NetworkSelector.run is _bounded_run:
        _limit_s = max(_limit_s, float(limit_s))
        return True
    if not _has_unbounded_wait():
        return False
    _limit_s = float(limit_s)
    NetworkSelector.run = _bounded_run
    return True


def _bounded_run(self: Any, coro: Any, *args: Any) -> Any:
    """``NetworkSelector.run`` of kafka-python 3.0.12, its final wait bounded (see the module docstring)."""
    if self._closed or self._io_thread is None or threading.current_thread() is self._io_thread or self._exception:
        return _ORIGINAL(self, coro, *args)  # the cases that never block on the event

    event = threading.Event()
    state: dict[str, Any] = {"value": None, "exception": None}

    async def waiter() -> None:
        try:
            state["value"] = await self._invoke(coro, *args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller thread below
            if state["exception"] is None:
                state["exception"] = exc
        finally:
            with self._pending_waiters_lock:
                self._pending_waiters.pop(event, None)
            event.set()

    with self._pending_waiters_lock:
        self._pending_waiters[event] = state
    self.call_soon_threadsafe(waiter)
    limit = _limit_s
    deadline = time.monotonic() + limit
    while not event.wait(1.0):
        self.wakeup()  # a lost wake-up would otherwise leave the task queued behind a blocking select()
        if time.monotonic() > deadline:
            with self._pending_waiters_lock:
                self._pending_waiters.pop(event, None)
            self.netguard_stalled = True  # kafka-python swallows some timeouts: the owner checks this flag
            name = getattr(coro, "__qualname__", repr(coro))
            log.error("kafka-python network call %s did not finish in %.0f s: giving up on it", name, limit)
            raise NetWaitStalled(f"kafka-python network call {name} did not finish in {limit:.0f} s")
    if state["exception"] is not None:
        raise state["exception"]
    return state["value"]
