"""Property tests of the message contract: no byte string makes ``decode``/``decode_batch`` raise or hang,
every window they return holds what the contract promises, and every failure names a rule of the contract.

The default example counts keep the unit suite fast; ``MONITOR_FUZZ_EXAMPLES=5000`` runs a deeper search.
Hypothesis' ``deadline`` bounds the time of each example (a slow one is re-run, then reported).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core import contract
from monitor.core.contract import DecodeFailure, SensorWindow, decode, decode_batch

EXAMPLES = int(os.environ.get("MONITOR_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=2), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MAX_BYTES = 200_000


# --- what every result must satisfy ----------------------------------------------------------------------

def check_result(out: object, *, window_len: int | None = None, channels: tuple[str, ...] | None = None) -> None:
    if isinstance(out, DecodeFailure):
        # the safety net (UNDECODABLE) is for exceptions no rule foresaw: a fuzzer reaching it found a bug
        assert out.reason in contract.REASONS, out
        assert isinstance(out.detail, str) and out.detail
        return
    assert isinstance(out, SensorWindow), out
    values = out.values
    assert isinstance(values, np.ndarray) and values.dtype == np.float32 and values.ndim == 2
    assert values.shape[0] >= 1 and values.shape[1] == len(out.channels) >= 1
    assert np.isfinite(values).all() and float(np.abs(values).max()) <= contract.MAX_ABS_VALUE
    if window_len is not None:
        assert values.shape[0] == window_len
    if channels is not None:
        assert out.channels == channels
    assert out.window_start.utcoffset() == timedelta(0) and out.window_end.utcoffset() == timedelta(0)
    assert contract.EARLIEST <= out.window_start <= out.window_end < contract.LATEST
    for name in (out.sensor_id, *out.channels):
        assert isinstance(name, str) and 0 < len(name) <= contract.MAX_NAME_CHARS
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in name), repr(name)
        name.encode("utf-8")  # no lone surrogate: the key check, Kafka headers and the database take it
    assert len(set(out.channels)) == len(out.channels)


def same(a: object, b: object) -> bool:
    if isinstance(a, DecodeFailure) or isinstance(b, DecodeFailure):
        return isinstance(a, DecodeFailure) and isinstance(b, DecodeFailure) and a.reason == b.reason
    assert isinstance(a, SensorWindow) and isinstance(b, SensorWindow)
    return ((a.sensor_id, a.window_start, a.window_end, a.channels) == (b.sensor_id, b.window_start, b.window_end,
                                                                         b.channels)
            and a.values.dtype == b.values.dtype and np.array_equal(a.values, b.values))


def without_fast_path(read: Callable[[], list[Any]]) -> list[Any]:
    """``read()`` with the simdjson fast path of plain windows switched off: every record read by orjson."""
    fast = contract._plain_window
    contract._plain_window = lambda raw: None
    try:
        return read()
    finally:
        contract._plain_window = fast


def check_all(raws: list[bytes | None], *, window_len: int | None, channels: tuple[str, ...] | None,
              max_bytes: int = MAX_BYTES) -> list[Any]:
    """decode and decode_batch agree record by record, with and without the fast path of plain windows (the
    same window, or the same reason and detail), and each result is sound."""
    single = [decode(raw, window_len=window_len, channels=channels, max_bytes=max_bytes) for raw in raws]
    batch = decode_batch(raws, window_len=window_len, channels=channels, max_bytes=max_bytes)
    full = without_fast_path(lambda: [decode(raw, window_len=window_len, channels=channels, max_bytes=max_bytes)
                                      for raw in raws])
    assert len(batch) == len(raws)
    for s, b, f in zip(single, batch, full):
        check_result(s, window_len=window_len, channels=channels)
        check_result(b, window_len=window_len, channels=channels)
        assert same(s, b), (s, b)
        assert same(s, f) and (not isinstance(s, DecodeFailure) or s.detail == f.detail), (s, f)
        if isinstance(s, SensorWindow):  # bit for bit: -0.0, the rounding of every number
            assert s.values.tobytes() == f.values.tobytes(), (s, f)
    return single


# --- valid records, and ways to break them ----------------------------------------------------------------

START = datetime(2026, 1, 1, tzinfo=timezone.utc)

LARGEST32 = float(np.float32(contract.MAX_ABS_VALUE))  # the largest float32 not above the limit
finite_values = st.floats(min_value=-LARGEST32, max_value=LARGEST32, allow_nan=False, allow_infinity=False, width=32)
names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)


@st.composite
def valid_docs(draw: st.DrawFn) -> tuple[dict[str, Any], int, tuple[str, ...]]:
    """A valid record as a JSON document, with the model's window_len and channels."""
    window_len = draw(st.integers(1, 6))
    channels = tuple(draw(st.lists(names, min_size=1, max_size=4, unique=True)))
    rows = draw(st.lists(st.lists(finite_values | st.integers(-1000, 1000), min_size=len(channels),
                                  max_size=len(channels)), min_size=window_len, max_size=window_len))
    doc: dict[str, Any] = {
        "sensor_id": draw(names),
        "window_start": contract.format_time(START),
        "window_end": contract.format_time(START + timedelta(seconds=draw(st.integers(0, 10**6)))),
        "channels": list(channels),
    }
    if draw(st.booleans()):
        doc[contract.PACKED] = base64.b64encode(np.asarray(rows, dtype="<f4").tobytes()).decode()
    else:
        doc["values"] = rows
    return doc, window_len, channels


def dump(doc: object) -> bytes:
    return json.dumps(doc, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")


extreme_floats = st.sampled_from([1e15, -1e15, 1.0000001e15, 1e16, 1e20, -1e20, 3.4e38, 3.5e38, 1e300, 1e308,
                                  5e-324, -0.0, float("nan"), float("inf"), float("-inf")]) | st.floats()
scalars = (extreme_floats | st.integers(-(2**70), 2**70) | st.booleans() | st.none()
           | st.text(max_size=8) | st.sampled_from(["1", "1e5", " 2 ", "nan", "inf", "true", "0"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=12)
hostile_text = st.text(st.characters(), max_size=30) | st.sampled_from([
    "", "a\x00b", "tab\there", "\x7f", "\x85", "x" * 200, "x" * 201, "pompe-€", '"quoted"', "1970-01-01T00:00:00Z",
])
hostile_times = st.sampled_from([
    "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z", "2200-12-31T23:59:59Z", "2201-01-01T00:00:00Z", "2026-01-01T00:00:00",
    "2026-01-01", "2026-W01-1T00:00Z", "2026-01-01T00:00:00+23:59", "2026-01-01T00:00:00+24:00", "Z", "",
]) | st.text(max_size=30)


@st.composite
def substituted(draw: st.DrawFn) -> tuple[bytes, int, tuple[str, ...]]:
    """A valid record with one field, channel name, row or value replaced by something hostile."""
    doc, window_len, channels = draw(valid_docs())
    where = draw(st.sampled_from(["sensor_id", "window_start", "window_end", "channel", "channels", "cell", "row",
                                  "values", "packed", "extra", "drop"]))
    if where in ("sensor_id", "window_start", "window_end"):
        doc[where] = draw(hostile_times if where != "sensor_id" else hostile_text | json_values)
    elif where == "channel":
        doc["channels"][draw(st.integers(0, len(channels) - 1))] = draw(hostile_text | json_values)
    elif where == "channels":
        doc["channels"] = draw(json_values)
    elif where in ("cell", "row", "values") and "values" in doc:
        rows = doc["values"]
        i = draw(st.integers(0, len(rows) - 1))
        if where == "cell":
            rows[i][draw(st.integers(0, len(rows[i]) - 1))] = draw(scalars | json_values)
        elif where == "row":
            rows[i] = draw(json_values)
        else:
            doc["values"] = draw(json_values)
    elif where == "packed":
        doc[contract.PACKED] = draw(st.text(max_size=40) | st.binary(max_size=40).map(
            lambda b: base64.b64encode(b).decode()) | json_values)
    elif where == "extra":
        doc[draw(st.text(max_size=8))] = draw(json_values | hostile_text)
    else:
        doc.pop(draw(st.sampled_from(sorted(doc))))
    return dump(doc), window_len, channels


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, int, tuple[str, ...]]:
    """A valid record's bytes with flips, truncation, insertions or a spliced-in number literal."""
    doc, window_len, channels = draw(valid_docs())
    raw = bytearray(dump(doc))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "literal"]))
        at = draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[at] = draw(st.integers(0, 255))
        elif op == "truncate":
            del raw[at:]
        elif op == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
                [b"NaN", b"-Infinity", b"1e999", b"true", b"\"1\"", b"[[", b"]]", b"\\u0000", b"\\ud800", b"\"", b","]))
        elif op == "delete":
            del raw[at:at + draw(st.integers(1, 8))]
        else:
            raw[at:at] = draw(st.sampled_from([b"1e20", b"-1e16", b"3.5e38", b"1e400", b"18446744073709551615",
                                                b"123456789012345678901234567890", b"0.0e-999", b"-0"]))
    return bytes(raw), window_len, channels


# --- properties -------------------------------------------------------------------------------------------

@FUZZ
@given(st.lists(st.binary(max_size=300) | st.none(), min_size=1, max_size=8))
def test_arbitrary_bytes_never_raise(raws: list[bytes | None]) -> None:
    check_all(raws, window_len=None, channels=None)
    check_all(raws, window_len=4, channels=("a", "b"))


@FUZZ
@given(st.lists(valid_docs(), min_size=1, max_size=6))
def test_valid_records_decode_to_their_values(items: list[tuple[dict[str, Any], int, tuple[str, ...]]]) -> None:
    for doc, window_len, channels in items:
        [out] = check_all([dump(doc)], window_len=window_len, channels=channels)
        assert isinstance(out, SensorWindow), out
        expected = (np.frombuffer(base64.b64decode(doc[contract.PACKED]), dtype="<f4").reshape(window_len, -1)
                    if contract.PACKED in doc else np.asarray(doc["values"], dtype=np.float32))
        np.testing.assert_array_equal(out.values, expected)


def plain(values: str, channels: str = '["a", "b"]', extra: str = "") -> bytes:
    return (f'{{"sensor_id": "s-1", "window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T00:01:00Z", '
            f'"channels": {channels}, "values": {values}{extra}}}').encode()


@pytest.mark.parametrize("raw", [
    plain("[[1, 2], [3, 4]]"), plain("[[1,2],[3]]"), plain("[[[1, 2], 3], 4]"), plain("[[[1], 2], [[3], 4]]"),
    plain("[[[1]], [[2]]]", '["a"]'), plain("[[1, []], [3, 4]]"), plain("[[1, true], [3, 4]]"),
    plain("[[1, null], [3, 4]]"), plain('[[1, "2"], [3, 4]]'), plain("[[1, {}], [3, 4]]"), plain("[1, 2]"),
    plain("[[1e400, 2], [3, 4]]"), plain("[[18446744073709551615, 2], [3, 4]]"), plain("[[1e-400, -0.0], [1E5, -0]]"),
    plain("[[-9223372036854775809, 2], [3, 4]]"), plain("[]"), plain("[[]]"), plain("[[1, 2], [3, 4]]", '["a", "["]'),
    plain("[[1, 2], [3, 4]]", '[["a"], "b"]'), plain("[[1, 2], [3, 4]]", extra=', "values": [[5, 6]]'),
    plain("[[1, 2], [3, 4]]", extra=', "x": 1'), plain("[[1, 2], [3, 4]]", '["a", "a"]'),
    plain("[[1, 2], [3, 4]]") + b" x", plain("[[1, 2], [3, 4]]").replace(b"s-1", b"s\\u0031"),
    plain("[[1, 2], [3, 4]]").replace(b"s-1", b"s\x01"), plain("[[1, 2], [3, 4]]").replace(b"s-1", b"s\xff"),
    b"\xef\xbb\xbf" + plain("[[1, 2], [3, 4]]"), b" " + plain("[[1, 2], [3, 4]]"), plain("[[1, 2], [3, 4]]") + b"\x00",
])
def test_the_fast_path_of_plain_windows_reads_every_record_as_orjson_does(raw: bytes) -> None:
    """Nested rows that flatten to the right count, strings with '[', duplicate keys, big integers: each
    record gets what the orjson path gives it (the fast path either reads it the same or leaves it)."""
    check_all([raw], window_len=None, channels=None)
    check_all([raw, plain("[[1, 2], [3, 4]]")], window_len=2, channels=("a", "b"))


@FUZZ
@given(st.lists(st.floats(-2e15, 2e15) | st.integers(-(2**64), 2**64), min_size=2, max_size=12),
       st.sampled_from(["{!r}", "{:.17e}", "{:.3f}", "{:.25g}", "{:E}"]))
def test_the_fast_path_rounds_every_number_as_orjson_does(numbers: list[float], form: str) -> None:
    """Written as producers in any language might write them (shortest repr, 17 digits, fixed, long, upper E)."""
    cells = [form.format(float(x)) if isinstance(x, float) else str(x) for x in numbers[: len(numbers) // 2 * 2]]
    rows = ", ".join(f"[{a}, {b}]" for a, b in zip(cells[::2], cells[1::2]))
    check_all([plain(f"[{rows}]")], window_len=None, channels=None)


def test_windows_as_producers_write_them_take_the_fast_path() -> None:
    values = np.arange(64 * 8, dtype=np.float64).reshape(64, 8) / 7
    raw = contract.encode_values("pump-07", START, START + timedelta(minutes=1), [f"c{i}" for i in range(8)], values)
    doc = contract._plain_window(raw)
    assert doc is not None and isinstance(doc["values"], np.ndarray)
    out = decode(raw, window_len=64)
    assert isinstance(out, SensorWindow)
    np.testing.assert_array_equal(out.values, values.astype(np.float32))
    [full] = without_fast_path(lambda: [decode(raw, window_len=64)])
    assert same(out, full)


@FUZZ
@given(st.lists(substituted(), min_size=1, max_size=6))
def test_records_with_a_hostile_field_never_raise(items: list[tuple[bytes, int, tuple[str, ...]]]) -> None:
    for raw, window_len, channels in items:
        check_all([raw], window_len=window_len, channels=channels)
        check_all([raw], window_len=None, channels=None)
    # and all of them as one batch, each judged by the first record's model
    check_all([raw for raw, _, _ in items], window_len=items[0][1], channels=items[0][2])


@FUZZ
@given(st.lists(mutated(), min_size=1, max_size=6))
def test_mutated_records_never_raise(items: list[tuple[bytes, int, tuple[str, ...]]]) -> None:
    for raw, window_len, channels in items:
        check_all([raw], window_len=window_len, channels=channels)
    check_all([raw for raw, _, _ in items], window_len=items[0][1], channels=items[0][2])


@FUZZ
@given(st.lists(substituted() | mutated() | valid_docs().map(lambda d: (dump(d[0]), d[1], d[2])),
                min_size=2, max_size=10), st.integers(1, 6), st.lists(names, min_size=1, max_size=3, unique=True))
def test_decode_batch_equals_decode_on_mixed_batches(
    items: list[tuple[bytes, int, tuple[str, ...]]], window_len: int, channels: list[str]
) -> None:
    raws: list[bytes | None] = [raw for raw, _, _ in items]
    check_all(raws, window_len=window_len, channels=tuple(channels))
    check_all(raws, window_len=items[0][1], channels=items[0][2])


@FUZZ
@given(st.integers(contract.MAX_NESTING - 3, 200_000) | st.integers(contract.MAX_NESTING - 3, contract.MAX_NESTING + 2),
       st.sampled_from(["extra", "values", "top", "channels"]),
       st.sampled_from(["[", "{\"k\":"]))
def test_deep_nesting_is_a_failure_not_a_recursion_error(depth: int, where: str, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    deep = opener * depth + "1" + closer * depth
    text = {"top": deep,
            "extra": f'{{"x": {deep}, "sensor_id": "s", "window_start": "2026-01-01T00:00:00Z", '
                     f'"window_end": "2026-01-01T00:00:01Z", "channels": ["a"], "values": [[1]]}}',
            "values": f'{{"sensor_id": "s", "window_start": "2026-01-01T00:00:00Z", '
                      f'"window_end": "2026-01-01T00:00:01Z", "channels": ["a"], "values": {deep}}}',
            "channels": f'{{"sensor_id": "s", "window_start": "2026-01-01T00:00:00Z", '
                        f'"window_end": "2026-01-01T00:00:01Z", "channels": {deep}, "values": [[1]]}}'}[where]
    raw = text.encode()
    out = check_all([raw, raw], window_len=None, channels=None, max_bytes=len(raw))[0]
    nesting = depth if where == "top" else depth + 1  # the record's object holds the deep value
    if nesting > contract.MAX_NESTING:
        assert isinstance(out, DecodeFailure) and out.reason == contract.BAD_JSON, out
    else:  # parsed: judged by the other rules (a list is no object, nested values no rows...)
        assert not isinstance(out, DecodeFailure) or out.reason != contract.BAD_JSON, out
        assert isinstance(out, SensorWindow) == (where == "extra"), out


@pytest.mark.parametrize("depth", [10_000, 900_000])
def test_the_deepest_nesting_that_fits_the_size_limit_is_bad_json(depth: int) -> None:
    raw = b"[" * depth + b"]" * depth
    out = decode(raw, max_bytes=2 * depth)
    assert isinstance(out, DecodeFailure) and out.reason == contract.BAD_JSON
    assert "depth" in out.detail or "recursion" in out.detail
