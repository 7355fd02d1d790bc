from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import numpy as np
import pytest

from monitor.core import contract
from monitor.core.contract import DecodeFailure, SensorWindow, decode, encode_values

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
END = datetime(2026, 1, 1, 0, 0, 3, tzinfo=timezone.utc)


def good(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "sensor_id": "s1", "window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T00:00:03Z",
        "channels": ["a", "b"], "values": [[1, 2], [3, 4], [5, 6], [7, 8]],
    }
    doc.update(changes)
    return doc


def test_round_trip_keeps_values_and_times() -> None:
    values = np.arange(8, dtype=np.float32).reshape(4, 2)
    out = decode(encode_values("s1", START, END, ["a", "b"], values), window_len=4, channels=("a", "b"))
    assert isinstance(out, SensorWindow)
    assert out.sensor_id == "s1" and out.window_start == START and out.window_end == END
    assert out.window_start.tzinfo is not None
    np.testing.assert_array_equal(out.values, values)
    assert out.values.dtype == np.float32


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, contract.NULL_VALUE),
        (b"\xff\xfe", contract.NOT_UTF8),
        (b"{nope", contract.BAD_JSON),
        (b"[1, 2]", contract.SCHEMA),
        (json.dumps({"sensor_id": "s1"}).encode(), contract.SCHEMA),
        (json.dumps(good(values=[[1, 2], [3]])).encode(), contract.SHAPE),
        (json.dumps(good(values=[[1, 2, 3]] * 4)).encode(), contract.SHAPE),
        (json.dumps(good(values=[[1, None]] * 4)).encode(), contract.NULL_VALUE),
        (json.dumps(good(values=[[1, float("nan")]] * 4)).encode(), contract.NON_FINITE),
        (json.dumps(good(values=[[1, 1e999]] * 4)).encode(), contract.NON_FINITE),
        (json.dumps(good(channels=["a", "c"])).encode(), contract.CHANNELS),
        (json.dumps(good(channels=["a", "a"])).encode(), contract.CHANNELS),
        (json.dumps(good(window_start="2026-01-01T00:00:00")).encode(), contract.BAD_TIME),
        (json.dumps(good(window_end="2025-01-01T00:00:00Z")).encode(), contract.BAD_TIME),
        (json.dumps(good(values=[[1, 2]] * 3)).encode(), contract.SHAPE),
        (json.dumps(good(sensor_id="")).encode(), contract.SCHEMA),
    ],
)
def test_bad_records_are_failures_with_reason(raw: bytes | None, reason: str) -> None:
    out = decode(raw, window_len=4, channels=("a", "b"))
    assert isinstance(out, DecodeFailure), out
    assert out.reason == reason
    assert out.reason in contract.REASONS


def test_oversized_record_is_refused_before_parsing() -> None:
    raw = json.dumps(good()).encode()
    out = decode(raw, max_bytes=len(raw) - 1)
    assert isinstance(out, DecodeFailure) and out.reason == contract.OVERSIZED


def test_naive_datetimes_are_refused_when_encoding() -> None:
    with pytest.raises(ValueError):
        encode_values("s1", datetime(2026, 1, 1), END, ["a"], np.zeros((1, 1)))  # noqa: DTZ001 - the point


def test_schema_file_names_the_required_fields() -> None:
    from importlib import resources

    schema = json.loads(resources.files("monitor").joinpath("schema/sensor-window.schema.json").read_text())
    assert set(schema["required"]) == {"sensor_id", "window_start", "window_end", "channels"}
    assert [set(alt["required"]) for alt in schema["oneOf"]] == [{"values"}, {contract.PACKED}]


def packed(values: object) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


def test_packed_values_decode_like_number_lists() -> None:
    values = np.random.default_rng(1).normal(size=(4, 2)) * 1000
    plain = decode(encode_values("s1", START, END, ["a", "b"], values), window_len=4, channels=("a", "b"))
    raw = encode_values("s1", START, END, ["a", "b"], values, packed=True)
    assert b'"values_f32"' in raw and b'"values"' not in raw
    out = decode(raw, window_len=4, channels=("a", "b"))
    assert isinstance(out, SensorWindow) and isinstance(plain, SensorWindow)
    np.testing.assert_array_equal(out.values, plain.values)  # float32 either way: identical decisions
    assert out.values.dtype == np.float32


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (good(values_f32=packed([[1, 2]] * 4)), contract.SCHEMA),  # both forms
        ({k: v for k, v in good(values_f32=12).items() if k != "values"}, contract.SCHEMA),
        ({k: v for k, v in good(values_f32="@@not base64@@").items() if k != "values"}, contract.SCHEMA),
        ({k: v for k, v in good(values_f32=packed([1, 2, 3])).items() if k != "values"}, contract.SHAPE),
        ({k: v for k, v in good(values_f32=packed([[1, 2]] * 3)).items() if k != "values"}, contract.SHAPE),
        ({k: v for k, v in good(values_f32=packed([[1, np.nan]] * 4)).items() if k != "values"}, contract.NON_FINITE),
        ({k: v for k, v in good(values_f32=packed([[1, np.inf]] * 4)).items() if k != "values"}, contract.NON_FINITE),
        ({k: v for k, v in good().items() if k != "values"}, contract.SCHEMA),  # neither form
    ],
)
def test_bad_packed_records_are_failures_with_reason(doc: dict[str, object], reason: str) -> None:
    out = decode(json.dumps(doc).encode(), window_len=4, channels=("a", "b"))
    assert isinstance(out, DecodeFailure), out
    assert out.reason == reason


def _mixed_batch() -> list[bytes | None]:
    ok = [json.dumps(good(sensor_id=f"s{i}", values=[[i, 2], [3, 4], [5, 6], [7, 8]])).encode() for i in range(5)]
    bad: list[bytes | None] = [
        None, b"\xff\xfe", b"{nope", json.dumps(good(values=[[1, None]] * 4)).encode(),
        json.dumps(good(values=[[1, float("nan")]] * 4)).encode(), json.dumps(good(channels=["a", "c"])).encode(),
    ]
    packs = [encode_values(f"p{i}", START, END, ["a", "b"], np.array([[i, 2], [3, 4], [5, 6], [7, 8]]), packed=True)
             for i in range(3)]
    nan_pack = encode_values("pn", START, END, ["a", "b"], np.array([[np.nan, 2]] * 4), packed=True)
    return [ok[0], bad[0], packs[0], ok[1], bad[1], bad[2], ok[2], packs[1], bad[3], nan_pack, bad[4], ok[3],
            bad[5], ok[4], packs[2]]


@pytest.mark.parametrize("extra", [[], [json.dumps(good(values=[[1, 2]] * 3)).encode()],
                                   [json.dumps(good(values=[[1, "x"]] * 4)).encode()],
                                   [encode_values("p", START, END, ["a", "b"], np.array([[1, 2]] * 3), packed=True)]])
def test_decode_batch_equals_decode_record_by_record(extra: list[bytes]) -> None:
    # extra: a ragged or non-numeric window forces the window-by-window fallback
    raws = _mixed_batch() + extra
    batch = contract.decode_batch(raws, window_len=4, channels=("a", "b"))
    single = [decode(raw, window_len=4, channels=("a", "b")) for raw in raws]
    assert len(batch) == len(single)
    for b, s in zip(batch, single):
        assert type(b) is type(s)
        if isinstance(s, DecodeFailure):
            assert isinstance(b, DecodeFailure) and b.reason == s.reason
        else:
            assert isinstance(b, SensorWindow)
            assert (b.sensor_id, b.window_start, b.window_end, b.channels) == (
                s.sensor_id, s.window_start, s.window_end, s.channels)
            assert b.values.dtype == np.float32 and b.values.shape == (4, 2)
            np.testing.assert_array_equal(b.values, s.values)
    assert sum(isinstance(b, SensorWindow) for b in batch) == 8


def test_a_record_keyed_by_another_sensor_is_refused_with_both_names() -> None:
    from collections import namedtuple

    from monitor.consumer.batches import Batch

    Raw = namedtuple("Raw", "partition offset key value")
    value = encode_values("s1", START, END, ["a", "b"], np.zeros((4, 2)))
    raws = [Raw(0, 10, b"s1", value), Raw(0, 11, None, value), Raw(0, 12, b"s2", value)]
    batch = Batch.decode(raws, window_len=4, channels=("a", "b"), max_bytes=10_000)

    assert [r.offset for r in batch.good] == [10, 11], "own key and no key are accepted"
    [(raw, failure)] = batch.dead
    assert raw.offset == 12 and failure.reason == contract.KEY_MISMATCH
    assert "'s2'" in failure.detail and "'s1'" in failure.detail
    assert batch.next_offsets == {0: 13}, "the refused record still moves the offset (it goes to the DLQ)"
    window = decode(value, window_len=4, channels=("a", "b"))
    assert isinstance(window, SensorWindow)
    assert contract.check_key(b"s1", window) is None and contract.check_key(None, window) is None


# --- hardened contract: numbers in float32, names, times, nesting, and the safety net ----------------------

def raw_of(**changes: object) -> bytes:
    return json.dumps(good(**changes), ensure_ascii=False).encode()


def without_values(**changes: object) -> dict[str, object]:
    return {k: v for k, v in good(**changes).items() if k != "values"}


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        # finite in float64 but beyond what float32 scoring can take (the review's sensor blinded for ever)
        (raw_of(values=[[1, 1e20]] * 4), contract.NON_FINITE, "beyond"),
        (raw_of(values=[[-1.0000001e15, 2]] + [[1, 2]] * 3), contract.NON_FINITE, "beyond"),
        (raw_of(values=[[1, 3.5e38]] * 4), contract.NON_FINITE, "beyond"),  # inf once cast to float32
        (raw_of(values=[[1, 123456789012345678901234567890]] * 4), contract.NON_FINITE, "beyond"),
        (json.dumps(without_values(values_f32=packed([[1, 1e20]] * 4))).encode(), contract.NON_FINITE, "beyond"),
        (raw_of(values=[[1, 2]] * 3 + [[1, 2e16]]).replace(b"2e+16", b"1e999"), contract.NON_FINITE, "literal"),
        # booleans and strings are not numbers (numpy would read them as 1.0 and "1" as 1.0)
        (raw_of(values=[[True, 2]] + [[1, 2]] * 3), contract.SHAPE, "bool"),
        (raw_of(values=[[1, 0]] * 3 + [[1, False]]), contract.SHAPE, "bool"),
        (raw_of(values=[["1", 2]] + [[1, 2]] * 3), contract.SHAPE, "str"),
        (raw_of(values=[[1, "nan"]] * 4), contract.SHAPE, "str"),
        (raw_of(values=[[1, "2"]] * 4, note={"a": "b"}), contract.SHAPE, "str"),  # nested extra: checked all the same
        (raw_of(values=[[1, "2"]] * 4, sensor_id='pump "7"'), contract.SHAPE, "str"),  # a quote in a name
        (raw_of(values=[[1, [2]]] * 4), contract.SHAPE, ""),
        (raw_of(values=[[1, {}]] * 4), contract.SHAPE, ""),
        # ids and channel names: bounded, no control characters
        (raw_of(sensor_id="pump\x007"), contract.SCHEMA, "control"),
        (raw_of(sensor_id="pump\n7"), contract.SCHEMA, "control"),
        (raw_of(sensor_id="pump\x857"), contract.SCHEMA, "control"),  # C1
        (raw_of(sensor_id="x" * 201), contract.SCHEMA, "1..200"),
        (raw_of(sensor_id=7), contract.SCHEMA, ""),
        (raw_of(channels=["a", "b\x00"]), contract.SCHEMA, "control"),
        (raw_of(channels=["a", ""]), contract.SCHEMA, "1..200"),
        (raw_of(channels=["a", "b" * 201]), contract.SCHEMA, "1..200"),
        (b'{"sensor_id": "\\ud800"}', contract.BAD_JSON, "surrogate"),  # a lone surrogate: not text
        # times: in range after the conversion to UTC, which must not raise
        (raw_of(window_start="0001-01-01T00:30:00+01:00"), contract.BAD_TIME, ""),
        (raw_of(window_end="9999-12-31T23:59:59-01:00"), contract.BAD_TIME, ""),
        (raw_of(window_start="1969-12-31T23:59:59Z"), contract.BAD_TIME, "1970-01-01"),
        (raw_of(window_end="2201-01-01T00:00:00Z"), contract.BAD_TIME, "2201-01-01"),
        (raw_of(window_start=20260101), contract.BAD_TIME, ""),
        # nesting: refused by the parser's depth limit, before anything recursive runs
        (b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}", contract.BAD_JSON, ""),
        (b"[" * 100_000, contract.BAD_JSON, ""),
    ],
)
def test_hardened_contract_refuses_with_reason(raw: bytes, reason: str, detail: str) -> None:
    for out in (decode(raw, window_len=4, channels=("a", "b")), decode(raw),
                contract.decode_batch([raw], window_len=4, channels=("a", "b"))[0]):
        assert isinstance(out, DecodeFailure), out
        assert (out.reason, detail in out.detail) == (reason, True), out


@pytest.mark.parametrize(
    "raw",
    [
        raw_of(values=[[1e15, -1e15]] * 4),  # the limits themselves
        raw_of(values=[[0, 1]] * 4),  # integers 0 and 1 are numbers, not booleans
        raw_of(values=[[0, 1]] * 4, sensor_id="truefalse", note="true or false"),  # the words, not the literals
        raw_of(values=[[0.0, 1.0]] * 4, extra={"ok": True, "list": ["x"]}),  # extra fields of any kind
        raw_of(sensor_id='pump "7" \u00e9\u20ac\U0001F600', channels=["a", "b"]),
        raw_of(sensor_id="x" * 200),
        raw_of(window_start="1970-01-01T00:00:00Z", window_end="2200-12-31T23:59:59Z"),
        raw_of(window_start="2026-01-01T01:00:00+01:00", window_end="2026-01-01T00:00:03Z"),
    ],
)
def test_hardened_contract_accepts_edge_values(raw: bytes) -> None:
    out = decode(raw, window_len=4, channels=("a", "b"))
    assert isinstance(out, SensorWindow), out
    assert out.values.dtype == np.float32 and np.isfinite(out.values).all()
    [batched] = contract.decode_batch([raw, raw_of()], window_len=4, channels=("a", "b"))[:1]
    assert isinstance(batched, SensorWindow) and np.array_equal(batched.values, out.values)


def test_parse_time_never_raises_on_times_beyond_the_datetime_range() -> None:
    assert contract.parse_time("0001-01-01T00:30:00+01:00") is None  # OverflowError in astimezone
    assert contract.parse_time("9999-12-31T23:59:59-01:00") is None
    assert contract.parse_time("0001-01-01T00:30:00Z") == datetime(1, 1, 1, 0, 30, tzinfo=timezone.utc)


def test_an_unforeseen_exception_is_a_dead_letter_of_that_record_only(monkeypatch: pytest.MonkeyPatch) -> None:
    raws = _mixed_batch()
    expected = contract.decode_batch(raws, window_len=4, channels=("a", "b"))
    boom = raws[3]
    real_head = contract._decode_head

    def head(raw: bytes | None, **kwargs: object) -> object:
        if raw == boom:
            raise MemoryError("unforeseen")
        return real_head(raw, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(contract, "_decode_head", head)
    single = decode(boom, window_len=4, channels=("a", "b"))
    assert isinstance(single, DecodeFailure) and single.reason == contract.UNDECODABLE
    assert "MemoryError: unforeseen" in single.detail
    batch = contract.decode_batch(raws, window_len=4, channels=("a", "b"))
    assert [type(b) for b in batch] == [DecodeFailure if i == 3 else type(e) for i, e in enumerate(expected)]
    assert batch[3].reason == contract.UNDECODABLE  # type: ignore[union-attr]
    assert contract.UNDECODABLE in contract.ALL_REASONS and contract.UNDECODABLE not in contract.REASONS


def test_a_failing_batch_conversion_falls_back_to_window_by_window(monkeypatch: pytest.MonkeyPatch) -> None:
    raws = _mixed_batch()
    expected = contract.decode_batch(raws, window_len=4, channels=("a", "b"))

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("batch step failed")

    monkeypatch.setattr(contract, "_batch_array", broken)
    again = contract.decode_batch(raws, window_len=4, channels=("a", "b"))
    assert [getattr(r, "reason", None) for r in again] == [getattr(r, "reason", None) for r in expected]
    monkeypatch.undo()
    monkeypatch.setattr(contract, "_accept_batch", broken)
    third = contract.decode_batch(raws, window_len=4, channels=("a", "b"))
    assert [getattr(r, "reason", None) for r in third] == [getattr(r, "reason", None) for r in expected]
    assert sum(isinstance(r, SensorWindow) for r in third) == 8


def test_the_batch_decoder_of_the_consumer_never_raises_on_any_record() -> None:
    from collections import namedtuple

    from monitor.consumer.batches import Batch

    Raw = namedtuple("Raw", "partition offset key value")
    hostile = [b"[" * 200_000, raw_of(window_start="0001-01-01T00:30:00+01:00"), raw_of(values=[[1, 1e20]] * 4),
               raw_of(sensor_id="s\x00"), raw_of()]
    raws = [Raw(0, i, None, v) for i, v in enumerate(hostile)] + [Raw(0, 9, b"\xff\xfe", raw_of())]
    batch = Batch.decode(raws, window_len=4, channels=("a", "b"), max_bytes=1_000_000)
    assert [r.offset for r in batch.good] == [4]
    assert [(raw.offset, f.reason) for raw, f in batch.dead] == [
        (0, contract.BAD_JSON), (1, contract.BAD_TIME), (2, contract.NON_FINITE), (3, contract.SCHEMA),
        (9, contract.KEY_MISMATCH)]
    assert batch.next_offsets == {0: 10}


def test_schema_file_states_the_contract_limits() -> None:
    from importlib import resources

    schema = json.loads(resources.files("monitor").joinpath("schema/sensor-window.schema.json").read_text())
    props = schema["properties"]
    assert props["sensor_id"]["maxLength"] == props["channels"]["items"]["maxLength"] == contract.MAX_NAME_CHARS
    assert props["values"]["items"]["items"]["maximum"] == contract.MAX_ABS_VALUE == -props["values"]["items"]["items"]["minimum"]
    pattern = props["sensor_id"]["pattern"]
    import re

    assert re.search(pattern, "pump-07 \u00e9") and not re.search(pattern, "pump\x00") and not re.search(pattern, "a\x85")
