"""The bound on kafka-python's cross-thread waits, on a real NetworkSelector with its I/O thread (no broker)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kafka.future import Future
from kafka.net.selector import NetworkSelector

from monitor.ingest import netguard

pytestmark = pytest.mark.skipif(not netguard._has_unbounded_wait() and NetworkSelector.run is not netguard._bounded_run,
                                reason="this kafka-python bounds its own waits")


@pytest.fixture
def net(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkSelector]:
    assert netguard.install(30.0)
    monkeypatch.setattr(netguard, "_limit_s", 2.0)
    selector = NetworkSelector()
    selector.start()
    yield selector
    selector.stop(timeout_ms=2000)
    selector.close()


def test_calls_that_finish_return_their_value_and_errors(net: NetworkSelector) -> None:
    async def answer() -> int:
        return 42

    async def fail() -> None:
        raise ValueError("boom")

    assert net.run(answer) == 42
    assert not netguard.has_stalled(type("Client", (), {"_net": net})())
    with pytest.raises(ValueError, match="boom"):
        net.run(fail)


def test_a_call_that_never_finishes_raises_after_the_limit(net: NetworkSelector) -> None:
    never = Future()  # nobody resolves it: the unbounded wait of kafka-python 3.0.12 would block forever

    async def parked() -> None:
        await never

    started = time.monotonic()
    with pytest.raises(netguard.NetWaitStalled, match="did not finish in 2 s"):
        net.run(parked)
    assert 2.0 <= time.monotonic() - started < 6.0
    assert not net._pending_waiters  # nothing left behind for the loop's failure path
    assert netguard.has_stalled(type("Client", (), {"_net": net})())  # what the runner checks after a poll

    async def answer() -> str:
        return "still serving"

    assert net.run(answer) == "still serving"  # the I/O thread is unharmed


def test_install_keeps_the_largest_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert netguard.install(10.0)
    monkeypatch.setattr(netguard, "_limit_s", 10.0)
    netguard.install(5.0)
    assert netguard._limit_s == 10.0
    netguard.install(90.0)
    assert netguard._limit_s == 90.0

