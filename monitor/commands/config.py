"""`monitor config`: the generated configuration reference and the effective settings (secrets masked)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

config_app = typer.Typer(help="Settings: reference document and effective values.", no_args_is_help=True)


class ReferenceFormat(str, Enum):
    markdown = "markdown"
    env = "env"


class ShowFormat(str, Enum):
    env = "env"
    json = "json"


@config_app.command("reference")
def config_reference(
    format: Annotated[ReferenceFormat, typer.Option("--format", "-f", help="markdown (docs) or env (sample file).")]
    = ReferenceFormat.markdown,
    out: Annotated[Optional[Path], typer.Option(help="Write to this file instead of standard output.")] = None,
    check: Annotated[bool, typer.Option(help="With --out: exit 1 if the file differs, write nothing.")] = False,
) -> None:
    """Generate the configuration reference from the settings model (docs/configuration.md, deploy/monitor.env.example)."""
    from monitor.commands.config_reference import render_env_sample, render_markdown, write_if_changed

    text = render_markdown() if format is ReferenceFormat.markdown else render_env_sample()
    if out is None:
        typer.echo(text, nl=False)
        return
    if check:
        current = out.read_text(encoding="utf-8") if out.exists() else None
        if current != text:
            typer.secho(f"{out} is out of date: run `monitor config reference --format {format.value} --out {out}`",
                        fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        typer.echo(f"{out} is up to date")
        return
    changed = write_if_changed(out, text)
    typer.echo(f"{out} {'written' if changed else 'unchanged'}")


@config_app.command("show")
def config_show(
    format: Annotated[ShowFormat, typer.Option("--format", "-f", help="env lines or a JSON object.")] = ShowFormat.env,
) -> None:
    """Print the settings this process would use (environment applied), secrets masked."""
    from monitor.commands.common import load_settings
    from monitor.commands.config_reference import effective_settings

    values = effective_settings(load_settings())
    if format is ShowFormat.json:
        typer.echo(json.dumps(values, indent=2))
    else:
        for name, value in values.items():
            typer.echo(f"{name}={value}")
