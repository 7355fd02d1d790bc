"""Profile `monitor run` on a backlog with py-spy: the top entries (self and inclusive) of the hot path.

    python -m pipelines.bench.profile --windows 40000 [--db-url sqlite:///...]

Produces the bench workload (pipelines.bench.throughput) to a fresh topic, then records ``python -m monitor run``
under ``py-spy record --format raw`` (py-spy from the dev extra) until the backlog is drained, and prints
the functions with the most samples (self time and inclusive time, in % of all samples).
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Annotated

import typer

from monitor.core.scoring.train import train
from monitor.ingest.kafka import ensure_topics
from monitor.registry import model_files
from monitor.settings import KafkaSettings, ModelSettings
from monitor.store.database import init_schema, make_engine
from pipelines.bench.throughput import ROOT, make_workload, produce
from pipelines.synthetic import history_frame

app = typer.Typer(add_completion=False)


def top_entries(raw: Path, n: int = 15) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Collapsed py-spy stacks -> (top self-time frames, top inclusive frames) in % of samples."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        total += k
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  for f in stack.split(";")]
        own[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    def pct(c: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(f, 100 * v / max(total, 1)) for f, v in c.most_common(n)]

    return pct(own), pct(incl)


@app.command()
def main(
    windows: Annotated[int, typer.Option(help="Windows in the backlog.")] = 40_000,
    db_url: Annotated[str, typer.Option(help="Database URL ('' = a fresh SQLite file).")] = "",
    partitions: Annotated[int, typer.Option(help="Partitions of the topic.")] = 2,
    bootstrap: Annotated[str, typer.Option(help="Kafka bootstrap servers.")] = os.environ.get(
        "MONITOR_TEST_KAFKA", "127.0.0.1:9092"),
    top: Annotated[int, typer.Option(help="Entries to print.")] = 15,
    packed: Annotated[bool, typer.Option(help="Produce values_f32 (packed float32) instead of JSON number lists.")
                      ] = False,
) -> None:
    if not shutil.which("py-spy"):
        raise typer.BadParameter("py-spy is not installed (pip install -e '.[dev]')")
    work = Path(tempfile.mkdtemp(prefix="monitor-profile-"))
    model_cfg = ModelSettings(window_len=64, hidden_size=64, stride=8, epochs=1, batch_size=128)
    bundle = train(history_frame(4000, n_channels=8, sensors=4), model_cfg, version="prof-1", sensors=4)
    model_path = model_files.save(bundle, work / "model.pt")
    run_id = uuid.uuid4().hex[:8]
    cfg = KafkaSettings(bootstrap_servers=bootstrap, topic=f"prof-{run_id}", dlq_topic=f"prof-{run_id}.dlq",
                        group_id=f"prof-{run_id}")
    ensure_topics(cfg, [cfg.topic, cfg.dlq_topic], partitions=partitions)
    load = make_workload(100, windows, 64, 8)
    load.packed = packed
    typer.echo(f"produced {windows} windows at {produce(cfg, load):,.0f} msg/s")
    url = db_url or f"sqlite:///{work / 'profile.db'}"
    init_schema(make_engine(url))
    env = {**os.environ, "MONITOR_DB__URL": url, "MONITOR_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
           "MONITOR_KAFKA__TOPIC": cfg.topic, "MONITOR_KAFKA__DLQ_TOPIC": cfg.dlq_topic,
           "MONITOR_KAFKA__GROUP_ID": cfg.group_id, "MONITOR_MODEL__PATH": str(model_path),
           "MONITOR_LOG_LEVEL": "WARNING"}
    raw = work / "profile.txt"
    subprocess.run(["py-spy", "record", "--format", "raw", "--rate", "200", "--native", "-o", str(raw), "--",
                    sys.executable, "-m", "monitor", "run", "--idle-exit-s", "3"], cwd=ROOT, env=env, check=True)
    own, incl = top_entries(raw, top)
    typer.echo("\ntop self time (% of samples):")
    for f, p in own:
        typer.echo(f"  {p:5.1f}%  {f}")
    typer.echo("\ntop inclusive time (% of samples):")
    for f, p in incl:
        typer.echo(f"  {p:5.1f}%  {f}")
    typer.echo(f"raw profile: {raw}")


if __name__ == "__main__":
    app()
