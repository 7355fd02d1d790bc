"""The shutdown deadline (monitor.consumer.shutdown): a stop that a call cannot interrupt still ends the process in time."""

from __future__ import annotations

import logging
import time

import pytest

from monitor.consumer.shutdown import FORCED_EXIT_STATUS, ShutdownDeadline


def test_an_armed_deadline_exits_with_the_documented_status_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    exits: list[int] = []
    deadline = ShutdownDeadline(0.2, exit=exits.append)
    deadline.start()
    time.sleep(0.3)
    assert exits == []  # idle until a signal arms it
    with caplog.at_level(logging.INFO, logger="monitor.consumer.shutdown"):
        started = time.monotonic()
        deadline.arm("SIGTERM")
        deadline.arm("SIGINT")  # a second signal neither restarts nor doubles the countdown
        deadline.join(5)
    assert exits == [FORCED_EXIT_STATUS] == [0]
    assert 0.15 < time.monotonic() - started < 3
    assert deadline.forced
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("SIGTERM: stopping") for m in messages), messages
    assert any("shutdown deadline of 0.2 s passed" in m for m in messages), messages


def test_a_process_that_finishes_in_time_is_not_forced() -> None:
    exits: list[int] = []
    deadline = ShutdownDeadline(0.5, exit=exits.append)
    deadline.start()
    deadline.arm("SIGTERM")
    time.sleep(0.1)
    deadline.finish()
    deadline.join(5)
    time.sleep(0.6)
    assert exits == [] and not deadline.forced


def test_finish_without_a_signal_ends_the_watcher() -> None:
    exits: list[int] = []
    deadline = ShutdownDeadline(0.1, exit=exits.append)
    deadline.start()
    deadline.finish()
    deadline.join(5)
    assert exits == []


def test_sigterm_to_the_runner_stops_its_loop_and_arms_the_deadline() -> None:
    import os
    import signal
    import threading
    from types import SimpleNamespace

    from monitor.consumer.runner import Runner

    stopped = threading.Event()
    exits: list[int] = []
    deadline = ShutdownDeadline(0.2, exit=exits.append)
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        Runner.install_signal_handlers(SimpleNamespace(stop=stopped.set), deadline)  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGTERM)
        deadline.join(5)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    assert stopped.is_set()
    assert deadline.reason == "SIGTERM" and exits == [FORCED_EXIT_STATUS]
