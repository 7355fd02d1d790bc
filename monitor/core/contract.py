"""The sensor-window message contract: decode and validate raw record bytes, and encode windows.

A message is a UTF-8 JSON object (schema: ``monitor/schema/sensor-window.schema.json``), keyed by sensor id:

    {"sensor_id": "pump-07",
     "window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T00:01:03Z",
     "channels": ["temp", "pressure"],
     "values": [[20.1, 1.01], [20.2, 1.02], ...]}     # window_len rows x len(channels) columns

High-rate producers may send ``"values_f32"`` instead of ``"values"``: the same matrix as base64 of
little-endian float32, row-major (window_len x len(channels) x 4 bytes). The consumer scores float32 either
way, so both forms give identical decisions; the packed form is the cheapest to decode (no per-number parsing).
Exactly one of the two must be present. A plain number-list window (the five fields, nothing else) is read by
simdjson straight into one float64 array (``_plain_window``); any other record, and any record that path
refuses, is read by orjson, whose rules name every failure.

Decoding never raises: every byte string becomes a ``SensorWindow`` or a ``DecodeFailure`` with a short
reason code, which the consumer sends to the dead-letter topic. Outside input is hostile until decoded, so the
contract bounds what one record may hold (README, "Message contract"): ``max_bytes`` per record, JSON nesting
``MAX_NESTING`` levels, ids and channel names ``MAX_NAME_CHARS`` characters without control characters, times
within ``[EARLIEST, LATEST)``, values real numbers (no booleans, no strings) with ``|v| <= MAX_ABS_VALUE``,
checked in float32, the type they are scored in. An unexpected exception while decoding one record is itself a
failure (``UNDECODABLE``), never a crash. Pure: no Kafka, no database.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain

import numpy as np
import orjson
import pybase64
import simdjson

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
# The reasons of the contract's rules: each one is what some input gets (the poison sets cover them all).
REASONS = (NOT_UTF8, BAD_JSON, SCHEMA, SHAPE, CHANNELS, NON_FINITE, NULL_VALUE, OVERSIZED, BAD_TIME, KEY_MISMATCH)
# The safety net: an exception no rule foresaw, raised while decoding one record. No input should get it (the
# property tests assert that); when one does, that record is a dead letter and the consumer goes on.
UNDECODABLE = "undecodable"
# Reasons the consumer gives after decoding: a window not newer than its sensor's last judged one
# (monitor.core.ordering), and a record whose output the database refused (found by bisecting its batch).
OUT_OF_ORDER = "out_of_order"
STORE_REJECTED = "store_rejected"
ALL_REASONS = (*REASONS, UNDECODABLE, OUT_OF_ORDER, STORE_REJECTED)

# Limits of one record (README, "Message contract"). The record size limit is the caller's ``max_bytes``.
MAX_NESTING = 1024  # JSON nesting levels: orjson's own limit (deeper -> BAD_JSON); no recursive parser runs after it
MAX_NAME_CHARS = 200  # sensor_id and each channel name: 1..200 characters, no control characters
MAX_ABS_VALUE = 1e15  # |value| above this -> NON_FINITE: squares and window sums of such values overflow float32
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)  # window times must lie in [EARLIEST, LATEST)
LATEST = datetime(2201, 1, 1, tzinfo=timezone.utc)
_DETAIL_CHARS = 200  # what a failure's detail quotes of the input
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc: C0, DEL and C1

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
    """ISO-8601 with an explicit offset (or Z) -> aware UTC datetime; anything else -> None. Never raises: a
    time whose UTC conversion leaves datetime's range (``0001-01-01T00:30:00+01:00``) is None too."""
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        if value.tzinfo is None or value.utcoffset() is None:
            return None
        return value.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


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
    """Decode one record value. ``window_len``/``channels`` (if given) are what the model expects. Never raises."""
    try:
        head = _decode_head(raw, channels=channels, max_bytes=max_bytes)
        if isinstance(head, DecodeFailure):
            return head
        return _finish(head, _values_array(head[4], len(head[3]), window_len, raw))
    except Exception as exc:  # noqa: BLE001 - the safety net: one record is refused, the consumer goes on
        return _undecodable(exc)


def check_key(key: bytes | None, window: SensorWindow) -> DecodeFailure | None:
    """A keyed record must carry its window's sensor id as the key (UTF-8), else ``KEY_MISMATCH``.

    The key decides the partition, and a sensor's state lives with the one consumer that owns its partition:
    windows of one sensor under different keys would be judged by several consumers at once, each with its
    own copy of the sensor's threshold. Records without a key are accepted (the producer then answers for
    keeping each sensor on one partition)."""
    if key is None or key == window.sensor_id.encode("utf-8", "surrogatepass"):
        return None
    shown = bytes(key[:80]).decode("utf-8", "replace")
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
    batch with any ragged or non-numeric window falls back to converting window by window, and out-of-range
    windows are re-checked one by one to name the reason. (The consumer pauses the garbage collector around
    it: the batch's lists hold no reference cycles, and a full collection per few hundred windows is pure
    overhead.) Never raises: an unexpected exception in a batch step falls back to window by window,
    and one in a single record's step makes that record ``UNDECODABLE``.
    """
    heads = [_head_or_failure(raw, channels=channels, max_bytes=max_bytes) for raw in raws]
    good = [i for i, h in enumerate(heads) if not isinstance(h, DecodeFailure)]
    groups: list[tuple[list[int], np.ndarray]] = []
    if good and window_len is not None:
        packed = [i for i in good if isinstance(heads[i][4], bytes)]  # type: ignore[index]
        listed = [i for i in good if not isinstance(heads[i][4], bytes)]  # type: ignore[index]
        for idx in (listed, packed):
            batch = _batch_array_or_none(heads, idx, window_len) if idx else None  # type: ignore[arg-type]
            if batch is not None:
                groups.append((idx, batch))
    out: list[SensorWindow | DecodeFailure] = list(heads)  # type: ignore[arg-type]
    for idx, batch in groups:
        try:
            accepted = _accept_batch(heads, raws, idx, batch)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - not expected; the window-by-window path below names each record
            continue
        for i, result in accepted.items():
            out[i] = result
    for i in good:  # window by window: no batch array (ragged, non-numeric, no window_len) or out of range
        head = heads[i]
        if out[i] is head:
            try:
                out[i] = _finish(head, _values_array(head[4], len(head[3]), window_len, raws[i]))  # type: ignore[arg-type,index]
            except Exception as exc:  # noqa: BLE001 - the safety net, per record
                out[i] = _undecodable(exc)
    return out


def _batch_array(heads: list[_Head], idx: list[int], window_len: int) -> np.ndarray | None:
    """The values of ``heads[idx]`` (all lists: float64, or all packed bytes: float32) as one (n, window_len,
    width) array, or None when any window does not fit that shape (the caller then converts window by window)."""
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


def _batch_array_or_none(heads: list[_Head], idx: list[int], window_len: int) -> np.ndarray | None:
    try:
        return _batch_array(heads, idx, window_len)
    except Exception:  # noqa: BLE001 - not expected; window by window then, where each record is on its own
        return None


def _accept_batch(
    heads: list[_Head], raws: Sequence[bytes | None], idx: list[int], batch: np.ndarray
) -> dict[int, SensorWindow | DecodeFailure]:
    """The results of the windows ``idx`` of one (n, window_len, width) batch array, except those out of range
    (left out: the caller names their reason window by window). Number lists that may hold booleans (see
    ``_may_hold_bools``) are type-checked here."""
    in_range = (batch.max(axis=(1, 2)) <= MAX_ABS_VALUE) & (batch.min(axis=(1, 2)) >= -MAX_ABS_VALUE)  # NaN: False
    listed = batch.dtype != np.float32
    with np.errstate(over="ignore"):  # windows beyond float32 become inf here: they are not in range anyway
        as32 = batch.astype(np.float32) if listed else batch
    zero_one = ((as32 == 0) | (as32 == 1)).any(axis=(1, 2)) if listed else None
    accepted: dict[int, SensorWindow | DecodeFailure] = {}
    for j, i in enumerate(idx):
        if not in_range[j]:
            continue
        sensor_id, start, end, names, values = heads[i]
        if zero_one is not None and zero_one[j] and _may_hold_bools(raws[i]):
            problem = _value_types_problem(values)  # type: ignore[arg-type]
            if problem is not None:
                accepted[i] = problem
                continue
        accepted[i] = SensorWindow(sensor_id, start, end, names, as32[j])
    return accepted


_Head = tuple[str, datetime, datetime, tuple[str, ...], object]


def _head_or_failure(
    raw: bytes | None, *, channels: tuple[str, ...] | None, max_bytes: int
) -> _Head | DecodeFailure:
    try:
        return _decode_head(raw, channels=channels, max_bytes=max_bytes)
    except Exception as exc:  # noqa: BLE001 - the safety net, per record
        return _undecodable(exc)


def _decode_head(
    raw: bytes | None, *, channels: tuple[str, ...] | None, max_bytes: int
) -> _Head | DecodeFailure:
    """Everything but the values array: (sensor_id, start, end, channel names, raw values list or bytes)."""
    if raw is None:
        return DecodeFailure(NULL_VALUE, "record value is null")
    if len(raw) > max_bytes:
        return DecodeFailure(OVERSIZED, f"{len(raw)} bytes > limit {max_bytes}")
    doc = _plain_window(raw)
    if doc is None:
        try:
            doc = orjson.loads(raw)  # validates UTF-8 too; refuses nesting deeper than MAX_NESTING
        except orjson.JSONDecodeError as exc:
            return _json_failure(raw, exc)
    if not isinstance(doc, dict):
        return DecodeFailure(SCHEMA, f"top level is {type(doc).__name__}, not an object")
    missing = [key for key in _REQUIRED if key not in doc]
    if missing:
        return DecodeFailure(SCHEMA, f"missing fields: {', '.join(missing)}")
    sensor_id = doc["sensor_id"]
    if not isinstance(sensor_id, str) or not _is_name(sensor_id):
        return DecodeFailure(
            SCHEMA, f"sensor_id must be a string of 1..{MAX_NAME_CHARS} characters without control characters")
    start, end = parse_time(doc["window_start"]), parse_time(doc["window_end"])
    if start is None or end is None:
        return DecodeFailure(BAD_TIME, "window_start/window_end must be ISO-8601 with a UTC offset")
    if end < start:
        return DecodeFailure(BAD_TIME, "window_end is before window_start")
    if start < EARLIEST or end >= LATEST:
        return DecodeFailure(BAD_TIME, f"window times must lie in [{format_time(EARLIEST)}, {format_time(LATEST)})")
    names = doc["channels"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return DecodeFailure(SCHEMA, "channels must be a non-empty list of strings")
    names_text = "".join(names)
    if not all(names) or max(map(len, names)) > MAX_NAME_CHARS or _CONTROL.search(names_text):
        return DecodeFailure(
            SCHEMA, f"channel names must be 1..{MAX_NAME_CHARS} characters without control characters")
    if len(set(names)) != len(names):
        return DecodeFailure(CHANNELS, "duplicate channel names")
    if channels is not None and tuple(names) != channels:
        return DecodeFailure(CHANNELS, f"channels {_shown(names)} differ from the model's {list(channels)}")
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
    if isinstance(values, np.ndarray):  # a plain window's number matrix, read by _plain_window
        return sensor_id, start, end, tuple(names), values
    if not isinstance(values, list) or not values:
        return DecodeFailure(SCHEMA, "values must be a non-empty list of rows")
    if _may_hold_strings(raw, doc, sensor_id, names, names_text):
        # numpy would read "1" as 1.0: strings are refused here, where they can still be told from numbers
        problem = _value_types_problem(values)
        if problem is not None:
            return problem
    return sensor_id, start, end, tuple(names), values


def _plain_window(raw: bytes) -> dict[str, object] | None:
    """The fast path of the common record: a window with exactly the five fields of the number-list form, read
    by simdjson with ``values`` as one (rows, width) float64 array and no Python float per number (the consumer's
    decode stage a quarter shorter for 64 x 8 windows; docs/benchmarks.md round 7). None for anything else (a backslash escape,
    another field, a duplicate key, a ragged, nested or non-numeric matrix, invalid JSON, ...): the caller
    then reads the record with orjson, whose rules name every failure, so both paths give the same result
    (``tests/unit/test_contract_fuzz.py`` compares them on generated and hand-made records)."""
    if not raw.startswith(b"{") or b"\\" in raw:  # a byte-order mark (simdjson skips it, orjson refuses it),
        return None  # leading space, escapes (orjson's string rules: lone surrogates, ...): the full path decides
    try:
        return _read_plain(simdjson.Parser(), raw)  # a parser per record (0.2 us): no state shared by threads
    except Exception:  # noqa: BLE001 - any refusal or oddity: the full path reads the record and names it
        return None


def _read_plain(parser: simdjson.Parser, raw: bytes) -> dict[str, object] | None:
    doc = parser.parse(raw)
    if not isinstance(doc, simdjson.Object) or len(doc) != len(_LISTED) or set(doc.keys()) != _LISTED:
        return None  # not an object, another field, or a duplicate key (simdjson keeps the first, orjson the last)
    values = doc["values"]
    if not isinstance(values, simdjson.Array) or not len(values):
        return None
    rows = len(values)
    first = values[0]
    width = len(first) if isinstance(first, simdjson.Array) else 0
    if not width or not all(isinstance(row, simdjson.Array) and len(row) == width for row in values):
        return None
    # Each row an array of `width` elements; one '[' for "channels", one for "values", one per row: any other
    # '[' in the text (a nested list, one inside a string) leaves the fast path, so every element is a scalar,
    # and the buffer below refuses any scalar that is not a number (booleans, null, strings).
    if raw.count(b"[") != rows + 2:
        return None
    matrix = np.frombuffer(values.as_buffer(of_type="d"), dtype=np.float64)
    if matrix.size != rows * width:
        return None
    names = doc["channels"]
    return {"sensor_id": doc["sensor_id"], "window_start": doc["window_start"], "window_end": doc["window_end"],
            "channels": names.as_list() if isinstance(names, simdjson.Array) else names,
            "values": matrix.reshape(rows, width)}


def _is_name(text: str) -> bool:
    return 0 < len(text) <= MAX_NAME_CHARS and _CONTROL.search(text) is None


def _json_failure(raw: bytes, exc: orjson.JSONDecodeError) -> DecodeFailure:
    """Name why orjson refused ``raw``: not UTF-8, a non-finite number, or any other JSON error."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as utf_exc:
        return DecodeFailure(NOT_UTF8, str(utf_exc)[:_DETAIL_CHARS])
    # Python's json writes NaN/Infinity literals (and 1e999 reads as infinity), which strict JSON refuses: name
    # them from the token orjson stopped at, without a second (recursive, unbounded-depth) parse.
    if _non_finite_token_at(exc.doc, exc.pos):
        return DecodeFailure(NON_FINITE, "values contain NaN or Infinity literals")
    return DecodeFailure(BAD_JSON, str(exc)[:_DETAIL_CHARS])


_NUMBER_OR_LITERAL = re.compile(r"NaN|-?Infinity|-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _non_finite_token_at(text: object, pos: object) -> bool:
    """Whether ``text`` holds a NaN/Infinity literal or a number beyond float64 at ``pos``."""
    if not isinstance(text, str) or not isinstance(pos, int):
        return False
    match = _NUMBER_OR_LITERAL.match(text, pos, pos + 400)
    if match is None:
        return False
    token = match.group()
    return token in ("NaN", "Infinity", "-Infinity") or not math.isfinite(float(token))


def _may_hold_strings(raw: bytes, doc: dict[str, object], sensor_id: str, names: list[str], names_text: str) -> bool:
    """Whether ``doc["values"]`` may hold strings, told from the count of '"' bytes in ``raw`` (C speed).

    Every key and string of the JSON text adds two '"' bytes, and one more per '"' inside it (escaped as
    \\"); when all strings but the values' are known (keys, sensor_id, times, channel names, top-level extra
    strings) and none holds a '"', a count equal to theirs proves the values hold none. Anything else (a
    nested extra field, a '"' inside a name, a duplicate key) answers True: the caller then checks types
    element by element."""
    expected = 2 * len(doc) + 2 * len(names) + 6  # keys, channel names, sensor_id and the two times
    if len(doc) > len(_LISTED):  # extra fields, which the contract allows
        for key in doc.keys() - _LISTED:
            value = doc[key]
            if '"' in key or isinstance(value, (list, dict)):
                return True
            if isinstance(value, str):
                if '"' in value:
                    return True
                expected += 2
    return '"' in sensor_id or '"' in names_text or raw.count(b'"') != expected


_LISTED = frozenset((*_REQUIRED, "values"))  # the fields of a window with number lists


def _value_types_problem(values: list[object]) -> DecodeFailure | None:
    """Element by element (slow path): null -> NULL_VALUE; a row that is not a list, a boolean, a string or
    a nested list -> SHAPE; only numbers -> None."""
    if isinstance(values, np.ndarray):  # read by _plain_window: numbers only
        return None
    try:
        kinds = set(map(type, chain.from_iterable(values)))  # type: ignore[arg-type]
    except TypeError:  # a row that is not a list (nor any iterable)
        kinds = None
    if kinds is not None and kinds <= _NUMBER_TYPES:
        return None
    if _has_null(values):
        return DecodeFailure(NULL_VALUE, "values contain null")
    if kinds is None:
        return DecodeFailure(SHAPE, "values must be a list of rows, each a list of numbers")
    others = ", ".join(sorted(k.__name__ for k in kinds - _NUMBER_TYPES))
    return DecodeFailure(SHAPE, f"values must be numbers; booleans, strings and nested lists are not ({others})")


_NUMBER_TYPES = {int, float}


def _values_array(
    values: object, width: int, window_len: int | None, raw: bytes | None
) -> np.ndarray | DecodeFailure:
    """One window's values list (or packed float32 bytes) -> float32 (rows, width) array, or the failure;
    ``raw`` is the record the values come from."""
    if isinstance(values, bytes):
        if not values or len(values) % (4 * width):
            return DecodeFailure(SHAPE, f"{PACKED} holds {len(values)} bytes: not whole rows of {width} float32")
        packed = np.frombuffer(values, dtype="<f4").reshape(-1, width)
        if window_len is not None and packed.shape[0] != window_len:
            return DecodeFailure(SHAPE, f"window has {packed.shape[0]} rows, the model expects {window_len}")
        if not _in_range(packed):
            return _range_failure(packed)
        return packed.astype(np.float32)
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
    if not _in_range(array):  # checked in float64, so the cast to float32 below stays finite
        if _has_null(values):  # type: ignore[arg-type]  # numpy reads null as NaN: name the real cause
            return DecodeFailure(NULL_VALUE, "values contain null")
        return _range_failure(array)
    as32 = array.astype(np.float32)
    if ((as32 == 0) | (as32 == 1)).any() and _may_hold_bools(raw):
        problem = _value_types_problem(values)  # type: ignore[arg-type]
        if problem is not None:
            return problem
    return as32


def _in_range(array: np.ndarray) -> bool:
    """Every value finite with ``|v| <= MAX_ABS_VALUE`` (NaN compares False); ``array`` is not empty."""
    return bool(array.max() <= MAX_ABS_VALUE and array.min() >= -MAX_ABS_VALUE)


def _may_hold_bools(raw: bytes | None) -> bool:
    """Whether a record's number lists may hold booleans, which numpy would read as 1.0 and 0.0: only windows
    with a value 0 or 1 are asked, and only those whose text holds a ``true``/``false`` literal (or such a
    word inside a string) are type-checked element by element."""
    return raw is None or b"true" in raw or b"false" in raw


def _range_failure(array: np.ndarray) -> DecodeFailure:
    if not np.isfinite(array).all():
        return DecodeFailure(NON_FINITE, "values contain NaN or Infinity")
    return DecodeFailure(
        NON_FINITE, f"values beyond +-{MAX_ABS_VALUE:g} (largest |value| {float(np.abs(array).max()):g})")


def _finish(head: _Head, array: np.ndarray | DecodeFailure) -> SensorWindow | DecodeFailure:
    if isinstance(array, DecodeFailure):
        return array
    sensor_id, start, end, names, _ = head
    return SensorWindow(sensor_id, start, end, names, array)


def _has_null(values: list[object]) -> bool:
    return any(v is None or (isinstance(v, list) and any(x is None for x in v)) for v in values)


def _undecodable(exc: BaseException) -> DecodeFailure:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # noqa: BLE001 - an exception whose str() fails
        text = type(exc).__name__
    return DecodeFailure(UNDECODABLE, text[:_DETAIL_CHARS])


def _shown(names: list[str]) -> str:
    return repr(names[:20])[:_DETAIL_CHARS]


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
