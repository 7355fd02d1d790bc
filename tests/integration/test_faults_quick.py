"""The fault suite's short form (`python -m pipelines.chaos --quick`): all 8 scenarios on a private broker
and PostgreSQL cluster that it starts and removes itself (the shared services are not touched)."""

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
    match = re.fullmatch(r"faults: scenarios=(\d+) passed=(\d+) lost=(\d+) duplicated=(\d+)", last)
    assert match, f"no summary line; stdout tail:\n{proc.stdout[-3000:]}\nstderr tail:\n{proc.stderr[-3000:]}"
    scenarios, passed, lost, duplicated = map(int, match.groups())
    assert (scenarios, lost, duplicated) == (8, 0, 0), proc.stdout[-3000:]
    assert passed == scenarios, proc.stdout[-3000:]
    assert proc.returncode == 0
