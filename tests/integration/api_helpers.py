"""Shared steps of the API tests: alert rows, keys, an in-process client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, Table

from monitor.api.app import create_app
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.train import train
from monitor.settings import KafkaSettings, ModelSettings, Settings
from monitor.store.apikeys import create_key
from monitor.store.schema import Alert
from pipelines.synthetic import history_frame

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def alert_row(i: int, **overrides: Any) -> dict[str, Any]:
    opened = T0 + timedelta(minutes=i)
    row = {"sensor_id": f"s-{i % 3}", "opened_at": opened, "closed_at": None,
           "last_window_end": opened + timedelta(minutes=5), "status": "open", "severity": "minor",
           "peak_score": 10.0 + i, "threshold_at_peak": 5.0, "window_count": 3, "top_channels": ["ch0", "ch1"],
           "model_version": "m1", "partition": 0, "first_offset": 10 * i, "last_offset": 10 * i + 5,
           "created_at": opened, "updated_at": opened}
    row.update(overrides)
    return row


def insert_alerts(db: Engine, rows: list[dict[str, Any]]) -> list[int]:
    with db.begin() as conn:
        return [conn.execute(cast(Table, Alert.__table__).insert().values(r).returning(Alert.id)).scalar_one()
                for r in rows]


def client(db: Engine, model_path: Path | None = None, kafka: KafkaSettings | None = None) -> TestClient:
    settings = Settings()
    if model_path is not None:
        settings.model.path = model_path
    if kafka is not None:
        settings.kafka = kafka
    return TestClient(create_app(settings, db))


def keys(db: Engine) -> tuple[dict[str, str], dict[str, str]]:
    """(read headers, write headers)."""
    _, read = create_key(db, "reader", ["read"])
    _, write = create_key(db, "operator", ["write"])
    return {"Authorization": f"Bearer {read}"}, {"X-API-Key": write}


API_MODEL = ModelSettings(window_len=16, stride=4, hidden_size=16, latent_size=8, epochs=8, batch_size=64, seed=1)


@pytest.fixture(scope="session")
def api_bundle() -> ModelBundle:
    """A small model (about half a minute to train on 2 busy cores) for the API's context tests."""
    return train(history_frame(4000, sensors=4), API_MODEL, version="api-1", sensors=4)


@pytest.fixture(scope="session")
def api_model_path(tmp_path_factory: pytest.TempPathFactory, api_bundle: ModelBundle) -> Path:
    from monitor.registry import model_files
    return model_files.save(api_bundle, tmp_path_factory.mktemp("api-model") / "model.pt")


@contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` behind a real uvicorn server (as `monitor serve` runs it) on a free port; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def serve_process(db: Engine, env: dict[str, str], log: Path) -> Iterator[str]:
    """A real `monitor serve` process on ``db`` (plus ``env``, MONITOR_* settings) on a free port; yields its base
    URL. Its own process: the test's client threads do not share its interpreter lock."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    full = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    full.update({"MONITOR_DB__URL": db.url.render_as_string(hide_password=False), "MONITOR_API__PORT": str(port),
                 **env})
    root = Path(__file__).resolve().parents[2]
    with log.open("w") as err:
        server = subprocess.Popen([sys.executable, "-m", "monitor", "serve"], cwd=root, env=full,
                                  stdout=subprocess.DEVNULL, stderr=err)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"monitor serve did not come up: {log.read_text()[-2000:]}") from None
                time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
