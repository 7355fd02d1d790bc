"""Bounded pools for the API's blocking work (Kafka reads, re-scoring, readiness pings).

Such work never runs on the event loop nor on the server's shared thread pool (which also serves every plain
endpoint): a ``Gate`` owns ``slots`` threads. A call that finds every slot taken is refused at once (the caller
answers 503 with Retry-After) instead of queueing, and a caller that stops waiting after its timeout leaves the
slot taken until the work really ends, so stuck work can never pile up more than ``slots`` threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Gate:
    """At most ``slots`` blocking jobs at once, each on a thread of this gate's own pool."""

    def __init__(self, slots: int, name: str) -> None:
        self.slots = slots
        self._free = threading.BoundedSemaphore(slots)
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix=name)

    def submit(self, job: Callable[[], T], wait_s: float = 0.0) -> Future[T] | None:
        """Start ``job`` on a free slot, waiting at most ``wait_s`` for one (0: not at all; only callers that are
        themselves on a worker thread may wait); None when every slot stayed taken."""
        got = self._free.acquire(timeout=wait_s) if wait_s > 0 else self._free.acquire(blocking=False)
        if not got:
            return None
        try:
            future = self._pool.submit(job)
        except BaseException:
            self._free.release()
            raise
        future.add_done_callback(lambda _: self._free.release())
        return future

    async def run(self, job: Callable[[], T], timeout_s: float) -> T | None:
        """``job``'s result, awaited without blocking the event loop; None when every slot is taken.
        Raises ``TimeoutError`` after ``timeout_s`` (the job goes on, holding its slot, until it ends)."""
        future = self.submit(job)
        if future is None:
            return None
        # shield: a timeout stops the waiting, never the job (a running thread cannot be stopped anyway)
        return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout_s)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
