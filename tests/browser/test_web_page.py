"""Headless Chromium against a running `monitor serve` with demo data: the alert page lists alerts, plots
the signal, score and threshold, shows the buttons, and acknowledging works. Saves a screenshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.scoring.artifact import ModelBundle
from monitor.settings import KafkaSettings
from monitor.store.database import init_schema, make_engine
from monitor.store.repository import query_alerts
from monitor.store.schema import AlertEvent
from pipelines.synthetic import make_fleet
from tests.browser.cdp import Browser, free_port
from tests.integration.api_helpers import api_bundle, api_model_path  # noqa: F401 - fixtures
from tests.integration.conftest import kafka_bootstrap, kafka_cfg  # noqa: F401 - fixtures
from tests.integration.helpers import produce_fleet, run_to_end

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(tmp_path: Path, kafka_cfg: KafkaSettings, api_bundle: ModelBundle, api_model_path: Path) -> Iterator[dict]:
    """Demo data (a fleet with one strong anomaly through the real consumer) behind a `monitor serve` process."""
    wl = api_bundle.meta.window_len
    fleet = make_fleet(3, wl * 100, seed=3, anomalous=0)
    series = fleet.series["sensor-001"]  # one anomaly that ends with the stream: its alert stays open
    series[wl * 95 :, :3] += 10 * series.std(axis=0)[:3]
    produce_fleet(kafka_cfg, fleet, wl)
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    db = make_engine(url)
    init_schema(db)
    run_to_end(kafka_cfg, api_bundle, db)
    port = free_port()
    env = {**os.environ, "MONITOR_DB__URL": url, "MONITOR_MODEL__PATH": str(api_model_path),
           "MONITOR_KAFKA__BOOTSTRAP_SERVERS": kafka_cfg.bootstrap_servers, "MONITOR_KAFKA__TOPIC": kafka_cfg.topic,
           "MONITOR_API__PORT": str(port)}
    created = subprocess.run([sys.executable, "-m", "monitor", "apikey", "create", "browser-test", "--scope", "write",
                              "--json"], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    key = json.loads(created.stdout)
    server = subprocess.Popen([sys.executable, "-m", "monitor", "serve"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "w"))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(f"monitor serve did not come up: {(tmp_path / 'serve.log').read_text()[-2000:]}")
                time.sleep(0.3)
        yield {"db": db, "url": key["url"], "port": port, "alerts": query_alerts(db, sensor_id="sensor-001")}
    finally:
        server.terminate()
        server.wait(timeout=15)
        db.dispose()


def test_alert_page_plots_and_acknowledges(served: dict, tmp_path: Path) -> None:
    alerts = served["alerts"]
    assert alerts, "the demo data raised no alert on the anomalous sensor"
    open_alerts = [a for a in alerts if a["status"] == "open"]
    assert open_alerts, f"expected an open alert on sensor-001, got {[(a['id'], a['status']) for a in alerts]}"
    target = open_alerts[0]
    assert served["url"].startswith(f"http://127.0.0.1:{served['port']}/ui/?key=mk_")
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=served["url"])
        rows = browser.wait_for("document.querySelectorAll('#alerts tbody tr').length")
        assert rows == len(query_alerts(served["db"]))
        assert browser.eval("location.search") == ""  # the key left the address bar for localStorage
        browser.click(f"#alerts tbody tr[data-id='{target['id']}']")
        browser.wait_for("document.querySelectorAll('svg.chart[data-kind=channel]').length === 8")
        charts = browser.eval("""(() => {
            const score = document.querySelector('svg.chart[data-kind=score]');
            return {score_paths: score.querySelectorAll('path.score').length,
                    threshold_paths: score.querySelectorAll('path.threshold').length,
                    dots: score.querySelectorAll('circle').length,
                    band: score.querySelectorAll('rect.band').length,
                    signal_points: document.querySelector('svg.chart[data-kind=channel] path.signal')
                                   .getAttribute('d').split('L').length,
                    title: document.querySelector('#title').textContent};
        })()""")
        assert charts["score_paths"] == 1 and charts["threshold_paths"] == 1 and charts["band"] == 1
        assert charts["dots"] >= 5 and charts["signal_points"] >= 5 * 16
        assert charts["title"] == f"Alert {target['id']}: sensor-001"
        buttons = browser.eval("[...document.querySelectorAll('#actions button')].map(b => [b.id, b.offsetWidth > 0])")
        assert buttons == [["ack", True], ["resolve", True], ["tp", True], ["fp", True]]
        assert browser.eval("document.querySelector('#ack').disabled") is False
        browser.click("#ack")
        browser.wait_for("document.querySelector('#fact-status').textContent === 'acknowledged'")
        with served["db"].connect() as conn:
            events = conn.execute(select(AlertEvent.action, AlertEvent.actor)
                                  .where(AlertEvent.alert_id == target["id"])).all()
        assert [(a, actor.split(":")[-1]) for a, actor in events] == [("acknowledge", "browser-test")]
        assert query_alerts(served["db"], sensor_id="sensor-001", status="acknowledged")[0]["id"] == target["id"]
        assert browser.eval("document.querySelector('#ack').disabled") is True
        row_status = browser.eval(f"document.querySelector(\"#alerts tbody tr[data-id='{target['id']}'] td:nth-child(4)\").textContent")
        assert row_status == "acknowledged"
        shot = browser.screenshot(tmp_path / "alert-page.png")
        out_dir = os.environ.get("MONITOR_TEST_OUTPUT")
        if out_dir:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            (Path(out_dir) / "alert-page.png").write_bytes(shot.read_bytes())
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

        # "Load more" continues the submitted filter with its cursor, not the form's unsubmitted values.
        browser.eval("document.querySelector('#alerts tbody').replaceChildren();"  # refilled when the page has loaded
                     "document.querySelector('#filters [name=sensor]').value = 'sensor-001';"
                     "document.querySelector('#filters').requestSubmit()")
        rows = browser.wait_for("document.querySelectorAll('#alerts tbody tr').length")
        assert rows == len(alerts)
        browser.eval("""(() => {
            document.querySelector('#filters [name=sensor]').value = 'sensor-002';  // typed, not submitted
            window.requested = [];
            window.fetch = async (url) => {  // record the request; an empty last page ends the list
                window.requested.push(String(url));
                return new Response('{"items": [], "next_cursor": null}', {status: 200});
            };
            nextCursor = 'cursor-of-sensor-001';
            document.querySelector('#more').hidden = false;
            document.querySelector('#more').scrollIntoView();
        })()""")
        browser.click("#more")
        requested = browser.wait_for("window.requested.length && window.requested")
        assert len(requested) == 1
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(requested[0]).query))
        assert params == {"sensor": "sensor-001", "limit": "50", "cursor": "cursor-of-sensor-001"}
        # the empty last page hides the button once its response is handled (after the request was recorded)
        assert browser.wait_for("document.querySelector('#more').hidden", timeout_s=10) is True
        assert browser.console == [], browser.console
    finally:
        browser.close()
