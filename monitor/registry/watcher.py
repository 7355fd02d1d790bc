"""Hot swap: a running consumer polls the registry's active pointer and loads a newly promoted model.

``ModelWatcher.poll()`` is called by the runner between batches; it reads the pointer at most every
``check_interval_s`` seconds (one primary-key read) and returns the new bundle only when the active version
changed. Errors (database away, corrupt artifact) are logged and the current model keeps serving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine as DbEngine

from monitor.errors import MonitorError
from monitor.registry import versions
from monitor.scoring.artifact import ModelBundle

log = logging.getLogger(__name__)


class ModelWatcher:
    """Watches the active version of one model name."""

    def __init__(
        self,
        db: DbEngine,
        name: str,
        current_version: str | None,
        *,
        check_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.name = name
        self.current_version = current_version
        self.check_interval_s = check_interval_s
        self.clock = clock
        self._next_check = clock()

    def poll(self) -> ModelBundle | None:
        """The newly active model, or None (not time to check yet, unchanged, or unloadable)."""
        now = self.clock()
        if now < self._next_check:
            return None
        self._next_check = now + self.check_interval_s
        try:
            version = versions.active_version(self.db, self.name)
            if version is None or version == self.current_version:
                return None
            bundle = versions.load_bundle(self.db, self.name, version)
        except MonitorError as exc:
            log.error("model watcher: cannot load the active model of %s (%s); the current one keeps serving",
                      self.name, exc)
            return None
        log.info("model watcher: %s active version %s -> %s", self.name, self.current_version, version)
        self.current_version = version
        return bundle
