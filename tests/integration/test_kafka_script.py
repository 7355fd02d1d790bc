"""deploy/local/kafka.sh run the way a CI runner or an interactive shell may run it: with job control on, `setsid`
forks and exits at once, so the launcher's pid ($!) is not the broker's. The script must still find the broker,
report it ready, keep its pid file right and stop it. (A CI run failed this way: 'broker is not running' while the
broker was starting.) Its own state directory and ports: the shared broker is never touched."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from pipelines.faults.kit import free_port
from tests.deploy_checks import REPO

SCRIPT = REPO / "deploy/local/kafka.sh"


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_start_under_job_control_finds_the_forked_broker(tmp_path: Path) -> None:
    env = {**os.environ, "MONITOR_STATE": str(tmp_path / "state"), "KAFKA_PORT": str(free_port()),
           "KAFKA_CONTROLLER_PORT": str(free_port()), "KAFKA_HEAP": "-Xmx256m -Xms128m"}
    env.pop("KAFKA_BOOTSTRAP", None)
    pid_file = tmp_path / "state/kafka/kafka.pid"
    # `set -m` with SHELLOPTS exported: the script's own shell runs with job control, so `setsid` forks
    start = subprocess.run(["bash", "-c", f"set -m; export SHELLOPTS; exec bash {SCRIPT} start"], env=env,
                           capture_output=True, text=True, timeout=150)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        assert "ready: PLAINTEXT://127.0.0.1:" + env["KAFKA_PORT"] in start.stdout
        pid = int(pid_file.read_text().strip())
        cmd = _cmdline(pid)
        assert cmd.startswith("java ") and f"kafka.Kafka {tmp_path}/state/kafka/server.properties" in cmd
        with socket.create_connection(("127.0.0.1", int(env["KAFKA_PORT"])), timeout=5):
            pass
        # a lost pid file is recovered from the process table, not answered with a second broker
        pid_file.unlink()
        status = subprocess.run(["bash", str(SCRIPT), "status"], env=env, capture_output=True, text=True, timeout=30)
        assert status.returncode == 0 and f"running: pid {pid}," in status.stdout, status.stdout + status.stderr
        assert int(pid_file.read_text().strip()) == pid
    finally:
        stop = subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stdout + stop.stderr
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert not pid_file.exists()
