"""What the deployment artefacts (deploy/) promise, checked against the real CLI, app and metrics.

PENDING lists the names that other issues are still building. A pending name is accepted while it does not
exist; as soon as it exists (a command appears in the typer app, a metric in /metrics) it is checked like
every other name, so the tests tighten by themselves. Remove names here when their feature lands.
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
K8S_DIR = DEPLOY / "k8s"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "monitor.json"

# Sub-commands of `monitor` that the manifests run before their issue has landed.
PENDING_COMMANDS: frozenset[str] = frozenset()
# Metrics the dashboard plots that no running `monitor run` exports yet.
PENDING_METRICS: frozenset[str] = frozenset()
# Metrics the dashboard plots that only `monitor scheduler` exports (a consumer exports only what it owns).
SCHEDULER_METRICS: frozenset[str] = frozenset(
    {"monitor_retrain_runs_total", "monitor_retrain_last_success_timestamp", "monitor_drift_detections_total"})

MONITOR_IMAGES = ("sensor-monitor",)  # image names (before ':') that run the monitor


@dataclass(frozen=True)
class ContainerCommand:
    where: str  # "compose:consumer-1", "k8s:consumer.yaml/monitor-consumer/migrate", ...
    argv: tuple[str, ...]  # one command line (a shell script is split into its command lines)


# ---------------------------------------------------------------- manifests


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return document


def k8s_documents(recursive: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) of the kustomize base; with ``recursive`` also of the optional parts below it
    (deploy/k8s/observability), named by their path under deploy/k8s."""
    out = []
    for path in sorted(K8S_DIR.rglob("*.yaml") if recursive else K8S_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                out.append((path.relative_to(K8S_DIR).as_posix(), doc))
    return out


def secret_references(docs: list[tuple[str, dict[str, Any]]]) -> dict[str, set[str]]:
    """Secret name -> where it is used: pod specs (envFrom secretRef, env secretKeyRef, secret and projected
    volumes) and Prometheus Operator monitors (bearer credentials)."""
    refs: dict[str, set[str]] = {}
    for file, doc in docs:
        where = f"k8s:{file}/{doc.get('metadata', {}).get('name')}"
        names: list[str] = []
        spec = pod_spec(doc)
        if spec is not None:
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                names += [s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s]
                names += [e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])
                          if "secretKeyRef" in e.get("valueFrom", {})]
            for volume in spec.get("volumes", []):
                if "secret" in volume:
                    names.append(volume["secret"]["secretName"])
                names += [s["secret"]["name"] for s in volume.get("projected", {}).get("sources", []) if "secret" in s]
        if doc.get("kind") in ("ServiceMonitor", "PodMonitor"):
            for endpoint in [*doc["spec"].get("endpoints", []), *doc["spec"].get("podMetricsEndpoints", [])]:
                bearer = (endpoint.get("authorization", {}).get("credentials"), endpoint.get("bearerTokenSecret"))
                names += [selector["name"] for selector in bearer if selector]
        for name in names:
            refs.setdefault(name, set()).add(where)
    return refs


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    kind = doc.get("kind")
    spec: dict[str, Any] | None = None
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        spec = doc["spec"]["template"]["spec"]
    elif kind == "CronJob":
        spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def k8s_containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, document, container) for every container and init container of every workload."""
    for name, doc in k8s_documents():
        spec = pod_spec(doc)
        if spec is None:
            continue
        for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            yield f"k8s:{name}/{doc['metadata']['name']}/{container['name']}", doc, container


def _is_monitor_image(image: str) -> bool:
    default = re.fullmatch(r"\$\{\w+:-(.+)\}", image)  # compose interpolation: ${MONITOR_IMAGE:-name:tag}
    image = default.group(1) if default else image
    return image.split("/")[-1].split(":")[0] in MONITOR_IMAGES


def split_shell(script: str) -> list[tuple[str, ...]]:
    """Command lines of a small POSIX shell script (split at ; && || | newlines, keywords and brackets dropped)."""
    lines: list[tuple[str, ...]] = []
    for raw_line in script.splitlines():
        lexer = shlex.shlex(raw_line, posix=True, punctuation_chars=";&|(){}")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        for token in lexer:
            if token and set(token) <= set(";&|(){}"):
                lines.append(tuple(current))
                current = []
            elif not current and token in ("if", "then", "else", "elif", "fi", "do", "done", "!"):
                continue
            else:
                current.append(token)
        lines.append(tuple(current))
    return [line for line in lines if line and line[0] not in ("[", "test", "echo", "exit", "true", "false")]


def commands_of(where: str, argv: list[str]) -> list[ContainerCommand]:
    if len(argv) >= 3 and argv[0] in ("sh", "bash", "/bin/sh", "/bin/bash") and argv[1].startswith("-") \
            and "c" in argv[1]:
        return [ContainerCommand(where, line) for line in split_shell(argv[2])]
    return [ContainerCommand(where, tuple(str(a) for a in argv))]


def all_commands() -> list[ContainerCommand]:
    """Every command line the compose file and the Kubernetes manifests run in the monitor image."""
    out: list[ContainerCommand] = []
    for name, service in compose()["services"].items():
        if _is_monitor_image(service.get("image", "")) and "command" in service:
            command = service["command"]
            out += commands_of(f"compose:{name}", command if isinstance(command, list) else shlex.split(command))
    for where, _doc, container in k8s_containers():
        if _is_monitor_image(container["image"]):
            out += commands_of(where, [*container.get("command", []), *container.get("args", [])])
    return out


# ---------------------------------------------------------------- the CLI


def monitor_cli() -> Any:
    """The click group behind the typer app (typer may vendor its own click: duck-typed on purpose)."""
    from monitor.commands.app import app

    command = typer.main.get_command(app)
    assert hasattr(command, "list_commands"), "the monitor CLI is not a command group"
    return command


def check_monitor_argv(argv: tuple[str, ...]) -> str | None:
    """None when ``monitor ARGS`` names a real sub-command whose options parse; "pending" for a pending one.

    Raises AssertionError with the reason otherwise.
    """
    assert argv and argv[0] == "monitor", f"not a monitor command: {argv}"
    group = monitor_cli()
    path: list[str] = ["monitor"]
    rest = list(argv[1:])
    while hasattr(group, "list_commands"):
        assert rest, f"`{' '.join(path)}` needs a sub-command"
        name = rest.pop(0)
        sub = group.get_command(group.context_class(group), name)
        if sub is None:
            if len(path) == 1 and name in PENDING_COMMANDS:
                return "pending"
            raise AssertionError(f"`monitor` has no command `{' '.join([*path[1:], name])}`: {' '.join(argv)}")
        group = sub
        path.append(name)
    try:
        group.make_context(" ".join(path), rest)
    except Exception as exc:  # click's UsageError family (click or typer's vendored copy)
        if not hasattr(exc, "format_message"):
            raise
        raise AssertionError(f"`{' '.join(argv)}` does not parse: {exc.format_message()}") from exc
    return None


def check_python_argv(argv: tuple[str, ...]) -> None:
    """``python -c CODE`` compiles and its imports resolve; ``python -m MOD`` names an importable module."""
    assert len(argv) >= 3, argv
    if argv[1] == "-m":
        importlib.import_module(argv[2])
        return
    assert argv[1] == "-c", f"unexpected python invocation {argv}"
    tree = ast.parse(argv[2])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)


# ---------------------------------------------------------------- dashboard and metrics


def dashboard_exprs() -> list[str]:
    import json

    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for panel in dash["panels"] for t in panel.get("targets", [])]


def dashboard_metrics() -> set[str]:
    return {m for expr in dashboard_exprs() for m in re.findall(r"\bmonitor_[A-Za-z0-9_]+\b", expr)}


def exported_samples(exposition: str) -> set[str]:
    """Names of the samples present in a Prometheus text exposition (e.g. monitor_batch_seconds_bucket)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {sample.name for family in text_string_to_metric_families(exposition) for sample in family.samples}
