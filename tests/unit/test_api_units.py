"""Pure parts of the query surface: cursors, feedback levels and forgiveness, key hashing and scopes."""

from __future__ import annotations

import copy
import math
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.api.routes.alerts import decode_cursor, encode_cursor
from monitor.core.feedback import forgive_state, levels_from_scores
from monitor.core.thresholds import SensorThreshold
from monitor.errors import ApiError
from monitor.settings import AlertSettings, ThresholdSettings
from monitor.store.apikeys import KeyInfo, actor_name, hash_secret


def test_cursor_round_trip_and_rejections() -> None:
    at = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)
    assert decode_cursor(encode_cursor("-opened_at", (at, 42)), "-opened_at") == (at, 42)
    assert decode_cursor(encode_cursor("id", (7,)), "id") == (7,)
    for bad, sort in (("x", "id"), (encode_cursor("id", (7,)), "-opened_at"), (encode_cursor("id", ("7",)), "id")):
        with pytest.raises(ApiError) as info:
            decode_cursor(bad, sort)
        assert info.value.status == 422


def test_levels_follow_the_threshold_smoothing() -> None:
    scores = [1.0, math.e, math.e**2]
    assert levels_from_scores(scores, 1.0) == pytest.approx([0.0, 1.0, 2.0])
    assert levels_from_scores(scores, 0.5) == pytest.approx([0.0, 0.5, 1.25])


def test_forgiving_false_positive_levels_raises_the_open_level_and_keeps_the_rest() -> None:
    cfg, alert = ThresholdSettings(), AlertSettings()
    threshold = SensorThreshold(cfg, alert, log_mean=0.0, log_std=0.5)
    for score in [1.0, 1.1, 0.9] * 10:
        threshold.update(score)
    state = {"threshold": threshold.snapshot(), "incidents": {"current": None, "last_closed": None, "pending": None}}
    original = copy.deepcopy(state)
    out = forgive_state(state, [3.0, 3.2, 3.1], cfg, alert)
    assert state == original  # input not mutated
    after = SensorThreshold.restore(cfg, alert, out["threshold"])
    before = SensorThreshold.restore(cfg, alert, state["threshold"])
    assert after.enter > before.enter and out["incidents"] == state["incidents"]
    assert out["threshold"]["hits"] == state["threshold"]["hits"]
    assert forgive_state(state, [], cfg, alert) == state


def test_key_hash_and_scopes() -> None:
    assert hash_secret("mk_a") == hash_secret("mk_a") != hash_secret("mk_b")
    assert len(hash_secret("mk_a")) == 64
    now = datetime.now(timezone.utc)
    reader = KeyInfo(1, "r", "mk_", ("read",), now, None)
    writer = KeyInfo(2, "w", "mk_", ("write",), now, None)
    assert reader.allows("read") and not reader.allows("write")
    assert writer.allows("read") and writer.allows("write")
    assert writer.actor == "key:2:w"
    on_call = KeyInfo(3, "on-call: night", "mk_", ("write",), now, None)
    assert actor_name(on_call.actor) == "on-call: night"  # a colon in the name survives
    assert [actor_name(a) for a in ("system", "key:x:y", "key:4:", "cli:7:z")] == ["system", "key:x:y", "key:4:", "cli:7:z"]


def test_when_reads_relative_times_iso_with_a_zone_and_an_unencoded_plus() -> None:
    from datetime import datetime, timezone

    from monitor.core.when import parse_when

    now = datetime(2026, 12, 4, 12, tzinfo=timezone.utc)
    assert parse_when("1h", now) == datetime(2026, 12, 4, 11, tzinfo=timezone.utc)
    assert parse_when(" 1.5h ", now) == datetime(2026, 12, 4, 10, 30, tzinfo=timezone.utc)
    assert parse_when("2w", now) == datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    assert parse_when("2026-01-01T01:00:00 01:00") == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_when("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=timezone.utc)
    for bad in ("1y", "h", "-1h", "yesterday", "2026-01-01T00:00:00", "9999999999d", "99999999w", ""):
        assert parse_when(bad, now) is None, bad


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80), st.from_regex(r"\d{1,12}(\.\d{1,8})?\s*[smhdwy]?", fullmatch=True),
                 st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat().replace("+", " "))))
def test_when_never_raises_and_names_an_aware_time_or_nothing(text: str) -> None:
    from monitor.core.when import parse_when

    value = parse_when(text)
    assert value is None or (value.tzinfo is not None and value.utcoffset().total_seconds() == 0)  # type: ignore[union-attr]
