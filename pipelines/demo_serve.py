"""The end of `make demo`: start `monitor serve` on the demo database in the background and print the web
page's URL with a ready API key (write scope, so the buttons work).

pipelines/demo.py calls ``stop_web(workdir)`` before it wipes its work folder and ``start_web(env, workdir)``
after the alerts are printed. The server keeps running after the demo; the printed line says how to stop it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import typer


def stop_web(workdir: Path) -> None:
    """Stop the web server a previous demo left running (its pid is in ``workdir/serve.pid``)."""
    pid_file = Path(workdir) / "serve.pid"
    if not pid_file.is_file():
        return
    try:
        os.killpg(int(pid_file.read_text().strip()), signal.SIGTERM)
        time.sleep(1.0)
    except (ProcessLookupError, PermissionError, ValueError):
        pass
    pid_file.unlink(missing_ok=True)


def start_web(env: Mapping[str, str], workdir: Path, port: int | None = None, wait_s: float = 60.0) -> str:
    """Create a write key in the demo database, start `monitor serve`, wait until ready; returns the URL."""
    workdir = Path(workdir)
    env = {**env, **({"MONITOR_API__PORT": str(port)} if port else {})}
    created = subprocess.run([sys.executable, "-m", "monitor", "apikey", "create", "demo", "--scope", "write",
                              "--json"], env=env, capture_output=True, text=True, check=True)
    key = json.loads(created.stdout)
    log = open(workdir / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "monitor", "serve"], env=env, stdout=log, stderr=log,
                              start_new_session=True)  # outlives `make demo`
    (workdir / "serve.pid").write_text(str(server.pid))
    ready = key["url"].split("/ui/")[0] + "/readyz"
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urllib.request.urlopen(ready, timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                tail = (workdir / "serve.log").read_text()[-1500:]
                raise RuntimeError(f"monitor serve did not start (see {workdir / 'serve.log'}):\n{tail}") from None
            time.sleep(0.3)
    typer.echo(f"\nweb page (API key included): {key['url']}")
    typer.echo(f"API docs: {key['url'].split('/ui/')[0]}/docs   stop the server: kill -- -{server.pid}")
    return str(key["url"])
