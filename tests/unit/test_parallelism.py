"""run.decode_process / run.overlap = "auto": a decode child only where each consumer has a core to spare, and the
usable CPUs read from the affinity mask and a cgroup quota (v2 and v1 layouts, written here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.consumer.parallelism import cgroup_cpu_quota, resolve
from monitor.consumer.runner import RunnerConfig
from monitor.settings import KafkaSettings, RunSettings


@given(cpus=st.floats(0.1, 256), workers=st.integers(1, 64), threads=st.integers(1, 16))
def test_auto_decodes_in_a_child_exactly_when_each_consumer_has_a_core_to_spare(
    cpus: float, workers: int, threads: int
) -> None:
    par = resolve("auto", "auto", workers=workers, threads=threads, cpus=cpus)
    assert par.decode_process == (cpus / workers >= threads + 1)
    assert par.overlap == par.decode_process
    assert par.decode_when_behind == par.overlap_when_behind == par.decode_process  # auto: only while behind
    assert par.reason.startswith("auto: ")


@pytest.mark.parametrize("decode", [True, False, "auto"])
@pytest.mark.parametrize("overlap", [True, False, "auto"])
def test_an_explicit_value_is_kept(decode: bool | str, overlap: bool | str) -> None:
    for cpus in (1.0, 2.0, 16.0):
        par = resolve(decode, overlap, workers=1, threads=1, cpus=cpus)  # type: ignore[arg-type]
        if decode != "auto":
            assert par.decode_process is decode and not par.decode_when_behind  # as set: at every batch
        if overlap != "auto":
            assert par.overlap is overlap
        elif decode != "auto":
            assert par.overlap is decode and not par.overlap_when_behind  # follows the decode process, every batch


def test_the_two_core_cases_of_the_benchmarks() -> None:
    assert resolve("auto", "auto", workers=1, threads=1, cpus=2).decode_process  # one consumer, a spare core
    assert not resolve("auto", "auto", workers=2, threads=1, cpus=2).decode_process  # --workers 2 on 2 cores
    assert not resolve("auto", "auto", workers=1, threads=2, cpus=2).decode_process  # both cores score
    assert not resolve("auto", "auto", workers=1, threads=1, cpus=1.5).decode_process  # a 1.5-CPU container


def test_runner_config_resolves_auto_from_the_run_settings() -> None:
    kafka = KafkaSettings()
    on = RunnerConfig.of(kafka, RunSettings(decode_process=True, overlap="auto"))
    assert on.decode_process and on.overlap
    off = RunnerConfig.of(kafka, RunSettings(decode_process=False, overlap=False))
    assert not off.decode_process and not off.overlap


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    (tmp_path / "kubepods/pod1").mkdir(parents=True)
    self_cgroup = tmp_path / "self"
    self_cgroup.write_text("0::/kubepods/pod1\n")
    (tmp_path / "kubepods/pod1/cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path, self_cgroup) == 1.5
    (tmp_path / "kubepods/pod1/cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path, self_cgroup) is None
    (tmp_path / "kubepods/pod1/cpu.max").unlink()  # a namespaced container sees its own group at the root
    (tmp_path / "cpu.max").write_text("300000 100000\n")
    assert cgroup_cpu_quota(tmp_path, self_cgroup) == 3.0


def test_cgroup_v1_quota_and_none(tmp_path: Path) -> None:
    self_cgroup = tmp_path / "self"
    self_cgroup.write_text("4:cpu,cpuacct:/\n")
    assert cgroup_cpu_quota(tmp_path, self_cgroup) is None  # nothing to read: no quota
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu/cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu/cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(tmp_path, self_cgroup) is None
    (tmp_path / "cpu/cpu.cfs_quota_us").write_text("50000\n")
    assert cgroup_cpu_quota(tmp_path, self_cgroup) == 0.5
    (tmp_path / "cpu/cpu.cfs_quota_us").write_text("garbage\n")
    assert cgroup_cpu_quota(tmp_path, tmp_path / "missing") is None


def test_workers_children_get_an_auto_resolved_off_as_off_and_an_auto_resolved_on_as_auto() -> None:
    # each child sees one worker: left to itself, it would find a core to spare on 2 CPUs
    assert resolve("auto", "auto", workers=2, threads=1, cpus=2).environment() == {
        "MONITOR_RUN__DECODE_PROCESS": "false", "MONITOR_RUN__OVERLAP": "false"}
    assert resolve("auto", "auto", workers=2, threads=1, cpus=8).environment() == {}
    assert resolve(True, "auto", workers=2, threads=1, cpus=2).environment() == {}
