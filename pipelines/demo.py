"""`make demo`: train on synthetic history, stream a synthetic fleet with injected anomalies through
`monitor run` on the local Kafka broker and SQLite, print the alerts and their precision/recall.

Every step calls the real CLI (`monitor train`, `monitor run`, `monitor alerts`) in a subprocess, exactly as
a user would, with settings passed through the environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from monitor.ingest.kafka import ensure_topics, make_producer
from monitor.settings import Settings
from monitor.store.alerts_api import query_alerts
from monitor.store.database import make_engine
from pipelines.demo_serve import start_web, stop_web
from pipelines.produce import send_windows, topic_end_offsets
from pipelines.synthetic import evaluate, fleet_windows, history_frame, make_fleet

app = typer.Typer(add_completion=False)


def _step(text: str) -> None:
    typer.secho(f"\n==> {text}", fg=typer.colors.CYAN, bold=True)


def _drop_old_demo_topics(bootstrap_servers: str) -> None:
    """Earlier demo runs leave their topics behind: remove them so the local broker does not grow."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","))
    try:
        old = [t for t in admin.list_topics() if t.startswith("demo-")]
        if old:
            admin.delete_topics(old)
    finally:
        admin.close()


def _screenshots(url: str, out_dir: Path) -> None:
    """The list and an alert view at 1280 x 800 (pipelines/demo_shots.py); skipped, saying why, without Chromium."""
    try:
        from pipelines.demo_shots import save_views

        saved = save_views(url, out_dir)
    except (ImportError, RuntimeError, AssertionError, OSError) as exc:
        typer.echo(f"screenshots skipped: {exc} (deploy/local/browser.sh installs Chromium)")
        return
    typer.echo("screenshots: " + ", ".join(str(p) for p in saved))


@app.command()
def main(
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its files.")] = Path(".demo"),
    sensors: Annotated[int, typer.Option(min=2, help="Sensors in the fleet (one stays clean).")] = 12,
    windows_per_sensor: Annotated[int, typer.Option(min=20, help="Windows streamed per sensor.")] = 240,
    history_rows: Annotated[int, typer.Option(help="Rows of normal history to train on.")] = 20_000,
    epochs: Annotated[int, typer.Option(help="Training epochs at most.")] = 40,
    screenshots: Annotated[Path | None, typer.Option(
        help="Folder for screenshots of the web page (default: WORKDIR/screenshots; docs/img for the README).")] = None,
) -> None:
    base = Settings()
    window_len = base.model.window_len
    if workdir.exists():
        stop_web(workdir)
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    run_id = time.strftime("%Y%m%d%H%M%S")
    db_url = f"sqlite:///{(workdir / 'monitor.db').resolve()}"
    env = {
        **os.environ,
        "MONITOR_DB__URL": db_url,
        "MONITOR_KAFKA__TOPIC": f"demo-{run_id}.windows",
        "MONITOR_KAFKA__DLQ_TOPIC": f"demo-{run_id}.windows.dlq",
        "MONITOR_KAFKA__GROUP_ID": f"demo-{run_id}",
        "MONITOR_MODEL__PATH": str(workdir / "model.pt"),
    }
    kafka_cfg = base.kafka.model_copy(
        update={"topic": env["MONITOR_KAFKA__TOPIC"], "dlq_topic": env["MONITOR_KAFKA__DLQ_TOPIC"]}
    )

    _drop_old_demo_topics(kafka_cfg.bootstrap_servers)
    fleet_sensors = 16
    _step(f"1/5 synthetic normal history of {fleet_sensors} sensors: {history_rows} rows x 8 channels -> "
          f"{workdir}/history.csv")
    history_frame(history_rows, sensors=fleet_sensors).to_csv(workdir / "history.csv")

    _step("2/5 monitor train")
    subprocess.run(
        [sys.executable, "-m", "monitor", "train", str(workdir / "history.csv"), "--out", str(workdir / "model.pt"),
         "--epochs", str(epochs), "--sensors", str(fleet_sensors)],
        check=True, env=env,
    )

    _step(f"3/5 streaming {sensors} sensors x {windows_per_sensor} windows to {kafka_cfg.topic} "
          f"on {kafka_cfg.bootstrap_servers}")
    fleet = make_fleet(sensors, window_len * windows_per_sensor, seed=7)
    ensure_topics(kafka_cfg, [kafka_cfg.topic, kafka_cfg.dlq_topic], partitions=3)
    producer = make_producer(kafka_cfg)
    sent = send_windows(producer, kafka_cfg.topic, fleet_windows(fleet, window_len), fleet.channels,
                        total=sensors * windows_per_sensor)
    poison = [b"\xff\xfe not utf-8", b"{not json", b'{"sensor_id": "sensor-000"}']
    for value in poison:
        producer.send(kafka_cfg.topic, key=b"sensor-000", value=value)
    producer.flush()
    producer.close()
    typer.echo(f"sent {sent} windows and {len(poison)} malformed records "
               f"({len(fleet.injected)} anomalies injected into {sensors - 1} sensors; "
               f"{fleet.sensor_ids[-1]} is clean)")

    _step("4/5 monitor run (exits after 5 s without new records)")
    subprocess.run([sys.executable, "-m", "monitor", "run", "--idle-exit-s", "5"], check=True, env=env)

    _step("5/5 monitor alerts")
    subprocess.run([sys.executable, "-m", "monitor", "alerts", "--limit", "50"], check=True, env=env)
    alerts = query_alerts(make_engine(db_url), limit=100_000)
    result = evaluate(alerts, fleet.injected, tolerance_s=window_len)
    clean = fleet.sensor_ids[-1]
    (workdir / "injected.json").write_text(json.dumps([i.to_json() for i in fleet.injected], indent=2))
    typer.echo(f"\nalerts on the clean sensor {clean}: {sum(1 for a in alerts if a['sensor_id'] == clean)}")
    dead = sum(topic_end_offsets(kafka_cfg.bootstrap_servers, kafka_cfg.dlq_topic).values())
    typer.echo(f"dead letters: {dead} records in {kafka_cfg.dlq_topic} ({len(poison)} malformed records were sent)")
    url = start_web(env, workdir)
    _screenshots(url, screenshots or workdir / "screenshots")
    typer.echo(f"alerts={int(result['alerts'])} true_alerts={int(result['true_alerts'])} "
               f"injected={int(result['injected'])} found={int(result['found'])}")
    typer.echo(f"precision={result['precision']:.3f} recall={result['recall']:.3f}")
    if result["recall"] < 0.5:
        sys.exit(1)


if __name__ == "__main__":
    app()
