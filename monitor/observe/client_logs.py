"""The Kafka client's own log lines, at a human rate.

kafka-python logs some conditions at every retry: a consumer subscribed to a topic that does not exist (a typo in
``kafka.topic``, or a topic not created yet) logs ``Topic x not found in cluster metadata`` at ERROR ten times a
second for as long as it waits, which buries every other line. :class:`RepeatLimit` lets each such message through
once per ``every_s`` with the count of those held back, and adds what to do where the cause is known. Only the
client's loggers (``kafka.*``) are limited; the product's own lines are never dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

HINTS = {
    "Topic %s not found in cluster metadata": "the topic does not exist on the broker: create it (`monitor topics "
    "create`) or correct kafka.topic; the consumer waits for it",
}


class RepeatLimit(logging.Filter):
    """At most one record per (logger, message template) of the Kafka client every ``every_s`` seconds."""

    def __init__(self, every_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s = every_s
        self.clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # template -> (last let through, held since)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("kafka"):
            return True
        template = str(record.msg)
        key = (record.name, template)
        now = self.clock()
        with self._lock:
            last, held = self._seen.get(key, (None, 0))
            if last is not None and now - last < self.every_s:
                self._seen[key] = (last, held + 1)
                return False
            self._seen[key] = (now, 0)
        hint = HINTS.get(template)
        extra = (f"; {hint}" if hint else "") + (
            f" ({held} more like it in the last {now - last:.0f} s)" if held and last is not None else "")
        if extra:
            # the template keeps its own arguments (the added text is %-escaped where they will be applied)
            record.msg = template + (extra.replace("%", "%%") if record.args else extra)
        return True
