"""The fault suite's short form (`python -m pipelines.faults.chaos --quick --self-test`): 14 of its 16 scenarios (the
PostgreSQL and Kafka black holes are in the full run only) on a private broker and PostgreSQL cluster that it starts and
removes itself (the shared services are not touched); then its self-test: with the offset and revision fences
deliberately broken, the zombie scenario must fail."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(1800)
def test_quick_fault_suite_loses_and_duplicates_nothing_and_fails_when_the_fence_is_broken(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pipelines.faults.chaos", "--quick", "--self-test", "--workdir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1700)
    print(proc.stdout)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    match = re.fullmatch(r"faults: scenarios=(\d+) passed=(\d+) kills=(\d+) lost=(\d+) duplicated=(\d+) seed=(\d+)",
                         last)
    assert match, f"no summary line; stdout tail:\n{proc.stdout[-3000:]}\nstderr tail:\n{proc.stderr[-3000:]}"
    scenarios, passed, kills, lost, duplicated, _seed = map(int, match.groups())
    assert (scenarios, lost, duplicated) == (14, 0, 0), proc.stdout[-3000:]
    assert passed == scenarios, proc.stdout[-3000:]
    assert kills >= 5 + 4 + 1, proc.stdout[-3000:]  # scenario 1 at each injected point, 11 and 16 from outside
    assert proc.returncode == 0
    # The self-test: consumers that write a stale batch instead of refusing it (run.fault break_fence) make the
    # zombie scenario fail on its fencing check (proving the suite can fail)
    assert "self-test: with the fence broken scenario 9 FAILED (caught=True)" in proc.stdout, proc.stdout[-3000:]
    broken = proc.stdout[proc.stdout.index("self-test: scenario 9 with the offset and revision fences broken"):]
    assert "failed check: the zombie's batch was refused" in broken, broken[:3000]
