"""The architecture of the package (pyproject.toml [tool.importlinter]): three levels imported downwards only
(entry points -> adapters -> the pure core -> settings and errors), a core free of Kafka, SQL, HTTP and metrics
libraries, and no import circle. Runs import-linter and grimp (static: nothing is imported)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
RUN = "import sys; from importlinter.cli import lint_imports_command; sys.argv = ['lint-imports', *sys.argv[1:]]; " \
      "lint_imports_command()"


def _lint_imports(cwd: Path, *args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, "-c", RUN, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=env)


def _broken_copy(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """The project's contracts over a copy of the package in which ``module`` (a path under monitor/) gets ``line``."""
    shutil.copytree(ROOT / "monitor", tmp_path / "monitor", ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "monitor" / module
    path.write_text(path.read_text().replace("from __future__ import annotations\n",
                                             f"from __future__ import annotations\n\n{line}\n", 1))
    return _lint_imports(tmp_path, "--no-cache", pythonpath=tmp_path)


def test_the_levels_hold_and_the_core_imports_no_kafka_sql_http_or_metrics() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def test_the_contracts_catch_a_core_module_that_imports_sql(tmp_path: Path) -> None:
    done = _broken_copy(tmp_path, "core/engine.py", "import sqlalchemy")
    assert done.returncode != 0 and "BROKEN" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert "monitor.core.engine -> sqlalchemy" in done.stdout


def test_the_contracts_catch_an_adapter_that_imports_an_entry_point(tmp_path: Path) -> None:
    done = _broken_copy(tmp_path, "store/retention.py", "import monitor.consumer.runner")
    assert done.returncode != 0 and "BROKEN" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert "monitor.store.retention -> monitor.consumer.runner" in done.stdout


def _circles(package: str) -> list[list[str]]:
    """Strongly connected groups of more than one module in the package's import graph (function-level imports
    included): each is an import circle."""
    graph = grimp.build_graph(package)
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m) if i.startswith(package)}
             for m in graph.modules}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        order[v] = low[v] = len(order)
        stack.append(v)
        for w in edges[v]:
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for module in sorted(edges):
        if module not in order:
            visit(module)
    return circles


def test_no_import_circle() -> None:
    assert _circles("monitor") == []


def test_the_circle_check_finds_one(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "monitor", tmp_path / "monitor", ignore=shutil.ignore_patterns("__pycache__", "static"))
    common = tmp_path / "monitor" / "commands" / "common.py"
    common.write_text(common.read_text() + "\n\ndef _app() -> object:\n    from monitor.commands import app\n\n"
                      "    return app\n")
    probe = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); "
             "from tests.unit.test_import_contracts import _circles; print(_circles('monitor'))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "monitor.commands.app" in done.stdout and "monitor.commands.common" in done.stdout, done.stdout


def test_the_core_does_no_file_io_printing_or_process_wide_changes() -> None:
    """Files, the terminal, torch's thread count and the garbage collector belong to the adapters and entry points
    (monitor.ingest.files, monitor.registry.model_files, monitor.observe.progress, monitor.commands)."""
    found = []
    for path in sorted((ROOT / "monitor" / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in {"open", "print", "read_csv", "read_parquet", "read_bytes", "write_bytes", "read_text",
                            "write_text", "set_num_threads", "disable", "freeze", "tqdm"}:
                    found.append(f"{path.relative_to(ROOT).as_posix()}:{node.lineno} {name}()")
    assert found == []
