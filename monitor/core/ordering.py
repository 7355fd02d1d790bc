"""Per-sensor window order. Pure: no Kafka, no SQL.

A sensor's windows are judged in time order, each once. A window is *new* when it starts after the sensor's
last judged window started and does not end before that window ended; an exact copy of the last judged window
(same start and end: a producer's re-send) is a *duplicate* and skipped; anything else is *out of order* and
goes to the dead-letter topic (``contract.OUT_OF_ORDER``). Since a new window always starts later than every
window the sensor judged before, an incident opened by it (identity ``(sensor_id, opened_at)``, opened at the
start of its first window) can never take the key of an older incident.

The mark of the last judged window lives in the sensor's stored state (``SensorContext.snapshot``), written in
the same transaction as the offsets, so a replay from the stored offsets sees the mark of exactly the windows
before it: a rewind never turns a batch's own windows into duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from monitor.core.contract import format_time, parse_time

R = TypeVar("R")


class Order(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"


@dataclass(frozen=True, slots=True)
class WindowMark:
    """The last judged window of a sensor and how many windows the sensor has judged (``judged``)."""

    start: datetime
    end: datetime
    judged: int = 0

    def classify(self, start: datetime, end: datetime) -> Order:
        if start == self.start and end == self.end:
            return Order.DUPLICATE
        if start > self.start and end >= self.end:
            return Order.NEW
        return Order.OUT_OF_ORDER

    def after(self, start: datetime, end: datetime) -> WindowMark:
        """The mark once the window [start, end] is judged."""
        return WindowMark(start, end, self.judged + 1)

    def to_json(self) -> dict[str, Any]:
        return {"start": format_time(self.start), "end": format_time(self.end), "judged": self.judged}

    @classmethod
    def from_json(cls, data: object) -> WindowMark | None:
        """The stored mark, or None when there is none (a state written before marks were kept) or it is unreadable."""
        if not isinstance(data, dict):
            return None
        start, end, judged = parse_time(data.get("start")), parse_time(data.get("end")), data.get("judged", 0)
        if start is None or end is None or not isinstance(judged, int) or isinstance(judged, bool):
            return None
        return cls(start, end, judged)


def first_mark(start: datetime, end: datetime) -> WindowMark:
    """The mark of a sensor's first judged window."""
    return WindowMark(start, end, 1)


@dataclass
class Admission:
    """A batch's records split by order: ``new`` to judge, ``duplicates`` to skip, ``late`` to dead-letter."""

    new: list[Any] = field(default_factory=list)
    duplicates: list[Any] = field(default_factory=list)
    late: list[tuple[Any, str]] = field(default_factory=list)  # (record, detail)


def admit(records: Sequence[R], marks: dict[str, WindowMark | None],
          window_of: Callable[[R], tuple[str, datetime, datetime]]) -> Admission:
    """Split ``records`` (in delivery order) by each sensor's order, starting from ``marks`` (sensor id -> the
    last judged window; absent or None: nothing judged yet). ``window_of(record)`` -> (sensor_id, start, end).
    ``marks`` is not changed."""
    out = Admission()
    last: dict[str, WindowMark | None] = {}
    for record in records:
        sensor_id, start, end = window_of(record)
        mark = last[sensor_id] if sensor_id in last else marks.get(sensor_id)
        order = Order.NEW if mark is None else mark.classify(start, end)
        if order is Order.NEW:
            out.new.append(record)
            last[sensor_id] = first_mark(start, end) if mark is None else mark.after(start, end)
        elif order is Order.DUPLICATE:
            out.duplicates.append(record)
        else:
            assert mark is not None
            out.late.append((record, (
                f"window [{format_time(start)}, {format_time(end)}] of {sensor_id!r} is not after the last judged "
                f"window [{format_time(mark.start)}, {format_time(mark.end)}]")))
    return out
