"""The fault suite's short form (`python -m pipelines.chaos --quick`): all 14 scenarios on a private broker
and PostgreSQL cluster that it starts and removes itself (the shared services are not touched); and its self-test:
with the offset fence deliberately broken, the zombie scenario fails."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(1800)
def test_quick_fault_suite_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pipelines.chaos", "--quick", "--workdir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1700)
    print(proc.stdout)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    match = re.fullmatch(r"faults: scenarios=(\d+) passed=(\d+) kills=(\d+) lost=(\d+) duplicated=(\d+) seed=(\d+)",
                         last)
    assert match, f"no summary line; stdout tail:\n{proc.stdout[-3000:]}\nstderr tail:\n{proc.stderr[-3000:]}"
    scenarios, passed, kills, lost, duplicated, _seed = map(int, match.groups())
    assert (scenarios, lost, duplicated) == (14, 0, 0), proc.stdout[-3000:]
    assert passed == scenarios, proc.stdout[-3000:]
    assert kills >= 5 + 6, proc.stdout[-3000:]  # scenario 1 at each injected point, scenario 11 from outside
    assert proc.returncode == 0


@pytest.mark.timeout(900)
def test_the_fault_suite_fails_when_the_offset_fence_is_broken(tmp_path: Path) -> None:
    """The suite proves it can fail: consumers that write a stale batch instead of refusing it (run.fault
    break_fence, the self-test's switch) make the zombie scenario fail."""
    proc = subprocess.run([sys.executable, "-m", "pipelines.chaos", "--quick", "--only", "9", "--break-fence",
                           "--workdir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=800)
    print(proc.stdout)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("faults: scenarios=1 passed=0 "), proc.stdout[-3000:]
    assert "failed check: the zombie's batch was refused" in proc.stdout, proc.stdout[-3000:]
