"""Screenshots of the web page at 1280 x 800 (headless Chromium over CDP): the alert list with the fleet overview,
and one alert's view (evidence and plots). `make demo` saves them after it starts the web server; the browser
test (tests/browser/test_web_page.py) drives the page with the same steps.

    python -m pipelines.demo_shots 'http://127.0.0.1:8000/ui/?key=mk_...' --out docs/img
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cdp import Browser

WIDTH, HEIGHT = 1280, 800
LIST_PNG, ALERT_PNG = "alert-list.png", "alert-view.png"

app = typer.Typer(add_completion=False)


def show_list(browser: Browser, url: str, width: int = WIDTH, height: int = HEIGHT) -> int:
    """Open the page (``url`` carries the key) at ``width`` x ``height``; waits for the listed alerts and the fleet
    overview's chart; returns how many alerts are listed."""
    browser.viewport(width, height)
    browser.call("Page.navigate", url=url)
    rows = int(browser.wait_for("document.querySelectorAll('#alerts tbody tr').length"))
    browser.wait_for("window.monitorPlots && window.monitorPlots.fleet !== null")
    return rows


def show_alert(browser: Browser, alert_id: int | None = None) -> int:
    """Open an alert of the list (``alert_id``, else the first open one, else the first): waits for its
    plots and brings its view to the top of the window; returns its id."""
    pick = ("(() => { const rows = [...document.querySelectorAll('#alerts tbody tr')];"
            " const open = rows.find((r) => r.querySelector('[data-status=open]'));"
            " return Number((open || rows[0]).dataset.id); })()")
    chosen = int(alert_id if alert_id is not None else browser.eval(pick))
    browser.click(f"#alerts tbody tr[data-id='{chosen}']")
    browser.wait_for(f"document.querySelector('#title').textContent.startsWith('Alert {chosen}:') && "
                     "(window.monitorPlots.score !== null || document.querySelector('#contextnote').textContent)")
    browser.eval("document.querySelector('#detail').scrollIntoView({block: 'start'}); true")
    browser.eval("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))")
    return chosen


def save_views(url: str, out_dir: Path, alert_id: int | None = None) -> list[Path]:
    """Screenshots of the list and of one alert's view (viewport only, ``WIDTH`` x ``HEIGHT``) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # Chromium's helper processes may still write into the profile as it closes: the screenshots are saved by then,
    # and a profile file that outlives its removal must not turn them into "screenshots skipped".
    with tempfile.TemporaryDirectory(prefix="monitor-shots-", ignore_cleanup_errors=True) as profile:
        browser = Browser(Path(profile))
        try:
            show_list(browser, url)
            saved = [browser.screenshot(out_dir / LIST_PNG, full_page=False)]
            show_alert(browser, alert_id)
            saved.append(browser.screenshot(out_dir / ALERT_PNG, full_page=False))
        finally:
            browser.close()
    return saved


@app.command()
def main(
    url: Annotated[str, typer.Argument(help="The page's URL with its key (`monitor apikey create --print-url`).")],
    out: Annotated[Path, typer.Option(help="Folder for the PNG files.")] = Path("docs/img"),
    alert: Annotated[int | None, typer.Option(help="Alert to show (default: the newest open one).")] = None,
) -> None:
    for path in save_views(url, out, alert):
        typer.echo(json.dumps({"screenshot": str(path), "bytes": path.stat().st_size}))


if __name__ == "__main__":
    app()
