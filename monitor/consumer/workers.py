"""`monitor run --workers N`: N consumer processes of one group on one host, under one command.

One consumer process is bound by one core (its Python loop and kafka-python's parsing hold the GIL;
docs/benchmarks.md round 4), so a host with N cores runs N members of the consumer group. This module starts
them as ``python -m monitor run`` child processes and supervises them; each child is an ordinary consumer
(same delivery guarantees: the group splits the partitions, offsets live in the database).

Supervision is deliberately simple and predictable:

* SIGTERM / SIGINT to the supervisor is forwarded (as SIGTERM) to every child; each child finishes or drops
  its batch and exits within its own shutdown bound; a child still alive ``kill_after_s`` later is killed.
* A child that exits with a non-zero code while the supervisor is not stopping stops the others, and the
  supervisor exits with that code (128 + signal for a child killed by a signal): the service manager
  (systemd ``Restart=on-failure``, compose ``restart:``) restarts the whole set. Nothing is lost: the
  stopped members' partitions resume from the offsets stored with their output.
* A supervisor killed without a chance to forward anything (kill -9, the OOM killer) takes its children down
  with it: each child watches its parent and stops as on SIGTERM once it is gone (``exit_with_supervisor``).
  Orphans would go on consuming, unsupervised, beside the new set the service manager starts.
* Children that exit 0 on their own (``--idle-exit-s``) end the run; the supervisor exits 0 once all have.
  A child that the forwarded SIGTERM ends before it installed its own handler (still importing at start-up)
  has processed nothing: that counts as a clean stop too.

With ``--metrics-port P`` child ``i`` (0-based) serves ``/metrics`` and ``/healthz`` on ``P + i``.
In Kubernetes, scale the Deployment's replicas instead (one liveness probe per pod).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def exit_with_supervisor(supervisor: int, poll_s: float = 1.0) -> threading.Thread:
    """In a worker child: send this process SIGTERM (a clean stop) once its supervisor (process id ``supervisor``,
    passed on the child's command line) is gone, also if it was gone before this was called.

    When the supervisor dies the child is re-parented (to init or a subreaper), so ``os.getppid()`` is no longer
    the supervisor's id. Checked at once, then every ``poll_s`` seconds on a daemon thread."""
    parent = supervisor

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                log.error("the supervisor (pid %d) is gone: stopping this worker", parent)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(poll_s)

    thread = threading.Thread(target=watch, name="monitor-supervisor-watch", daemon=True)
    thread.start()
    return thread


@dataclass(frozen=True)
class WorkerArgs:
    """The `monitor run` options every child gets (the supervisor's own, minus ``--workers``)."""

    model: Path | None = None
    idle_exit_s: float | None = None
    metrics_port: int | None = None


def child_commands(workers: int, args: WorkerArgs) -> list[list[str]]:
    """The command line of each child: ``python -m monitor run`` with one worker and its own metrics port."""
    commands = []
    for index in range(workers):
        cmd = [sys.executable, "-m", "monitor", "run", "--workers", "1", "--worker-index", str(index),
               "--supervisor-pid", str(os.getpid())]
        if args.model is not None:
            cmd += ["--model", str(args.model)]
        if args.idle_exit_s is not None:
            cmd += ["--idle-exit-s", repr(args.idle_exit_s)]
        if args.metrics_port:
            cmd += ["--metrics-port", str(args.metrics_port + index)]
        commands.append(cmd)
    return commands


def exit_code_of(returncode: int) -> int:
    """A child's exit status as a shell would report it (128 + signal number when killed by a signal)."""
    return 128 - returncode if returncode < 0 else returncode


class Supervisor:
    """Starts the children, forwards stop signals, and ends the set when one of them fails."""

    def __init__(self, commands: list[list[str]], *, kill_after_s: float = 15.0, poll_s: float = 0.2) -> None:
        self.commands = commands
        self.kill_after_s = kill_after_s
        self.poll_s = poll_s
        self.procs: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._stop_started: float | None = None

    def stop(self, *_: Any) -> None:
        """Stop every child (signal handler; idempotent)."""
        if not self._stopping.is_set():
            self._stopping.set()
            self._stop_started = time.monotonic()
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:  # exited meanwhile
                    pass

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self) -> int:
        """Run the children to the end; returns the supervisor's exit code."""
        self.procs = [subprocess.Popen(cmd) for cmd in self.commands]
        if self._stopping.is_set():  # a signal arrived while they were starting: pass it on now
            self.stop()
        log.info("started %d consumer processes: pids %s", len(self.procs), [p.pid for p in self.procs])
        code = 0
        reported: set[int] = set()
        while True:
            running = 0
            for index, proc in enumerate(self.procs):
                returncode = proc.poll()
                if returncode is None:
                    running += 1
                    continue
                if index in reported:
                    continue
                reported.add(index)
                if returncode == 0 or (self._stopping.is_set() and returncode == -signal.SIGTERM):
                    continue  # a clean exit, or the forwarded SIGTERM reached a child still starting up
                code = code or exit_code_of(returncode)  # the first failure is the supervisor's exit code
                if not self._stopping.is_set():
                    log.error("worker %d (pid %d) exited with code %d: stopping the other workers",
                              index, proc.pid, exit_code_of(returncode))
                    self.stop()
            if running == 0:
                return code
            if self._stop_started is not None and time.monotonic() - self._stop_started > self.kill_after_s:
                for proc in self.procs:
                    if proc.poll() is None:
                        log.error("worker pid %d did not stop in %.0f s: killing it", proc.pid, self.kill_after_s)
                        proc.kill()
            time.sleep(self.poll_s)
