"""The `monitor run --workers N` supervisor: child command lines, exit codes, stop semantics (real child
processes that install no signal handler, like a worker still importing at start-up)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from monitor.workers import Supervisor, WorkerArgs, child_commands, exit_code_of


def test_each_child_is_one_worker_with_its_own_metrics_port_and_the_shared_options() -> None:
    commands = child_commands(3, WorkerArgs(model=Path("m.pt"), idle_exit_s=2.5, metrics_port=9100))
    assert len(commands) == 3
    for index, cmd in enumerate(commands):
        assert cmd[:4] == [sys.executable, "-m", "monitor", "run"]
        assert cmd[cmd.index("--workers") + 1] == "1" and cmd[cmd.index("--worker-index") + 1] == str(index)
        assert cmd[cmd.index("--model") + 1] == "m.pt" and cmd[cmd.index("--idle-exit-s") + 1] == "2.5"
        assert cmd[cmd.index("--metrics-port") + 1] == str(9100 + index)


def test_options_not_given_are_not_passed() -> None:
    (cmd,) = child_commands(1, WorkerArgs())
    assert not {"--model", "--idle-exit-s", "--metrics-port"} & set(cmd)


def test_exit_codes_read_like_a_shell_reports_them() -> None:
    assert exit_code_of(0) == 0 and exit_code_of(2) == 2
    assert exit_code_of(-signal.SIGKILL) == 137 and exit_code_of(-signal.SIGTERM) == 143


SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]  # no SIGTERM handler: dies of the signal


def _run_in_thread(supervisor: Supervisor) -> list[int]:
    """Start ``supervisor.run()`` in a thread once its children exist; the list gets its exit code."""
    import threading
    import time

    result: list[int] = []
    threading.Thread(target=lambda: result.append(supervisor.run()), daemon=True).start()
    while len(supervisor.procs) < len(supervisor.commands):
        time.sleep(0.01)
    return result


def test_a_child_ended_by_the_forwarded_sigterm_before_its_handler_is_a_clean_stop() -> None:
    import time

    supervisor = Supervisor([SLEEPER, SLEEPER], poll_s=0.05)
    result = _run_in_thread(supervisor)
    supervisor.stop()
    deadline = time.monotonic() + 10
    while not result and time.monotonic() < deadline:
        time.sleep(0.05)
    assert result == [0]
    assert [p.returncode for p in supervisor.procs] == [-signal.SIGTERM, -signal.SIGTERM]


def test_a_child_killed_by_someone_else_still_fails_the_set_with_its_code() -> None:
    import time

    supervisor = Supervisor([SLEEPER, SLEEPER], poll_s=0.05)
    result = _run_in_thread(supervisor)
    supervisor.procs[0].send_signal(signal.SIGTERM)  # not the supervisor's stop: a failure of that worker
    deadline = time.monotonic() + 10
    while not result and time.monotonic() < deadline:
        time.sleep(0.05)
    assert result == [143]
    assert supervisor.procs[1].returncode == -signal.SIGTERM, "the other worker was stopped by the supervisor"
