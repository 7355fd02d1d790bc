"""`make chaos`: the fault suite of the streaming engine, on a PRIVATE Kafka broker and PostgreSQL cluster.

Each scenario uses a fresh topic, consumer group and database schema, runs real `python -m monitor run`
processes, injects its fault, and compares the database with the expected alert set E: the same detector
run offline (the pure Engine) over the records that are actually in the topic. A scenario passes when no
expected alert is missing or different (lost), no extra alert exists (duplicated), every sensor's threshold
has seen exactly its windows once (lost / duplicated windows), every sensor's whole stored state equals the
offline run's, lag is 0 and its own checks hold.

    python -m pipelines.chaos            # full suite (>= 10 kill iterations, 30 s database outage)
    python -m pipelines.chaos --quick    # short form, run by `make test` (tests/integration/test_faults_quick.py)

Last line: ``faults: scenarios=<n> passed=<n> lost=<n> duplicated=<n>`` (lost/duplicated: alerts + windows).
"""

from __future__ import annotations

import random
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from monitor import contract
from monitor.scoring import artifact
from monitor.scoring.artifact import ModelBundle
from monitor.scoring.train import train
from monitor.settings import ModelSettings
from pipelines import chaos_kit as kit
from pipelines.chaos_kit import Case, Consumer, PacedProducer, PrivateServices, Verdict, say
from pipelines.synthetic import fleet_windows, history_frame, make_fleet

KILL_POINTS = ("mid_batch", "before_db_commit", "after_db_commit", "after_kafka_commit")


@dataclass
class Result:
    name: str
    verdict: Verdict = field(default_factory=Verdict)
    checks: dict[str, bool] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

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

    def windows(self, sensors: int, per_sensor: int, seed: int) -> list[tuple[bytes, bytes | None]]:
        wl = self.bundle.meta.window_len
        fleet = make_fleet(sensors, wl * per_sensor, seed=seed, length=4 * wl, per_sensor=2)
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
        result.facts.update(expected_alerts=len(ref.alerts), windows=ref.good, lag=(db_lag, kafka_lag))
        return result


# -- the scenarios ---------------------------------------------------------------------------------------------
def s1_kill_consumer(suite: Suite) -> Result:
    """kill -9 of the consumer at injected points, with restarts."""
    result = Result("1 kill -9 consumer at injected points")
    case = kit.new_case("kill", suite.services)
    items = suite.windows(6, 120 if suite.quick else 200, seed=21)
    chunks = [items[i : i + len(items) // 3] for i in range(0, len(items), len(items) // 3)]
    kit.produce(case.kafka, chunks.pop(0))
    want = 4 if suite.quick else 10
    kills: dict[str, int] = {}
    for it in range(3 * want):
        if sum(kills.values()) >= want:
            break
        point = KILL_POINTS[it % len(KILL_POINTS)] if it < len(KILL_POINTS) else suite.rng.choice(KILL_POINTS)
        fault = f"{point}:{suite.rng.uniform(0.25, 0.6):.2f}:kill:{suite.rng.randrange(10**6)}"
        rc = suite.consumer(case, f"it{it}", fault=fault, idle_exit_s=3.0).wait(120)
        if rc == -9:
            kills[point] = kills.get(point, 0) + 1
        elif chunks:
            kit.produce(case.kafka, chunks.pop(0))
    for chunk in chunks:
        kit.produce(case.kafka, chunk)
    result.checks["final run exits cleanly"] = suite.drain(case) == 0
    result.checks[f">= {want} kills"] = sum(kills.values()) >= want
    result.facts["kills"] = kills
    return suite.judge(case, result)


def s2_kill_broker(suite: Suite) -> Result:
    """kill -9 of the broker during production, restart on the same data directory."""
    result = Result("2 kill -9 broker during production")
    case = kit.new_case("broker", suite.services)
    c = suite.consumer(case, "live", max_poll_records=100)
    result.checks["consumer joined"] = c.wait_for("partitions assigned", 90)
    items = suite.windows(6, 80 if suite.quick else 150, seed=22)
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
    items = suite.windows(6, int((outage_s + 20) * rate / 6), seed=23)
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


def s4_poison(suite: Suite) -> tuple[Result, Case]:
    """Poison records of every kind mixed into a stream."""
    result = Result("4 poison records of every kind")
    case = kit.new_case("poison", suite.services)
    items = suite.windows(6, 60 if suite.quick else 120, seed=24)
    template = orjson.loads(items[0][1])  # type: ignore[arg-type]
    template["values"] = [list(map(float, r)) for r in template["values"]]
    poison = poison_records(sorted({k for k, _ in items}), template)
    mixed: list[tuple[bytes, bytes | None]] = list(items)
    for i, (key, value, _) in enumerate(poison):
        mixed.insert((i + 1) * len(items) // (len(poison) + 1), (key, value))
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
    kit.produce(case.kafka, suite.windows(6, 50 if suite.quick else 120, seed=28))
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
    items = suite.windows(6, 100 if suite.quick else 180, seed=26)
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
    kit.produce(case.kafka, suite.windows(6, 100 if suite.quick else 160, seed=27))
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


# -- driver -------------------------------------------------------------------------------------------------------
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
    seed: Annotated[int, typer.Option(help="Seed of the random fault choices.")] = 0,
    workdir: Annotated[Path | None, typer.Option(help="Keep logs here (default: a temporary directory).")] = None,
    only: Annotated[str, typer.Option(help="Comma-separated scenario numbers to run (default: all).")] = "",
) -> None:
    """Run the fault scenarios on a private broker and database; print one summary line."""
    started = time.monotonic()
    work = workdir or Path(tempfile.mkdtemp(prefix="monitor-chaos-"))
    (work / "logs").mkdir(parents=True, exist_ok=True)
    services = PrivateServices(work)
    results: list[Result] = []
    try:
        services.start()
        model_cfg = ModelSettings(window_len=16, hidden_size=16, latent_size=8, epochs=8, batch_size=64, seed=3)
        bundle = train(history_frame(8000, sensors=8), model_cfg, progress=False, version="chaos-1")
        model_path = artifact.save(bundle, work / "model.pt")
        bundle = artifact.load(model_path)
        suite = Suite(services, bundle, model_path, work / "logs", quick, random.Random(seed))
        wanted = {s.strip() for s in only.split(",") if s.strip()}

        def pick(number: str) -> bool:
            return not wanted or number in wanted

        if pick("1"):
            _run(results, "1", lambda: s1_kill_consumer(suite))
        if pick("2"):
            _run(results, "2", lambda: s2_kill_broker(suite))
        if pick("3"):
            _run(results, "3", lambda: s3_database_outage(suite))
        poisoned: list[Case] = []
        if pick("4") or pick("5"):
            def four() -> Result:
                result, case = s4_poison(suite)
                poisoned.append(case)
                return result

            _run(results, "4", four)
        if pick("5"):
            _run(results, "5", lambda: s5_replay(suite, poisoned[0]))
        if pick("6"):
            _run(results, "6", lambda: s6_rebalance_churn(suite))
        if pick("7"):
            _run(results, "7", lambda: s7_sigterm(suite))
        if pick("8"):
            _run(results, "8", lambda: s8_real_replay(suite))
    finally:
        services.close()
    lost = sum(r.verdict.lost for r in results)
    duplicated = sum(r.verdict.duplicated for r in results)
    passed = sum(1 for r in results if r.passed)
    say(f"logs in {work / 'logs'}; {time.monotonic() - started:.0f} s in all")
    print(f"faults: scenarios={len(results)} passed={passed} lost={lost} duplicated={duplicated}", flush=True)
    if passed != len(results) or not results:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
