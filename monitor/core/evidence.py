"""Decision-time evidence: what the judge saw when an alert fired. Pure (no I/O).

Per sensor the engine keeps a ring of its last ``ring`` decisions (``Mark``: window times, source offset, score,
threshold, contributions, model version). When an alert opens, the ring (the windows before it and the pending
run that opened it) is written with it; while it is open every window is written, and ``after`` more windows
once it closes. Score and threshold are the float64 values the threshold layer compared, so the alert page
plots exactly what fired, bit for bit, with no re-scoring.

Size per alert is bounded: the ring, the first ``head`` and the last ``tail`` windows the alert counted, its
peak, and ``after`` windows. Counted windows in between are deleted in the batch's transaction (``Prune``), so an
alert that stays open for days keeps at most ``ring + head + tail + 1 + after`` rows.

The ring lives in memory; only the current pending run (windows above the open level, not yet an alert) goes
into the sensor's stored state, so the windows of an alert survive a restart between its first hit and its
opening. The windows before a pending run do not: after a restart the context before an alert can be shorter.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from monitor.core.contract import format_time, parse_time


@dataclass(frozen=True, slots=True)
class EvidencePolicy:
    """How much evidence is kept per sensor (``ring``) and per alert (``head``, ``tail``, ``after``), in windows."""

    ring: int = 32
    head: int = 256
    tail: int = 256
    after: int = 8


@dataclass(frozen=True, slots=True)
class Mark:
    """One judged window as decided. ``contributions``: (n_channels,) shares; ``seq``: the alert's window count
    at this window (0: a window the alert does not count: before it, pending, after it)."""

    window_start: datetime
    window_end: datetime
    offset: int
    score: float
    threshold: float
    contributions: np.ndarray
    model_version: str
    above: bool
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"window_start": format_time(self.window_start), "window_end": format_time(self.window_end),
                "offset": self.offset, "score": finite_or_none(self.score),
                "threshold": finite_or_none(self.threshold),
                "contributions": finite_list(self.contributions), "model_version": self.model_version,
                "above": self.above, "seq": self.seq}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Mark | None:
        start, end = parse_time(data.get("window_start")), parse_time(data.get("window_end"))
        if start is None or end is None:
            return None
        contributions = np.array([math.nan if c is None else c for c in data.get("contributions", [])], dtype=float)
        score, threshold = data.get("score"), data.get("threshold")
        return cls(start, end, int(data["offset"]), math.nan if score is None else float(score),
                   math.nan if threshold is None else float(threshold), contributions,
                   str(data["model_version"]), bool(data["above"]), int(data.get("seq", 0)))


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    """A mark written for the alert ``(sensor_id, opened_at)``."""

    sensor_id: str
    opened_at: datetime
    mark: Mark


@dataclass(frozen=True, slots=True)
class Prune:
    """Delete the alert's counted windows with ``head < seq <= through`` except its peak (score == ``peak``)."""

    sensor_id: str
    opened_at: datetime
    head: int
    through: int
    peak: float


def finite_or_none(value: float) -> float | None:
    """A float as stored: a non-finite one is None (PostgreSQL's json refuses NaN and Infinity; nothing non-finite
    is stored anywhere)."""
    return value if math.isfinite(value) else None


def finite_list(values: np.ndarray | Sequence[float]) -> list[float | None]:
    """Floats as JSON-able values (``finite_or_none`` each)."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=float).tolist()]


class EvidenceLog:
    """The evidence of one sensor: its ring of recent marks and the alert that the next marks belong to."""

    def __init__(self, policy: EvidencePolicy) -> None:
        self.policy = policy
        self.ring: deque[Mark] = deque(maxlen=max(policy.ring, 1))
        self.key: tuple[str, datetime] | None = None  # the alert whose ``after`` windows are being written
        self.after_left = 0

    def record(self, mark: Mark, alert_key: tuple[str, datetime] | None, *, opened: bool,
               closed: bool) -> list[EvidenceRow]:
        """Keep ``mark`` in the ring; returns the rows to write. ``alert_key``: the alert this window changed
        (None: no alert is open); ``opened`` / ``closed``: this window opened / closed it."""
        self.ring.append(mark)
        if alert_key is not None:
            marks = list(self.ring) if opened else [mark]
            self.key, self.after_left = (alert_key, self.policy.after) if closed else (None, 0)
            return [EvidenceRow(alert_key[0], alert_key[1], m) for m in marks]
        if self.key is not None and self.after_left > 0:
            self.after_left -= 1
            return [EvidenceRow(self.key[0], self.key[1], mark)]
        return []

    def prune(self, alert_key: tuple[str, datetime], window_count: int, peak: float) -> Prune | None:
        """What to delete of an alert that counted ``window_count`` windows (None: within the bound)."""
        head, tail = self.policy.head, self.policy.tail
        if window_count <= head + tail:
            return None
        return Prune(alert_key[0], alert_key[1], head, window_count - tail, peak)

    def snapshot(self, pending: bool) -> list[dict[str, Any]]:
        """The marks of the current pending run (``pending``: no alert is open), for the stored state."""
        if not pending:
            return []
        run: list[Mark] = []
        for mark in reversed(self.ring):
            if not mark.above:
                break
            run.append(mark)
        return [m.to_json() for m in reversed(run)]

    @classmethod
    def restore(cls, policy: EvidencePolicy, data: object) -> EvidenceLog:
        log = cls(policy)
        if isinstance(data, list):
            for item in data:
                mark = Mark.from_json(item) if isinstance(item, dict) else None
                if mark is not None:
                    log.ring.append(mark)
        return log
