"""The consumer's liveness answer (/healthz) and its WSGI app, served for real on a free port."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import cast

import pytest

from monitor.observe import health


def test_liveness_turns_false_once_the_loop_is_silent_longer_than_the_limit() -> None:
    assert health.liveness(60.0, now=1000.0, last=950.0) == (
        True, {"status": "ok", "seconds_since_loop": 50.0, "limit_s": 60.0})
    alive, body = health.liveness(60.0, now=1000.0, last=930.0)
    assert not alive and body["status"] == "stalled" and body["seconds_since_loop"] == 70.0


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_endpoint_serves_metrics_and_answers_503_when_the_loop_stalls(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = health.start(port, limit_s=30.0, host="127.0.0.1")
    try:
        monkeypatch.setattr(health, "_last_beat", None)
        assert json.loads(_get(f"http://127.0.0.1:{port}/healthz")[1]) == {"status": "starting"}
        health.beat()
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, body = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and b"monitor_loop_heartbeat_timestamp_seconds" in body
        last_beat = cast(float, health._last_beat)  # set by the beat above
        monkeypatch.setattr(health, "_last_beat", last_beat - 31.0)  # the loop has been silent 31 s
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 503 and json.loads(body)["status"] == "stalled"
    finally:
        server.shutdown()
        server.server_close()


def test_the_consumer_logs_a_heartbeat_with_throughput_and_lag(caplog) -> None:  # type: ignore[no-untyped-def]
    import logging
    from types import SimpleNamespace

    from monitor.consumer.batches import RunStats
    from monitor.consumer.runner import Runner
    from monitor.ingest.membership import Assignment

    assignment = Assignment()
    assignment.assign({0, 1, 2})
    stats = RunStats(consumed=100)
    runner = SimpleNamespace(heartbeat_s=60.0, _last_heartbeat=(0.0, 40), stats=stats, _lag=17, assignment=assignment)
    with caplog.at_level(logging.INFO, logger="monitor.consumer.runner"):
        Runner._heartbeat(runner, now=30.0)  # type: ignore[arg-type]  # not yet due
        Runner._heartbeat(runner, now=60.0)  # type: ignore[arg-type]
        Runner._heartbeat(runner, now=90.0)  # type: ignore[arg-type]  # 30 s after the last line
    lines = [r.getMessage() for r in caplog.records if r.name == "monitor.consumer.runner"]
    assert len(lines) == 1 and lines[0].startswith("running: 60 records in 60 s (1.0/s), lag 17 records on 3 "), lines
    assert runner._last_heartbeat == (60.0, 100)


def test_healthz_turns_503_once_the_broker_has_not_answered_for_the_failing_limit() -> None:
    """A black-holed broker fails no batch (polls come back empty): failed Kafka calls count on their own clock,
    and an answer of the broker (a commit, an assignment) ends them."""
    health.kafka_ok()
    health.batch_durable()
    try:
        health.kafka_failed("Kafka offset commit failed: KafkaTimeoutError: None", now=100.0)
        health.kafka_failed("Kafka consumer stalled, replaced: not a stable group member", now=120.0)
        assert health.liveness(60.0, now=139.0, last=138.0, failing_limit_s=40.0) == (
            True, {"status": "ok", "seconds_since_loop": 1.0, "limit_s": 60.0})
        alive, body = health.liveness(60.0, now=141.0, last=140.0, failing_limit_s=40.0)
        assert not alive and body["status"] == "failing" and body["seconds_failing"] == 41.0
        assert body["reason"] == "Kafka consumer stalled, replaced: not a stable group member"
        health.batch_durable()  # a batch made durable from records fetched before says nothing about the broker
        assert not health.liveness(60.0, now=141.0, last=140.0, failing_limit_s=40.0)[0]
        health.kafka_ok()
        assert health.liveness(60.0, now=141.0, last=140.0, failing_limit_s=40.0)[0]
    finally:
        health.kafka_ok()
