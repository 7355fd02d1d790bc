"""`monitor models list | runs | show | promote | rollback | import | shadow`: the model registry from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

models_app = typer.Typer(help="The model registry: versions, the active model, promotion and rollback.",
                         no_args_is_help=True)

NameOption = Annotated[Optional[str], typer.Option("--name", help="Model name (default: settings registry.model_name).")]


def _open(name: str | None, *, read_only: bool = False) -> tuple[Any, str]:
    """The registry's database (schema checked; ``read_only``: a missing SQLite file is refused) and the model name."""
    from monitor.commands.common import load_settings, open_db

    settings = load_settings()
    return open_db(settings, read_only=read_only), name or settings.registry.model_name


def fail(exc: Exception) -> None:
    from monitor.commands.common import fail

    fail(exc)  # type: ignore[arg-type]


@models_app.command("list")
def list_models(
    name: NameOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Versions of a model, newest first, with status and gate figures."""
    from monitor.errors import MonitorError
    from monitor.registry import versions

    try:
        db, model = _open(name, read_only=True)
        rows = versions.list_versions(db, model)
    except MonitorError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in rows], indent=2, default=str))
        return
    if not rows:
        typer.echo(f"no versions of model {model!r}")
        return
    header = f"{'version':<26} {'status':<10} {'created_at':<21} {'promoted_by':<20} {'train range':<41} reason"
    typer.echo(header)
    for r in rows:
        span = (f"{r.train_start:%Y-%m-%dT%H:%M:%S} .. {r.train_end:%Y-%m-%dT%H:%M:%S}"
                if r.train_start and r.train_end else "-")
        typer.echo(f"{r.version:<26} {r.status:<10} {r.created_at:%Y-%m-%dT%H:%M:%SZ} {(r.promoted_by or '-'):<20} "
                   f"{span:<41} {(r.reason or '')[:120]}")


@models_app.command("runs")
def runs(
    name: NameOption = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output (each run's full report).")] = False,
) -> None:
    """Retraining runs, whatever their outcome (promoted, shadowed, rejected, skipped, failed), with why."""
    from monitor.errors import MonitorError
    from monitor.registry import versions

    try:
        db, model = _open(name, read_only=True)
        rows = versions.retrain_runs(db, model, limit)
    except MonitorError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        typer.echo(f"no retraining runs of model {model!r}")
        return
    typer.echo(f"{'started_at':<21} {'outcome':<9} {'version':<26} {'windows':>7} {'excluded':>8} {'by':<22} reason")
    for r in rows:
        counts = r["report"].get("counts", {})
        typer.echo(f"{r['started_at'][:19] + 'Z':<21} {r['outcome']:<9} {(r['version'] or '-'):<26} "
                   f"{counts.get('windows', '-'):>7} {counts.get('excluded', '-'):>8} {r['triggered_by'][:22]:<22} "
                   f"{r['reason'][:160]}")


@models_app.command("show")
def show(
    version: Annotated[Optional[str], typer.Argument(help="Version (default: the active one).")] = None,
    name: NameOption = None,
) -> None:
    """One version's full record (provenance, config, validation and gate metrics, its shadow report) as JSON."""
    from monitor.errors import ConfigError, MonitorError
    from monitor.registry import shadow, versions

    try:
        db, model = _open(name, read_only=True)
        chosen = version or versions.active_version(db, model)
        if chosen is None:
            raise ConfigError(f"model {model!r} has no active version; name one (see `monitor models list`)")
        info = versions.get(db, model, chosen)
        _, shadowing = versions.pointer(db, model)
        report = shadow.summary(db, model, chosen)
    except MonitorError as exc:
        fail(exc)
    out = {**info.to_json(), "shadow": {"now": shadowing == chosen, **(report.to_json() if report else {})}}
    typer.echo(json.dumps(out, indent=2, default=str))
    if report is not None:
        typer.echo(report.line(), err=True)


@models_app.command("promote")
def promote(
    version: Annotated[str, typer.Argument(help="Version to make active.")],
    name: NameOption = None,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "manual promotion",
    by: Annotated[str, typer.Option(help="Who (recorded).")] = "cli",
    force: Annotated[bool, typer.Option(help="Promote without the shadow period registry.shadow_min_windows asks.")]
    = False,
) -> None:
    """Make a version active (the gate is not consulted: an operator's decision). Consumers swap to it. When
    another version is active, this one must first have been shadowed over registry.shadow_min_windows windows
    (`monitor models shadow VERSION`; --force skips the shadow period)."""
    from monitor.commands.common import load_settings
    from monitor.errors import ConfigError, MonitorError
    from monitor.registry import shadow, versions

    try:
        db, model = _open(name)
        before = versions.active_version(db, model)
        needed = load_settings().registry.shadow_min_windows
        if needed and not force and before is not None and before != version:
            report = shadow.summary(db, model, version)
            seen = report.counts["windows"] if report else 0
            if seen < needed:
                raise ConfigError(f"{model}/{version} was shadowed over {seen} windows, fewer than "
                                  f"registry.shadow_min_windows={needed}: `monitor models shadow {version}` first, "
                                  "or --force")
        info = versions.promote(db, model, version, by=by, reason=reason)
    except MonitorError as exc:
        fail(exc)
    typer.echo(f"{model}: active {before or 'none'} -> {info.version}")


@models_app.command("rollback")
def rollback(
    name: NameOption = None,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "manual rollback",
    by: Annotated[str, typer.Option(help="Who (recorded).")] = "cli",
) -> None:
    """Re-activate the version the active one replaced; the active one is retired."""
    from monitor.errors import MonitorError
    from monitor.registry import versions

    try:
        db, model = _open(name)
        before = versions.active_version(db, model)
        info = versions.rollback(db, model, by=by, reason=reason)
    except MonitorError as exc:
        fail(exc)
    typer.echo(f"{model}: rolled back {before} -> {info.version}")


@models_app.command("import")
def import_model(
    path: Annotated[Path, typer.Argument(help="Model artifact written by `monitor train`.")],
    name: NameOption = None,
    activate: Annotated[bool, typer.Option(help="Make it the active version at once.")] = False,
    by: Annotated[str, typer.Option(help="Who (recorded).")] = "cli",
) -> None:
    """Register a model file as a candidate version (for example the first model of a deployment)."""
    from monitor.errors import MonitorError
    from monitor.registry import versions

    try:
        db, model = _open(name)
        info = versions.import_file(db, model, path, by=by, activate=activate)
    except MonitorError as exc:
        fail(exc)
    typer.echo(f"{model}/{info.version} registered ({info.status}, {info.size_bytes} bytes, sha256 {info.sha256[:12]})")


@models_app.command("shadow")
def shadow_command(
    version: Annotated[Optional[str], typer.Argument(help="Version to score alongside the active one.")] = None,
    name: NameOption = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop shadowing.")] = False,
    by: Annotated[str, typer.Option(help="Who (recorded).")] = "cli",
) -> None:
    """Score a version alongside the active model in the running consumers, never alerting; `models show VERSION`
    reports where its decisions would have differed."""
    from monitor.errors import ConfigError, MonitorError
    from monitor.registry import versions

    try:
        if (version is None) == (not stop):
            raise ConfigError("name a version to shadow, or --stop")
        db, model = _open(name)
        versions.set_shadow(db, model, None if stop else version, by=by)
    except MonitorError as exc:
        fail(exc)
    typer.echo(f"{model}: shadow stopped" if stop else
               f"{model}: {version} is the shadow; running consumers score it alongside the active model from their "
               "next registry check")
