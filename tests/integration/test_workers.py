"""`monitor run --workers N`: N real consumer processes in one group, supervised by one command."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from monitor.settings import KafkaSettings
from monitor.store.repository import load_offsets, load_sensor_states
from pipelines.synthetic import make_fleet
from tests.integration.helpers import end_offsets, produce_fleet

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _env(kafka_cfg: KafkaSettings, db: Engine, model_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MONITOR_DB__URL": db.url.render_as_string(hide_password=False),
        "MONITOR_KAFKA__BOOTSTRAP_SERVERS": kafka_cfg.bootstrap_servers,
        "MONITOR_KAFKA__TOPIC": kafka_cfg.topic,
        "MONITOR_KAFKA__DLQ_TOPIC": kafka_cfg.dlq_topic,
        "MONITOR_KAFKA__GROUP_ID": kafka_cfg.group_id,
        "MONITOR_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "MONITOR_MODEL__PATH": str(model_path),
    }


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "monitor", "run", *args], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def _wait_for(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _worker_pids(log: Path) -> list[int]:
    found = re.search(r"started \d+ consumer processes: pids \[([\d, ]+)\]", log.read_text(errors="replace"))
    return [int(p) for p in found.group(1).split(",")] if found else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_workers_share_the_partitions_and_score_every_window_once(
    kafka_cfg: KafkaSettings, db: Engine, e2e_model_path: Path, tmp_path: Path
) -> None:
    fleet = make_fleet(6, 32 * 40, seed=51, length=4 * 32)
    sent = produce_fleet(kafka_cfg, fleet, 32)
    log = tmp_path / "run.log"
    proc = _start(["--workers", "2", "--idle-exit-s", "6"], _env(kafka_cfg, db, e2e_model_path), log)
    assert proc.wait(timeout=240) == 0, log.read_text()
    text = log.read_text()

    assert len(_worker_pids(log)) == 2
    # Both children ran as group members (each logs with its tag) and each summed up its run.
    assert "worker 0 INFO" in text and "worker 1 INFO" in text, text
    consumed = [int(n) for n in re.findall(r"consumed=(\d+) scored=", text)]
    assert len(consumed) == 2 and sum(consumed) >= sent, text
    # Every window was applied exactly once across the group: the stored offsets are the topic's ends, and each
    # sensor's threshold has seen exactly its own windows (a window scored twice or lost would change the count).
    assert load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) == {
        p: o for p, o in end_offsets(kafka_cfg).items() if o > 0
    }
    states = load_sensor_states(db, fleet.sensor_ids)
    assert {s: r.state["threshold"]["seen"] for s, r in states.items()} == {s: 40 for s in fleet.sensor_ids}


def test_sigterm_stops_every_worker_and_a_crashed_worker_stops_the_set(
    kafka_cfg: KafkaSettings, db: Engine, e2e_model_path: Path, tmp_path: Path
) -> None:
    env = _env(kafka_cfg, db, e2e_model_path)
    fleet = make_fleet(3, 32 * 10, seed=52, anomalous=0)
    produce_fleet(kafka_cfg, fleet, 32)
    ends = {p: o for p, o in end_offsets(kafka_cfg).items() if o > 0}

    # 1. SIGTERM to the supervisor: every child stops cleanly, exit code 0, within the shutdown bound.
    log = tmp_path / "term.log"
    proc = _start(["--workers", "2"], env, log)
    _wait_for(lambda: load_offsets(db, kafka_cfg.group_id, kafka_cfg.topic) == ends, 180, "the backlog to be durable")
    # Both children past start-up (their SIGTERM handler is installed before they log "consuming"), so each
    # must end through its handler; a child still importing would just die of the signal, which the
    # supervisor also counts as a clean stop (tests/unit/test_workers.py).
    _wait_for(lambda: log.read_text().count("; consuming ") == 2, 120, "both workers to consume")
    pids = _worker_pids(log)
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()
    assert time.monotonic() - started < 20
    assert not any(_alive(p) for p in pids)
    assert len(re.findall(r"consumed=\d+ scored=", log.read_text())) == 2  # both summed up: a clean exit

    # 2. A worker killed by SIGKILL: the supervisor stops the other one and exits 128 + 9.
    log = tmp_path / "kill.log"
    proc = _start(["--workers", "2"], env, log)
    _wait_for(lambda: len(_worker_pids(log)) == 2 and "consuming" in log.read_text(), 120, "the workers to start")
    victim, other = _worker_pids(log)
    os.kill(victim, signal.SIGKILL)
    assert proc.wait(timeout=30) == 128 + signal.SIGKILL, log.read_text()
    assert not _alive(other)
    assert "exited with code 137: stopping the other workers" in log.read_text()
