"""What ``run.decode_process`` and ``run.overlap`` = ``"auto"`` (the defaults) resolve to on the host at hand.

Decoding in a child process while the batch before is scored (``monitor/consumer/decoder.py``) makes a consumer
that works through a backlog faster when it has a core to spare, and slower when every core already runs a
consumer (docs/benchmarks.md, rounds 8 and 11). Caught up, it costs latency: each small batch crosses a pipe to a
process that competes for the cores, and the batch before must be durable first (round 11: p50 / p99 about twice
those of decoding in the consumer's thread at half the sustained rate). So "auto":

* is on only where each consumer of this host has a CPU beyond its scoring threads
  (``usable CPUs / workers >= scoring threads + 1``; usable CPUs are the affinity mask bounded by a cgroup CPU
  quota: a container limited to 1.5 CPUs counts 1.5, whatever the node has);
* and then is used only while the consumer is behind (its lag above one full poll, ``kafka.max_poll_records``):
  a batch at a time, decoded in the consumer's thread, once it has caught up.

The overlap follows the decode process: a second thread alone gains nothing (the loop and the worker share one
GIL). An explicit true or false is used as set, at every batch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Auto = bool | Literal["auto"]
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, self_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """CPUs a cgroup quota allows this process (cgroup v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us``), or None when there is no quota or it cannot be read."""
    own = ""
    try:
        for line in self_cgroup.read_text().splitlines():
            if line.startswith("0::"):  # v2: this process's own group
                own = line[3:].strip().lstrip("/")
    except OSError:
        pass
    for path in [root / own / "cpu.max", root / "cpu.max"] if own else [root / "cpu.max"]:
        try:
            quota, _, period = path.read_text().strip().partition(" ")
        except OSError:
            continue
        if quota == "max":
            return None
        return _ratio(quota, period or "100000")
    try:
        quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
        period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def usable_cpus() -> float:
    """CPUs this process may use: its affinity mask, bounded by a cgroup CPU quota."""
    try:
        cpus = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        cpus = float(os.cpu_count() or 1)
    quota = cgroup_cpu_quota()
    return min(cpus, quota) if quota is not None else cpus


@dataclass(frozen=True)
class Parallelism:
    """The resolved settings, and why (logged by `monitor run`). ``*_when_behind``: used only while the consumer
    is behind (set for an "auto" that resolved on)."""

    decode_process: bool
    overlap: bool
    reason: str
    decode_when_behind: bool = False
    overlap_when_behind: bool = False

    def environment(self) -> dict[str, str]:
        """What `--workers` children are given (each sees one worker and would resolve "auto" on its own): an auto
        that resolved off is passed as false; anything else as set, so that an auto that resolved on stays
        adaptive."""
        env = {}
        if not self.decode_process:
            env["MONITOR_RUN__DECODE_PROCESS"] = "false"
        if not self.overlap:
            env["MONITOR_RUN__OVERLAP"] = "false"
        return env


def resolve(decode_process: Auto, overlap: Auto, *, workers: int, threads: int, cpus: float | None = None
            ) -> Parallelism:
    """``decode_process`` / ``overlap`` as set (True, False or "auto") for ``workers`` consumers on this host,
    each scoring with ``threads`` torch threads; ``cpus``: the usable CPUs (default: :func:`usable_cpus`)."""
    if decode_process != "auto" and overlap != "auto":
        return Parallelism(bool(decode_process), bool(overlap), "as set")
    if cpus is None:
        cpus = usable_cpus()
    per_consumer = cpus / max(1, workers)
    spare = per_consumer >= max(1, threads) + 1
    child = spare if decode_process == "auto" else bool(decode_process)
    # overlap alone gains nothing; with the decode process it is what lets decoding and scoring run at once
    both = child if overlap == "auto" else bool(overlap)
    cpus_text = f"{cpus:g}" if not math.isclose(cpus, round(cpus)) else f"{round(cpus)}"
    why = (f"auto: {cpus_text} usable CPU(s) for {workers} consumer(s) scoring on {max(1, threads)} thread(s) each: "
           + ("a core to spare, decoding in a child process while behind" if spare else "no core to spare, "
              "decoding in the consumer's own thread"))
    return Parallelism(child, both, why, decode_when_behind=child and decode_process == "auto",
                       overlap_when_behind=both and overlap == "auto" and decode_process == "auto")
