"""What `make fuzz` sends and checks, without services: good windows are valid with strictly increasing times per
sensor, every poison record is refused (all the contract's reasons covered), mutations that still decode are
never sent, and the non-finite scan finds NaN/inf in columns and in JSON documents (SQLite file)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import cast

from sqlalchemy import Table

from monitor.core import contract
from monitor.core.contract import SensorWindow, decode
from monitor.store.database import init_schema, make_engine
from monitor.store.schema import Alert, SensorState
from pipelines.faults.fuzz import nonfinite_numbers
from pipelines.faults.fuzz_corpus import MAX_RECORD_BYTES, Stream, poison_corpus
from pipelines.synthetic import channel_names

CHANNELS = tuple(channel_names(4))


def _stream(seed: int) -> Stream:
    return Stream(8, CHANNELS, sensors=3, rng=random.Random(seed))


def test_good_windows_are_valid_and_newer_than_the_last_of_their_sensor() -> None:
    stream = _stream(1)
    last: dict[str, datetime] = {}
    last_value: dict[bytes, bytes | None] = {}
    kinds: Counter[str] = Counter()
    for _ in range(600):
        item = stream.next()
        kinds[item.kind.split(":")[0]] += 1
        if item.kind == "resend":  # the same bytes as its sensor's latest good window: a duplicate
            assert item.reason is None and item.key is not None and last_value[item.key] == item.value
            continue
        if item.reason is not None and item.kind != "late":
            assert stream.classify(item.key, item.value) == item.reason
            continue
        window = decode(item.value, window_len=8, channels=CHANNELS, max_bytes=MAX_RECORD_BYTES)
        assert isinstance(window, SensorWindow), window
        assert item.key == window.sensor_id.encode()
        newer = window.window_start > last.get(window.sensor_id, datetime.min.replace(tzinfo=timezone.utc))
        if item.kind == "late":  # valid, but not after the sensor's last window: out_of_order
            assert item.reason == "out_of_order" and not newer and stream.classify(item.key, item.value) is None
            continue
        assert newer
        last[window.sensor_id] = window.window_end
        last_value[item.key] = item.value
    assert set(kinds) == {"good", "extreme", "poison", "mutation", "resend", "late"}, kinds
    assert stream.contract_holes == []


def test_every_poison_record_is_refused_and_all_reasons_are_covered() -> None:
    stream = _stream(2)
    corpus = poison_corpus(stream._template(stream.ids[0], 0), stream.ids)
    reasons = {name: stream.classify(key, value) for name, key, value in corpus}
    assert all(reasons.values()), [n for n, r in reasons.items() if r is None]
    assert set(reasons.values()) == set(contract.REASONS)
    assert reasons["nul_in_sensor_id"] == contract.SCHEMA and reasons["value_1e20"] == contract.NON_FINITE
    assert reasons["deep_nesting"] == contract.BAD_JSON and reasons["time_year_1_utc"] == contract.BAD_TIME


def test_mutations_that_still_decode_are_not_sent() -> None:
    stream = _stream(3)
    stream.bad_share = 1.0
    sent = [stream.bad() for _ in range(400)]
    assert all(item is None or item.reason is not None for item in sent)
    assert sum(item is None for item in sent) == stream.still_valid + len(stream.contract_holes)


def test_the_nonfinite_scan_finds_nan_and_inf_in_columns_and_json(tmp_path: Path) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'scan.db'}")
    init_schema(db)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with db.begin() as conn:
        conn.execute(cast(Table, Alert.__table__).insert().values(
            sensor_id="s", opened_at=now, closed_at=None, last_window_end=now, status="open", severity="minor",
            peak_score=1.0, threshold_at_peak=2.0, window_count=1, top_channels=["a"], model_version="m",
            partition=0, first_offset=0, last_offset=0))
        conn.execute(cast(Table, SensorState.__table__).insert().values(
            sensor_id="s", partition=0, state={"threshold": {"mean": 1.0}}, last_score=1.0, model_version="m"))
    assert nonfinite_numbers(db) == []
    with db.begin() as conn:
        conn.execute(cast(Table, Alert.__table__).update().values(peak_score=float("inf")))
        conn.execute(cast(Table, SensorState.__table__).update().values(state={"threshold": {"mean": float("nan")}}))
    assert sorted(nonfinite_numbers(db)) == ["alerts.peak_score", "sensor_state.state"]
    db.dispose()
