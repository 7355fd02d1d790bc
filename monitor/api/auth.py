"""API-key authentication for `monitor serve`: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

Missing or unknown/revoked key -> 401; a key without the needed scope -> 403. Bodies are JSON:
``{"error": "unauthorized" | "forbidden", "detail": "..."}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import Request
from sqlalchemy import Engine

from monitor.errors import ApiError
from monitor.store.apikeys import KeyInfo, verify_key


def _secret(headers: Mapping[str, str]) -> str | None:
    header = headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return headers.get("x-api-key") or None


def authenticate(engine: Engine, headers: Mapping[str, str], scope: str) -> KeyInfo:
    """The caller's key if it has ``scope``; ApiError 401 (missing, unknown or revoked key) or 403 otherwise.
    Blocking (one database read)."""
    secret = _secret(headers)
    challenge = {"WWW-Authenticate": "Bearer"}
    if secret is None:
        raise ApiError(401, "unauthorized",
                       "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>' "
                       "(create one with `monitor apikey create`)", challenge)
    key = verify_key(engine, secret)
    if key is None:
        raise ApiError(401, "unauthorized", "invalid or revoked API key", challenge)
    return check_scope(key, scope)


def check_scope(key: KeyInfo, scope: str) -> KeyInfo:
    if not key.allows(scope):
        raise ApiError(403, "forbidden", f"this API key ({key.name}) lacks the '{scope}' scope "
                                          f"(it has: {', '.join(key.scopes)})")
    return key


def require(scope: str) -> Callable[[Request], KeyInfo]:
    """A FastAPI dependency returning the caller's key if it has ``scope``. A request with a body was already
    authenticated by ``monitor.api.guard`` before its body was read; its key is taken from there."""

    def dependency(request: Request) -> KeyInfo:
        known = request.scope.get("state", {}).get("api_key")
        if isinstance(known, KeyInfo):
            return check_scope(known, scope)
        return authenticate(request.app.state.engine, request.headers, scope)

    return dependency
