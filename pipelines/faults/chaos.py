"""`make chaos`: the fault suite of the streaming engine, on a PRIVATE Kafka broker and PostgreSQL cluster.

Each scenario uses a fresh topic, consumer group and database schema, runs real `python -m monitor run`
processes, injects its fault, and compares the database with the expected alert set E: the same detector
run offline (the pure Engine) over the records that are actually in the topic. A scenario passes when no
expected alert is missing or different (lost), no extra alert exists (duplicated), every sensor's threshold
has seen exactly its windows once (lost / duplicated windows), every sensor's whole stored state equals the
offline run's, lag is 0 and its own checks hold.

    python -m pipelines.faults.chaos            # full suite (>= 10 kill iterations, 30 s database outage)
    python -m pipelines.faults.chaos --quick    # short form, run by `make test` (tests/integration/test_faults_quick.py)
    python -m pipelines.faults.chaos --quick --self-test   # then scenario 9 with the fences broken: must FAIL

Last line: ``faults: scenarios=<n> passed=<n> kills=<n> lost=<n> duplicated=<n> seed=<n>`` (lost/duplicated: alerts +
windows; kills: processes killed with SIGKILL; seed: of this run's random choices, new each run unless given).
"""

from __future__ import annotations

import os
import random
import signal
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import orjson
import typer

from monitor.core import contract
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.train import train
from monitor.registry import model_files
from monitor.settings import ModelSettings
from pipelines.faults import kit
from pipelines.faults.blackhole import BlackholeProxy
from pipelines.faults.kit import Case, Consumer, PacedProducer, PrivateServices, Verdict, say
from pipelines.synthetic import fleet_windows, history_frame, make_fleet

FULL_ONLY = ("13", "15")  # not in --quick: the PostgreSQL and Kafka black holes (tests/integration/
# test_shutdown_blackhole.py keeps the SIGTERM part of both in `make test`)
KILL_POINTS = ("mid_batch", "before_db_commit", "in_db_commit", "after_db_commit", "after_kafka_commit")


@dataclass
class Result:
    name: str
    verdict: Verdict = field(default_factory=Verdict)
    checks: dict[str, bool] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    kills: int = 0  # processes killed with SIGKILL (at injected points or from outside)

    @property
    def passed(self) -> bool:
        return all(self.checks.values()) and self.verdict.lost == 0 and self.verdict.duplicated == 0


@dataclass
class Suite:
    services: PrivateServices
    bundle: ModelBundle
    model_path: Path
    log_dir: Path
    quick: bool
    rng: random.Random
    break_fence: bool = False  # the self-test: every consumer commits stale batches (the suite must fail)

    def windows(self, case: Case, sensors: int, per_sensor: int, seed: int) -> list[tuple[bytes, bytes | None]]:
        """A synthetic fleet's windows as records; the anomalies injected into it become ``case.injected``."""
        wl = self.bundle.meta.window_len
        fleet = make_fleet(sensors, wl * per_sensor, seed=seed, length=4 * wl, per_sensor=2)
        case.injected = list(fleet.injected)
        return [(sid.encode(), contract.encode_values(sid, start, end, fleet.channels, values))
                for sid, start, end, values in fleet_windows(fleet, wl)]

    def consumer(self, case: Case, label: str, **kwargs: Any) -> Consumer:
        return Consumer(case, self.model_path, self.log_dir, label, **kwargs)

    def drain(self, case: Case, label: str = "drain") -> int:
        """A clean consumer run until idle; returns its exit code."""
        return self.consumer(case, label, idle_exit_s=4.0, max_poll_records=200).wait(180)

    def judge(self, case: Case, result: Result) -> Result:
        ref = kit.reference_run(self.bundle, kit.read_topic(case.kafka, case.kafka.topic))
        result.verdict = kit.compare(ref, case.db)
        db_lag, kafka_lag = kit.lag(case)
        result.checks["lag 0 (database offsets)"] = db_lag == 0
        result.checks["lag 0 (Kafka group offsets)"] = kafka_lag == 0
        result.checks["E has alerts"] = len(ref.alerts) > 0
        result.checks["every sensor's whole state equals the reference run's"] = result.verdict.state_mismatches == 0
        # the ground truth as well: a bug the engine and the reference run share cannot hide behind their agreement
        found, injected = kit.injected_found(case, tolerance_s=self.bundle.meta.window_len)
        result.checks["every injected anomaly is found (ground truth)"] = found == injected
        result.facts["injected_found"] = f"{found}/{injected}"
        result.facts.update(expected_alerts=len(ref.alerts), windows=ref.good, lag=(db_lag, kafka_lag))
        return result


# -- the scenarios ---------------------------------------------------------------------------------------------
def s1_kill_consumer(suite: Suite) -> Result:
    """kill -9 of the consumer at injected points, with restarts."""
    result = Result("1 kill -9 consumer at injected points")
    case = kit.new_case("kill", suite.services)
    items = suite.windows(case, 6, 120 if suite.quick else 200, seed=21)
    chunks = [items[i : i + len(items) // 3] for i in range(0, len(items), len(items) // 3)]
    kit.produce(case.kafka, chunks.pop(0))
    want = 5 if suite.quick else 10
    kills: dict[str, int] = {}
    others: list[int] = []
    for it in range(3 * want):
        if sum(kills.values()) >= want:
            break
        point = KILL_POINTS[it % len(KILL_POINTS)] if it < len(KILL_POINTS) else suite.rng.choice(KILL_POINTS)
        fault = f"{point}:{suite.rng.uniform(0.25, 0.6):.2f}:kill:{suite.rng.randrange(10**6)}"
        rc = suite.consumer(case, f"it{it}", fault=fault, idle_exit_s=3.0).wait(120)
        if rc == -9:
            kills[point] = kills.get(point, 0) + 1
        else:
            if rc != 0:  # a crash, or a hang the harness killed (999): never "just no kill"
                others.append(rc)
            if chunks:
                kit.produce(case.kafka, chunks.pop(0))
    for chunk in chunks:
        kit.produce(case.kafka, chunk)
    result.checks["final run exits cleanly"] = suite.drain(case) == 0
    result.checks[f">= {want} kills"] = sum(kills.values()) >= want
    result.checks["every run ended by its kill or cleanly when idle"] = not others
    result.facts.update(kills=kills, other_exits=others)
    result.kills = sum(kills.values())
    return suite.judge(case, result)


def s2_kill_broker(suite: Suite) -> Result:
    """kill -9 of the broker during production, restart on the same data directory."""
    result = Result("2 kill -9 broker during production")
    case = kit.new_case("broker", suite.services)
    c = suite.consumer(case, "live", max_poll_records=100)
    result.checks["consumer joined"] = c.wait_for("partitions assigned", 90)
    items = suite.windows(case, 6, 80 if suite.quick else 150, seed=22)
    producer = PacedProducer(case.kafka, items, rate_per_s=80)
    producer.start()
    time.sleep(len(items) / 80 / 3)
    suite.services.kill_broker()
    killed = time.monotonic()
    time.sleep(2.0)
    suite.services.start_broker()
    result.facts["broker down s"] = round(time.monotonic() - killed, 1)
    producer.join(timeout=300)
    result.checks["consumer resumed by itself"] = kit.wait_caught_up(case, 180) and c.proc.poll() is None
    rc, _ = c.terminate()
    result.checks["consumer exits cleanly"] = rc == 0
    stored = {(p, o): v for p, o, v in producer.acked}
    in_topic = {(r.partition, r.offset): r.value for r in kit.read_topic(case.kafka, case.kafka.topic)}
    acked_lost = sum(1 for k, v in stored.items() if in_topic.get(k) != v)
    result.facts.update(acked=len(stored), unacked=producer.failed, acked_lost=acked_lost,
                        topic_duplicates=len(in_topic) - len(set(in_topic.values())))
    result.checks["0 acknowledged windows lost"] = acked_lost == 0
    result.verdict.lost_windows += acked_lost
    return suite.judge(case, result)


def s3_database_outage(suite: Suite) -> Result:
    """PostgreSQL stopped under load; no offset committed past durable output."""
    outage_s = 10.0 if suite.quick else 30.0
    result = Result(f"3 PostgreSQL stopped {outage_s:.0f} s under load")
    case = kit.new_case("pgdown", suite.services)
    c = suite.consumer(case, "live", max_poll_records=50)
    result.checks["consumer joined"] = c.wait_for("partitions assigned", 90)
    rate = 25.0
    items = suite.windows(case, 6, int((outage_s + 20) * rate / 6), seed=23)
    producer = PacedProducer(case.kafka, items, rate_per_s=rate)
    producer.start()
    time.sleep(6.0)
    suite.services.stop_postgres()
    stopped = time.monotonic()
    samples: list[dict[int, int | None]] = []
    time.sleep(1.0)
    while time.monotonic() - stopped < outage_s:
        samples.append(kit.group_committed(case.kafka))
        time.sleep(1.0)
    suite.services.start_postgres()
    after = kit.db_offsets(case)
    producer.join(timeout=300)
    result.checks["consumer resumed by itself"] = kit.wait_caught_up(case, 180) and c.proc.poll() is None
    rc, _ = c.terminate()
    result.checks["consumer exits cleanly"] = rc == 0
    moved = sum(1 for a, b in zip(samples, samples[1:]) if a != b)
    past = sum(1 for s in samples for p, o in s.items() if o is not None and o > after.get(p, 0))
    result.checks["no Kafka offset moved during the outage"] = moved == 0 and len(samples) > 0
    result.checks["no offset committed past durable output"] = past == 0
    retries = sum(1 for _, line in c.lines if "database still unreachable" in line or "retrying in" in line)
    result.checks["consumer retried with backoff"] = retries > 0
    result.facts.update(samples=len(samples), retry_logs=retries)
    return suite.judge(case, result)


def poison_records(keys: list[bytes], template: dict[str, Any]) -> list[tuple[bytes, bytes | None, str]]:
    """One or more records per dead-letter reason, with the reason each must get."""
    def doc(**change: Any) -> bytes:
        return orjson.dumps({**template, **change})

    rows = template["values"]
    nan_text = doc().replace(b"[[", b"[[NaN,", 1)
    foreign = next(k for k in keys if k != str(template["sensor_id"]).encode())  # another sensor's key
    return [
        (keys[0], b"\xff\xfe\x00 not utf-8", contract.NOT_UTF8),
        (keys[1], b'{"sensor_id": "broken"', contract.BAD_JSON),
        (keys[2], b"[1, 2, 3]", contract.SCHEMA),
        (keys[3], orjson.dumps({"sensor_id": "sensor-x"}), contract.SCHEMA),
        (keys[4], doc(values=rows + rows[:3]), contract.SHAPE),
        (keys[5], doc(channels=[f"other{i}" for i in range(len(template["channels"]))]), contract.CHANNELS),
        (keys[0], nan_text, contract.NON_FINITE),
        (keys[1], doc(values=[[12345.5] + r[1:] for r in rows]).replace(b"12345.5", b"1e999"), contract.NON_FINITE),
        (keys[2], None, contract.NULL_VALUE),
        (keys[3], doc(values=[[None] + r[1:] for r in rows]), contract.NULL_VALUE),
        (keys[4], b"{" + b" " * (kit.MAX_RECORD_BYTES + 10) + b"}", contract.OVERSIZED),
        (keys[5], doc(window_start="yesterday"), contract.BAD_TIME),
        (foreign, doc(), contract.KEY_MISMATCH),
    ]


def with_poison(items: list[tuple[bytes, bytes | None]]
                ) -> tuple[list[tuple[bytes, bytes | None]], list[tuple[bytes, bytes | None, str]]]:
    """``items`` with one or more poison records per dead-letter reason spread evenly among them, and the poison."""
    template = orjson.loads(items[0][1])  # type: ignore[arg-type]
    template["values"] = [list(map(float, r)) for r in template["values"]]
    poison = poison_records(sorted({k for k, _ in items}), template)
    mixed: list[tuple[bytes, bytes | None]] = list(items)
    for i, (key, value, _) in enumerate(poison):
        mixed.insert((i + 1) * len(items) // (len(poison) + 1), (key, value))
    return mixed, poison


def s4_poison(suite: Suite) -> tuple[Result, Case]:
    """Poison records of every kind mixed into a stream."""
    result = Result("4 poison records of every kind")
    case = kit.new_case("poison", suite.services)
    items = suite.windows(case, 6, 60 if suite.quick else 120, seed=24)
    mixed, poison = with_poison(items)
    coords = kit.produce(case.kafka, mixed)
    where = {coords[mixed.index((k, v))]: reason for k, v, reason in poison}
    result.checks["consumer run exits cleanly"] = suite.drain(case) == 0
    dead = kit.read_topic(case.kafka, case.kafka.dlq_topic)
    got = {(int(h["dlq.partition"]), int(h["dlq.offset"])): h["dlq.reason"]
           for h in ({k: v.decode() for k, v in r.headers} for r in dead)}
    result.checks["DLQ count == injected"] = len(dead) == len(poison)
    result.checks["DLQ reason and coordinates of each"] = got == where
    result.checks["every reason covered"] = set(where.values()) == set(contract.REASONS)
    result.facts.update(injected=len(poison), dead_letters=len(dead))
    return suite.judge(case, result), case


def s5_replay(suite: Suite, case: Case) -> Result:
    """Full replay: group offsets reset to earliest; the database must not change."""
    result = Result("5 full replay (group offsets reset to earliest)")
    before = kit.dump_tables(case.db)
    kit.reset_group_to_earliest(case.kafka)
    result.checks["Kafka group offsets reset"] = all(o == 0 for o in kit.group_committed(case.kafka).values())
    c = suite.consumer(case, "replay", idle_exit_s=4.0, max_poll_records=200)
    result.checks["replay run exits cleanly"] = c.wait(120) == 0
    result.checks["database content unchanged"] = kit.dump_tables(case.db) == before
    result.facts["rows"] = {t: len(v) for t, v in before.items()}
    result.facts["reprocessed"] = c.stat("consumed")
    return suite.judge(case, result)


def s8_real_replay(suite: Suite) -> Result:
    """A real replay of stored history: the stored offsets and sensor states are deleted (the alerts kept) and the
    topic is read again from the start in batches of 1, 7 and 2,000 records. Every pass reprocesses every record
    and leaves the same alerts (ids included; only ``updated_at`` moves) and the same state of every sensor as
    the first pass; how many evidence rows differ is reported (pruning follows batch boundaries)."""
    result = Result("8 real replay (offsets and state cleared; batches of 1, 7, 2000)")
    case = kit.new_case("rereplay", suite.services)
    kit.produce(case.kafka, suite.windows(case, 6, 50 if suite.quick else 120, seed=28))
    total = sum(kit.end_offsets(case.kafka).values())
    result.checks["first pass exits cleanly"] = suite.drain(case) == 0
    first = kit.stored_output(case.db)
    reprocessed = []
    notes: list[str] = []
    evidence_diff: dict[int, int] = {}
    for size in (1, 7, 2000):
        kit.clear_progress(case)
        c = suite.consumer(case, f"replay{size}", idle_exit_s=4.0, max_poll_records=size)
        result.checks[f"batches of {size}: exits cleanly"] = c.wait(300) == 0
        reprocessed.append(c.stat("consumed"))
        result.checks[f"batches of {size}: every record reprocessed"] = reprocessed[-1] == total
        again = kit.stored_output(case.db)
        for part in ("alerts", "states"):
            diff = kit.state_differences(first[part], again[part])
            result.checks[f"batches of {size}: the same {part}"] = not diff
            notes += [f"batches of {size}, {part}: {d}" for d in diff[:3]]
        # Evidence rows are a fact, not a check: in one CI run all three passes left evidence rows that differ from
        # the first pass (not reproduced here; likely cause: which middle windows of a long alert survive pruning
        # follows batch boundaries, EvidenceLog.prune runs per batch). The alerts and states above must match.
        evidence_diff[size] = len(kit.state_differences(first["evidence"], again["evidence"]))
    result.facts.update(records=total, reprocessed=reprocessed, alerts=len(first["alerts"]),
                        evidence_rows_differing=evidence_diff)
    suite.judge(case, result)
    result.verdict.notes += notes  # after the judge, which sets the verdict
    return result


def s6_rebalance_churn(suite: Suite) -> Result:
    """3 consumers join and leave under load, one is kill -9'd."""
    result = Result("6 rebalance churn (join, leave, kill -9)")
    case = kit.new_case("churn", suite.services)
    rate = 40.0
    items = suite.windows(case, 6, 100 if suite.quick else 180, seed=26)
    producer = PacedProducer(case.kafka, items, rate_per_s=rate)
    a = suite.consumer(case, "a")
    # Churn starts from running members: on a loaded machine a process may take seconds to start, and a
    # SIGTERM before its handlers exist is a kill, not the clean leave this scenario means to test.
    result.checks["first member joined"] = a.wait_for("partitions assigned", 90)
    producer.start()
    step = len(items) / rate / 6
    time.sleep(step)
    b = suite.consumer(case, "b")
    time.sleep(step)
    c = suite.consumer(case, "c")
    result.checks["joiners started"] = b.wait_for("consuming", 90) and c.wait_for("consuming", 90)
    time.sleep(step)
    rc_a, exit_a = a.terminate()
    time.sleep(step / 2)
    b.kill()
    d = suite.consumer(case, "d")
    result.checks["replacement started"] = d.wait_for("consuming", 90)
    producer.join(timeout=300)
    result.checks["group caught up"] = kit.wait_caught_up(case, 180)
    rc_c, _ = c.terminate()
    rc_d, _ = d.terminate()
    result.checks["leavers and stayers exit cleanly"] = rc_a == 0 and rc_c == 0 and rc_d == 0
    fenced = sum(1 for p in (a, b, c, d) for _, line in p.lines if "batch dropped" in line)
    result.facts.update(fenced_batches=fenced, a_exit_s=round(exit_a, 1))
    return suite.judge(case, result)


def s7_sigterm(suite: Suite) -> Result:
    """SIGTERM mid-batch: clean exit within 10 s; after restart alerts == E."""
    result = Result("7 SIGTERM mid-batch")
    case = kit.new_case("sigterm", suite.services)
    kit.produce(case.kafka, suite.windows(case, 6, 100 if suite.quick else 160, seed=27))
    exits: list[float] = []
    codes: list[int] = []
    for it in range(2 if suite.quick else 4):
        c = suite.consumer(case, f"term{it}", fault=f"mid_batch:0.3:term:{suite.rng.randrange(10**6)}",
                           idle_exit_s=3.0, max_poll_records=40)
        codes.append(c.wait(60))
        fired = c.first("FAULT term at mid_batch")
        if fired is not None and c.ended_at is not None:
            exits.append(c.ended_at - fired)
    c = suite.consumer(case, "external", max_poll_records=40)
    if c.wait_for("partitions assigned", 90):
        time.sleep(suite.rng.uniform(0.2, 1.5))
    rc, took = c.terminate()
    codes.append(rc)
    exits.append(took)
    result.checks["every SIGTERM exit code 0"] = all(code == 0 for code in codes)
    result.checks["signals landed mid-batch"] = len(exits) >= 2
    result.checks["every exit within 10 s"] = max(exits) < 10.0
    result.checks["final run exits cleanly"] = suite.drain(case) == 0
    result.facts["exit_s"] = [round(e, 2) for e in exits]
    return suite.judge(case, result)


def s9_zombie(suite: Suite, *, sqlite: bool) -> Result:
    """A zombie: a member paused (SIGSTOP) in the middle of a batch for longer than the session timeout, its
    partitions taken over by a new member that catches up, then resumed (SIGCONT). The zombie's batch must be
    refused, and the database must equal the offline reference run.

    SQLite (the default store): paused between its dead-letter flush and its database transaction; on resuming its
    commit finds the stored offsets moved on (the fence) and drops the batch. PostgreSQL: paused inside the batch
    transaction, holding the offset rows' locks; the server ends the idle transaction (idle-in-transaction timeout
    = the statement timeout, 3 s here) so the new owner is not blocked, and the resumed zombie's commit fails.
    A paused SQLite writer inside its transaction would hold the file's write lock for as long as it stays paused
    (SQLite has no server to end it), so SQLite is paused before its transaction."""
    where = "before_db_commit" if sqlite else "in_db_commit"
    store = "SQLite" if sqlite else "PostgreSQL"
    result = Result(f"{9 if sqlite else 10} zombie on {store} (paused at {where} past the session timeout)")
    case = kit.new_case("zombie-lite" if sqlite else "zombie-pg", suite.services, sqlite=sqlite)
    if not sqlite:
        case.extra_env["MONITOR_DB__STATEMENT_TIMEOUT_S"] = "3"
    items, poison = with_poison(suite.windows(case, 6, 60 if suite.quick else 120, seed=29 if sqlite else 30))
    coords = kit.produce(case.kafka, items)
    broken = ",break_fence" if suite.break_fence else ""
    # batches of 25 records: ~15 of them, each with an even chance to be the one the zombie holds
    zombie = suite.consumer(case, "zombie", fault=f"{where}:0.5:stop:{suite.rng.randrange(10**6)}{broken}")
    result.checks["the member was paused mid-batch"] = zombie.wait_stopped(120)
    paused = time.monotonic()
    heir = suite.consumer(case, "heir", fault="break_fence" if suite.break_fence else None)
    result.checks["the new owner caught up while the zombie stayed paused"] = (
        kit.wait_caught_up(case, 120) and zombie.stopped())
    result.facts["paused_s"] = round(time.monotonic() - paused, 1)
    zombie.resume()
    refused = ("batch dropped", "batch not durable")
    result.checks["the zombie's batch was refused"] = zombie.wait_for(refused, 15)
    result.checks["both caught up after the zombie came back"] = kit.wait_caught_up(case, 120)
    rc_zombie, _ = zombie.terminate()
    rc_heir, _ = heir.terminate()
    result.checks["both exit cleanly on SIGTERM"] = rc_zombie == 0 and rc_heir == 0
    where_poison = {coords[items.index((k, v))]: reason for k, v, reason in poison}
    dead = [{k: v.decode() for k, v in r.headers} for r in kit.read_topic(case.kafka, case.kafka.dlq_topic)]
    got = [((int(h["dlq.partition"]), int(h["dlq.offset"])), h["dlq.reason"]) for h in dead]
    result.checks["dead letters set-equal to the poison, with their reasons"] = set(got) == set(where_poison.items())
    result.checks["dead-letter duplicates bounded by the zombie's batch"] = len(got) - len(set(got)) <= len(poison)
    result.facts.update(dead_letters=len(got), dead_letter_duplicates=len(got) - len(set(got)),
                        refusal=next((line.split("monitor.consumer.runner: ")[-1][:100] for _, line in zombie.lines
                                      if any(r in line for r in refused)), None))
    return suite.judge(case, result)


def s11_random_kills(suite: Suite) -> Result:
    """kill -9 from outside at random moments, by the hundred: half on SQLite, half on PostgreSQL; each run one
    consumer or ``--workers 2`` (the supervisor or one of its workers killed), ``run.overlap`` off or on (on: every
    second run with ``run.decode_process``, whose child dies with its consumer), batches
    of 1 to 200 records; a chunk of new records (poison among them) before each run. Every killed process must
    end by the kill, a supervisor whose worker was killed with 137, the workers of a killed supervisor by
    themselves; then one clean run drains the topic and the database must equal the offline reference run."""
    want = 4 if suite.quick else 100
    result = Result(f"11 kill -9 from outside at random moments ({want} kills, SQLite + PostgreSQL, "
                    "1 or 2 workers, overlap off/on)")
    rng = suite.rng
    unexpected: list[str] = []
    orphans = 0
    by_config: dict[str, int] = {}
    dead_ok = True
    duplicates = poisoned = 0
    for sqlite in (True, False):
        case = kit.new_case("rkill-lite" if sqlite else "rkill-pg", suite.services, sqlite=sqlite)
        runs = want // 2
        items, poison = with_poison(suite.windows(case, 6, max(40, 4 * runs), seed=31 if sqlite else 32))
        poisoned = max(poisoned, len(poison))
        chunk = -(-len(items) // runs)
        coords: list[tuple[int, int]] = []
        for i in range(runs):
            coords += kit.produce(case.kafka, items[i * chunk:(i + 1) * chunk])
            workers, overlap = rng.choice((1, 2)), rng.choice((False, True))
            decode = overlap and i % 2 == 1  # run.decode_process (a child per consumer); no draw: the sequence stays
            config = (f"{'sqlite' if sqlite else 'pg'} workers={workers} overlap={'on' if overlap else 'off'}"
                      f"{' decode-process' if decode else ''}")
            c = suite.consumer(case, f"r{i}", workers=workers, max_poll_records=rng.choice((1, 7, 25, 200)),
                               env={"MONITOR_RUN__OVERLAP": "true" if overlap else "false",
                                    "MONITOR_RUN__DECODE_PROCESS": "true" if decode else "false"})
            if not c.wait_for("partitions assigned", 90):
                unexpected.append(f"{config}: run {i} never joined (exit {c.proc.poll()})")
            time.sleep(rng.uniform(0.0, 1.5))
            workers_of = c.children()
            target = rng.choice([c.proc.pid, *workers_of]) if workers > 1 else c.proc.pid
            if c.proc.poll() is not None:
                unexpected.append(f"{config}: run {i} exited {c.proc.returncode} before its kill")
                continue
            os.kill(target, signal.SIGKILL)
            result.kills += 1
            by_config[config] = by_config.get(config, 0) + 1
            rc = c.wait(30)
            want_rc = -signal.SIGKILL if target == c.proc.pid else 128 + signal.SIGKILL
            if rc != want_rc:
                unexpected.append(f"{config}: run {i} ended {rc}, expected {want_rc}")
            deadline = time.monotonic() + 30  # a killed supervisor's workers stop by themselves (SIGTERM, clean)
            while any(kit.alive(pid) for pid in workers_of) and time.monotonic() < deadline:
                time.sleep(0.2)
            for pid in workers_of:
                if kit.alive(pid):
                    orphans += 1
                    os.kill(pid, signal.SIGKILL)
        result.checks[f"{'SQLite' if sqlite else 'PostgreSQL'}: final run exits cleanly"] = suite.drain(case) == 0
        where = {coords[items.index((k, v))]: reason for k, v, reason in poison}
        dead = [{k: v.decode() for k, v in r.headers} for r in kit.read_topic(case.kafka, case.kafka.dlq_topic)]
        got = [((int(h["dlq.partition"]), int(h["dlq.offset"])), h["dlq.reason"]) for h in dead]
        # exactly the poison: out_of_order is judged from the sensor's state, and a batch whose fence no longer
        # holds is dropped before it sends one (monitor.consumer.batches.make_durable; once seen in CI before that fix)
        dead_ok = dead_ok and set(got) == set(where.items())
        duplicates += len(got) - len(set(got))
        part = Result(result.name)
        suite.judge(case, part)
        result.verdict.lost_alerts += part.verdict.lost_alerts
        result.verdict.extra_alerts += part.verdict.extra_alerts
        result.verdict.lost_windows += part.verdict.lost_windows
        result.verdict.duplicated_windows += part.verdict.duplicated_windows
        result.verdict.state_mismatches += part.verdict.state_mismatches
        result.verdict.notes += part.verdict.notes
        for check, ok in part.checks.items():
            result.checks[f"{'SQLite' if sqlite else 'PostgreSQL'}: {check}"] = ok
    result.checks[f">= {want} kills"] = result.kills >= want
    result.checks["every process ended as its kill says (no crash, no hang)"] = not unexpected
    result.checks["no worker outlived its killed supervisor"] = orphans == 0
    result.checks["dead letters set-equal to the poison, with their reasons"] = dead_ok
    # at-least-once: a kill makes a batch be read again, so its letters may go twice; never more than every
    # poison record once more per kill (a loop that re-sends without end would pass set-equality, not this)
    result.checks["dead-letter duplicates bounded (at most each poison record once more per kill)"] = (
        duplicates <= result.kills * poisoned)
    result.facts.update(kills=by_config, unexpected=unexpected[:5], orphans=orphans, dead_letter_duplicates=duplicates)
    return result


@dataclass
class Watched:
    """A consumer whose ``/healthz`` is polled, a second member to stop with SIGTERM mid-fault, and a producer."""

    live: Consumer
    leaver: Consumer
    probe: kit.HealthProbe
    producer: PacedProducer


def watched_under_load(suite: Suite, case: Case, result: Result, seconds: float, seed: int,
                       poisoned: bool = False) -> tuple[Watched, list[tuple[bytes, bytes | None, str]]]:
    """Start the pair (the watched one with a metrics port), wait for both to join, then produce 25 records/s for
    about ``seconds`` (with poison records of every kind among them when ``poisoned``; returned)."""
    port = kit.free_port()
    live = suite.consumer(case, "live", max_poll_records=50, env={"MONITOR_RUN__METRICS_PORT": str(port)})
    leaver = suite.consumer(case, "leaver", max_poll_records=50)
    result.checks["consumers joined"] = (live.wait_for("partitions assigned", 90)
                                         and leaver.wait_for("partitions assigned", 90))
    probe = kit.HealthProbe(port)
    probe.start()
    rate = 25.0
    items = suite.windows(case, 6, int(seconds * rate / 6), seed=seed)
    items, poison = with_poison(items) if poisoned else (items, [])
    producer = PacedProducer(case.kafka, items, rate_per_s=rate)
    producer.start()
    return Watched(live, leaver, probe, producer), poison


def through_fault(w: Watched, result: Result, started: float, seconds: float, what: str) -> None:
    """While the fault lasts (``seconds`` from ``started``): a third of the way in the leaver gets SIGTERM and must
    exit 0 within 10 s; returns when the fault's time is up."""
    time.sleep(max(0.0, started + seconds / 3 - time.monotonic()))
    rc, took = w.leaver.terminate()
    result.checks[f"SIGTERM during {what}: exit 0 within 10 s"] = rc == 0 and took <= 10.0
    result.facts["leaver_exit_s"] = round(took, 1)
    while time.monotonic() - started < seconds:
        time.sleep(0.5)


def recovered(w: Watched, case: Case, result: Result) -> None:
    """After the fault: the watched consumer catches up by itself, ``/healthz`` is 200 again, a clean exit."""
    w.producer.join(timeout=300)
    result.checks["consumer resumed by itself"] = kit.wait_caught_up(case, 180) and w.live.proc.poll() is None
    deadline = time.monotonic() + 30
    while w.probe.ok is not True and time.monotonic() < deadline:
        time.sleep(0.5)
    result.checks["/healthz 200 again after the fault"] = w.probe.ok is True
    w.probe.stop.set()
    rc, _ = w.live.terminate()
    result.checks["consumer exits cleanly"] = rc == 0
    result.facts.update(healthz_503_episodes=w.probe.episodes, healthz_reasons=[d[:80] for d in w.probe.detail[:2]],
                        acked=len(w.producer.acked))


def s12_postgres_crash(suite: Suite) -> Result:
    """PostgreSQL crashed under load (``-m immediate``: no checkpoint, every connection cut, crash recovery on
    start), not shut down: ``/healthz`` answers 503 once batches have kept failing for
    ``run.failing_batch_timeout_s`` (10 s here), a member stopped with SIGTERM during the crash exits 0 within 10 s,
    and the consumer recovers by itself once the database is back (``/healthz`` 200 again)."""
    outage_s = 20.0 if suite.quick else 40.0
    result = Result(f"12 PostgreSQL crashed (-m immediate) {outage_s:.0f} s under load")
    case = kit.new_case("pgcrash", suite.services)
    case.extra_env["MONITOR_RUN__FAILING_BATCH_TIMEOUT_S"] = "10"
    w, _ = watched_under_load(suite, case, result, outage_s + 20, seed=33)
    time.sleep(6.0)
    healthy_before = w.probe.ok is True
    suite.services.crash_postgres()
    through_fault(w, result, time.monotonic(), outage_s, "the crash")
    result.checks["/healthz 200 before, 503 while batches kept failing"] = healthy_before and w.probe.episodes >= 1
    suite.services.start_postgres()
    recovered(w, case, result)
    return suite.judge(case, result)


def s13_database_black_hole(suite: Suite) -> Result:
    """The database black-holed (a proxy the suite controls: connections stay open, nothing is answered, new ones
    are accepted and never answered): first shorter than the timeouts (2 s, statement timeout 4 s), then longer
    (25 s). During the long one ``/healthz`` answers 503 (the loop is stuck in a call no timeout ends) and a member
    stopped with SIGTERM exits 0 within 10 s; when the hole heals (its connections reset) the consumer recovers by
    itself and the database equals the offline reference run."""
    long_s = 18.0
    result = Result(f"13 PostgreSQL black-holed 2 s, then {long_s:.0f} s, under load")
    case = kit.new_case("pghole", suite.services)
    with BlackholeProxy(("127.0.0.1", suite.services.pg_port)) as proxy:
        case.db_url = case.db_url.replace(f"127.0.0.1:{suite.services.pg_port}/", f"127.0.0.1:{proxy.port}/")
        case.extra_env.update({"MONITOR_DB__STATEMENT_TIMEOUT_S": "4", "MONITOR_DB__CONNECT_TIMEOUT_S": "3",
                               "MONITOR_RUN__LIVENESS_TIMEOUT_S": "10", "MONITOR_RUN__FAILING_BATCH_TIMEOUT_S": "10"})
        w, _ = watched_under_load(suite, case, result, long_s + 30, seed=34)
        time.sleep(5.0)
        proxy.blackhole()
        time.sleep(2.0)
        proxy.heal()
        time.sleep(5.0)
        result.checks["a hole shorter than the timeouts: no 503, still running"] = (
            w.probe.episodes == 0 and w.live.proc.poll() is None)
        proxy.blackhole()
        through_fault(w, result, time.monotonic(), long_s, "the long hole")
        result.checks["/healthz 503 during the long hole"] = w.probe.episodes >= 1
        proxy.heal()
        recovered(w, case, result)
    return suite.judge(case, result)


def s15_broker_black_hole(suite: Suite) -> Result:
    """The Kafka broker black-holed (a second private broker that advertises a proxy's port, so every connection of
    every client goes through the proxy): first shorter than the timeouts (2 s), then longer (25 s: past the
    session timeout, 4 s here, and the stall limit, 15 s). Poison records keep dead letters to send. The short hole
    passes unnoticed (no 503, no client replaced); during the long one ``/healthz`` answers 503 (the broker has not
    answered for ``run.failing_batch_timeout_s``, or the loop is held in a call past ``run.liveness_timeout_s``,
    10 s each here) and a member stopped with SIGTERM exits 0
    within 10 s; when the hole heals (its connections reset) the consumer recovers by itself, and the database
    equals the offline reference run, with every poison record dead-lettered once or more."""
    long_s = 25.0
    result = Result(f"15 Kafka broker black-holed 2 s, then {long_s:.0f} s, under load (SQLite)")
    with kit.HoledBroker(suite.services.workdir / "holed-kafka") as broker:
        assert broker.proxy is not None
        case = kit.new_case("kafkahole", suite.services, sqlite=True, bootstrap=broker.bootstrap)
        # 503 either way: the loop turning blind (no answer from the group coordinator past the failing limit) or
        # stuck in a call the hole holds (a dead-letter flush: the loop's beat past the liveness limit)
        case.extra_env.update({"MONITOR_RUN__FAILING_BATCH_TIMEOUT_S": "10", "MONITOR_RUN__LIVENESS_TIMEOUT_S": "10"})
        w, poison = watched_under_load(suite, case, result, long_s + 30, seed=36, poisoned=True)
        time.sleep(5.0)
        broker.proxy.blackhole()
        time.sleep(2.0)
        broker.proxy.heal()
        time.sleep(5.0)
        result.checks["a hole shorter than the timeouts: no 503, still running, no client replaced"] = (
            w.probe.episodes == 0 and w.live.proc.poll() is None and w.live.first("Kafka consumer stalled") is None)
        broker.proxy.blackhole()
        through_fault(w, result, time.monotonic(), long_s, "the long hole")
        result.checks["/healthz 503 during the long hole"] = w.probe.episodes >= 1
        broker.proxy.heal()
        recovered(w, case, result)
        letters = kit.read_topic(case.kafka, case.kafka.dlq_topic)
        acked = {value for _, _, value in w.producer.acked}
        want = {(value, reason) for _, value, reason in poison if value in acked}
        got = {(r.value, dict(r.headers)["dlq.reason"].decode()) for r in letters}
        result.checks["every acknowledged poison record dead-lettered with its reason"] = want <= got and bool(want)
        result.facts["dead_letters"] = len(letters)
        return suite.judge(case, result)


def s14_topology(suite: Suite) -> Result:
    """Partitions added to the topic mid-stream (3 -> 6: the producer's key hash moves some sensors to another
    partition while their older windows wait in the old one), then keyless records (spread over every partition):
    one sensor's windows reach two consumers at once. Each sensor's state must stay single-writer: every good
    window is applied exactly once or dead-lettered loudly as ``out_of_order`` (never lost, never applied twice),
    no two alerts of one sensor overlap in time (never two incidents for one event), and the lag is 0 on every
    partition, the new ones included (found within ``kafka.metadata_max_age_ms``, 2 s here)."""
    result = Result("14 topology: partitions 3 -> 6 mid-stream, then keyless records, two consumers")
    case = kit.new_case("topology", suite.services)
    case.extra_env["MONITOR_KAFKA__METADATA_MAX_AGE_MS"] = "2000"
    items = suite.windows(case, 6, 80 if suite.quick else 160, seed=35)
    first, second = len(items) * 2 // 5, len(items) * 4 // 5
    a = suite.consumer(case, "a")
    b = suite.consumer(case, "b")
    result.checks["consumers joined"] = a.wait_for("partitions assigned", 90) and b.wait_for("partitions assigned", 90)
    kit.produce(case.kafka, items[:first])
    time.sleep(1.0)  # the consumers are busy with the first part when the topic grows
    kit.add_partitions(case.kafka, 6)
    # a new producer: keys hash over 6 partitions now; paced, so that both consumers hold some of a sensor's
    # partitions while its windows keep coming
    producer = PacedProducer(case.kafka, [*items[first:second], *((None, v) for _, v in items[second:])],
                             rate_per_s=15.0)
    producer.start()
    producer.join(timeout=300)
    result.checks["every record acknowledged"] = len(producer.acked) == len(items) - first
    result.checks["caught up on all 6 partitions"] = (kit.wait_caught_up(case, 180)
                                                      and len(kit.end_offsets(case.kafka)) == 6)
    rc_a, _ = a.terminate()
    rc_b, _ = b.terminate()
    result.checks["both exit cleanly"] = rc_a == 0 and rc_b == 0
    produced: dict[str, int] = {}
    for _, value in items:
        window = contract.decode(value)
        assert isinstance(window, contract.SensorWindow)
        produced[window.sensor_id] = produced.get(window.sensor_id, 0) + 1
    late: dict[str, set[tuple[int, int]]] = {}
    other_reasons = 0
    for r in kit.read_topic(case.kafka, case.kafka.dlq_topic):
        h = {k: v.decode() for k, v in r.headers}
        window = contract.decode(r.value)
        if h["dlq.reason"] != contract.OUT_OF_ORDER or not isinstance(window, contract.SensorWindow):
            other_reasons += 1
            continue
        late.setdefault(window.sensor_id, set()).add((int(h["dlq.partition"]), int(h["dlq.offset"])))
    states = kit.stored_output(case.db)["states"]
    applied = {sid: int(state["threshold"]["seen"]) for sid, state in states.items()}
    accounts = {sid: (applied.get(sid, 0), len(late.get(sid, ())), n) for sid, n in produced.items()}
    result.checks["every good window applied once or dead-lettered as out_of_order"] = all(
        x + y == n for x, y, n in accounts.values()) and other_reasons == 0
    overlapping = kit.overlapping_alerts(case.db)
    result.checks["no two alerts of one sensor overlap in time"] = not overlapping
    conflicts = sum(1 for c in (a, b) for _, line in c.lines if "changed in the database meanwhile" in line)
    found, injected = kit.injected_found(case, tolerance_s=suite.bundle.meta.window_len)
    result.facts.update(windows=len(items), out_of_order=sum(len(v) for v in late.values()),
                        writer_conflicts=conflicts, injected_found=f"{found}/{injected}",
                        lag=kit.lag(case), unbalanced={sid: acc for sid, acc in accounts.items() if acc[0] + acc[1] != acc[2]},
                        overlapping=overlapping[:3])
    for sid, (x, y, n) in accounts.items():
        if x + y != n:
            result.verdict.notes.append(f"{sid}: {x} applied + {y} out_of_order != {n} produced")
            result.verdict.lost_windows += max(0, n - x - y)
            result.verdict.duplicated_windows += max(0, x + y - n)
    return result


# -- driver -------------------------------------------------------------------------------------------------------
def s16_retention_gap(suite: Suite) -> Result:
    """Records that expired from the log before the group read them: the group is stopped (one member killed
    with -9, the other with SIGTERM), more records arrive, and retention moves each partition's log
    start past the stored offset (``delete_records``, what retention does). On restart the gap must be detected,
    logged as DATA LOSS and recorded once per partition (``consumer_offsets.lost_records`` = log start - stored
    offset, also after a second restart), and every record after the log start applied exactly once."""
    result = Result("16 records expired before they were read (log start past the stored offsets)")
    case = kit.new_case("retention", suite.services)
    items = suite.windows(case, 6, 60 if suite.quick else 120, seed=37)
    quarter, half = len(items) // 4, len(items) // 2
    kit.produce(case.kafka, items[:quarter])
    victim = suite.consumer(case, "victim", max_poll_records=10)
    other = suite.consumer(case, "other", max_poll_records=10)
    result.checks["consumers joined"] = (victim.wait_for("partitions assigned", 90)
                                         and other.wait_for("partitions assigned", 90))
    # A gap is measured from a stored offset: a partition the group never committed has no position to compare
    # (the product starts it at the log start and counts nothing, as a new group does). So the stop comes once
    # every non-empty partition holds a stored offset, at a random moment while the next quarter is being read.
    filled = {p for p, o in kit.end_offsets(case.kafka).items() if o > 0}
    result.checks["every non-empty partition stored an offset before the stop"] = kit.wait_stored(case, filled, 90)
    kit.produce(case.kafka, items[quarter:half])
    time.sleep(suite.rng.uniform(0.0, 1.0))
    victim.kill()
    result.kills += 1
    other.terminate()
    stored = kit.db_offsets(case)
    kit.produce(case.kafka, items[half:])
    gap = 5
    ends = kit.end_offsets(case.kafka)
    starts = {p: min(stored.get(p, 0) + gap, ends[p]) for p in ends if ends[p] > 0}
    kit.delete_records(case.kafka, starts)
    after = suite.consumer(case, "after", idle_exit_s=4.0, max_poll_records=50)
    result.checks["the restarted consumer exits cleanly"] = after.wait(180) == 0
    want = {p: o - stored[p] for p, o in starts.items() if p in stored and o > stored[p]}
    lost = kit.lost_records(case)
    result.checks["each gap recorded as data loss: lost_records = log start - stored offset"] = lost == want and bool(want)
    result.checks["the loss logged as DATA LOSS"] = after.first("DATA LOSS") is not None
    result.checks["a second restart counts no gap again"] = suite.drain(case, "again") == 0 and kit.lost_records(
        case) == want
    # every record is a good window (no poison here): those below the stored offsets were applied before the stop,
    # those from the log start on (of either part: a killed member may have left some of the first unread) after
    before_gap = sum(stored.values())
    after_gap = sum(ends[p] - starts[p] for p in starts)
    judged = kit.judged_windows(case)
    result.checks["every record after the log start applied exactly once"] = judged == before_gap + after_gap
    result.verdict.lost_windows = max(0, before_gap + after_gap - judged)
    result.verdict.duplicated_windows = max(0, judged - before_gap - after_gap)
    db_lag, _ = kit.lag(case)
    result.checks["lag 0 (database offsets)"] = db_lag == 0
    result.facts.update(stored=stored, log_start=starts, lost=lost, judged=judged, expected=before_gap + after_gap)
    return result


def _run(results: list[Result], name: str, fn: Callable[[], Result]) -> None:
    started = time.monotonic()
    say(f"scenario {name} ...")
    try:
        result = fn()
    except Exception:  # noqa: BLE001 - a crashed scenario is a failed scenario, the suite goes on
        result = Result(name)
        result.checks["ran to the end"] = False
        result.facts["error"] = traceback.format_exc(limit=4).strip().splitlines()[-1]
        traceback.print_exc()
    result.facts["seconds"] = round(time.monotonic() - started, 1)
    results.append(result)
    v = result.verdict
    print(f"{'PASS' if result.passed else 'FAIL'}  {result.name}: lost={v.lost} duplicated={v.duplicated} "
          f"(alerts -{v.lost_alerts}/+{v.extra_alerts}, windows -{v.lost_windows}/+{v.duplicated_windows}) "
          f"{result.facts}", flush=True)
    for check, ok in result.checks.items():
        if not ok:
            print(f"      failed check: {check}", flush=True)
    for note in v.notes[:10]:
        print(f"      {note}", flush=True)


def main(
    quick: Annotated[bool, typer.Option(help="Short form (fewer kills, 10 s outage) for `make test`.")] = False,
    seed: Annotated[Optional[int], typer.Option(
        help="Seed of the random fault choices (default: a new one each run, printed; pass it to reproduce).")] = None,
    workdir: Annotated[Path | None, typer.Option(help="Keep logs here (default: a temporary directory).")] = None,
    only: Annotated[str, typer.Option(help="Comma-separated scenario numbers to run (default: all).")] = "",
    break_fence: Annotated[bool, typer.Option(
        help="Self-test: consumers commit stale batches (run.fault break_fence); the suite must then FAIL.")] = False,
    self_test: Annotated[bool, typer.Option(
        help="After the scenarios, run scenario 9 once more with the fence broken; it must fail (the suite can).")] = False,
) -> None:
    """Run the fault scenarios on a private broker and database; print one summary line."""
    started = time.monotonic()
    if seed is None:
        seed = random.SystemRandom().randrange(10**6)
    say(f"seed={seed} (reproduce with --seed {seed})")
    work = workdir or Path(tempfile.mkdtemp(prefix="monitor-chaos-"))
    (work / "logs").mkdir(parents=True, exist_ok=True)
    services = PrivateServices(work)
    results: list[Result] = []
    try:
        services.start()
        # trained well enough (~10 s) to find every anomaly of the synthetic fleets: the ground-truth check
        model_cfg = ModelSettings(window_len=16, hidden_size=32, latent_size=16, epochs=25, batch_size=64, seed=3,
                                  learning_rate=3e-3)
        bundle = train(history_frame(8000, sensors=8), model_cfg, version="chaos-1", sensors=8)
        model_path = model_files.save(bundle, work / "model.pt")
        bundle = model_files.load(model_path)
        suite = Suite(services, bundle, model_path, work / "logs", quick, random.Random(seed), break_fence)
        wanted = {s.strip() for s in only.split(",") if s.strip()}

        def pick(number: str) -> bool:
            return not wanted or number in wanted

        poisoned: list[Case] = []

        def four() -> Result:
            result, case = s4_poison(suite)
            poisoned.append(case)
            return result

        scenarios: list[tuple[str, Callable[[], Result]]] = [
            ("1", lambda: s1_kill_consumer(suite)), ("2", lambda: s2_kill_broker(suite)),
            ("3", lambda: s3_database_outage(suite)), ("4", four), ("5", lambda: s5_replay(suite, poisoned[0])),
            ("6", lambda: s6_rebalance_churn(suite)), ("7", lambda: s7_sigterm(suite)),
            ("8", lambda: s8_real_replay(suite)), ("9", lambda: s9_zombie(suite, sqlite=True)),
            ("10", lambda: s9_zombie(suite, sqlite=False)), ("11", lambda: s11_random_kills(suite)),
            ("12", lambda: s12_postgres_crash(suite)), ("13", lambda: s13_database_black_hole(suite)),
            ("14", lambda: s14_topology(suite)), ("15", lambda: s15_broker_black_hole(suite)),
            ("16", lambda: s16_retention_gap(suite)),
        ]
        for number, scenario in scenarios:
            if quick and number in FULL_ONLY and not wanted:
                continue
            if pick(number) or (number == "4" and pick("5")):  # 5 replays the case 4 made
                _run(results, number, scenario)
        if self_test:
            suite.break_fence = True
            broken: list[Result] = []
            print("self-test: scenario 9 with the offset and revision fences broken", flush=True)
            _run(broken, "9 (fences broken)", lambda: s9_zombie(suite, sqlite=True))
            caught = not broken[0].passed
            print(f"self-test: with the fence broken scenario 9 {'FAILED' if caught else 'PASSED'} "
                  f"(caught={caught})", flush=True)
            if not caught:
                results.append(Result("self-test", checks={"the broken fence makes the suite fail": False}))
    finally:
        services.close()
    lost = sum(r.verdict.lost for r in results)
    duplicated = sum(r.verdict.duplicated for r in results)
    passed = sum(1 for r in results if r.passed)
    kills = sum(r.kills for r in results)
    say(f"logs in {work / 'logs'}; {time.monotonic() - started:.0f} s in all")
    print(f"faults: scenarios={len(results)} passed={passed} kills={kills} lost={lost} duplicated={duplicated} "
          f"seed={seed}", flush=True)
    if passed != len(results) or not results:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
