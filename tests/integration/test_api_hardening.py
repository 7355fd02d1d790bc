"""`monitor serve` under hostile or unlucky input, behind a real uvicorn server, on SQLite and PostgreSQL:
the API key is checked before a body is read, bodies are size-limited, an alert's context is bounded by its
timeout and a concurrency limit while Kafka is unreachable, and /healthz and /readyz never starve; every
response carries the security headers; an alert whose peak is infinite is listed (as null)."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import Engine

from monitor.api.app import create_app
from monitor.api.routes.alerts import CONTEXT_GRACE_S
from monitor.settings import Settings
from tests.integration.api_helpers import alert_row, client, insert_alerts, keys, serve_process, served

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    """A local port nothing listens on: Kafka there is unreachable (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raw(base: str, head: str, body: bytes = b"", wait_s: float = 10.0) -> bytes:
    """Send request headers and the first body bytes only, then read whatever the server answers: an answer
    proves the server did not wait for (read) the rest of the body."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_the_key_is_checked_before_the_body_is_read_and_bodies_are_limited(db: Engine) -> None:
    [alert_id] = insert_alerts(db, [alert_row(1)])
    read, write = keys(db)
    settings = Settings()
    settings.api.max_body_bytes = 64 * 1024
    with served(create_app(settings, db)) as base, httpx.Client(base_url=base, timeout=30) as http:
        path = f"/alerts/{alert_id}/feedback"
        bad_json = b'{"verdict": "false_pos'
        no_key = http.post(path, content=bad_json, headers={"Content-Type": "application/json"})
        assert no_key.status_code == 401, no_key.text  # was 422: the body was parsed before the key was checked
        assert no_key.json()["error"] == "unauthorized"
        wrong = http.post(path, content=bad_json, headers={**read, "Content-Type": "application/json"})
        assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
        revoked = http.post(path, content=bad_json, headers={"X-API-Key": "mk_not-a-key"})
        assert revoked.status_code == 401
        parsed = http.post(path, content=bad_json, headers={**write, "Content-Type": "application/json"})
        assert parsed.status_code == 422 and parsed.json()["error"] == "invalid_request"

        # 100 MB announced, 1 KiB sent: answered at once, the rest never read
        head = f"POST {path} HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 100000000\n"
        assert _status(_raw(base, head, b"{" * 1024)) == 401
        auth = f"X-API-Key: {write['X-API-Key']}\n"
        assert _status(_raw(base, head + auth, b"{" * 1024)) == 413
        # chunked (no length): without a key, answered after the headers; with one, cut off past the limit
        chunked = f"POST {path} HTTP/1.1\nHost: x\nContent-Type: application/json\nTransfer-Encoding: chunked\n"
        assert _status(_raw(base, chunked, b"400\r\n" + b"{" * 1024 + b"\r\n")) == 401
        big = b"".join(b"4000\r\n" + b" " * 0x4000 + b"\r\n" for _ in range(6))  # 96 KiB > 64 KiB, no last chunk
        answer = _raw(base, chunked + auth, big)
        assert _status(answer) == 413, answer[:300]

        # a body within the limit still works, and the write key's actor is recorded
        ok = http.post(path, json={"verdict": "true_positive", "note": "n" * 1000}, headers=write)
        assert ok.status_code == 200, ok.text
        assert ok.json()["alert"]["feedback"]["verdict"] == "true_positive"


def test_security_headers_on_the_page_the_api_and_errors(db: Engine) -> None:
    read, _ = keys(db)
    api = client(db)
    for path, headers in (("/ui/", {}), ("/ui/app.js", {}), ("/alerts", read), ("/alerts", {}), ("/healthz", {}),
                          ("/alerts/abc", read)):
        got = api.get(path, headers=headers)
        csp = got.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, (path, got.status_code, csp)
        assert "unsafe-inline" not in csp and "script-src 'self'" in csp, (path, csp)
        assert got.headers.get("x-content-type-options") == "nosniff", path
        assert got.headers.get("referrer-policy") == "no-referrer", path
        assert got.headers.get("x-frame-options") == "DENY", path
    docs = api.get("/docs")  # Swagger UI needs its CDN script and an inline start-up script
    assert docs.status_code == 200 and "frame-ancestors 'none'" in docs.headers["content-security-policy"]
    assert "cdn.jsdelivr.net" in docs.headers["content-security-policy"]


def test_an_infinite_peak_is_listed_as_null(db: Engine) -> None:
    ids = insert_alerts(db, [alert_row(1), alert_row(2, peak_score=float("inf")), alert_row(3)])
    read, _ = keys(db)
    api = client(db)
    page = api.get("/alerts?sort=id", headers=read)
    assert page.status_code == 200, page.text
    assert [a["id"] for a in page.json()["items"]] == ids
    assert [a["peak_score"] for a in page.json()["items"]] == [11.0, None, 13.0]  # the page shows null as "inf"
    detail = api.get(f"/alerts/{ids[1]}?context=false", headers=read)
    assert detail.status_code == 200 and detail.json()["peak_score"] is None


def test_context_reads_with_kafka_unreachable_are_bounded_and_never_starve_health(db: Engine, tmp_path: Path) -> None:
    [alert_id] = insert_alerts(db, [alert_row(1)])
    read, _ = keys(db)
    slots, kafka_timeout_s = 4, 3.0
    bound_s = kafka_timeout_s + CONTEXT_GRACE_S
    env = {"MONITOR_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{_closed_port()}", "MONITOR_KAFKA__TOPIC": "absent-topic",
           "MONITOR_API__KAFKA_TIMEOUT_S": str(kafka_timeout_s), "MONITOR_API__CONTEXT_CONCURRENCY": str(slots)}
    with serve_process(db, env, tmp_path / "serve.log") as base:
        with httpx.Client(base_url=base, timeout=60) as http:
            started = time.monotonic()
            one = http.get(f"/alerts/{alert_id}", headers=read)
            took = time.monotonic() - started
            assert one.status_code == 200, one.text
            assert one.json()["context"]["available"] is False
            assert "Kafka unreachable" in one.json()["context"]["note"], one.json()["context"]
            assert took < bound_s, f"one context read took {took:.1f} s (kafka_timeout_s 3; was ~30 s)"

        stop = threading.Event()
        health: list[tuple[str, int, float]] = []

        def probe() -> None:
            with httpx.Client(base_url=base, timeout=60) as http:
                while not stop.is_set():
                    for path in ("/healthz", "/readyz"):
                        t0 = time.monotonic()
                        r = http.get(path)
                        health.append((path, r.status_code, time.monotonic() - t0))
                    time.sleep(0.1)

        def detail(_: int) -> tuple[int, dict[str, Any], str | None, float]:
            with httpx.Client(base_url=base, timeout=60) as http:
                t0 = time.monotonic()
                r = http.get(f"/alerts/{alert_id}", headers=read)
                return r.status_code, r.json(), r.headers.get("retry-after"), time.monotonic() - t0

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            with ThreadPoolExecutor(45) as pool:
                results = list(pool.map(detail, range(45)))
        finally:
            stop.set()
            prober.join(timeout=60)

    codes = [r[0] for r in results]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(200) >= slots, codes
    busy = [r for r in results if r[0] == 503]
    assert busy, "45 parallel context reads on 4 slots: some must be refused"
    assert all(r[1]["error"] == "busy" and r[2] == "3" for r in busy), busy[:2]
    assert all(r[1]["context"]["available"] is False for r in results if r[0] == 200)
    assert max(r[3] for r in results) < bound_s, sorted(r[3] for r in results)[-5:]
    assert len(health) >= 4, health
    assert all(code == 200 for _, code, _ in health), health
    slowest = max(took for _, _, took in health)
    assert slowest < 5.0, f"/healthz or /readyz took {slowest:.1f} s during the context reads (was 29 s)"
