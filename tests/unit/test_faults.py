"""The fault suite's injection points (TEST ONLY, `run.fault`): parsing, the once-only zombie stop, break_fence."""

from __future__ import annotations

import signal

import pytest

from monitor.errors import ConfigError
from monitor.ingest import faults
from monitor.ingest.faults import FaultInjector


@pytest.fixture
def signals(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr(faults.os, "kill", lambda _pid, sig: sent.append(sig))
    return sent


def test_off_by_default_and_fires_only_at_its_point(signals: list[int]) -> None:
    for point in faults.POINTS:
        FaultInjector(None).at(point)
    armed = FaultInjector("before_db_commit:1")
    armed.at("mid_batch")
    armed.at("before_db_commit")
    assert signals == [signal.SIGKILL]
    assert not armed.fence_broken


def test_a_zombie_stop_fires_once_so_the_resumed_process_carries_on(signals: list[int]) -> None:
    zombie = FaultInjector("in_db_commit:1:stop:7")
    for _ in range(3):
        zombie.at("in_db_commit")
    assert signals == [signal.SIGSTOP]


def test_kill_and_term_fire_every_time(signals: list[int]) -> None:
    term = FaultInjector("any:1:term")
    term.at("mid_batch")
    term.at("after_kafka_commit")
    assert signals == [signal.SIGTERM, signal.SIGTERM]


def test_break_fence_alone_or_beside_a_point(signals: list[int]) -> None:
    alone = FaultInjector("break_fence")
    assert alone.fence_broken and alone.point is None
    both = FaultInjector("mid_batch:1:stop:3, break_fence")
    assert both.fence_broken and both.point == "mid_batch" and both.action == "stop"
    alone.at("mid_batch")
    assert signals == []


def test_the_draws_follow_the_seed(signals: list[int]) -> None:
    def fired(seed: int) -> list[bool]:
        injector = FaultInjector(f"mid_batch:0.5:term:{seed}")
        out = []
        for _ in range(40):
            before = len(signals)
            injector.at("mid_batch")
            out.append(len(signals) > before)
        return out

    assert fired(11) == fired(11)
    assert 0 < sum(fired(12)) < 40


@pytest.mark.parametrize("spec", ["nowhere:1", "mid_batch:2", "mid_batch:1:explode", "mid_batch:x",
                                  "mid_batch:1,after_db_commit:1", "mid_batch:1:kill:seed"])
def test_a_bad_spec_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="run.fault"):
        FaultInjector(spec)
