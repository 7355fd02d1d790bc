"""The fault suite's state comparison (pipelines/faults/kit.py ``state_differences``): what it lets through and
what it reports, so that a verdict of 'same state' means it."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pipelines.faults.kit import state_differences

STATE: dict[str, Any] = {"threshold": {"mean": 0.5, "sq": 0.3, "seen": 40, "warm": None},
                         "baseline": {"offset": [0.1, -2.0], "settling": True},
                         "incidents": {"current": {"windows": 3}}}


def test_equal_states_and_last_bit_float_differences_pass() -> None:
    assert state_differences(STATE, STATE) == []
    nudged = {**STATE, "threshold": {**STATE["threshold"], "mean": 0.5 * (1 + 1e-9)}}
    assert state_differences(STATE, nudged) == []


def test_every_kind_of_difference_is_reported_with_its_path() -> None:
    got = {"threshold": {"mean": 0.51, "sq": 0.3, "seen": 41, "warm": []},
           "baseline": {"offset": [0.1]}, "incidents": {"current": None}, "extra": 1}
    diff = state_differences(STATE, got)
    assert any(d.startswith("/threshold/mean") for d in diff)
    assert any(d.startswith("/threshold/seen") for d in diff)  # ints compare exactly
    assert any(d.startswith("/threshold/warm") for d in diff)
    assert "/baseline/settling: missing" in diff and "/extra: unexpected" in diff
    assert any(d.startswith("/baseline/offset: 1 items") for d in diff)
    assert any(d.startswith("/incidents/current") for d in diff)


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
       st.floats(min_value=1e-4, max_value=1.0))
def test_a_float_moved_beyond_the_tolerance_is_a_difference(value: float, rel: float) -> None:
    moved = value + rel * max(1.0, abs(value))
    assert state_differences({"v": value}, {"v": moved}) != []
    assert state_differences({"v": [value]}, {"v": [value]}) == []
