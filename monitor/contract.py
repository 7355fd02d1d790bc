"""The sensor-window message contract: decode and validate raw record bytes, and encode windows.

A message is a UTF-8 JSON object (schema: ``monitor/schema/sensor-window.schema.json``), keyed by sensor id:

    {"sensor_id": "pump-07",
     "window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T00:01:03Z",
     "channels": ["temp", "pressure"],
     "values": [[20.1, 1.01], [20.2, 1.02], ...]}     # window_len rows x len(channels) columns

Decoding never raises on bad input: it returns a ``DecodeFailure`` with a short reason code, which the
consumer sends to the dead-letter topic. Pure: no Kafka, no database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import orjson

# Reason codes of dead letters (stable: they appear in headers and metrics labels).
NOT_UTF8 = "not_utf8"
BAD_JSON = "bad_json"
SCHEMA = "schema"
SHAPE = "shape"
CHANNELS = "channels"
NON_FINITE = "non_finite"
NULL_VALUE = "null_value"
OVERSIZED = "oversized"
BAD_TIME = "bad_time"
REASONS = (NOT_UTF8, BAD_JSON, SCHEMA, SHAPE, CHANNELS, NON_FINITE, NULL_VALUE, OVERSIZED, BAD_TIME)

_REQUIRED = ("sensor_id", "window_start", "window_end", "channels", "values")


@dataclass(frozen=True, slots=True)
class SensorWindow:
    """One validated window. ``values`` has shape (window_len, n_channels), float32."""

    sensor_id: str
    window_start: datetime
    window_end: datetime
    channels: tuple[str, ...]
    values: np.ndarray


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    """A record that broke the contract; ``reason`` is one of ``REASONS``."""

    reason: str
    detail: str


def parse_time(text: object) -> datetime | None:
    """ISO-8601 with an explicit offset (or Z) -> aware UTC datetime; anything else -> None."""
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return None
    if value.tzinfo is None:
        return None
    return value.astimezone(timezone.utc)


def format_time(value: datetime) -> str:
    """Aware datetime -> ISO-8601 UTC with a Z suffix."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: all times are timezone-aware UTC")
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def decode(
    raw: bytes | None,
    *,
    window_len: int | None = None,
    channels: tuple[str, ...] | None = None,
    max_bytes: int = 1_000_000,
) -> SensorWindow | DecodeFailure:
    """Decode one record value. ``window_len``/``channels`` (if given) are what the model expects."""
    if raw is None:
        return DecodeFailure(NULL_VALUE, "record value is null")
    if len(raw) > max_bytes:
        return DecodeFailure(OVERSIZED, f"{len(raw)} bytes > limit {max_bytes}")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return DecodeFailure(NOT_UTF8, str(exc)[:200])
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # Python's json writes NaN/Infinity literals, which strict JSON (orjson) refuses: name them.
        try:
            json.loads(raw)
        except ValueError:
            return DecodeFailure(BAD_JSON, str(exc)[:200])
        return DecodeFailure(NON_FINITE, "values contain NaN or Infinity literals")
    if not isinstance(doc, dict):
        return DecodeFailure(SCHEMA, f"top level is {type(doc).__name__}, not an object")
    missing = [key for key in _REQUIRED if key not in doc]
    if missing:
        return DecodeFailure(SCHEMA, f"missing fields: {', '.join(missing)}")
    sensor_id = doc["sensor_id"]
    if not isinstance(sensor_id, str) or not sensor_id or len(sensor_id) > 200:
        return DecodeFailure(SCHEMA, "sensor_id must be a non-empty string of at most 200 characters")
    start, end = parse_time(doc["window_start"]), parse_time(doc["window_end"])
    if start is None or end is None:
        return DecodeFailure(BAD_TIME, "window_start/window_end must be ISO-8601 with a UTC offset")
    if end < start:
        return DecodeFailure(BAD_TIME, "window_end is before window_start")
    names = doc["channels"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return DecodeFailure(SCHEMA, "channels must be a non-empty list of strings")
    if len(set(names)) != len(names):
        return DecodeFailure(CHANNELS, "duplicate channel names")
    if channels is not None and tuple(names) != channels:
        return DecodeFailure(CHANNELS, f"channels {names} differ from the model's {list(channels)}")
    values = doc["values"]
    if not isinstance(values, list) or not values:
        return DecodeFailure(SCHEMA, "values must be a non-empty list of rows")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        if _has_null(values):
            return DecodeFailure(NULL_VALUE, "values contain null")
        return DecodeFailure(SHAPE, "values must be a rectangular list of numeric rows")
    if array.ndim != 2 or array.shape[1] != len(names):
        return DecodeFailure(SHAPE, f"values shape {array.shape} is not (window_len, {len(names)})")
    if window_len is not None and array.shape[0] != window_len:
        return DecodeFailure(SHAPE, f"window has {array.shape[0]} rows, the model expects {window_len}")
    if not np.isfinite(array).all():
        if _has_null(values):  # numpy reads null as NaN: name the real cause
            return DecodeFailure(NULL_VALUE, "values contain null")
        return DecodeFailure(NON_FINITE, "values contain NaN or Infinity")
    return SensorWindow(sensor_id, start, end, tuple(names), array.astype(np.float32))


def _has_null(values: list[object]) -> bool:
    return any(v is None or (isinstance(v, list) and any(x is None for x in v)) for v in values)


def encode(window: SensorWindow) -> bytes:
    """SensorWindow -> contract JSON bytes."""
    return encode_values(window.sensor_id, window.window_start, window.window_end, window.channels, window.values)


def encode_values(
    sensor_id: str, start: datetime, end: datetime, channels: tuple[str, ...] | list[str], values: np.ndarray
) -> bytes:
    """Fields -> contract JSON bytes; ``values`` (window_len, n_channels)."""
    return orjson.dumps(
        {
            "sensor_id": sensor_id,
            "window_start": format_time(start),
            "window_end": format_time(end),
            "channels": list(channels),
            "values": np.asarray(values, dtype=np.float64),
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
