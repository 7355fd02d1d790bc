"""`monitor serve` and `monitor apikey create | list | revoke` (registered in monitor/commands/app.py)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from monitor.commands.common import fail, load_settings, open_db
from monitor.errors import MonitorError
from monitor.settings import Settings

apikey_app: typer.Typer = typer.Typer(help="API keys of `monitor serve` (stored hashed; the secret is shown once).",
                         no_args_is_help=True)


def page_url(settings: Settings, secret: str | None = None) -> str:
    """URL of the web page, with the key in the fragment-free query the page reads once and then hides."""
    base = (settings.api.public_url or f"http://{settings.api.host}:{settings.api.port}").rstrip("/")
    return f"{base}/ui/" + (f"?key={secret}" if secret else "")


def serve(
    host: Annotated[Optional[str], typer.Option(help="Listen address (default: settings api.host).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default: settings api.port).")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs), the web page (/ui/) and /metrics."""
    import uvicorn

    from monitor.api.app import create_app

    settings = load_settings()
    if host:
        settings.api.host = host
    if port:
        settings.api.port = port
    try:
        db = open_db(settings)
    except MonitorError as exc:
        fail(exc)
    typer.echo(f"serving on http://{settings.api.host}:{settings.api.port} (web page {page_url(settings)}, "
               f"API docs /docs)", err=True)
    uvicorn.run(create_app(settings, db), host=settings.api.host, port=settings.api.port, log_level="warning")


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key (shown in the audit trail).")],
    scope: Annotated[Optional[list[str]], typer.Option(help="read or write (repeatable; write implies read).")] = None,
    print_url: Annotated[bool, typer.Option(help="Also print the web page URL with this key.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a key and print its secret (shown this once only)."""
    from monitor.store.apikeys import create_key

    settings = load_settings()
    try:
        db = open_db(settings)
        info, secret = create_key(db, name, scope or ["read"])
    except MonitorError as exc:
        fail(exc)
    if json_out:
        typer.echo(json.dumps({"id": info.id, "name": info.name, "scopes": list(info.scopes), "key": secret,
                               "url": page_url(settings, secret)}))
        return
    typer.echo(f"key {info.id} ({info.name}, scopes {','.join(info.scopes)}): {secret}")
    typer.echo("store it now: only its hash is kept", err=True)
    if print_url:
        typer.echo(page_url(settings, secret))


@apikey_app.command("list")
def apikey_list() -> None:
    """List keys (never their secrets)."""
    from monitor.core.contract import format_time
    from monitor.store.apikeys import list_keys

    settings = load_settings()
    try:
        db = open_db(settings, read_only=True)
        keys = list_keys(db)
    except MonitorError as exc:
        fail(exc)
    if not keys:
        typer.echo("no API keys")
    for k in keys:
        state = f"revoked {format_time(k.revoked_at)}" if k.revoked_at else "active"
        typer.echo(f"{k.id}\t{k.name}\t{k.prefix}...\t{','.join(k.scopes)}\tcreated {format_time(k.created_at)}\t{state}")


@apikey_app.command("revoke")
def apikey_revoke(key_id: Annotated[int, typer.Argument(help="Key id from `monitor apikey list`.")]) -> None:
    """Revoke a key; requests with it fail with 401 from now on."""
    from monitor.store.apikeys import revoke_key

    settings = load_settings()
    try:
        db = open_db(settings)
        done = revoke_key(db, key_id)
    except MonitorError as exc:
        fail(exc)
    if not done:
        typer.secho(f"no active key with id {key_id}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo(f"key {key_id} revoked")
