"""The import direction of the package (pyproject.toml [tool.importlinter]): the pure core imports no adapter,
entry point, Kafka, SQL or HTTP library. Runs import-linter (static: nothing is imported)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = "import sys; from importlinter.cli import lint_imports_command; sys.argv = ['lint-imports', *sys.argv[1:]]; " \
      "lint_imports_command()"


def _lint_imports(cwd: Path, *args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, "-c", RUN, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=env)


def test_the_pure_core_imports_no_adapter_kafka_sql_or_http() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Contracts: 1 kept, 0 broken." in done.stdout


def test_the_contract_catches_a_core_module_that_imports_sql(tmp_path: Path) -> None:
    """The project's contract over a copy of the package in which the engine imports SQLAlchemy: broken."""
    shutil.copytree(ROOT / "monitor", tmp_path / "monitor", ignore=shutil.ignore_patterns("__pycache__", "static"))
    engine = tmp_path / "monitor" / "engine.py"
    engine.write_text(engine.read_text().replace("from __future__ import annotations\n",
                                                 "from __future__ import annotations\n\nimport sqlalchemy\n", 1))
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract = config["contracts"][0]
    ini = ["[importlinter]", f"root_package = {config['root_package']}", "include_external_packages = True", "",
           "[importlinter:contract:core]", f"name = {contract['name']}", f"type = {contract['type']}",
           "source_modules =", *(f"    {m}" for m in contract["source_modules"]),
           "forbidden_modules =", *(f"    {m}" for m in contract["forbidden_modules"])]
    (tmp_path / "contracts.ini").write_text("\n".join(ini) + "\n")
    done = _lint_imports(tmp_path, "--config", "contracts.ini", "--no-cache", pythonpath=tmp_path)
    assert done.returncode != 0 and "BROKEN" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert "monitor.engine -> sqlalchemy" in done.stdout
