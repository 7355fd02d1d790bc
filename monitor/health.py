"""The consumer's HTTP endpoint: Prometheus metrics at ``/metrics`` and a liveness answer at ``/healthz``.

``/metrics`` alone cannot tell a working consumer from a wedged one (its server thread answers either way).
The poll loop calls ``beat()`` on every iteration, including the back-off loops of a database outage and of
a consumer replacement; ``/healthz`` answers 503 once the last beat is older than ``run.liveness_timeout_s``,
so an orchestrator's liveness probe restarts a process stuck anywhere (offsets live in the database: a
restart loses and repeats nothing). Until the first beat (model loading, connecting) it answers 200.
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

from monitor import metrics

_last_beat: float | None = None  # monotonic seconds of the last beat (None: not started)


def beat() -> None:
    """The loop is alive (cheap: called once per poll)."""
    global _last_beat
    _last_beat = time.monotonic()
    metrics.LOOP_HEARTBEAT.set_to_current_time()


def liveness(limit_s: float, now: float | None = None, last: float | None = None) -> tuple[bool, dict[str, Any]]:
    """(alive, body): alive unless the last beat is older than ``limit_s`` seconds."""
    now = time.monotonic() if now is None else now
    last = _last_beat if last is None else last
    if last is None:
        return True, {"status": "starting"}
    silent = now - last
    alive = silent <= limit_s
    return alive, {"status": "ok" if alive else "stalled", "seconds_since_loop": round(silent, 1), "limit_s": limit_s}


def app(limit_s: float) -> Callable[..., Iterable[bytes]]:
    """WSGI app: ``/healthz`` (liveness), everything else the Prometheus exposition."""
    exposition = make_wsgi_app()

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            alive, body = liveness(limit_s)
            start_response("200 OK" if alive else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        return exposition(environ, start_response)

    return serve


def start(port: int, limit_s: float, host: str = "0.0.0.0") -> ThreadingWSGIServer:  # noqa: S104 - a pod's probe port
    """Serve ``/metrics`` and ``/healthz`` on ``port`` from a daemon thread."""
    server = make_server(host, port, app(limit_s), ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name="monitor-metrics", daemon=True).start()
    return server
