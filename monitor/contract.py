"""The sensor-window message contract: decode and validate raw record bytes, and encode windows.

A message is a UTF-8 JSON object (schema: ``monitor/schema/sensor-window.schema.json``), keyed by sensor id:

    {"sensor_id": "pump-07",
     "window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T00:01:03Z",
     "channels": ["temp", "pressure"],
     "values": [[20.1, 1.01], [20.2, 1.02], ...]}     # window_len rows x len(channels) columns

High-rate producers may send ``"values_f32"`` instead of ``"values"``: the same matrix as base64 of
little-endian float32, row-major (window_len x len(channels) x 4 bytes). The consumer scores float32 either
way, so both forms give identical decisions; the packed form is about 10x cheaper to decode (no per-number
parsing). Exactly one of the two must be present.

Decoding never raises on bad input: it returns a ``DecodeFailure`` with a short reason code, which the
consumer sends to the dead-letter topic. Pure: no Kafka, no database.
"""

from __future__ import annotations

import base64
import binascii
import gc
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import orjson
import pybase64

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
KEY_MISMATCH = "key_mismatch"
REASONS = (NOT_UTF8, BAD_JSON, SCHEMA, SHAPE, CHANNELS, NON_FINITE, NULL_VALUE, OVERSIZED, BAD_TIME, KEY_MISMATCH)

_REQUIRED = ("sensor_id", "window_start", "window_end", "channels")
PACKED = "values_f32"  # the binary form of "values" (see the module docstring)


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
    head = _decode_head(raw, channels=channels, max_bytes=max_bytes)
    if isinstance(head, DecodeFailure):
        return head
    return _finish(head, _values_array(head[4], len(head[3]), window_len))


def check_key(key: bytes | None, window: SensorWindow) -> DecodeFailure | None:
    """A keyed record must carry its window's sensor id as the key (UTF-8), else ``KEY_MISMATCH``.

    The key decides the partition, and a sensor's state lives with the one consumer that owns its partition:
    windows of one sensor under different keys would be judged by several consumers at once, each with its
    own copy of the sensor's threshold. Records without a key are accepted (the producer then answers for
    keeping each sensor on one partition)."""
    if key is None or key == window.sensor_id.encode():
        return None
    shown = key[:80].decode("utf-8", "replace")
    return DecodeFailure(KEY_MISMATCH, f"record key {shown!r} is not the window's sensor_id {window.sensor_id!r}")


def decode_batch(
    raws: Sequence[bytes | None],
    *,
    window_len: int | None = None,
    channels: tuple[str, ...] | None = None,
    max_bytes: int = 1_000_000,
) -> list[SensorWindow | DecodeFailure]:
    """``decode`` of many records, same results record by record, with ONE numpy conversion for the batch.

    The value lists of all records whose header is valid are converted by a single ``np.asarray`` into a
    (n, window_len, n_channels) array (each window's ``values`` is a float32 view of one batch array); a
    batch with any ragged or non-numeric window falls back to converting window by window, and non-finite
    windows are re-checked one by one to name the reason. The garbage collector is paused while the
    batch's lists are built (they hold no reference cycles; a full collection per few hundred windows is
    pure overhead).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        heads = [_decode_head(raw, channels=channels, max_bytes=max_bytes) for raw in raws]
        good = [i for i, h in enumerate(heads) if not isinstance(h, DecodeFailure)]
        groups: list[tuple[list[int], np.ndarray | None]] = []
        if good and window_len is not None:
            packed = [i for i in good if isinstance(heads[i][4], bytes)]  # type: ignore[index]
            listed = [i for i in good if not isinstance(heads[i][4], bytes)]  # type: ignore[index]
            groups = [(idx, _batch_array(heads, idx, window_len)) for idx in (listed, packed) if idx]  # type: ignore[arg-type]
    finally:
        if was_enabled:
            gc.enable()
    out: list[SensorWindow | DecodeFailure] = list(heads)  # type: ignore[arg-type]
    converted: set[int] = set()
    for idx, batch in groups:
        if batch is None:
            continue
        finite = np.isfinite(batch).all(axis=(1, 2))
        as32 = batch if batch.dtype == np.float32 else batch.astype(np.float32)
        for j, i in enumerate(idx):
            if finite[j]:
                sensor_id, start, end, names, _ = heads[i]  # type: ignore[misc]
                out[i] = SensorWindow(sensor_id, start, end, names, as32[j])
                converted.add(i)
    for i in good:  # window by window: no batch array (ragged, non-numeric, no window_len) or non-finite
        if i not in converted:
            head = heads[i]
            out[i] = _finish(head, _values_array(head[4], len(head[3]), window_len))  # type: ignore[arg-type,index]
    return out


def _batch_array(heads: list[_Head], idx: list[int], window_len: int) -> np.ndarray | None:
    """The values of ``heads[idx]`` (all lists, or all packed bytes) as one (n, window_len, width) array, or
    None when any window does not fit that shape (the caller then converts window by window)."""
    width = len(heads[idx[0]][3])
    if any(len(heads[i][3]) != width for i in idx):
        return None
    if isinstance(heads[idx[0]][4], bytes):
        if any(len(heads[i][4]) != window_len * width * 4 for i in idx):  # type: ignore[arg-type]
            return None
        joined = b"".join(heads[i][4] for i in idx)  # type: ignore[misc]
        return np.frombuffer(joined, dtype="<f4").reshape(len(idx), window_len, width).astype(np.float32)
    try:
        batch = np.asarray([heads[i][4] for i in idx], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return batch if batch.shape == (len(idx), window_len, width) else None


_Head = tuple[str, datetime, datetime, tuple[str, ...], object]


def _decode_head(
    raw: bytes | None, *, channels: tuple[str, ...] | None, max_bytes: int
) -> _Head | DecodeFailure:
    """Everything but the values array: (sensor_id, start, end, channel names, raw values list)."""
    if raw is None:
        return DecodeFailure(NULL_VALUE, "record value is null")
    if len(raw) > max_bytes:
        return DecodeFailure(OVERSIZED, f"{len(raw)} bytes > limit {max_bytes}")
    try:
        doc = orjson.loads(raw)  # validates UTF-8 too: its errors are told apart below
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as utf_exc:
            return DecodeFailure(NOT_UTF8, str(utf_exc)[:200])
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
    if PACKED in doc:
        if "values" in doc:
            return DecodeFailure(SCHEMA, f"give values or {PACKED}, not both")
        text = doc[PACKED]
        if not isinstance(text, str) or not text:
            return DecodeFailure(SCHEMA, f"{PACKED} must be a non-empty base64 string")
        try:
            # pybase64 (SIMD): ~0.7 us for a 64 x 8 window against ~9 us for binascii.a2b_base64, whose
            # strict mode it matches (it also refuses excess padding); docs/benchmarks.md round 4.
            return sensor_id, start, end, tuple(names), pybase64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return DecodeFailure(SCHEMA, f"{PACKED} is not valid base64")
    if "values" not in doc:
        return DecodeFailure(SCHEMA, f"missing fields: values (or {PACKED})")
    values = doc["values"]
    if not isinstance(values, list) or not values:
        return DecodeFailure(SCHEMA, "values must be a non-empty list of rows")
    return sensor_id, start, end, tuple(names), values


def _values_array(values: object, width: int, window_len: int | None) -> np.ndarray | DecodeFailure:
    """One window's values list (or packed float32 bytes) -> float64 (rows, width) array, or the failure."""
    if isinstance(values, bytes):
        if len(values) % (4 * width):
            return DecodeFailure(SHAPE, f"{PACKED} holds {len(values)} bytes: not whole rows of {width} float32")
        array = np.frombuffer(values, dtype="<f4").reshape(-1, width).astype(np.float64)
        if window_len is not None and array.shape[0] != window_len:
            return DecodeFailure(SHAPE, f"window has {array.shape[0]} rows, the model expects {window_len}")
        if not np.isfinite(array).all():
            return DecodeFailure(NON_FINITE, "values contain NaN or Infinity")
        return array
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        if _has_null(values):  # type: ignore[arg-type]
            return DecodeFailure(NULL_VALUE, "values contain null")
        return DecodeFailure(SHAPE, "values must be a rectangular list of numeric rows")
    if array.ndim != 2 or array.shape[1] != width:
        return DecodeFailure(SHAPE, f"values shape {array.shape} is not (window_len, {width})")
    if window_len is not None and array.shape[0] != window_len:
        return DecodeFailure(SHAPE, f"window has {array.shape[0]} rows, the model expects {window_len}")
    if not np.isfinite(array).all():
        if _has_null(values):  # type: ignore[arg-type]  # numpy reads null as NaN: name the real cause
            return DecodeFailure(NULL_VALUE, "values contain null")
        return DecodeFailure(NON_FINITE, "values contain NaN or Infinity")
    return array


def _finish(head: _Head, array: np.ndarray | DecodeFailure) -> SensorWindow | DecodeFailure:
    if isinstance(array, DecodeFailure):
        return array
    sensor_id, start, end, names, _ = head
    return SensorWindow(sensor_id, start, end, names, array.astype(np.float32))


def _has_null(values: list[object]) -> bool:
    return any(v is None or (isinstance(v, list) and any(x is None for x in v)) for v in values)


def encode(window: SensorWindow) -> bytes:
    """SensorWindow -> contract JSON bytes."""
    return encode_values(window.sensor_id, window.window_start, window.window_end, window.channels, window.values)


def encode_values(
    sensor_id: str,
    start: datetime,
    end: datetime,
    channels: tuple[str, ...] | list[str],
    values: np.ndarray,
    *,
    packed: bool = False,
) -> bytes:
    """Fields -> contract JSON bytes; ``values`` (window_len, n_channels). ``packed`` writes ``values_f32``
    (base64 little-endian float32) instead of the ``values`` number lists."""
    doc: dict[str, object] = {
        "sensor_id": sensor_id,
        "window_start": format_time(start),
        "window_end": format_time(end),
        "channels": list(channels),
    }
    if packed:
        doc[PACKED] = base64.b64encode(np.ascontiguousarray(values, dtype="<f4").tobytes()).decode("ascii")
    else:
        doc["values"] = np.asarray(values, dtype=np.float64)
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
