"""The `monitor run --workers N` supervisor: child command lines, exit codes, stop semantics (real child
processes that install no signal handler, like a worker still importing at start-up)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from monitor.consumer.workers import Supervisor, WorkerArgs, child_commands, exit_code_of


def test_each_child_is_one_worker_with_its_own_metrics_port_and_the_shared_options() -> None:
    commands = child_commands(3, WorkerArgs(model=Path("m.pt"), idle_exit_s=2.5, metrics_port=9100))
    assert len(commands) == 3
    for index, cmd in enumerate(commands):
        assert cmd[:4] == [sys.executable, "-m", "monitor", "run"]
        assert cmd[cmd.index("--workers") + 1] == "1" and cmd[cmd.index("--worker-index") + 1] == str(index)
        assert cmd[cmd.index("--model") + 1] == "m.pt" and cmd[cmd.index("--idle-exit-s") + 1] == "2.5"
        assert cmd[cmd.index("--metrics-port") + 1] == str(9100 + index)
        assert cmd[cmd.index("--supervisor-pid") + 1] == str(os.getpid())  # the children stop with this process


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


def test_a_worker_stops_cleanly_when_its_supervisor_is_killed(tmp_path: Path) -> None:
    """kill -9 of the supervisor: its child notices (re-parented) and stops through its SIGTERM handler."""
    import subprocess
    import time

    marker = tmp_path / "stopped"
    child = (
        "import signal, sys, time\n"
        "from monitor.consumer.workers import exit_with_supervisor\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (open({str(marker)!r}, 'w').write('term'), sys.exit(0)))\n"
        "import os\n"
        "exit_with_supervisor(os.getppid(), 0.1)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = (  # a stand-in supervisor: starts the child, reports its pid, waits
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=subprocess.PIPE, text=True)\n"
        "p.stdout.readline()\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    supervisor = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    assert supervisor.stdout is not None
    child_pid = int(supervisor.stdout.readline())
    supervisor.kill()
    supervisor.wait(10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child_pid}").exists() and "State:\tZ" not in _status(child_pid):
        assert time.monotonic() < deadline, "the orphaned worker is still running"
        time.sleep(0.05)
    assert marker.read_text() == "term"


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "State:\tZ"


def test_a_worker_whose_supervisor_was_gone_before_it_looked_stops_at_once(tmp_path: Path) -> None:
    """The race scenario 11 of the fault suite found: the supervisor killed while a worker was still starting."""
    import subprocess

    child = ("import signal, sys, time\n"
             "from monitor.consumer.workers import exit_with_supervisor\n"
             "signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))\n"
             "exit_with_supervisor(2 ** 22 + 12345, 0.1)\n"  # an id that is not this process's parent
             "time.sleep(30)\n")
    proc = subprocess.run([sys.executable, "-c", child], timeout=20)
    assert proc.returncode == 7
