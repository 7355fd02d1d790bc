"""`make fuzz`: a live run of the real consumer on the real broker, against SQLite and PostgreSQL, fed good windows
interleaved with a poison corpus, random mutations of valid records, and re-sent or late copies of windows
(``pipelines/faults/fuzz_corpus.py``).

Per database: a fresh topic, dead-letter topic, consumer group and database (SQLite file, or a fresh schema in the
PostgreSQL test database); one `python -m monitor run` subprocess (so a crash or restart is seen, not hidden), with
its liveness endpoint polled; a producer sending for ``--duration-s`` seconds. Then it asserts:

- no crash: the consumer process lived through the run and exits 0 on SIGTERM;
- no stall: /healthz never answered 503, no Kafka client was replaced, no batch was retried as not durable;
- lag back to 0: the offsets in the database and the group's Kafka offsets reach the end of every partition;
- every bad record is in the dead-letter topic, at its coordinates, with the reason the contract gives it;
- every good window applied exactly once: the alerts and per-sensor window counts in the database equal those of
  the same detector run offline over the topic (``pipelines.faults.kit.reference_run``, which applies the
  consumer's per-sensor order): a re-sent window is skipped, a late one is a dead letter ``out_of_order``;
- no non-finite number anywhere in the database.

``--decode-process true`` decodes every batch in the consumer's child process (``run.decode_process``), so the
poison crosses its pipes, and also asserts that the child started and never gave up on a batch.

Last line: ``fuzz: records=<n> bad=<n> dead_letters=<n> crashes=0 stalls=0 nonfinite=0``; exit 1 on any violation.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from kafka import KafkaAdminClient
from sqlalchemy import Engine, select, text

from monitor.core import contract
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.train import train
from monitor.ingest.kafka import ensure_topics, make_producer
from monitor.registry import model_files
from monitor.settings import KafkaSettings, ModelSettings
from monitor.store.database import init_schema, make_engine
from monitor.store.schema import Base
from pipelines.faults import kit
from pipelines.faults.fuzz_corpus import MAX_RECORD_BYTES, Item, Stream
from pipelines.synthetic import history_frame

FUZZ_MODEL = ModelSettings(window_len=16, stride=4, hidden_size=16, latent_size=8, epochs=6, batch_size=64, seed=5)
DEFAULT_PG_URL = "postgresql+psycopg://monitor:monitor@127.0.0.1:5433/monitor_test"
assert kit.MAX_RECORD_BYTES == MAX_RECORD_BYTES, "the consumers run with the limit the corpus is built for"


def say(text_: str) -> None:
    print(f"[fuzz] {text_}", file=sys.stderr, flush=True)


@dataclass
class Outcome:
    """One database's run: counts and the violated checks (empty: passed)."""

    database: str
    records: int = 0
    bad: int = 0
    dead_letters: int = 0
    crashes: int = 0
    stalls: int = 0
    nonfinite: int = 0
    failures: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class FuzzCase(kit.Case):
    """A chaos-suite case whose consumer also serves /metrics and /healthz on ``metrics_port``."""

    metrics_port: int = 0

    def env(self, model_path: Path, max_poll_records: int, fault: str | None = None) -> dict[str, str]:
        # The product's own session timeout and stall limit, not the chaos suite's shortened ones (4 s, 15 s: made
        # for fast fail-over there): a client replaced here is a stall of the product as shipped, not a slow
        # machine's pause being caught by a test setting.
        defaults = KafkaSettings.model_fields
        return {**super().env(model_path, max_poll_records, fault), "MONITOR_RUN__METRICS_PORT": str(self.metrics_port),
                "MONITOR_KAFKA__SESSION_TIMEOUT_MS": str(defaults["session_timeout_ms"].default),
                "MONITOR_KAFKA__STALL_TIMEOUT_S": str(defaults["stall_timeout_s"].default)}


class Producer(threading.Thread):
    """Sends the stream at ``rate_per_s`` for ``duration_s``; keeps every item with its (partition, offset)."""

    def __init__(self, cfg: KafkaSettings, stream: Stream, rate_per_s: float, duration_s: float) -> None:
        super().__init__(daemon=True)
        self.cfg, self.stream, self.rate, self.duration_s = cfg, stream, rate_per_s, duration_s
        self.sent: list[tuple[int, int, Item]] = []
        self.failed = 0
        self.error: str | None = None

    def run(self) -> None:
        try:
            producer = make_producer(self.cfg, max_request_size=2 * 1024 * 1024)
            futures = []
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < self.duration_s:
                item = self.stream.next()
                futures.append((producer.send(self.cfg.topic, key=item.key, value=item.value), item))
                n += 1
                ahead = n / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            producer.flush(timeout=60)
            for future, item in futures:
                try:
                    meta = future.get(timeout=30)
                    self.sent.append((meta.partition, meta.offset, item))
                except Exception:  # noqa: BLE001 - refused by the broker: not in the topic, not counted
                    self.failed += 1
            producer.close(timeout=10)
        except Exception as exc:  # noqa: BLE001 - reported as a failure of the run
            self.error = f"{exc.__class__.__name__}: {exc}"


def open_database(kind: str, work: Path, pg_url: str) -> tuple[str, Engine, str | None]:
    """(url, engine, PostgreSQL schema to drop afterwards) of a fresh, initialised database."""
    if kind == "sqlite":
        url = f"sqlite:///{work / f'fuzz-{uuid.uuid4().hex[:6]}.db'}"
        engine = make_engine(url)
        init_schema(engine)
        return url, engine, None
    schema = f"fuzz_{uuid.uuid4().hex[:10]}"
    admin = make_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    init_schema(engine)
    return url, engine, schema


def nonfinite_numbers(db: Engine) -> list[str]:
    """Every non-finite number stored in any table (columns and JSON documents), as 'table.column'."""
    found: list[str] = []
    with db.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                for column, value in row.items():
                    if not _finite(value):
                        found.append(f"{table.name}.{column}")
    return found


def _finite(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return _finite(json.loads(value))  # JSON kept as text: Python's parser reads NaN and Infinity
        except ValueError:
            return True
    return True


def fuzz_one(kind: str, bundle: ModelBundle, model_path: Path, work: Path, *, bootstrap: str, pg_url: str,
             duration_s: float, rate_per_s: float, seed: int, decode_process: bool | None = None) -> Outcome:
    out = Outcome(kind)
    tag = f"fuzz-{kind}-{uuid.uuid4().hex[:6]}"
    cfg = KafkaSettings(bootstrap_servers=bootstrap, topic=f"{tag}.windows", dlq_topic=f"{tag}.dlq",
                        group_id=f"{tag}-group")
    ensure_topics(cfg, [cfg.topic, cfg.dlq_topic], partitions=3)
    url, db, schema = open_database(kind, work, pg_url)
    case = FuzzCase(tag, cfg, url, db, metrics_port=kit.free_port())
    if decode_process is not None:  # at every batch (true), or never: the default uses it only while behind
        flag = "true" if decode_process else "false"
        case.extra_env.update({"MONITOR_RUN__DECODE_PROCESS": flag, "MONITOR_RUN__OVERLAP": flag})
    consumer = kit.Consumer(case, model_path, work, "consumer", max_poll_records=200)
    probe = kit.HealthProbe(case.metrics_port)
    try:
        if not consumer.wait_for("partitions assigned", 120):
            out.failures.append("the consumer did not join its group within 120 s")
        probe.start()
        stream = Stream(bundle.meta.window_len, tuple(bundle.meta.channels), sensors=6, rng=random.Random(seed))
        producer = Producer(cfg, stream, rate_per_s, duration_s)
        say(f"{kind}: sending for {duration_s:.0f} s at {rate_per_s:.0f} records/s to {cfg.topic}")
        producer.start()
        producer.join(timeout=duration_s + 300)
        if producer.error or producer.is_alive():
            out.failures.append(f"producer failed: {producer.error or 'did not finish'}")
        caught_up = _wait_lag_zero(case, 180, alive=lambda: consumer.proc.poll() is None)
        if consumer.proc.poll() is not None:
            out.crashes += 1
            out.failures.append(f"the consumer exited during the run (code {consumer.proc.returncode})")
        probe.stop.set()
        probe.join(timeout=10)
        _judge(out, case, bundle, producer, stream, caught_up)
        rc, took = consumer.terminate() if consumer.proc.poll() is None else (consumer.proc.returncode, 0.0)
        if rc != 0 and out.crashes == 0:
            out.crashes += 1
            out.failures.append(f"the consumer exited {rc} on SIGTERM (after {took:.1f} s)")
        replacements = [line for _, line in consumer.lines if "Kafka consumer stalled" in line]
        not_durable = [line for _, line in consumer.lines if "batch not durable" in line]
        out.stalls += probe.episodes + len(replacements) + len(not_durable) + (0 if caught_up else 1)
        if out.stalls:  # with the consumer's own words: a stall seen once in CI must be explainable from its log
            out.failures.append(f"stalls: /healthz 503 episodes={probe.episodes} {probe.detail[:2]} "
                                f"client replacements={len(replacements)} {replacements[:2]} "
                                f"batches not durable={len(not_durable)} {not_durable[:2]} caught up={caught_up}")
        out.facts.update(health_samples=probe.samples, log=str(consumer.log_path))
        if decode_process:  # every batch crossed the child's pipes, and the child never gave up on one
            started = [line for _, line in consumer.lines if "decode process started" in line]
            failed = [line for _, line in consumer.lines if "decode process failed" in line]
            out.facts["decode_process"] = "started" if started else "not started"
            if not started or failed:
                out.failures.append(f"decode process: {'not started' if not started else failed[0]}")
    finally:
        probe.stop.set()
        if consumer.proc.poll() is None:
            consumer.kill()
        db.dispose()
        _cleanup(cfg, pg_url, schema)
    return out


def _wait_lag_zero(case: kit.Case, timeout_s: float, alive: Callable[[], bool]) -> bool:
    """True once both the database offsets and the group's Kafka offsets reach every partition's end; False after
    ``timeout_s`` or as soon as the consumer is gone."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        try:
            if kit.lag(case) == (0, 0):
                return True
        except Exception:  # noqa: BLE001 - no offsets committed yet
            pass
        time.sleep(1.0)
    return False


def _judge(out: Outcome, case: kit.Case, bundle: ModelBundle, producer: Producer, stream: Stream,
           caught_up: bool) -> None:
    sent = producer.sent
    expected_bad = {(p, o): item.reason for p, o, item in sent if item.reason is not None}
    out.records, out.bad = len(sent), len(expected_bad)
    if not caught_up:
        db_lag, kafka_lag = kit.lag(case)
        out.failures.append(f"lag not back to 0: database {db_lag}, Kafka group {kafka_lag}")
    dead = kit.read_topic(case.kafka, case.kafka.dlq_topic)
    out.dead_letters = len(dead)
    got: dict[tuple[int, int], str] = {}
    for record in dead:
        headers = {k: v.decode(errors="replace") for k, v in record.headers}
        reason = headers.get("dlq.reason", "")
        if reason not in contract.ALL_REASONS:
            out.failures.append(f"dead letter without a known reason: {headers}")
            continue
        coords = (int(headers.get("dlq.partition", -1)), int(headers.get("dlq.offset", -1)))
        if coords in got:
            out.failures.append(f"record {coords} dead-lettered twice")
        got[coords] = reason
    missing = [c for c in expected_bad if c not in got]
    wrong = [(c, expected_bad[c], got[c]) for c in expected_bad if c in got and got[c] != expected_bad[c]]
    extra = [(c, got[c]) for c in got if c not in expected_bad]
    if missing:
        out.failures.append(f"{len(missing)} bad records not in the dead-letter topic, e.g. {missing[:3]}")
    if wrong:
        out.failures.append(f"{len(wrong)} dead letters with another reason (coords, expected, got): {wrong[:3]}")
    if extra:
        out.failures.append(f"{len(extra)} good windows dead-lettered: {extra[:3]}")
    ref = kit.reference_run(bundle, kit.read_topic(case.kafka, case.kafka.topic))
    good = sum(1 for _, _, item in sent if item.reason is None and item.kind != "resend")
    resent = sum(1 for _, _, item in sent if item.kind == "resend")
    if ref.good != good or ref.bad != expected_bad or ref.duplicates != resent:
        out.failures.append(f"the reference decoding disagrees with the producer: good {ref.good} vs {good}, "
                            f"bad {len(ref.bad)} vs {len(expected_bad)}, duplicates {ref.duplicates} vs {resent}")
    per_sensor = Counter(item.key.decode() for _, _, item in sent
                         if item.reason is None and item.kind != "resend" and item.key is not None)
    if ref.seen != dict(per_sensor):
        out.failures.append(f"windows judged per sensor offline {ref.seen} != good windows sent {dict(per_sensor)}")
    verdict = kit.compare(ref, case.db)  # the live consumer's alerts and windows judged per sensor == offline
    if verdict.lost or verdict.duplicated:
        out.failures.append(f"windows/alerts not applied exactly once: lost {verdict.lost} duplicated "
                            f"{verdict.duplicated}: {verdict.notes[:5]}")
    bad_cells = nonfinite_numbers(case.db)
    out.nonfinite = len(bad_cells)
    if bad_cells:
        out.failures.append(f"non-finite numbers stored: {Counter(bad_cells).most_common(5)}")
    if stream.contract_holes:
        out.failures.append(f"poison the contract accepts: {sorted(set(stream.contract_holes))}")
    kinds = Counter(item.kind.split(":")[0] for _, _, item in sent)
    reasons = Counter(item.reason for _, _, item in sent if item.reason)
    out.facts.update(kinds=dict(kinds), reasons=dict(reasons), alerts=len(ref.alerts), good=good,
                     valid_mutations_skipped=stream.still_valid, producer_failed=producer.failed)


def _cleanup(cfg: KafkaSettings, pg_url: str, schema: str | None) -> None:
    try:
        admin = KafkaAdminClient(bootstrap_servers=cfg.bootstrap_servers.split(","))
        try:
            admin.delete_topics([cfg.topic, cfg.dlq_topic])
        finally:
            admin.close()
    except Exception as exc:  # noqa: BLE001 - cleanup only
        say(f"topics not deleted: {exc}")
    if schema is not None:
        admin_db = make_engine(pg_url)
        try:
            with admin_db.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        finally:
            admin_db.dispose()


def run(databases: list[str], *, duration_s: float, rate_per_s: float, seed: int, bootstrap: str, pg_url: str,
        model: Path | None, workdir: Path | None, decode_process: bool | None = None) -> list[Outcome]:
    """Every database in turn; the outcomes (also printed). ``decode_process``: the consumer's
    ``run.decode_process`` and ``run.overlap`` (None: the product's default, ``auto``)."""
    work = workdir or Path(tempfile.mkdtemp(prefix="monitor-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    if model is None:
        say("training a small model (window 16, 8 channels)")
        bundle = train(history_frame(4000, sensors=4), FUZZ_MODEL, version="fuzz-1", sensors=4)
        model = model_files.save(bundle, work / "model.pt")
    bundle = model_files.load(model)
    outcomes = []
    for i, kind in enumerate(databases):
        outcome = fuzz_one(kind, bundle, model, work, bootstrap=bootstrap, pg_url=pg_url,
                           duration_s=duration_s, rate_per_s=rate_per_s, seed=seed + i, decode_process=decode_process)
        status = "passed" if not outcome.failures else "FAILED"
        say(f"{kind}: {status}: records={outcome.records} bad={outcome.bad} dead_letters={outcome.dead_letters} "
            f"crashes={outcome.crashes} stalls={outcome.stalls} nonfinite={outcome.nonfinite} {outcome.facts}")
        for failure in outcome.failures:
            say(f"  violated: {failure}")
        outcomes.append(outcome)
    return outcomes


def summary_line(outcomes: list[Outcome]) -> str:
    """``fuzz: records=<n> bad=<n> dead_letters=<n> crashes=<n> stalls=<n> nonfinite=<n>`` over all databases."""
    names = ("records", "bad", "dead_letters", "crashes", "stalls", "nonfinite")
    return "fuzz: " + " ".join(f"{name}={sum(getattr(o, name) for o in outcomes)}" for name in names)


def main(
    duration_s: Annotated[float, typer.Option(help="Seconds of sending per database.")] = 120.0,
    rate: Annotated[float, typer.Option(help="Records per second.")] = 100.0,
    db: Annotated[str, typer.Option(help="Comma-separated: sqlite, postgresql.")] = "sqlite,postgresql",
    seed: Annotated[int, typer.Option(help="Seed of the stream (records, corpus picks, mutations).")] = 0,
    bootstrap: Annotated[str, typer.Option(help="Kafka bootstrap servers.")] = os.environ.get(
        "MONITOR_TEST_KAFKA", "127.0.0.1:9092"),
    pg_url: Annotated[str, typer.Option(help="PostgreSQL database (a fresh schema is made in it).")] = os.environ.get(
        "MONITOR_TEST_PG_URL", DEFAULT_PG_URL),
    model: Annotated[Path | None, typer.Option(help="Model artifact (window 16 or any); default: train one.")] = None,
    workdir: Annotated[Path | None, typer.Option(help="Keep logs and SQLite files here.")] = None,
    decode_process: Annotated[str, typer.Option(
        help="The consumer's run.decode_process and run.overlap: auto (the default: a child only while behind, "
        "which a fuzzed consumer rarely is), true (every batch through the child's pipes) or false.")] = "auto",
) -> None:
    """Fuzz the live consumer on the real broker and databases; print one summary line."""
    kinds = [k.strip() for k in db.split(",") if k.strip()]
    unknown = set(kinds) - {"sqlite", "postgresql"}
    if unknown or not kinds:
        raise typer.BadParameter(f"--db: sqlite and/or postgresql, not {sorted(unknown) or db!r}")
    if decode_process not in ("auto", "true", "false"):
        raise typer.BadParameter(f"--decode-process: auto, true or false, not {decode_process!r}")
    outcomes = run(kinds, duration_s=duration_s, rate_per_s=rate, seed=seed, bootstrap=bootstrap, pg_url=pg_url,
                   model=model, workdir=workdir,
                   decode_process=None if decode_process == "auto" else decode_process == "true")
    print(summary_line(outcomes), flush=True)
    if any(o.failures for o in outcomes):
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
