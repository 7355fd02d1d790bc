"""`make bench`: end-to-end throughput and latency through the real broker and the production code path.

Every consumer is a real `python -m monitor run` subprocess (decode -> batch scoring -> thresholds ->
incidents -> one SQL transaction with offsets -> Kafka commit); this process only produces windows and
watches the offsets stored in the database from outside, so nothing here shortcuts the guarantees.

Reported in one run (figures are ratios against baselines measured in the same run; absolute times on a
shared 2-core machine are noisy):
  * sustained windows/s end to end, on SQLite and on PostgreSQL, with the lag over time: one consumer as
    configured by default (``run.decode_process`` = auto: a decode child when it has a core to spare) and the
    same consumer decoding in its own thread (one core);
  * the same workload through the naive baseline (one window per poll, one transaction per window);
  * p50/p99 latency from produce to durable decision at 50 % of the sustained rate;
  * scoring-only windows/s against the compute ceiling (a matmul measured in this process);
  * peak RSS of a consumer (with its decode child when it has one); scale-out: ``monitor run --workers <cores>`` (one consumer process per core, one
    group) versus one consumer, on SQLite and PostgreSQL.
Ends with: ``bench: e2e_wps=<n> naive_wps=<n> scoring_wps=<n> ceiling_wps=<n> e2e_share=<0..1> p99_ms=<n>
rss_mb=<n>`` (``e2e_share``: one consumer's end-to-end rate / its own scoring-only rate, same run).
"""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import numpy as np

# Same OpenMP policy as `monitor run` (see monitor.commands.app.run), set before torch loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import typer
from sqlalchemy import Engine, func, select, text  # noqa: E402

from monitor.consumer.parallelism import resolve
from monitor.core.contract import encode_values
from monitor.core.scoring.scorer import Scorer
from monitor.core.scoring.train import train
from monitor.ingest.kafka import ensure_topics, make_producer
from monitor.registry import model_files
from monitor.settings import KafkaSettings, ModelSettings
from monitor.store.database import init_schema, make_engine
from monitor.store.schema import ConsumerOffset
from pipelines.bench.compute import (
    alerts_of,
    bf16_check,
    flops_per_window,
    matmul_gflops,
    scoring_wps,
    scoring_wps_processes,
)
from pipelines.faults.kit import free_port
from pipelines.synthetic import EPOCH, channel_names, history_frame, inject, normal_series

app = typer.Typer(add_completion=False)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Workload:
    sensors: int
    windows: int
    window_len: int
    channels: list[str]
    series: dict[str, np.ndarray] = field(default_factory=dict)
    packed: bool = False  # values as values_f32 (base64 float32) instead of number lists

    def messages(self, count: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of the first ``count`` windows, interleaved across sensors; values rounded to 3 decimals."""
        for _, key, value in self.records(count):
            yield key, value

    def records(self, count: int | None = None) -> Iterator[tuple[int, bytes, bytes]]:
        """(sensor index, key, value) of the first ``count`` windows, interleaved across sensors."""
        count = self.windows if count is None else count
        per_sensor_windows = len(next(iter(self.series.values()))) // self.window_len
        ids = sorted(self.series)
        for i in range(count):
            sensor = ids[i % self.sensors]
            step = i // self.sensors
            w = step % per_sensor_windows
            rows = self.series[sensor][w * self.window_len : (w + 1) * self.window_len]
            begin = EPOCH + timedelta(seconds=step * self.window_len)
            end = begin + timedelta(seconds=self.window_len - 1)
            yield i % self.sensors, sensor.encode(), encode_values(sensor, begin, end, self.channels, np.round(rows, 3),
                                                               packed=self.packed)


def make_workload(sensors: int, windows: int, window_len: int, n_channels: int) -> Workload:
    """A fleet with a few injected anomalies; per-sensor series repeat after 256 windows (memory bound)."""
    load = Workload(sensors, windows, window_len, channel_names(n_channels))
    per_sensor = min(256, max(1, windows // sensors)) * window_len
    rng = np.random.default_rng(0)
    for i in range(sensors):
        values = normal_series(per_sensor, n_channels, seed=500 + i)
        if i % 20 == 0 and per_sensor > 8 * window_len:
            inject(values, "level_shift", per_sensor // 2, 3 * window_len, rng)
        load.series[f"bench-{i:03d}"] = values
    return load


def produce(cfg: KafkaSettings, load: Workload, *, rate: float | None = None, count: int | None = None,
            sent_at: dict[tuple[int, int], float] | None = None) -> float:
    """Produce the workload; returns messages/s. With ``sent_at``, records each record's send time."""
    producer = make_producer(cfg, linger_ms=20, batch_size=512 * 1024)
    # Sensor i -> partition i mod P: every sensor stays on one partition (ordered), and the partitions carry
    # equal load (hashing 100 keys onto few partitions is uneven, which skews the 2-vs-1 scale-out).
    partitions = len(producer.partitions_for(cfg.topic))
    futures = []
    started = time.perf_counter()
    n = 0
    for index, key, value in load.records(count=count):
        now = time.time()
        future = producer.send(cfg.topic, key=key, value=value, partition=index % partitions)
        if sent_at is not None:
            future.add_callback(lambda md, t=now: sent_at.__setitem__((md.partition, md.offset), t))
        futures.append(future)
        n += 1
        if rate:
            ahead = n / rate - (time.perf_counter() - started)
            if ahead > 0:
                time.sleep(ahead)
        if len(futures) >= 20_000:
            producer.flush()
            futures.clear()
    producer.flush()
    for f in futures:
        f.get(timeout=60)
    elapsed = time.perf_counter() - started
    producer.close()
    return n / elapsed


def durable_total(db: Engine, group: str, topic: str) -> int:
    with db.connect() as conn:
        value = conn.execute(
            select(func.coalesce(func.sum(ConsumerOffset.next_offset), 0)).where(
                ConsumerOffset.group_id == group, ConsumerOffset.topic == topic)
        ).scalar_one()
    return int(value)


def durable_by_partition(db: Engine, group: str, topic: str) -> dict[int, int]:
    with db.connect() as conn:
        rows = conn.execute(select(ConsumerOffset.partition, ConsumerOffset.next_offset).where(
            ConsumerOffset.group_id == group, ConsumerOffset.topic == topic))
        return {int(p): int(o) for p, o in rows}


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (a consumer's decode child)."""
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def consumer_peak_rss_mb(pid: int) -> float:
    """Peak RSS of a consumer with its decode child, if it has one (the sum of both peaks: an upper bound)."""
    return peak_rss_mb(pid) + sum(peak_rss_mb(c) for c in children(pid))


_LOGS: dict[int, Path] = {}  # a consumer's pid -> its output file (start_consumers with a log_dir)


def start_consumers(n: int, env: dict[str, str], log_dir: Path | None = None) -> list[subprocess.Popen[bytes]]:
    """``n`` consumers; with ``log_dir`` each one's output goes to a ``consumer-*.log`` file there (its end is
    printed when the consumer exits early: ``log_tail``)."""
    command = [sys.executable, "-m", "monitor", "run", "--idle-exit-s", "3600"]
    procs = []
    for _ in range(n):
        path = None if log_dir is None else log_dir / f"consumer-{uuid.uuid4().hex[:8]}.log"
        with path.open("wb") if path else contextlib.nullcontext(subprocess.DEVNULL) as out:
            proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out,
                                    stderr=subprocess.STDOUT if path else subprocess.DEVNULL)
        if path:
            _LOGS[proc.pid] = path
        procs.append(proc)
    return procs


def log_tail(proc: subprocess.Popen[bytes], lines: int = 15) -> str:
    """The last lines of a consumer's output ('' when it has no log file)."""
    path = _LOGS.get(proc.pid)
    try:
        return "" if path is None else "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop(procs: list[subprocess.Popen[bytes]]) -> float:
    """Stop the consumers; the largest peak RSS among them (each with its decode child)."""
    rss = max(consumer_peak_rss_mb(p.pid) for p in procs)
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
    return rss


@dataclass
class DrainResult:
    wps: float
    lag: list[tuple[float, int]]
    rss_mb: float
    done: int
    stages: dict[str, float] = field(default_factory=dict)  # monitor_stage_seconds_total at the end (one consumer)
    wall_s: float = 0.0  # from the consumers' start to the last durable record


def scrape_stages(port: int) -> dict[str, float]:
    """``monitor_stage_seconds_total`` by stage from a consumer's metrics endpoint ({} when unreachable)."""
    import re
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    except OSError:
        return {}
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r'^monitor_stage_seconds_total\{stage="([a-z_]+)"\} (\S+)$', body, re.M)}


def drain(cfg: KafkaSettings, env: dict[str, str], db: Engine, total: int, consumers: int = 1,
          limit_s: float = 600, stop_after: int | None = None, metrics_port: int | None = None,
          log_dir: Path | None = None) -> DrainResult:
    """Run consumers over a produced backlog until ``total`` (or ``stop_after``) records are durable;
    ``metrics_port``: one consumer's metrics port, scraped for its per-stage seconds before it stops;
    ``log_dir``: where the consumers' output goes (its tail is printed when one exits early)."""
    procs = start_consumers(consumers, env, log_dir)
    target = stop_after or total
    lag: list[tuple[float, int]] = []
    t_first = None
    first_done = 0
    started = time.perf_counter()
    done = 0
    try:
        while time.perf_counter() - started < limit_s:
            done = durable_total(db, cfg.group_id, cfg.topic)
            now = time.perf_counter()
            if done > 0 and t_first is None:
                t_first, first_done = now, done
            lag.append((now - started, total - done))
            if done >= target or any(p.poll() is not None for p in procs):
                break
            time.sleep(0.25)
        t_end = time.perf_counter()
        exited = [p.returncode for p in procs if p.poll() is not None]
        if exited and done < target:
            typer.echo(f"  warning: a consumer exited early (exit codes {exited}) at {done}/{target} durable; "
                       "the rate covers the run until then")
            for p in procs:
                if p.poll() is not None and (tail := log_tail(p)):
                    typer.echo(f"  the end of its output ({_LOGS.get(p.pid)}):\n{tail}")
        stages = scrape_stages(metrics_port) if metrics_port else {}
    finally:
        rss = stop(procs)
    wps = (done - first_done) / (t_end - t_first) if t_first and t_end > t_first else 0.0
    return DrainResult(wps, lag, rss, done, stages, t_end - started)


def latency(cfg: KafkaSettings, env: dict[str, str], db: Engine, load: Workload, rate: float, seconds: float
            ) -> tuple[float, float]:
    """Produce at ``rate`` for ``seconds`` to a running consumer; p50/p99 of send -> durable in ms."""
    procs = start_consumers(1, env)
    sent_at: dict[tuple[int, int], float] = {}
    durable_at: dict[tuple[int, int], float] = {}
    stop_watch = threading.Event()

    def watch() -> None:
        last: dict[int, int] = {}
        while not stop_watch.is_set():
            now = time.time()
            for p, off in durable_by_partition(db, cfg.group_id, cfg.topic).items():
                for o in range(last.get(p, 0), off):
                    durable_at[(p, o)] = now
                last[p] = off
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    # This process's own garbage collector off while it measures: its collections (over the send times, the
    # producer's futures and callbacks) paused its producer and watcher threads for ~300 ms every ~7 s, and those
    # pauses were the p99 (docs/benchmarks.md, round 10). Objects created before are frozen out of it meanwhile.
    gc.collect()
    gc.freeze()
    collecting = gc.isenabled()
    gc.disable()
    try:
        time.sleep(8)  # consumer start-up and group join
        watcher.start()
        produce(cfg, load, rate=rate, count=int(rate * seconds), sent_at=sent_at)
        deadline = time.time() + 30
        while len(durable_at) < len(sent_at) and time.time() < deadline:
            time.sleep(0.2)
    finally:
        if collecting:
            gc.enable()
        gc.unfreeze()
        stop_watch.set()
        stop(procs)
    lat = np.array([durable_at[k] - t for k, t in sent_at.items() if k in durable_at]) * 1000
    if len(lat) < len(sent_at):
        typer.echo(f"  warning: {len(sent_at) - len(lat)} records not durable within 30 s")
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


@app.command()
def main(
    windows: Annotated[int, typer.Option(help="Windows in the end-to-end workload.")] = 200_000,
    sensors: Annotated[int, typer.Option(help="Sensors.")] = 100,
    window_len: Annotated[int, typer.Option(help="Rows per window.")] = 64,
    n_channels: Annotated[int, typer.Option(help="Channels.")] = 8,
    hidden: Annotated[int, typer.Option(help="LSTM hidden size.")] = 64,
    partitions: Annotated[int, typer.Option(help="Partitions of the bench topics.")] = 6,
    naive_windows: Annotated[int, typer.Option(help="Windows the naive baseline processes.")] = 3000,
    pg_url: Annotated[str, typer.Option(help="PostgreSQL URL ('' to skip).")] = os.environ.get(
        "MONITOR_TEST_PG_URL", "postgresql+psycopg://monitor:monitor@127.0.0.1:5433/monitor_test"),
    bootstrap: Annotated[str, typer.Option(help="Kafka bootstrap servers.")] = os.environ.get(
        "MONITOR_TEST_KAFKA", "127.0.0.1:9092"),
    packed: Annotated[bool, typer.Option(help="Produce values_f32 (packed float32) instead of JSON number lists.")
                      ] = False,
    keep: Annotated[bool, typer.Option(help="Keep the run's topics and PostgreSQL schemas (deleted at the end by "
                                            "default: one run writes ~300 MB to the broker).")] = False,
) -> None:
    topics: list[str] = []
    schemas: list[str] = []
    try:
        _bench(windows, sensors, window_len, n_channels, hidden, partitions, naive_windows, pg_url, bootstrap, packed,
               topics, schemas)
    finally:
        if not keep:
            cleanup(bootstrap, pg_url, topics, schemas)


def cleanup(bootstrap: str, pg_url: str, topics: list[str], schemas: list[str]) -> None:
    """Delete a run's topics and drop its PostgreSQL schemas; says what could not be removed, never raises."""
    from kafka import KafkaAdminClient

    if topics:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
            try:
                admin.delete_topics(topics)
            finally:
                admin.close()
        except Exception as exc:  # noqa: BLE001 - cleanup only
            typer.echo(f"the bench's topics were not deleted ({exc}): {', '.join(topics)}", err=True)
    if schemas and pg_url:
        try:
            admin_db = make_engine(pg_url)
            try:
                with admin_db.begin() as conn:
                    for schema in schemas:
                        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            finally:
                admin_db.dispose()
        except Exception as exc:  # noqa: BLE001 - cleanup only
            typer.echo(f"the bench's schemas were not dropped ({exc}): {', '.join(schemas)}", err=True)


def _bench(windows: int, sensors: int, window_len: int, n_channels: int, hidden: int, partitions: int,
           naive_windows: int, pg_url: str, bootstrap: str, packed: bool, topics: list[str], schemas: list[str]
           ) -> None:
    """The bench (``main``); appends each topic and schema it creates to ``topics`` / ``schemas``."""
    work = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    model_cfg = ModelSettings(window_len=window_len, hidden_size=hidden, stride=8, epochs=3, batch_size=128)
    typer.echo(f"load average {os.getloadavg()[0]:.1f} at start; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    typer.echo(f"bench: {windows} windows of {window_len} x {n_channels} from {sensors} sensors; "
               f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}; work dir {work}")
    bundle = train(history_frame(8000, n_channels=n_channels, sensors=8), model_cfg,
                   version="bench-1", sensors=8)
    model_path = model_files.save(bundle, work / "model.pt")
    load = make_workload(sensors, windows, window_len, n_channels)
    load.packed = packed
    typer.echo(f"values encoding: {'values_f32 (packed float32)' if packed else 'JSON number lists'}")
    run_id = uuid.uuid4().hex[:8]
    table: list[tuple[str, str]] = []

    def topic_cfg(name: str) -> KafkaSettings:
        cfg = KafkaSettings(bootstrap_servers=bootstrap, topic=f"bench-{run_id}-{name}",
                            dlq_topic=f"bench-{run_id}-{name}.dlq", group_id=f"bench-{run_id}-{name}")
        topics.extend([cfg.topic, cfg.dlq_topic])
        ensure_topics(cfg, [cfg.topic, cfg.dlq_topic], partitions=partitions)
        return cfg

    def env_for(cfg: KafkaSettings, db_url: str, **extra: str) -> dict[str, str]:
        return {**os.environ, "MONITOR_DB__URL": db_url, "MONITOR_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
                "MONITOR_KAFKA__TOPIC": cfg.topic, "MONITOR_KAFKA__DLQ_TOPIC": cfg.dlq_topic,
                "MONITOR_KAFKA__GROUP_ID": cfg.group_id, "MONITOR_MODEL__PATH": str(model_path),
                "MONITOR_LOG_LEVEL": "WARNING", **extra}

    def database(kind: str, name: str) -> tuple[str, Engine]:
        if kind == "sqlite":
            url = f"sqlite:///{work / (name + '.db')}"
        else:
            schema = f"bench_{run_id}_{name}"
            schemas.append(schema)
            admin = make_engine(pg_url)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            admin.dispose()
            url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"
        db = make_engine(url)
        init_schema(db)
        return url, db

    backlog = topic_cfg("backlog")
    produce_wps = produce(backlog, load)
    typer.echo(f"produced {windows} windows at {produce_wps:,.0f} msg/s")
    table.append(("produce (kafka-python, acks=all)", f"{produce_wps:,.0f} msg/s"))

    results: dict[str, DrainResult] = {}
    threaded: dict[str, DrainResult] = {}  # one consumer decoding in its own thread: the one-core consumer
    backends = ["sqlite"] + (["postgresql"] if pg_url else [])
    in_thread = {"MONITOR_RUN__DECODE_PROCESS": "false", "MONITOR_RUN__OVERLAP": "false"}
    par = resolve("auto", "auto", workers=1, threads=int(os.environ.get("MONITOR_MODEL__THREADS", "0")) or 1)
    typer.echo(f"one consumer's default here: decode process {'on' if par.decode_process else 'off'} ({par.reason})")
    for kind in backends:
        cfg = backlog.model_copy(update={"group_id": f"{backlog.group_id}-{kind}"})
        url, db = database(kind, f"e2e_{kind}")
        port = free_port()
        res = drain(cfg, env_for(cfg, url, MONITOR_RUN__METRICS_PORT=str(port)), db, windows, metrics_port=port,
                    log_dir=work)
        results[kind] = res
        if res.stages:
            busy = sum(res.stages.values())
            typer.echo(f"  {kind}: share of the consumer's time per stage (seconds / drain wall time, "
                       f"{res.wall_s:.0f} s): " + ", ".join(f"{k} {v / res.wall_s:.0%}" for k, v in res.stages.items())
                       + f"; all stages {busy / res.wall_s:.0%}")
            table.append((f"  time per stage ({kind}, share of wall time)",
                          ", ".join(f"{k} {v / res.wall_s:.0%}" for k, v in res.stages.items())))
        typer.echo(f"e2e {kind}: {res.wps:,.0f} windows/s, {res.done}/{windows} durable, peak RSS {res.rss_mb:.0f} MB")
        table.append((f"end to end, {kind}", f"{res.wps:,.0f} windows/s"))
        marks = res.lag[:: max(1, len(res.lag) // 8)]
        table.append((f"  lag over time ({kind})", ", ".join(f"{t:.0f}s:{lag}" for t, lag in marks)))
        # the same consumer decoding in its own thread (run.decode_process and run.overlap off): one core
        cfg = backlog.model_copy(update={"group_id": f"{backlog.group_id}-{kind}-thread"})
        url, db = database(kind, f"e2e_{kind}_thread")
        one = drain(cfg, env_for(cfg, url, **in_thread), db, windows, log_dir=work)
        threaded[kind] = one
        ratio = res.wps / one.wps if one.wps else 0
        typer.echo(f"e2e {kind}, decoding in the consumer's own thread: {one.wps:,.0f} windows/s (the default "
                   f"{ratio:.2f}x it), peak RSS {one.rss_mb:.0f} MB")
        table.append((f"end to end, {kind}, decoding in the consumer's thread (decode_process / overlap false)",
                      f"{one.wps:,.0f} windows/s (default: {ratio:.2f}x)"))

    cfg = backlog.model_copy(update={"group_id": f"{backlog.group_id}-naive"})
    url, db = database("sqlite", "naive")
    naive = drain(cfg, env_for(cfg, url, MONITOR_KAFKA__MAX_POLL_RECORDS="1", **in_thread), db, windows,
                  stop_after=naive_windows, log_dir=work)
    typer.echo(f"naive (1 window per poll and per transaction, sqlite): {naive.wps:,.0f} windows/s")
    table.append(("naive baseline, sqlite", f"{naive.wps:,.0f} windows/s"))

    # The scale-out on this host: `monitor run --workers N` (one consumer process per core, one group).
    workers = len(os.sched_getaffinity(0))
    scale: dict[str, float] = {}
    for kind in backends:
        cfg2 = backlog.model_copy(update={"group_id": f"{backlog.group_id}-workers-{kind}"})
        url, db = database(kind, f"workers_{kind}")
        two = drain(cfg2, env_for(cfg2, url, MONITOR_RUN__WORKERS=str(workers)), db, windows, log_dir=work)
        scale[kind] = two.wps
        ratio = two.wps / threaded[kind].wps if threaded[kind].wps else 0
        ratio_default = two.wps / results[kind].wps if results[kind].wps else 0
        typer.echo(f"scale-out {kind}: monitor run --workers {workers}: {two.wps:,.0f} windows/s = {ratio:.2f}x "
                   f"one single-core consumer, {ratio_default:.2f}x one default consumer")
        table.append((f"monitor run --workers {workers} vs 1 consumer on one core / default ({kind})",
                      f"{two.wps:,.0f} windows/s ({ratio:.2f}x / {ratio_default:.2f}x)"))

    e2e = min(r.wps for r in results.values())
    lat_cfg = topic_cfg("latency")
    url, db = database("sqlite", "latency")
    p50, p99 = latency(lat_cfg, env_for(lat_cfg, url), db, load, rate=max(50.0, e2e / 2), seconds=20)
    typer.echo(f"latency at {e2e / 2:,.0f} windows/s: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    table.append((f"produce -> durable decision at {e2e / 2:,.0f}/s", f"p50 {p50:.0f} ms, p99 {p99:.0f} ms"))

    cores = len(os.sched_getaffinity(0))
    threads = int(os.environ.get("MONITOR_MODEL__THREADS", "0")) or 1  # what `monitor run` uses (monitor.commands.app.run)
    scorer = Scorer(bundle)
    sample = np.stack([load.series[s][:window_len] for s in sorted(load.series)] * max(1, 20_000 // sensors))
    # One process's scoring-only rate, the denominator of e2e_share: the better of this process and a fresh
    # single-thread process (as a consumer is); one figure alone dips when the host is busy for a moment.
    scoring = max(scoring_wps(scorer, sample, threads), scoring_wps_processes(str(model_path), sample, 1))
    scoring_all = scoring_wps_processes(str(model_path), sample, cores)  # the scale-out: a 1-thread consumer per core
    flops = flops_per_window(bundle.module, window_len)
    gflops = matmul_gflops(cores)
    ceiling = gflops * 1e9 / flops
    core_gflops = matmul_gflops(1)  # per core: separates the LSTM kernel's efficiency from the 2-core scaling
    core_ceiling = core_gflops * 1e9 / flops
    checked = min(windows, 40_000)
    bf16_wps, same, bf16_skipped = bf16_check(lambda bf16: Scorer(bundle, bf16=bf16), sample, threads,
                                                 lambda s: alerts_of(s, load, checked))
    table.append((f"scoring only (fp32, batch {scorer.batch_size}, 1 process, {threads} threads; best of this one "
                   "and a fresh one)",
                  f"{scoring:,.0f} windows/s"))
    table.append((f"scoring only (fp32, {cores} single-thread processes at once)", f"{scoring_all:,.0f} windows/s"))
    if bf16_wps is None:
        typer.echo(f"bf16 autocast {bf16_skipped}")
        table.append(("scoring only, bf16 autocast (not used)", bf16_skipped))
    else:
        table.append(("scoring only, bf16 autocast (not used)",
                      f"{bf16_wps:,.0f} windows/s; alerts on {checked} windows "
                      f"{'identical' if same else 'DIFFERENT'} to fp32"))
    table.append((f"compute ceiling (fp32 matmul, {cores} threads)",
                  f"{ceiling:,.0f} windows/s ({gflops:.0f} GFLOP/s / {flops / 1e6:.2f} MFLOP per window)"))
    table.append(("compute ceiling per core (fp32 matmul, 1 thread)",
                  f"{core_ceiling:,.0f} windows/s ({core_gflops:.0f} GFLOP/s); 1-process scoring = "
                  f"{scoring / core_ceiling:.0%} of it"))
    scoring_wps_ = scoring_all  # against the ceiling of all cores: both use every core
    rss = max(r.rss_mb for r in results.values())

    typer.echo("\n| measure | figure |\n|---|---|")
    for name, value in table:
        typer.echo(f"| {name} | {value} |")
    typer.echo(f"load average {os.getloadavg()[0]:.1f} at the end")
    typer.echo(f"\nratios: e2e/naive = {e2e / naive.wps if naive.wps else 0:.1f}x, "
               f"scoring/ceiling = {scoring_wps_ / ceiling:.0%} (per core: {scoring / core_ceiling:.0%}; "
               f"{cores} processes / 1 = {scoring_all / scoring:.2f}x, {cores}-thread / 1-thread matmul = "
               f"{gflops / core_gflops:.2f}x)")
    typer.echo("scale-out: " + " ".join(f"workers{workers}_{k}_wps={v:.0f}" for k, v in scale.items()))
    share = e2e / scoring if scoring else 0.0  # one consumer end to end / its own scoring-only rate (1 process)
    one_core = min(r.wps for r in threaded.values())
    typer.echo(f"e2e_share of one consumer decoding in its own thread (one core): "
               f"{one_core / scoring if scoring else 0.0:.2f}; the default's {share:.2f} uses a second core to decode "
               f"when it has one ({par.reason})")
    typer.echo(f"bench: e2e_wps={e2e:.0f} naive_wps={naive.wps:.0f} scoring_wps={scoring_wps_:.0f} "
               f"ceiling_wps={ceiling:.0f} e2e_share={share:.2f} p99_ms={p99:.0f} rss_mb={rss:.0f}")


if __name__ == "__main__":
    app()
