"""Hot swap: a running consumer polls the registry's active pointer and loads a newly promoted model.

``ModelWatcher.poll()`` is called by the runner between batches; it reads the pointer at most every
``check_interval_s`` seconds (one primary-key read) and returns the new bundle only when the active version
changed. Errors (database away, corrupt artifact) are logged and the current model keeps serving; a version
whose artifact is refused (``ArtifactError``: damaged, crafted, without its weights' checksum) is reported once
and counted like an incompatible one (its stored bytes do not change), while a database error is retried at the
next check.

A promoted model whose channels or window length differ from the serving one is not swapped in (it would send
every window to the dead-letter topic): the error is logged once per version, counted in
``monitor_model_swaps_refused_total``, and the current model keeps serving until the pointer moves again or
the consumer restarts (a restart serves the active version, as for a deliberate change of the stream).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine as DbEngine

from monitor.core.scoring.artifact import ModelBundle, ModelMeta, incompatibility
from monitor.errors import ArtifactError, MonitorError
from monitor.observe import metrics
from monitor.registry import versions

log = logging.getLogger(__name__)


class ModelWatcher:
    """Watches the active version of one model name.

    ``current_version``: the registry version now serving (None when serving a file); ``serving``: the
    serving model's metadata, against which a newly promoted model is checked.
    """

    def __init__(
        self,
        db: DbEngine,
        name: str,
        current_version: str | None,
        *,
        serving: ModelMeta,
        check_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.name = name
        self.current_version = current_version
        self.serving = serving
        self.check_interval_s = check_interval_s
        self.clock = clock
        self._next_check = clock()
        self._refused: set[str] = set()  # incompatible or damaged versions already reported
        self.problem: str | None = None  # why the active version is not serving (None once it serves)
        # shadow mode (monitor/registry/shadow.py): the shadow version seen last, and a change for the runner to take
        # (None: no change; (None, None): shadowing stopped; (version, bundle): start shadowing that version)
        self.shadow_version: str | None = None
        self.shadow_change: tuple[str | None, ModelBundle | None] | None = None

    def poll(self) -> ModelBundle | None:
        """The newly active model, or None (not time to check yet, unchanged, or unloadable)."""
        now = self.clock()
        if now < self._next_check:
            return None
        self._next_check = now + self.check_interval_s
        try:
            version, shadow = versions.pointer(self.db, self.name)
        except MonitorError as exc:
            log.error("model watcher: cannot read the active version of %s (%s); the current model keeps serving",
                      self.name, exc)
            return None
        self._watch_shadow(shadow)
        if version is None or version == self.current_version or version in self._refused:
            return None
        try:
            bundle = versions.load_bundle(self.db, self.name, version)
        except ArtifactError as exc:
            self._refused.add(version)
            self.problem = f"promoted version {version} not swapped in: {exc}"
            metrics.MODEL_SWAPS_REFUSED.inc()
            log.error("model watcher: not swapping %s to the promoted version %s: its artifact is refused (%s); the "
                      "current model keeps serving (roll back, or promote a sound version)", self.name, version, exc)
            return None
        except MonitorError as exc:
            log.error("model watcher: cannot load the active model of %s (%s); the current one keeps serving",
                      self.name, exc)
            return None
        if problem := incompatibility(self.serving, bundle.meta):
            self._refused.add(version)
            self.problem = f"promoted version {version} not swapped in: {problem}"
            metrics.MODEL_SWAPS_REFUSED.inc()
            log.error("model watcher: not swapping %s to the promoted version %s: %s; the current model keeps "
                      "serving (roll back, or restart the consumers once the producers send the new windows)",
                      self.name, version, problem)
            return None
        log.info("model watcher: %s active version %s -> %s", self.name, self.current_version, version)
        self.current_version = version
        self.serving = bundle.meta
        self.problem = None
        return bundle

    def _watch_shadow(self, shadow: str | None) -> None:
        if shadow == self.shadow_version or (shadow is not None and shadow in self._refused):
            return
        if shadow is None:
            log.info("model watcher: %s shadow %s stopped", self.name, self.shadow_version)
            self.shadow_version, self.shadow_change = None, (None, None)
            return
        try:
            bundle = versions.load_bundle(self.db, self.name, shadow)
        except ArtifactError as exc:
            self._refuse_shadow(shadow)
            log.error("model watcher: shadow version %s of %s refused (%s)", shadow, self.name, exc)
            return
        except MonitorError as exc:  # the database: tried again at the next check
            log.warning("model watcher: cannot load shadow version %s of %s (%s)", shadow, self.name, exc)
            return
        if problem := incompatibility(self.serving, bundle.meta):
            self._refuse_shadow(shadow)
            log.error("model watcher: shadow version %s of %s not scored: %s", shadow, self.name, problem)
            return
        log.info("model watcher: %s shadow version %s: scored alongside %s, never alerting", self.name, shadow,
                 self.current_version)
        self.shadow_version, self.shadow_change = shadow, (shadow, bundle)

    def _refuse_shadow(self, shadow: str) -> None:
        """A new shadow that cannot be scored: never tried again, and the previous one (if any) stops too."""
        self._refused.add(shadow)
        if self.shadow_version is not None:
            self.shadow_version, self.shadow_change = None, (None, None)
