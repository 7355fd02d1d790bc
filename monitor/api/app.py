"""`monitor serve`: the FastAPI application over the alert store (OpenAPI docs at /docs).

Every endpoint but /healthz and /readyz needs an API key (read scope; write scope for the POSTs). The web
page under /ui/ is static files holding no data: it asks for a key and calls the API like any client. The
endpoints live in routers by concern (``monitor.api.routes``); this module builds the application around them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import Counter
from sqlalchemy import Engine

from monitor.api import context as ctx
from monitor.api.gate import Gate
from monitor.api.guard import RequestGuard
from monitor.api.routes import alerts, fleet, models, probes
from monitor.errors import ApiError, MonitorError, http_answer
from monitor.observe import metrics as _runner_metrics  # noqa: F401 - the monitor's metric names live in one registry
from monitor.settings import Settings

STATIC = Path(__file__).parent / "static"
API_REQUESTS = Counter("monitor_api_requests_total", "HTTP API requests, by route and status.", ["route", "status"])


def create_app(settings: Settings, engine: Engine) -> FastAPI:
    """The application; ``engine`` is owned by the caller (the `serve` command or a test)."""
    app = FastAPI(title="monitor", version="1", description="Alerts of the streaming sensor anomaly monitor.")
    app.state.engine = engine
    app.state.settings = settings
    app.state.models = ctx.ModelCache(engine, settings.registry, settings.model.path)  # as `monitor run` serves
    # blocking work that may hang on a service runs on pools of its own, never on the event loop or the
    # shared thread pool of the plain endpoints (see monitor/api/gate.py)
    app.state.context_gate = Gate(settings.api.context_concurrency, "alert-context")
    app.state.ready_gate = Gate(2, "readyz")
    app.add_middleware(RequestGuard, engine=engine, max_body_bytes=settings.api.max_body_bytes)  # inside CORS
    if settings.api.cors_origins:  # off unless origins are configured
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.api.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        route = request.scope.get("route")
        API_REQUESTS.labels(getattr(route, "path", "other"), str(response.status_code)).inc()
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(MonitorError)  # every error of the tree, through its one mapping (monitor.errors)
    async def monitor_error(_: Request, exc: MonitorError) -> JSONResponse:
        status, code = http_answer(exc)
        return JSONResponse({"error": code, "detail": str(exc)}, status,
                            headers=exc.headers if isinstance(exc, ApiError) else None)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = [{"where": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()]
        return JSONResponse({"error": "invalid_request", "detail": reasons}, 422)

    for router in (probes.router, alerts.router, fleet.router, models.router):
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/ui/")

    app.mount("/ui", StaticFiles(directory=STATIC, html=True), name="ui")
    return app
