"""A small Chrome DevTools Protocol client over a websocket (websocket-client), enough to drive one page: the
browser tests (tests/browser) and the screenshots of `make demo` (pipelines/demo_shots.py)."""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--window-size=1400,1000", "--remote-allow-origins=*"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("Debian's chromium is not installed: run deploy/local/browser.sh (or `make install`)")
    return path


class Browser:
    """Headless Chromium with a fresh profile, driven over CDP."""

    def __init__(self, profile: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [chromium_path(), *CHROMIUM_FLAGS, f"--remote-debugging-port={self.port}", f"--user-data-dir={profile}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        pages: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not pages:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=2) as resp:
                    pages = [t for t in json.load(resp) if t.get("type") == "page"]
            except OSError:
                time.sleep(0.3)
        if not pages:
            self.close()
            raise RuntimeError("chromium did not open its DevTools endpoint within 60 s")
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.ids = itertools.count(1)
        self.console: list[str] = []
        self.call("Runtime.enable")
        self.call("Page.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Runtime.exceptionThrown":
                self.console.append(json.dumps(msg["params"]["exceptionDetails"])[:500])
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error in {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {expression!r}; page errors: {self.console}")

    def click(self, selector: str, settle_s: float = 10.0) -> None:
        """A real mouse click at the centre of the element (not a synthetic DOM event), once the element exists, is
        scrolled into the viewport if it was outside it, and has kept its position for two reads 100 ms apart: a
        click computed from a layout that a late render then moved lands on nothing (a browser test timed out that
        way once in CI, 2026-12-05)."""
        locate = (f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
                  " e.scrollIntoView({block: 'nearest'}); const r = e.getBoundingClientRect();"
                  " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        deadline = time.monotonic() + settle_s
        box, last = self.eval(locate), None
        while (box is None or box != last) and time.monotonic() < deadline:
            time.sleep(0.1)
            box, last = self.eval(locate), box
        if box is None:
            raise AssertionError(f"no element matches {selector!r}; page errors: {self.console}")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        """Lay the page out at ``width`` x ``height`` CSS pixels (scale 1), as a phone when ``mobile``."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=mobile)

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """A PNG of the whole page, or of the viewport only (``full_page=False``)."""
        import base64

        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=full_page)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
