"""The consumer's HTTP endpoint: Prometheus metrics at ``/metrics`` and a liveness answer at ``/healthz``.

``/metrics`` alone cannot tell a working consumer from a wedged one (its server thread answers either way).
The poll loop calls ``beat()`` on every iteration, including the back-off loops of a database outage and of
a consumer replacement; ``/healthz`` answers 503 once the last beat is older than ``run.liveness_timeout_s``,
so an orchestrator's liveness probe restarts a process stuck anywhere (offsets live in the database: a
restart loses and repeats nothing). Until the first beat (model loading, connecting) it answers 200.

A loop that turns but gets nowhere is not healthy either: the runner reports every batch that fails
(``batch_failed``: database down or refusing, dead letters undeliverable, offsets fenced) and every durable one
(``batch_durable``); once batches have kept failing for ``run.failing_batch_timeout_s`` without a durable one,
``/healthz`` answers 503 with the latest reason instead of the loop retrying silently.

A loop that turns but cannot reach its broker is blind: a black-holed broker answers nothing, so kafka-python's
polls just come back empty and no batch fails. The runner reports the broker as failing (``kafka_failed``) when
the group coordinator has not answered for longer than the session timeout (heartbeats; the broker has dropped
the member by then), when an offset commit fails and when a client is replaced, each from the moment it went
quiet; an answer (a heartbeat, a commit, an assignment: ``kafka_ok``) ends it. Once it has lasted
``run.failing_batch_timeout_s``, ``/healthz`` answers 503 with that reason too.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

from monitor.observe import metrics

_last_beat: float | None = None  # monotonic seconds of the last beat (None: not started)
_failing: tuple[float, str] | None = None  # (monotonic seconds of the first failure in a row, latest reason)
_kafka_failing: tuple[float, str] | None = None  # the same for calls to the broker


def beat() -> None:
    """The loop is alive (cheap: called once per poll)."""
    global _last_beat
    _last_beat = time.monotonic()
    metrics.LOOP_HEARTBEAT.set_to_current_time()


def batch_failed(reason: str, now: float | None = None) -> None:
    """A batch failed and will be read again; the first failure in a row starts the clock."""
    global _failing
    now = time.monotonic() if now is None else now
    _failing = (now if _failing is None else _failing[0], reason[:500])
    metrics.FAILING_BATCH_SINCE.set(time.time() - (now - _failing[0]))


def batch_durable() -> None:
    """A batch became durable, or the consumer is caught up with nothing in flight: whatever failed before is over."""
    global _failing
    if _failing is not None:
        _failing = None
        metrics.FAILING_BATCH_SINCE.set(0)


def kafka_failed(reason: str, now: float | None = None) -> None:
    """A call to the broker failed (no answer, or an error); the first failure in a row starts the clock."""
    global _kafka_failing
    now = time.monotonic() if now is None else now
    _kafka_failing = (now if _kafka_failing is None else _kafka_failing[0], reason[:500])


def kafka_ok() -> None:
    """The broker answered (a heartbeat, an offset commit went through, the group assigned partitions)."""
    global _kafka_failing
    _kafka_failing = None


def liveness(limit_s: float, now: float | None = None, last: float | None = None,
             failing_limit_s: float | None = None) -> tuple[bool, dict[str, Any]]:
    """(alive, body): alive unless the last beat is older than ``limit_s`` seconds, or batches (or calls to the
    broker) have kept failing for more than ``failing_limit_s`` seconds (None: not checked)."""
    now = time.monotonic() if now is None else now
    last = _last_beat if last is None else last
    if last is None:
        return True, {"status": "starting"}
    silent = now - last
    if silent > limit_s:
        return False, {"status": "stalled", "seconds_since_loop": round(silent, 1), "limit_s": limit_s}
    for failing in (_failing, _kafka_failing):
        if failing is not None and failing_limit_s is not None and now - failing[0] > failing_limit_s:
            return False, {"status": "failing", "reason": failing[1], "seconds_failing": round(now - failing[0], 1),
                           "limit_s": failing_limit_s}
    return True, {"status": "ok", "seconds_since_loop": round(silent, 1), "limit_s": limit_s}


def app(limit_s: float, failing_limit_s: float | None = None) -> Callable[..., Iterable[bytes]]:
    """WSGI app: ``/healthz`` (liveness), everything else the Prometheus exposition."""
    exposition = make_wsgi_app()

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            alive, body = liveness(limit_s, failing_limit_s=failing_limit_s)
            start_response("200 OK" if alive else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        exposed: Iterable[bytes] = exposition(environ, start_response)
        return exposed

    return serve


def start(port: int, limit_s: float, host: str = "0.0.0.0",  # noqa: S104 - a pod's probe port
          failing_limit_s: float | None = None) -> ThreadingWSGIServer:
    """Serve ``/metrics`` and ``/healthz`` on ``port`` from a daemon thread."""
    server = make_server(host, port, app(limit_s, failing_limit_s), ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name="monitor-metrics", daemon=True).start()
    return server
