"""Headless Chromium against the page with data it used to choke on: an alert whose peak score is infinite
(null in JSON) stopped the list at that row (``toFixed`` on null). The page must list every alert, open the
broken one, and run under its Content-Security-Policy without a single violation."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from monitor.api.app import create_app
from monitor.settings import KafkaSettings, Settings
from monitor.store.apikeys import create_key
from monitor.store.database import init_schema, make_engine
from pipelines.cdp import Browser
from tests.integration.api_helpers import alert_row, insert_alerts, served

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_page_lists_and_opens_an_alert_with_an_infinite_peak_under_its_csp(tmp_path: Path) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    init_schema(db)
    rows = [alert_row(i) for i in range(1, 6)]
    rows[1]["peak_score"] = float("inf")  # listed second (newest first): the rows after it used to vanish
    rows[3]["threshold_at_peak"] = float("inf")
    ids = insert_alerts(db, rows)
    _, secret = create_key(db, "browser-test", ["write"])
    settings = Settings()
    settings.kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{_closed_port()}")
    settings.api.kafka_timeout_s = 1.0
    browser = None
    try:
        with served(create_app(settings, db)) as base:
            browser = Browser(tmp_path / "profile")
            browser.call("Page.addScriptToEvaluateOnNewDocument", source=(
                "window.cspViolations = [];"
                "document.addEventListener('securitypolicyviolation',"
                " (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"))
            browser.call("Page.navigate", url=f"{base}/ui/?key={secret}")
            count = browser.wait_for("document.querySelectorAll('#alerts tbody tr').length === 5 && 5")
            assert count == 5
            cells = browser.eval("[...document.querySelectorAll('#alerts tbody tr')]"
                                 ".map(r => [Number(r.dataset.id), r.children[5].textContent])")
            shown = dict((i, text) for i, text in cells)
            assert shown[ids[1]] == "inf / 5.00", shown
            assert shown[ids[3]] == "14.00 / inf", shown
            assert shown[ids[0]] == "11.00 / 5.00", shown
            browser.click(f"#alerts tbody tr[data-id='{ids[1]}']")
            browser.wait_for(f"document.querySelector('#title').textContent === 'Alert {ids[1]}: s-2'")
            assert browser.eval("document.querySelector('#fact-peak-score').textContent") == "inf"
            note = browser.wait_for("document.querySelector('#contextnote').textContent")
            assert note.startswith("no plot:") and "Kafka" in note, note
            assert browser.eval("window.cspViolations") == []
            assert browser.console == [], browser.console
    finally:
        if browser is not None:
            browser.close()
        db.dispose()
