"""The edge of `monitor serve`: a plain ASGI middleware that runs before any route reads a request.

- A request that may carry a body (any method but GET, HEAD, OPTIONS) must show an API key with the write
  scope *before* its body is read or parsed: without one it is answered 401/403 and the body is never read
  (invalid JSON from an unknown caller is a 401, not a 422, and costs no memory).
- Bodies are limited to ``max_body_bytes``: a larger ``Content-Length`` is answered 413 at once; a body without
  one (chunked) is counted while it is read and answered 413 as soon as it passes the limit.
- Every response carries the security headers (Content-Security-Policy with ``frame-ancestors 'none'``,
  X-Content-Type-Options, Referrer-Policy, X-Frame-Options).
"""

from __future__ import annotations

import json

import anyio
from sqlalchemy import Engine
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.api.auth import authenticate
from monitor.errors import ApiError
from monitor.store.apikeys import WRITE

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
# The page (/ui/) loads only its own script and style sheet; /docs and /redoc load FastAPI's viewers from a CDN.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc")


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    csp = DOCS_CSP if path.startswith(DOCS_PATHS) else PAGE_CSP
    return [(b"content-security-policy", csp.encode()), (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]


class _BodyTooLarge(Exception):
    pass


class RequestGuard:
    """ASGI middleware: key before body, body size limit, security headers (see the module docstring)."""

    def __init__(self, app: ASGIApp, engine: Engine, max_body_bytes: int) -> None:
        self.app = app
        self.engine = engine
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope["path"])
        started = False
        too_large = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if too_large:
                return  # the app's own answer to the cut-off body is replaced by the 413
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []),
                                                  *(h for h in extra if h[0] not in present)]}
            await send(message)

        headers = Headers(scope=scope)
        if scope["method"] not in SAFE_METHODS and scope["path"] not in OPEN_PATHS:
            try:
                key = await anyio.to_thread.run_sync(authenticate, self.engine, headers, WRITE)
            except ApiError as exc:
                await self._answer(send_with_headers, exc)
                return
            scope.setdefault("state", {})["api_key"] = key  # the route's dependency takes it from here
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await self._answer(send_with_headers, ApiError(
                413, "payload_too_large", f"request body larger than {self.max_body_bytes} bytes"))
            return
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, bounded_receive, send_with_headers)
        except Exception:
            if not too_large or started:
                raise
        if too_large and not started:
            too_large = False  # let the 413 itself through
            await self._answer(send_with_headers, ApiError(
                413, "payload_too_large", f"request body larger than {self.max_body_bytes} bytes"))

    @staticmethod
    async def _answer(send: Send, exc: ApiError) -> None:
        body = json.dumps({"error": exc.code, "detail": exc.detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"no-store"), (b"connection", b"close")]
        headers += [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
