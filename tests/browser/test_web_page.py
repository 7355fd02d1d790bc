"""Headless Chromium against a running `monitor serve` with demo data: the alert page lists alerts, plots
the signal, score and threshold, shows the buttons, and acknowledging works; at 1280 x 800 every list column is
visible, the fleet overview names the alerting sensor, and an alert's plots show what fired (threshold in the
legend, dated ticks, the stored peak); on a phone nothing needs a horizontal scroll. Saves screenshots
(MONITOR_TEST_OUTPUT)."""

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
from typing import Any

import pytest
from sqlalchemy import select

from monitor.core.scoring.artifact import ModelBundle
from monitor.settings import KafkaSettings
from monitor.store.alerts_api import query_alerts
from monitor.store.database import init_schema, make_engine
from monitor.store.schema import AlertEvent, AlertFeedback
from pipelines.cdp import Browser, free_port
from pipelines.synthetic import make_fleet
from tests.integration.api_helpers import api_bundle, api_model_path  # noqa: F401 - fixtures
from tests.integration.conftest import kafka_bootstrap, kafka_cfg  # noqa: F401 - fixtures
from tests.integration.helpers import produce_fleet, run_to_end

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(tmp_path: Path, kafka_cfg: KafkaSettings, api_bundle: ModelBundle,
           api_model_path: Path) -> Iterator[dict[str, Any]]:
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


def test_alert_page_plots_and_acknowledges(served: dict[str, Any], tmp_path: Path) -> None:
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
        browser.wait_for("document.querySelectorAll('.plot[data-kind=channel]').length === 8")
        charts = browser.eval("""(() => {
            const score = window.monitorPlots.score, values = (d) => d.filter((v) => v !== null).length;
            return {labels: score.series.map((s) => s.label),
                    dots: values(score.data[1]), thresholds: values(score.data[2]),
                    band: document.querySelector('.plot[data-kind=score]').dataset.band,
                    signal_points: values(window.monitorPlots.channels[0].data[1]),
                    title: document.querySelector('#title').textContent};
        })()""")
        assert charts["labels"][1:3] == ["score", "threshold"] and len(charts["band"].split(",")) == 2
        assert charts["dots"] >= 5 and charts["thresholds"] >= 5 and charts["signal_points"] >= 5 * 16
        assert charts["title"] == f"Alert {target['id']}: sensor-001"
        buttons = browser.eval("[...document.querySelectorAll('#actions button')].map(b => [b.id, b.offsetWidth > 0])")
        assert buttons == [["ack", True], ["resolve", True], ["tp", True], ["fp", True], ["newnormal", True]]
        assert browser.eval("document.querySelector('#ack').disabled") is False
        browser.click("#ack")
        browser.wait_for("document.querySelector('#fact-status').textContent === 'acknowledged by browser-test'")
        with served["db"].connect() as conn:
            events = conn.execute(select(AlertEvent.action, AlertEvent.actor)
                                  .where(AlertEvent.alert_id == target["id"])).all()
        assert [(a, actor.split(":")[-1]) for a, actor in events] == [("acknowledge", "browser-test")]
        assert query_alerts(served["db"], sensor_id="sensor-001", status="acknowledged")[0]["id"] == target["id"]
        assert browser.eval("document.querySelector('#ack').disabled") is True
        browser.eval("document.querySelector('#actionmsg').textContent = ''")  # the acknowledgement's "saved"
        browser.click("#newnormal")  # the verdict is stored and the page says what it did to the sensor's state
        message = browser.wait_for("document.querySelector('#actionmsg').textContent.startsWith('saved') && "
                                   "document.querySelector('#actionmsg').textContent")
        with served["db"].connect() as conn:
            verdict = conn.execute(select(AlertFeedback.verdict).where(AlertFeedback.alert_id == target["id"])).scalar_one()
        assert verdict == "new_normal", (verdict, message)
        row_status = browser.eval(f"(() => {{ const chip = document.querySelector(\"#alerts tbody tr[data-id='{target['id']}'] "
                                  "td:nth-child(4) .chip\"); return [chip.dataset.status, chip.textContent]; })()")
        assert row_status == ["acknowledged", "acknowledged by browser-test"]
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


def test_on_call_view_fits_the_screen_and_plots_what_fired(served: dict[str, Any], tmp_path: Path) -> None:
    """What a person sees at 1280 x 800 and on a phone: every list column, the fleet overview naming the alerting
    sensor, status chips, and an alert's plots: the threshold in the legend, dated time ticks, the stored peak
    plotted, top channels first, one time axis with a synced hover read-out, the evidence of the decision."""
    from pipelines.demo_shots import ALERT_PNG, LIST_PNG, show_alert, show_list

    everything = query_alerts(served["db"])
    target = next(a for a in served["alerts"] if a["status"] == "open")
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Page.addScriptToEvaluateOnNewDocument", source=(
            "window.cspViolations = [];"
            "document.addEventListener('securitypolicyviolation',"
            " (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"))
        assert show_list(browser, served["url"]) == len(everything)
        layout = browser.eval("""(() => {
            const inside = (r) => r.width > 0 && r.left >= 0 && r.right <= window.innerWidth;
            return {width: window.innerWidth, scroll: document.documentElement.scrollWidth,
                    headers: [...document.querySelectorAll('#alerts thead th')]
                        .map((th) => [th.textContent, inside(th.getBoundingClientRect())]),
                    cells: [...document.querySelectorAll('#alerts tbody tr:first-child td')]
                        .every((td) => inside(td.getBoundingClientRect()))};
        })()""")
        assert layout["width"] == 1280 and layout["scroll"] <= 1280, layout  # no horizontal scrollbar
        assert [h for h, _ in layout["headers"]] == ["id", "sensor", "opened (UTC)", "status", "severity",
                                                     "peak / threshold", "windows", "top channels"]
        assert all(visible for _, visible in layout["headers"]) and layout["cells"], layout
        chip = browser.eval(f"document.querySelector(\"#alerts tr[data-id='{target['id']}'] td:nth-child(4)\").textContent")
        assert chip == "open"
        fleet = browser.eval("""(() => ({
            alerting: [...document.querySelectorAll('#fleet-alerting li')].map((li) => li.dataset.sensor),
            count: document.querySelector('#fleet-count').textContent,
            opened: window.monitorPlots.fleet.data[1].reduce((a, b) => a + b, 0),
            model: document.querySelector('#model-facts').textContent}))()""")
        assert "sensor-001" in fleet["alerting"] and fleet["count"].endswith("sensors alerting"), fleet
        assert fleet["opened"] == len(everything)  # the last day of event time holds the whole stream
        assert "api-1" in fleet["model"] and "trained" in fleet["model"], fleet
        shots = [browser.screenshot(tmp_path / LIST_PNG, full_page=False)]

        assert show_alert(browser, target["id"]) == target["id"]
        browser.wait_for("document.querySelectorAll('.plot[data-kind=channel]').length === 8")
        seen = browser.eval("""(() => {
            const plots = window.monitorPlots, score = plots.score, all = [score, ...plots.channels];
            const legend = (box) => [...box.querySelectorAll('.u-legend .u-series th')].map((th) => th.textContent);
            return {legend: legend(document.querySelector('.plot[data-kind=score]')),
                    ticks: all.map((u) => u.axes[0]._values), y_label: score.axes[1].label,
                    scores: score.data[1], thresholds: score.data[2], fired: score.data[3],
                    x_ranges: all.map((u) => [u.scales.x.min, u.scales.x.max]),
                    sync: all.map((u) => u.cursor.sync.key),
                    order: [...document.querySelectorAll('.plot[data-kind=channel]')]
                        .map((p) => [p.dataset.channel, p.classList.contains('top')]),
                    span_gaps: all.some((u) => u.series.slice(1).some((s) => s.spanGaps)),
                    evidence: document.querySelector('#evidence-summary').textContent,
                    evidence_rows: document.querySelectorAll('#evidence tbody tr').length,
                    peak_rows: document.querySelectorAll('#evidence tbody tr.peak').length};
        })()""")
        assert "threshold" in seen["legend"] and "score" in seen["legend"], seen["legend"]
        day = target["opened_at"].strftime("%Y-%m-%d")
        for ticks in seen["ticks"]:  # every panel's time axis: real ticks, the date under the first
            labels = [t for t in ticks if t]
            assert len(labels) >= 3 and day in labels[0] and ":" in labels[-1], ticks
        assert "score" in seen["y_label"] and "log" in seen["y_label"]
        plotted = [v for v in seen["scores"] if v is not None]
        assert max(plotted) == pytest.approx(target["peak_score"], rel=1e-6)  # the stored peak, not a log of it
        at_peak = seen["scores"].index(max(plotted))
        assert seen["thresholds"][at_peak] == pytest.approx(target["threshold_at_peak"], rel=1e-6)
        assert seen["fired"][at_peak] == seen["scores"][at_peak]  # the peak window is marked as having fired
        assert len(set(map(tuple, seen["x_ranges"]))) == 1 and len(set(seen["sync"])) == 1  # one time axis
        top = target["top_channels"]
        assert [name for name, _ in seen["order"][: len(top)]] == top
        assert [flag for _, flag in seen["order"]] == [True] * len(top) + [False] * (8 - len(top))
        assert seen["span_gaps"] is False
        # Missing data is a gap: a null point where the step is more than twice the usual one (never a line across).
        assert browser.eval("withGaps([[0, 1], [16, 2], [32, 3], [96, 4], [112, 5]])") == [
            [0, 16, 32, 64, 96, 112], [1, 2, 3, None, 4, 5]]
        assert f"{target['peak_score']:.3f}" in seen["evidence"] and seen["evidence_rows"] >= 1 and seen["peak_rows"] == 1
        # Hovering the score panel reads out every panel's values at that time (the legends follow the cursor).
        box = browser.eval("(() => { const r = document.querySelector('.plot[data-kind=score] .u-over')"
                           ".getBoundingClientRect(); return [r.x + r.width * 0.8, r.y + r.height / 2]; })()")
        browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=box[0], y=box[1])
        readout = browser.wait_for("""(() => {
            const v = [...document.querySelectorAll('.plot[data-kind=channel]')].map((p) =>
                p.querySelector('.u-legend .u-series:nth-child(2) .u-value').textContent);
            return v.every((t) => t !== '--' && t !== '') && v;
        })()""", timeout_s=10)
        assert len(readout) == 8
        shots.append(browser.screenshot(tmp_path / ALERT_PNG, full_page=False))
        for shot in shots:
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < shot.stat().st_size < 300_000
        out_dir = os.environ.get("MONITOR_TEST_OUTPUT")
        if out_dir:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            for shot in shots:
                (Path(out_dir) / shot.name).write_bytes(shot.read_bytes())

        # A phone: the list becomes cards, nothing needs a horizontal scroll.
        show_list(browser, served["url"].split("?")[0], 390, 844)
        phone = browser.eval("""(() => ({
            scroll: document.documentElement.scrollWidth, width: window.innerWidth,
            head: getComputedStyle(document.querySelector('#alerts thead')).display,
            label: getComputedStyle(document.querySelector('#alerts tbody td'), '::before').content}))()""")
        assert phone["width"] == 390 and phone["scroll"] <= 390 and phone["head"] == "none", phone
        assert phone["label"] == '"id"', phone
        show_alert(browser, target["id"])  # the alert's view too: evidence and plots fit the phone's width
        scroll, width = browser.eval("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width == 390 and scroll <= width, (scroll, width)
        assert browser.eval("window.monitorPlots.score.width") <= 390
        assert browser.eval("window.cspViolations") == []
        assert browser.console == [], browser.console
    finally:
        browser.close()
