"""The alert state machine: consecutive anomalous windows of a sensor form one alert (incident). Pure.

The threshold layer decides when an alert opens and closes (hysteresis); this layer turns those decisions
into alert records: when it started (the first window of the run of hits that opened it), its peak score
and the threshold at the peak, severity, the channels that contributed most, the model version, how many
windows it spans and which source offsets it came from. An optional cooldown suppresses flapping: an alert
that would open within ``cooldown_s`` of the previous close re-opens that alert instead.

An alert's identity is (sensor_id, opened_at), so replaying the same windows yields the same records and
an upsert on that key is idempotent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np

from monitor.core.contract import format_time, parse_time
from monitor.core.thresholds import Decision
from monitor.settings import AlertSettings


class Status(StrEnum):
    """An alert's status, the one vocabulary of the engine, the store, the API, the CLI and the web page."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Severity(StrEnum):
    """How far an alert's peak rose above its open level, mildest first."""

    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


OPEN, ACKNOWLEDGED, RESOLVED = Status.OPEN, Status.ACKNOWLEDGED, Status.RESOLVED
STATUSES: tuple[str, ...] = tuple(Status)
SEVERITIES: tuple[str, ...] = tuple(Severity)  # mildest first


def severity_of(level: float, enter: float, std: float) -> Severity:
    """Severity from how far the peak rose above the open level, in std units of the log score."""
    margin = (level - enter) / max(std, 1e-9)
    if margin >= 6:
        return Severity.CRITICAL
    if margin >= 2:
        return Severity.MAJOR
    return Severity.MINOR


@dataclass
class AlertRecord:
    sensor_id: str
    opened_at: datetime
    closed_at: datetime | None
    last_window_end: datetime
    status: str
    severity: str
    peak_score: float
    threshold_at_peak: float
    window_count: int
    top_channels: list[str]
    model_version: str
    partition: int
    first_offset: int
    last_offset: int
    contribution_sums: list[float] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, datetime]:
        return (self.sensor_id, self.opened_at)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("opened_at", "closed_at", "last_window_end"):
            data[name] = format_time(data[name]) if data[name] is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertRecord:
        data = dict(data)
        for name in ("opened_at", "closed_at", "last_window_end"):
            data[name] = parse_time(data[name]) if data[name] is not None else None
        return cls(**data)


@dataclass
class _Pending:
    start: datetime
    first_offset: int
    peak_level: float
    peak_score: float
    threshold: float


class IncidentTracker:
    """Alert lifecycle of one sensor."""

    def __init__(self, sensor_id: str, cfg: AlertSettings, channels: tuple[str, ...]) -> None:
        self.sensor_id = sensor_id
        self.cfg = cfg
        self.channels = channels
        self.current: AlertRecord | None = None
        self.pending: _Pending | None = None
        self.last_closed: AlertRecord | None = None

    def update(
        self,
        decision: Decision,
        *,
        window_start: datetime,
        window_end: datetime,
        partition: int,
        offset: int,
        contributions: np.ndarray,
        model_version: str,
        std: float,
    ) -> AlertRecord | None:
        """Feed one window's decision; returns the alert record if this window changed one."""
        if decision.above and not decision.active and self.current is None:
            if self.pending is None:
                self.pending = _Pending(window_start, offset, decision.level, decision.score, decision.threshold)
            elif decision.level > self.pending.peak_level:
                self.pending.peak_level, self.pending.peak_score = decision.level, decision.score
                self.pending.threshold = decision.threshold
        elif not decision.above and not decision.active:
            self.pending = None

        if decision.opened:
            pending = self.pending or _Pending(window_start, offset, decision.level, decision.score, decision.threshold)
            self.pending = None
            previous = self.last_closed
            if previous is not None and self.cfg.cooldown_s > 0 and previous.closed_at is not None and (
                (window_start - previous.closed_at).total_seconds() < self.cfg.cooldown_s
            ):
                self.current = replace(previous, closed_at=None, status=OPEN)
            else:
                self.current = AlertRecord(
                    sensor_id=self.sensor_id, opened_at=pending.start, closed_at=None, last_window_end=window_end,
                    status=OPEN, severity=Severity.MINOR, peak_score=pending.peak_score,
                    threshold_at_peak=pending.threshold, window_count=0, top_channels=[],
                    model_version=model_version, partition=partition, first_offset=pending.first_offset,
                    last_offset=offset, contribution_sums=[0.0] * len(self.channels),
                )
        alert = self.current
        if alert is None:
            return None
        if decision.above or decision.active:
            alert.window_count += 1
            alert.last_window_end = window_end
            alert.last_offset = offset
            sums = np.asarray(alert.contribution_sums) + contributions
            alert.contribution_sums = [float(v) for v in sums]
            order = np.argsort(-sums, kind="stable")[: self.cfg.top_channels]
            alert.top_channels = [self.channels[i] for i in order]
            if decision.score > alert.peak_score:
                alert.peak_score = decision.score
                alert.threshold_at_peak = decision.threshold
            alert.severity = max(
                alert.severity, severity_of(decision.level, decision.enter, std), key=_SEVERITY_RANK.__getitem__
            )
        if decision.closed:
            alert.closed_at = alert.last_window_end
            alert.status = RESOLVED
            self.last_closed, self.current = alert, None
        return replace(alert)

    def snapshot(self) -> dict[str, Any]:
        return {
            "current": self.current.to_json() if self.current else None,
            "last_closed": self.last_closed.to_json() if self.last_closed else None,
            "pending": None if self.pending is None else {
                **asdict(self.pending), "start": format_time(self.pending.start)
            },
        }

    @classmethod
    def restore(
        cls, sensor_id: str, cfg: AlertSettings, channels: tuple[str, ...], data: dict[str, Any]
    ) -> IncidentTracker:
        obj = cls(sensor_id, cfg, channels)
        obj.current = AlertRecord.from_json(data["current"]) if data.get("current") else None
        obj.last_closed = AlertRecord.from_json(data["last_closed"]) if data.get("last_closed") else None
        pending = data.get("pending")
        if pending:
            start = parse_time(pending["start"]) or obj_time_error(pending["start"])
            obj.pending = _Pending(start, pending["first_offset"], pending["peak_level"], pending["peak_score"],
                                   pending["threshold"])
        return obj


def obj_time_error(text: object) -> datetime:
    raise ValueError(f"snapshot holds an unreadable time {text!r}")


_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}
