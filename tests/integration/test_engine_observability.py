"""`monitor run` as a process: its Prometheus endpoint, clean SIGTERM, and secrets never in its output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from monitor.ingest.kafka import make_producer
from monitor.settings import KafkaSettings, Settings
from pipelines.faults.kit import free_port
from pipelines.synthetic import make_fleet
from tests.integration.helpers import produce_fleet

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _env(cfg: KafkaSettings, tmp_path: Path, model: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update({"MONITOR_KAFKA__BOOTSTRAP_SERVERS": cfg.bootstrap_servers, "MONITOR_KAFKA__TOPIC": cfg.topic,
                "MONITOR_KAFKA__DLQ_TOPIC": cfg.dlq_topic, "MONITOR_KAFKA__GROUP_ID": cfg.group_id,
                "MONITOR_DB__URL": f"sqlite:///{tmp_path / 'm.db'}", "MONITOR_MODEL__PATH": str(model), **extra})
    return env


def _scrape(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
            if line and not line.startswith("#")}


def test_metrics_endpoint_reports_the_stream_and_sigterm_exits_cleanly(
    kafka_cfg: KafkaSettings, tmp_path: Path, e2e_model_path: Path, e2e_bundle: object
) -> None:
    wl = 32
    sent = produce_fleet(kafka_cfg, make_fleet(3, wl * 30, seed=3, per_sensor=1, length=4 * wl), wl)
    producer = make_producer(kafka_cfg)
    producer.send(kafka_cfg.topic, key=b"sensor-000", value=b"{oops").get(timeout=10)
    producer.close()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--metrics-port", str(port)], cwd=ROOT,
                            env=_env(kafka_cfg, tmp_path, e2e_model_path), stderr=subprocess.PIPE, text=True)
    try:
        metrics: dict[str, float] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                metrics = _scrape(port)
            except OSError:
                metrics = {}
            lags = [v for k, v in metrics.items() if k.startswith("monitor_consumer_lag{")]
            if metrics.get("monitor_windows_scored_total") == sent and len(lags) == 3 and not any(lags):
                break
            time.sleep(0.5)
        assert metrics.get("monitor_windows_consumed_total") == sent + 1
        assert metrics.get("monitor_windows_scored_total") == sent
        assert metrics.get('monitor_decode_failures_total{reason="bad_json"}') == 1
        assert metrics.get('monitor_decode_failures_total{reason="oversized"}') == 0
        assert metrics.get("monitor_batch_seconds_count", 0) >= 1
        assert metrics.get('monitor_model_info{version="e2e-1"}') == 1
        assert metrics.get("monitor_alerts_opened_total", 0) >= 1
        assert "monitor_alerts_closed_total" in metrics and "monitor_db_retries_total" in metrics
        assert sorted(k for k in metrics if k.startswith("monitor_consumer_lag{")) == [
            f'monitor_consumer_lag{{partition="{p}"}}' for p in range(3)]
        assert metrics.get("monitor_assigned_partitions") == 3
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        assert rc == 0 and time.monotonic() - started < 10.0
        # the log tells the story: every alert opened and closed (as counted by the metrics), the dead letter
        log = proc.stderr.read() if proc.stderr else ""
        opened = [line for line in log.splitlines() if "alert opened: sensor=" in line]
        closed = [line for line in log.splitlines() if "alert closed: sensor=" in line]
        assert len(opened) == metrics["monitor_alerts_opened_total"], log[-3000:]
        assert len(closed) == metrics["monitor_alerts_closed_total"], log[-3000:]
        assert all(" severity=" in line and " top=" in line and " model=e2e-1 " in line for line in opened), opened
        assert sum("dead letter: reason=bad_json" in line for line in log.splitlines()) == 1, log[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_secrets_never_reach_logs_or_errors(kafka_cfg: KafkaSettings, tmp_path: Path, e2e_model_path: Path) -> None:
    kafka_secret, db_secret = "kafka-pw-9f8e7d", "db-pw-1a2b3c"
    env = _env(kafka_cfg, tmp_path, e2e_model_path, MONITOR_LOG_LEVEL="DEBUG",
               MONITOR_KAFKA__SECURITY_PROTOCOL="SASL_PLAINTEXT", MONITOR_KAFKA__SASL_MECHANISM="PLAIN",
               MONITOR_KAFKA__SASL_USERNAME="monitor", MONITOR_KAFKA__SASL_PASSWORD=kafka_secret)
    settings = Settings(_env_file=None, kafka={"sasl_mechanism": "PLAIN", "sasl_password": kafka_secret},
                        db={"url": f"postgresql+psycopg://u:{db_secret}@h/db"})
    assert kafka_secret not in repr(settings) and db_secret not in repr(settings)
    assert kafka_secret not in settings.model_dump_json() and db_secret not in str(settings.model_dump())
    assert settings.kafka.client_options()["sasl_plain_password"] == kafka_secret, "passed through to the client"
    # A broker that speaks PLAINTEXT refuses the SASL client; an unreachable database refuses the other one.
    outputs = []
    for extra in ({}, {"MONITOR_KAFKA__SECURITY_PROTOCOL": "PLAINTEXT",
                       "MONITOR_DB__URL": f"postgresql+psycopg://monitor:{db_secret}@127.0.0.1:{free_port()}/x"}):
        proc = subprocess.run([sys.executable, "-m", "monitor", "run", "--idle-exit-s", "2"], cwd=ROOT,
                              env={**env, **extra}, capture_output=True, text=True, timeout=240)
        outputs.append(proc.stdout + proc.stderr)
        assert proc.returncode != 0, outputs[-1][-2000:]
    assert "error:" in outputs[1]
    for text in outputs:
        assert kafka_secret not in text and db_secret not in text
