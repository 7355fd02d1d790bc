"""What `make fuzz` sends (pure, seeded): good windows with unique, increasing times per sensor, a poison corpus,
random mutations of valid records, and re-sent or late copies of a sensor's windows (``monitor.core.ordering``).

Every record is classified by the contract's own decoder (``decode`` + ``check_key``, as the consumer and the
reference run do): a poison or mutated record that still decodes as a valid window is never sent (it would be an
extra window of unknown time: a duplicate or out-of-order window, not a bad record), and counted instead. A
poison record the decoder accepts is a hole in the contract and reported as such.
"""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import orjson

from monitor.core import contract
from monitor.core.contract import DecodeFailure, check_key, decode, encode_values, format_time
from pipelines.synthetic import EPOCH, normal_series

# Record size limit the fuzz consumers run with (`run.max_record_bytes`): small, so oversized records stay cheap.
MAX_RECORD_BYTES = 20_000
WEIRD_NUMBERS = [b"1e20", b"-1e20", b"1e16", b"1e999", b"-1e999", b"NaN", b"Infinity", b"-Infinity", b"true",
                 b"false", b"null", b'"1"', b'""', b"[]", b"{}", b"[1]", b"1e-400", b"123456789012345678901234567890",
                 b"0x10", b"+1", b".5", b"1.", b"01", b"-", b"1e", b'"\\u0000"', b'"\\ud800"']
JUNK = [b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b'"', b"{", b"}", b"[", b"]", b",", b":", b"\\", b"\n", b"\x7f"]
_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass
class Item:
    """One record to send: key, value, and what it must become (``reason`` None: a good window)."""

    key: bytes | None
    value: bytes | None
    reason: str | None
    kind: str  # good, extreme, resend, late, poison:<name>, mutation:<op>


@dataclass
class Stream:
    """Good windows of ``sensors`` sensors (times strictly increasing per sensor) mixed with bad records."""

    window_len: int
    channels: tuple[str, ...]
    sensors: int
    rng: random.Random
    bad_share: float = 0.3
    replay_share: float = 0.05  # re-sent and late windows (monitor.core.ordering), among the records
    next_index: dict[str, int] = field(default_factory=dict)
    last_good: dict[str, Item] = field(default_factory=dict)  # per sensor, the latest good window sent
    still_valid: int = 0  # mutations the decoder accepted: not sent
    contract_holes: list[str] = field(default_factory=list)  # poison the decoder accepted: not sent, reported

    def __post_init__(self) -> None:
        self.ids = [f"fuzz-{i:03d}" for i in range(self.sensors)]
        self.next_index = {s: 0 for s in self.ids}
        self._corpus = poison_corpus(self._template(self.ids[0], 0), self.ids)

    def _times(self, index: int) -> tuple[datetime, datetime]:
        start = EPOCH + timedelta(seconds=index * self.window_len)
        return start, start + timedelta(seconds=self.window_len - 1)

    def _values(self, sensor: str, index: int) -> np.ndarray:
        seed = self.ids.index(sensor) + 1
        return normal_series(self.window_len, len(self.channels), seed=seed, row_offset=index * self.window_len)

    def _template(self, sensor: str, index: int) -> dict[str, object]:
        start, end = self._times(index)
        return {"sensor_id": sensor, "window_start": format_time(start), "window_end": format_time(end),
                "channels": list(self.channels), "values": self._values(sensor, index).astype(float).tolist()}

    def classify(self, key: bytes | None, value: bytes | None) -> str | None:
        """The dead-letter reason the consumer must give, None for a valid window."""
        got = decode(value, window_len=self.window_len, channels=self.channels, max_bytes=MAX_RECORD_BYTES)
        if not isinstance(got, DecodeFailure):
            got = check_key(key, got) or got
        return got.reason if isinstance(got, DecodeFailure) else None

    def good(self) -> Item:
        """The next window of a random sensor: normal data, or (1 in 10) extreme but valid numbers."""
        sensor = self.rng.choice(self.ids)
        index = self.next_index[sensor]
        self.next_index[sensor] = index + 1
        start, end = self._times(index)
        values = self._values(sensor, index)
        kind = "good"
        if self.rng.random() < 0.1:
            kind = "extreme"
            values = extreme_values(values, self.rng)
        value = encode_values(sensor, start, end, self.channels, values, packed=self.rng.random() < 0.5)
        reason = self.classify(sensor.encode(), value)
        if reason is not None:
            raise AssertionError(f"a good window was refused ({reason}): {value[:300]!r}")
        item = self.last_good[sensor] = Item(sensor.encode(), value, None, kind)
        return item

    def replayed(self) -> Item | None:
        """A producer's re-send of a sensor's latest window (the same bytes: a duplicate, skipped, no dead letter)
        or an older window of it (valid, but not after the last judged one: dead letter ``out_of_order``); None
        before any sensor has sent two windows."""
        ready = [s for s in self.ids if self.next_index[s] >= 2]
        if not ready:
            return None
        sensor = self.rng.choice(ready)
        if self.rng.random() < 0.5:
            last = self.last_good[sensor]
            return Item(last.key, last.value, None, "resend")
        index = self.rng.randrange(self.next_index[sensor] - 1)  # before the latest window sent
        start, end = self._times(index)
        value = encode_values(sensor, start, end, self.channels, self._values(sensor, index) + 0.5)
        if self.classify(sensor.encode(), value) is not None:
            raise AssertionError(f"a late window was refused by the decoder: {value[:300]!r}")
        return Item(sensor.encode(), value, contract.OUT_OF_ORDER, "late")

    def bad(self) -> Item | None:
        """A poison record (half the time) or a mutated valid record; None when the pick decoded as valid."""
        if self.rng.random() < 0.5:
            name, key, value = self.rng.choice(self._corpus)
            reason = self.classify(key, value)
            if reason is None:
                self.contract_holes.append(name)
                return None
            return Item(key, value, reason, f"poison:{name}")
        sensor = self.rng.choice(self.ids)
        template = self._template(sensor, self.next_index[sensor])  # the sensor's next time: never sent as is
        op, key, value = mutate(template, sensor.encode(), self.rng, self.ids)
        reason = self.classify(key, value)
        if reason is None:
            self.still_valid += 1
            return None
        return Item(key, value, reason, f"mutation:{op}")

    def next(self) -> Item:
        if self.rng.random() < self.replay_share and (replay := self.replayed()) is not None:
            return replay
        while self.rng.random() < self.bad_share:
            item = self.bad()
            if item is not None:
                return item
        return self.good()


def extreme_values(values: np.ndarray, rng: random.Random) -> np.ndarray:
    """Valid but hostile numbers: near the contract's bound, constant, tiny (subnormal in float32), or zero."""
    pick = rng.randrange(5)
    if pick == 0:
        return np.sign(values + 0.5) * contract.MAX_ABS_VALUE * 0.999
    if pick == 1:
        return values * 1e12
    if pick == 2:
        return np.full_like(values, rng.uniform(-1e6, 1e6))
    if pick == 3:
        return values * 1e-42
    return np.zeros_like(values)


def poison_corpus(template: dict[str, object], ids: list[str]) -> list[tuple[str, bytes | None, bytes | None]]:
    """(name, key, value) of records that break the contract in one known way each."""
    sensor = str(template["sensor_id"])
    key = sensor.encode()
    rows = [list(r) for r in template["values"]]  # type: ignore[attr-defined]

    def doc(**change: object) -> bytes:
        return orjson.dumps({**template, **change})

    def with_value(token: bytes) -> bytes:
        return doc(values=[[12345.5] + r[1:] for r in rows]).replace(b"12345.5", token, 1)

    good = doc()
    nest = 5000
    packed = orjson.loads(encode_values(sensor, *_times_of(template), tuple(template["channels"]),  # type: ignore[arg-type]
                                        np.asarray(rows), packed=True))
    nan_f32 = np.asarray(rows, dtype="<f4")
    nan_f32[0, 0] = np.nan
    return [
        ("deep_nesting", key, b"[" * nest + b"]" * nest),
        ("deep_nesting_in_values", key, doc(values=[[[[[[[[[[1.0]]]]]]]]]] * len(rows))),
        ("nesting_object", key, b'{"a":' * nest + b"1" + b"}" * nest),
        ("nul_in_sensor_id", b"fuzz\x00-000", doc(sensor_id="fuzz\x00-000")),
        ("nul_in_channel", key, doc(channels=["ch\x00"] + list(template["channels"])[1:])),  # type: ignore[call-overload]
        ("newline_in_sensor_id", b"fuzz\n", doc(sensor_id="fuzz\n")),
        ("value_1e20", key, with_value(b"1e20")),
        ("value_1e16", key, with_value(b"1e16")),
        ("value_1e999", key, with_value(b"1e999")),
        ("value_nan", key, with_value(b"NaN")),
        ("value_true", key, with_value(b"true")),
        ("value_string", key, with_value(b'"1"')),
        ("value_null", key, with_value(b"null")),
        ("value_object", key, with_value(b'{"v": 1}')),
        ("value_bigint", key, with_value(b"123456789012345678901234567890123456789")),
        ("time_year_1_utc", key, doc(window_start="0001-01-01T00:30:00+01:00")),
        ("time_before_1970", key, doc(window_start="1969-12-31T23:59:59Z")),
        ("time_after_2200", key, doc(window_end="2201-01-01T00:00:00Z")),
        ("time_naive", key, doc(window_start="2026-01-01T00:00:00")),
        ("time_garbage", key, doc(window_start="yesterday")),
        ("time_number", key, doc(window_start=1767225600)),
        ("end_before_start", key, doc(window_end="2025-12-31T00:00:00Z")),
        ("truncated", key, good[: len(good) // 2]),
        ("truncated_one_byte", key, good[:-1]),
        ("empty", key, b""),
        ("not_json", key, b"hello, monitor"),
        ("json_array", key, b"[1, 2, 3]"),
        ("json_string", key, b'"sensor"'),
        ("bom", key, b"\xef\xbb\xbf" + good),
        ("invalid_utf8", key, b"\xff\xfe\x00 not utf-8"),
        ("invalid_utf8_in_id", key, good.replace(sensor.encode(), sensor.encode()[:-1] + b"\xc3", 1)),
        ("lone_surrogate", key, good.replace(sensor.encode(), b"\\ud800", 1)),
        ("tombstone", key, None),
        ("huge_string_oversized", key, doc(sensor_id="x" * 500_000)),
        ("huge_padding_oversized", key, b"{" + b" " * (MAX_RECORD_BYTES + 10) + b"}"),
        ("long_sensor_id", b"y" * 5000, doc(sensor_id="y" * 5000)),
        ("long_channel_name", key, doc(channels=["c" * 5000] + list(template["channels"])[1:])),  # type: ignore[call-overload]
        ("missing_field", key, orjson.dumps({k: v for k, v in template.items() if k != "window_end"})),
        ("both_values_forms", key, orjson.dumps({**template, "values_f32": packed["values_f32"]})),
        ("packed_bad_base64", key, orjson.dumps({**packed, "values_f32": "not*base64!"})),
        ("packed_short", key, orjson.dumps({**packed, "values_f32": packed["values_f32"][:-8]})),
        ("packed_nan", key, orjson.dumps({**packed, "values_f32": base64.b64encode(nan_f32.tobytes()).decode()})),
        ("ragged_rows", key, doc(values=rows + rows[:3])),
        ("row_too_short", key, doc(values=[r[:-1] for r in rows])),
        ("no_rows", key, doc(values=[])),
        ("wrong_channels", key, doc(channels=[f"other{i}" for i in range(len(rows[0]))])),
        ("repeated_channel", key, doc(channels=[str(template["channels"][0])] * len(rows[0]))),  # type: ignore[index]
        ("sensor_id_number", key, doc(sensor_id=7)),
        ("key_mismatch", next(i for i in ids if i != sensor).encode(), good),
    ]


def _times_of(template: dict[str, object]) -> tuple[datetime, datetime]:
    start = contract.parse_time(template["window_start"])
    end = contract.parse_time(template["window_end"])
    assert start is not None and end is not None
    return start, end


def mutate(template: dict[str, object], key: bytes, rng: random.Random,
           ids: list[str]) -> tuple[str, bytes | None, bytes | None]:
    """(operation, key, value): a valid record of ``template`` changed by one random operation."""
    raw = orjson.dumps(template)
    ops: dict[str, Callable[[], tuple[bytes | None, bytes | None]]] = {
        "flip_byte": lambda: (key, _flip(raw, rng)),
        "truncate": lambda: (key, raw[: rng.randrange(len(raw))]),
        "delete_span": lambda: (key, _delete(raw, rng)),
        "insert_junk": lambda: (key, _insert(raw, rng)),
        "weird_number": lambda: (key, _weird_number(raw, rng)),
        "drop_field": lambda: (key, orjson.dumps(_without(template, rng.choice(list(template))))),
        "retype_field": lambda: (key, orjson.dumps({**template, rng.choice(list(template)): rng.choice(
            [None, 1, 1.5, True, "", "x", [], {}, [[1]]])})),
        "other_key": lambda: (rng.choice([i for i in ids if i.encode() != key]).encode(), raw),
        "duplicate_row": lambda: (key, _duplicate_row(raw)),
    }
    op = rng.choice(list(ops))
    new_key, value = ops[op]()
    return op, new_key, value


def _duplicate_row(raw: bytes) -> bytes:
    doc = orjson.loads(raw)
    doc["values"].append(doc["values"][0])
    return orjson.dumps(doc)


def _without(template: dict[str, object], name: str) -> dict[str, object]:
    return {k: v for k, v in template.items() if k != name}


def _flip(raw: bytes, rng: random.Random) -> bytes:
    out = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def _delete(raw: bytes, rng: random.Random) -> bytes:
    a = rng.randrange(len(raw))
    return raw[:a] + raw[a + rng.randint(1, 40):]


def _insert(raw: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(raw))
    return raw[:at] + rng.choice(JUNK) * rng.randint(1, 3) + raw[at:]


def _weird_number(raw: bytes, rng: random.Random) -> bytes:
    spans = [m.span() for m in _NUMBER.finditer(raw)]
    a, b = rng.choice(spans)
    return raw[:a] + rng.choice(WEIRD_NUMBERS) + raw[b:]
