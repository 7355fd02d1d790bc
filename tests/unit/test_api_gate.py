"""The API's bounded pool: a full gate refuses at once, a timed-out wait leaves the slot taken until the job
ends (stuck work never piles up more threads than slots), and the event loop is never blocked."""

from __future__ import annotations

import asyncio
import threading

import pytest

from monitor.api.gate import Gate


def test_a_full_gate_refuses_and_a_slot_is_freed_only_when_its_job_ends() -> None:
    gate = Gate(2, "test-gate")
    release = threading.Event()
    try:
        first = gate.submit(lambda: release.wait(10) and "a")
        second = gate.submit(lambda: release.wait(10) and "b")
        assert first is not None and second is not None
        assert gate.submit(lambda: "c") is None  # both slots taken: refused, not queued
        assert gate.submit(lambda: "c", wait_s=0.05) is None

        third_gate = Gate(1, "test-gate-2")
        try:
            blocker = threading.Event()

            async def waits_and_ticks() -> tuple[bool, int]:
                ticks = 0

                async def tick() -> None:
                    nonlocal ticks
                    while True:
                        await asyncio.sleep(0.01)
                        ticks += 1

                ticker = asyncio.create_task(tick())
                with pytest.raises(TimeoutError):
                    await third_gate.run(lambda: blocker.wait(10), 0.3)
                refused = await third_gate.run(lambda: True, 1.0)
                ticker.cancel()
                return refused is None, ticks

            refused, ticks = asyncio.run(waits_and_ticks())
            assert refused, "the timed-out job still holds the only slot"
            assert ticks >= 5, "the event loop was blocked while the job ran"
            blocker.set()
            again = third_gate.submit(lambda: "free", wait_s=5)
            assert again is not None and again.result(5) == "free"
        finally:
            third_gate.close()
        release.set()
        assert first.result(5) == "a" and second.result(5) == "b"
        later = gate.submit(lambda: "e", wait_s=5)
        assert later is not None and later.result(5) == "e"
    finally:
        release.set()
        gate.close()
