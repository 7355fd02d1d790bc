"""Shadow mode: a candidate scored alongside the active model in the running consumers, never alerting.

`monitor models shadow VERSION` sets ``model_pointers.shadow_version``; each consumer's watcher loads it and the
runner hands every durable batch's windows to :class:`Shadow`, which judges them with the shadow model (its own
in-memory sensor contexts: thresholds, input centres, alert state; nothing is written to the alert tables) and
counts, window by window, where its decision differs from the active model's. The counts are written to
``shadow_reports`` (one row per shadow version and consumer process) every ``flush_s`` and on stop;
`monitor models show VERSION` sums them. Scoring twice costs the consumer about a second model's scoring time
while a shadow is set.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine as DbEngine
from sqlalchemy import insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from monitor.core.engine import Engine, Record
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer
from monitor.core.thresholds import Decision
from monitor.errors import StoreError
from monitor.settings import AlertSettings, ThresholdSettings
from monitor.store.schema import ShadowReport, utcnow

log = logging.getLogger(__name__)

COUNTS = ("windows", "both", "only_active", "only_shadow", "opened_active", "opened_shadow")


def consumer_name() -> str:
    """host:pid:token (the token: a restarted container keeps its host name and pid 1)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"[-200:]


@dataclass
class ShadowCounts:
    windows: int = 0
    both: int = 0  # windows in an alert under both models
    only_active: int = 0  # in an alert under the active model only (the shadow would have stayed silent)
    only_shadow: int = 0  # in an alert under the shadow only (the shadow would have alerted)
    opened_active: int = 0
    opened_shadow: int = 0

    def add(self, active: Decision, shadow: Decision) -> None:
        self.windows += 1
        self.both += active.active and shadow.active
        self.only_active += active.active and not shadow.active
        self.only_shadow += shadow.active and not active.active
        self.opened_active += active.opened
        self.opened_shadow += shadow.opened


class Shadow:
    """Judges the active model's windows again with the shadow model and counts the differences."""

    def __init__(
        self, db: DbEngine, name: str, bundle: ModelBundle, threshold_cfg: ThresholdSettings,
        alert_cfg: AlertSettings, *, flush_s: float = 30.0, consumer: str | None = None,
        clock: Callable[[], float] = time.monotonic, batch_size: int = 256, device: Any = "cpu",
    ) -> None:
        self.db = db
        self.name = name
        self.version = bundle.meta.version
        self.engine = Engine(Scorer(bundle, batch_size, device=device), threshold_cfg, alert_cfg)
        self.counts = ShadowCounts()
        self.consumer = consumer or consumer_name()
        self.flush_s = flush_s
        self.clock = clock
        self.started_at = utcnow()
        self.active_version = ""
        self._next_flush = clock() + flush_s
        self._flushed = ShadowCounts()
        # sensors the active model held in an alert (or judged above its open level) during the period: the shadow
        # judged those windows by its own lights and may have learned from them; a promotion does not take their
        # contexts (an anomaly must never teach the detector that it is normal)
        self.alerted: set[str] = set()

    def warmed(self) -> dict[str, Any]:
        """The shadow's sensor contexts a promotion may take: those of sensors the active model judged normal on
        every window of the period."""
        return {s: c for s, c in self.engine.held().items() if s not in self.alerted}

    def observe(self, decisions: Sequence[tuple[Record, Decision]], active_version: str) -> None:
        """One durable batch of the active model: judge its windows with the shadow, count, flush when due."""
        if not decisions:
            return
        if active_version != self.active_version:
            if self.active_version:  # the active model changed: what was counted compared another model
                self.flush()
            self.counts, self._flushed, self.started_at = ShadowCounts(), ShadowCounts(), utcnow()
            self.active_version = active_version
        shadow = {(r.partition, r.offset): d for r, d in self.engine.process([r for r, _ in decisions]).decisions}
        for record, decision in decisions:
            if decision.active or decision.above:
                self.alerted.add(record.window.sensor_id)
            other = shadow.get((record.partition, record.offset))
            if other is not None:
                self.counts.add(decision, other)
        if self.clock() >= self._next_flush:
            self.flush()

    def forget(self, partitions: set[int]) -> None:
        self.engine.forget(partitions)

    def flush(self) -> None:
        """Write this consumer's counts (a failure is logged and retried at the next flush)."""
        self._next_flush = self.clock() + self.flush_s
        if self.counts == self._flushed:
            return
        values: dict[str, Any] = {k: getattr(self.counts, k) for k in COUNTS}
        values.update(active_version=self.active_version[:64], started_at=self.started_at, updated_at=utcnow())
        key = (ShadowReport.name == self.name, ShadowReport.version == self.version,
               ShadowReport.consumer == self.consumer)
        try:
            with self.db.begin() as conn:
                if conn.execute(update(ShadowReport).where(*key).values(values)).rowcount == 0:
                    conn.execute(insert(ShadowReport).values(name=self.name, version=self.version,
                                                             consumer=self.consumer, **values))
        except SQLAlchemyError as exc:
            log.warning("shadow %s/%s: report not written (%s); retried at the next flush", self.name, self.version,
                        exc.__class__.__name__)
            return
        self._flushed = ShadowCounts(**{k: getattr(self.counts, k) for k in COUNTS})


@dataclass(frozen=True)
class ShadowSummary:
    version: str
    consumers: int
    active_versions: list[str]
    started_at: datetime | None
    updated_at: datetime | None
    counts: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        from monitor.core.contract import format_time

        return {"version": self.version, "consumers": self.consumers, "active_versions": self.active_versions,
                "started_at": format_time(self.started_at) if self.started_at else None,
                "updated_at": format_time(self.updated_at) if self.updated_at else None, **self.counts}

    def line(self) -> str:
        c = self.counts
        return (f"shadow {self.version} vs {', '.join(self.active_versions) or '-'}: {c['windows']} windows from "
                f"{self.consumers} consumer(s); in an alert under both {c['both']}, only the active "
                f"{c['only_active']}, only the shadow {c['only_shadow']}; alerts opened: active {c['opened_active']}, "
                f"shadow {c['opened_shadow']}")


def summary(db: DbEngine, name: str, version: str, active: str | None = None) -> ShadowSummary | None:
    """The consumers' reports on ``version`` as a shadow, summed (``active``: only those against that active
    version); None when no consumer reported one."""
    t = ShadowReport.__table__.c
    where = [t.name == name, t.version == version] + ([t.active_version == active] if active is not None else [])
    try:
        with db.connect() as conn:
            rows = conn.execute(select(ShadowReport.__table__).where(*where)).mappings().all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read shadow reports: {exc.__class__.__name__}") from exc
    if not rows:
        return None
    return ShadowSummary(version, len(rows), sorted({r["active_version"] for r in rows}),
                         min(r["started_at"] for r in rows), max(r["updated_at"] for r in rows),
                         {k: int(sum(r[k] for r in rows)) for k in COUNTS})


def settle(db: DbEngine, name: str, min_windows: int, *, by: str) -> str | None:
    """End a shadow period that is complete (``min_windows`` windows reported against the current active model):
    the shadow is promoted when, on the same windows, it opened no more alerts than the active model, had no more
    windows in an alert that the active model had not, and was in an alert on at least half of the windows the
    active model was (a deaf model is never promoted unattended); else it is rejected and shadowing stops. Only a
    candidate that passed the retraining gate is promoted unattended (any other shadow waits for an operator).
    Returns what was done (None: nothing to do). Run by `monitor scheduler` each tick; the promotion is
    compare-and-set, so two schedulers cannot both act."""
    from monitor.registry import versions

    if min_windows <= 0:
        return None
    active, shadowing = versions.pointer(db, name)
    if active is None or shadowing is None:
        return None
    report = summary(db, name, shadowing, active)
    if report is None or report.counts["windows"] < min_windows:
        return None
    info = versions.get(db, name, shadowing)
    if info.status != versions.CANDIDATE or not (info.metrics.get("gate") or {}).get("passed"):
        return None
    c = report.counts
    alerted = c["both"] + c["only_active"]
    if c["opened_shadow"] <= c["opened_active"] and c["only_shadow"] <= c["only_active"] and (
        alerted == 0 or c["both"] >= 0.5 * alerted
    ):
        versions.promote(db, name, shadowing, by=by, reason=f"shadow period complete: {report.line()}",
                         expected_active=active)
        return f"promoted {name}/{shadowing} after its shadow period ({report.line()})"
    versions.set_shadow(db, name, None, by=by)
    versions.reject(db, name, shadowing, f"shadow period: noisier or deafer than the active model ({report.line()})")
    return f"rejected {name}/{shadowing} after its shadow period ({report.line()})"
