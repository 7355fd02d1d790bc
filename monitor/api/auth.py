"""API-key authentication for `monitor serve`: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

Missing or unknown/revoked key -> 401; a key without the needed scope -> 403. Bodies are JSON:
``{"error": "unauthorized" | "forbidden", "detail": "..."}``.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from monitor.store.apikeys import KeyInfo, verify_key


class ApiError(Exception):
    """An error answered as ``{"error": code, "detail": text}`` with an HTTP status."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def _secret(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def require(scope: str) -> Callable[[Request], KeyInfo]:
    """A FastAPI dependency returning the caller's key if it has ``scope``."""

    def dependency(request: Request) -> KeyInfo:
        secret = _secret(request)
        challenge = {"WWW-Authenticate": "Bearer"}
        if secret is None:
            raise ApiError(401, "unauthorized",
                           "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>' "
                           "(create one with `monitor apikey create`)", challenge)
        key = verify_key(request.app.state.engine, secret)
        if key is None:
            raise ApiError(401, "unauthorized", "invalid or revoked API key", challenge)
        if not key.allows(scope):
            raise ApiError(403, "forbidden", f"this API key ({key.name}) lacks the '{scope}' scope "
                                              f"(it has: {', '.join(key.scopes)})")
        return key

    return dependency
