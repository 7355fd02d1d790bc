"""The `monitor run --workers N` supervisor's pure parts: child command lines and exit codes."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from monitor.workers import WorkerArgs, child_commands, exit_code_of


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
