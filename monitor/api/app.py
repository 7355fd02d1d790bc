"""`monitor serve`: the FastAPI application over the alert store (OpenAPI docs at /docs).

Every endpoint but /healthz and /readyz needs an API key (read scope; write scope for the POSTs). The web
page under /ui/ is static files holding no data: it asks for a key and calls the API like any client.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import BeforeValidator
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from monitor.observe import metrics as _runner_metrics  # noqa: F401 - the monitor's metric names live in one registry
from monitor.api import context as ctx
from monitor.api.auth import require
from monitor.api.gate import Gate
from monitor.api.guard import RequestGuard
from monitor.api.schemas import ActionIn, AlertDetail, AlertPage, FeedbackIn, FeedbackResult, FleetOut, SensorOut
from monitor.core.contract import parse_time
from monitor.core.when import HELP as WHEN_HELP
from monitor.core.when import parse_when
from monitor.errors import ApiError, MonitorError, StoreError, http_answer
from monitor.core.feedback import levels_from_scores
from monitor.core.incidents import ACKNOWLEDGED, RESOLVED, Severity, Status
from monitor.settings import Settings
from monitor.store import alerts_api as store
from monitor.store import fleet as fleet_store
from monitor.store.apikeys import READ, WRITE, KeyInfo
from monitor.store.database import ping
from monitor.store.evidence import load_evidence
from monitor.store.feedback import apply_false_positive, apply_new_normal

STATIC = Path(__file__).parent / "static"
API_REQUESTS = Counter("monitor_api_requests_total", "HTTP API requests, by route and status.", ["route", "status"])

Reader = Annotated[KeyInfo, Depends(require(READ))]
Writer = Annotated[KeyInfo, Depends(require(WRITE))]
Sort = Literal["-opened_at", "opened_at", "-id", "id"]
BIGINT_MAX = 2**63 - 1  # ids are BIGINT: a larger number never names an alert, and the databases refuse to bind it
AlertId = Annotated[int, PathParam(ge=1, le=BIGINT_MAX, description="Alert id.")]
CONTEXT_GRACE_S = 5.0  # beyond api.kafka_timeout_s: loading the serving model and re-scoring the windows
READY_TIMEOUT_S = 5.0  # /readyz: a database that has not answered by then is not ready


def encode_cursor(sort: str, key: tuple[Any, ...]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(json.dumps({"s": sort, "k": plain}).encode()).decode().rstrip("=")


def decode_cursor(text: str, sort: str) -> tuple[Any, ...]:
    """Inverse of encode_cursor; ApiError 422 when the cursor is malformed or made for another sort."""
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        key = data["k"]
        if data["s"] != sort:
            raise ApiError(422, "invalid_request", f"cursor was made for sort={data['s']}, not sort={sort}")
        if sort.lstrip("-") == "opened_at":
            at = parse_time(key[0])
            if at is None or len(key) != 2 or not _is_bigint(key[1]):
                raise ValueError
            return (at, key[1])
        if len(key) != 1 or not _is_bigint(key[0]):
            raise ValueError
        return (key[0],)
    except ApiError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ApiError(422, "invalid_request", "cursor is malformed: pass back next_cursor unchanged") from exc


def _when(value: object) -> datetime:
    """A query time (``monitor.core.when``: ISO-8601 with a zone, or relative to now such as 1h), in UTC."""
    parsed = parse_when(value) if isinstance(value, str) and len(value) <= 64 else None
    if parsed is None:
        raise ValueError(f"must be {WHEN_HELP}, within years 1..9999 in UTC")
    return parsed


When = Annotated[datetime, BeforeValidator(_when)]


def _is_bigint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -BIGINT_MAX - 1 <= value <= BIGINT_MAX


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

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:  # on the event loop: no thread pool can starve it
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        def answered() -> bool:
            ping(engine)
            return True

        gate: Gate = app.state.ready_gate
        try:
            done = await gate.run(answered, READY_TIMEOUT_S)
        except StoreError as exc:
            return JSONResponse({"status": "unavailable", "detail": str(exc)}, 503)
        except TimeoutError:
            return JSONResponse({"status": "unavailable",
                                 "detail": f"the database did not answer within {READY_TIMEOUT_S:g} s"}, 503)
        if done is None:
            return JSONResponse({"status": "unavailable", "detail": "earlier readiness checks still wait for the "
                                 "database"}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["health"])
    def prometheus(_: Reader) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/alerts", response_model=AlertPage, tags=["alerts"])
    def list_alerts(
        _: Reader,
        sensor: Annotated[list[str], Query(description="Sensor id (repeatable).", max_length=200)] = [],
        status: Annotated[list[Status], Query(description="Status (repeatable).")] = [],
        severity: Annotated[list[Severity], Query(description="Severity (repeatable).")] = [],
        model_version: Annotated[list[str], Query(description="Model version (repeatable).")] = [],
        since: Annotated[When | None, Query(description=f"Alerts active at or after: {WHEN_HELP}.")] = None,
        until: Annotated[When | None, Query(description=f"Alerts opened before: {WHEN_HELP}.")] = None,
        sort: Annotated[Sort, Query(description="Immutable keys only, so cursors never skip or repeat.")] = "-opened_at",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=500)] = None,
    ) -> dict[str, Any]:
        since_at, until_at = since, until
        if since_at is not None and until_at is not None and since_at >= until_at:
            raise ApiError(422, "invalid_request", "since must be before until")
        flt = store.AlertFilter(sensor, status, severity, model_version, since_at, until_at)
        after = decode_cursor(cursor, sort) if cursor else None
        rows, last = store.page_alerts(engine, flt, sort=sort, limit=limit, after=after)
        return {"items": rows, "next_cursor": encode_cursor(sort, last) if last else None}

    @app.get("/alerts/{alert_id}", response_model=AlertDetail, tags=["alerts"],
             responses={503: {"description": "Every alert-context slot is busy: retry after Retry-After seconds."}})
    async def alert_detail(
        alert_id: AlertId,
        _: Reader,
        context: Annotated[bool, Query(description="Read the windows around the alert from Kafka.")] = True,
        around: Annotated[int | None, Query(ge=0, le=64, description="Windows before and after.")] = None,
    ) -> dict[str, Any]:
        alert: dict[str, Any] = await run_in_threadpool(store.get_alert, engine, alert_id)
        if context:
            n = settings.api.context_windows if around is None else around
            gate: Gate = app.state.context_gate
            try:
                found = await gate.run(lambda: _context(app, alert, n), _context_timeout_s(settings))
            except TimeoutError:
                found = _no_context(f"reading the context took longer than {_context_timeout_s(settings):g} s")
            if found is None:
                raise ApiError(503, "busy", f"{gate.slots} alert contexts are being read already: retry, or ask "
                               "with context=false", {"Retry-After": str(math.ceil(settings.api.kafka_timeout_s))})
            alert["context"] = found
        return alert

    @app.post("/alerts/{alert_id}/acknowledge", response_model=AlertDetail, tags=["actions"])
    def acknowledge(alert_id: AlertId, key: Writer, body: ActionIn | None = None) -> dict[str, Any]:
        return store.change_status(engine, alert_id, ACKNOWLEDGED, key.actor, body.note if body else None)

    @app.post("/alerts/{alert_id}/resolve", response_model=AlertDetail, tags=["actions"])
    def resolve(alert_id: AlertId, key: Writer, body: ActionIn | None = None) -> dict[str, Any]:
        return store.change_status(engine, alert_id, RESOLVED, key.actor, body.note if body else None)

    @app.post("/alerts/{alert_id}/feedback", response_model=FeedbackResult, tags=["actions"])
    def feedback(alert_id: AlertId, key: Writer, body: FeedbackIn) -> dict[str, Any]:
        alert = store.record_feedback(engine, alert_id, body.verdict, key.actor, body.note)
        applied, note = False, "true positive: nothing to change"
        if body.verdict == "true_positive" and alert["feedback"]["threshold_applied"]:
            # levels admitted by an earlier false-positive verdict are not taken back (the statistics have
            # moved on since); threshold_applied keeps saying that the threshold holds them
            applied, note = True, "true positive: threshold left as is (an earlier false-positive verdict was applied)"
        if body.verdict == "new_normal":  # the sensor's current level becomes the centre it is judged against
            applied, note = apply_new_normal(engine, alert_id)
        if body.verdict == "false_positive":
            # the alert's scores as decided (its evidence); an alert without evidence is re-scored with the
            # model version that fired it (the context), on that version's scale or not at all
            evidence = load_evidence(engine, alert["sensor_id"], alert["opened_at"])
            found = ctx.decided_windows(alert, evidence) if evidence else _gated_context(app, alert, 0)
            scores = [w["score"] for w in found["windows"] if w["in_alert"] and w["score"] is not None]
            levels = levels_from_scores(scores, settings.threshold.smoothing) if found["available"] else []
            if found["scored_with"] not in (None, alert["model_version"]):
                levels = []  # another model's score scale: never teach the threshold with it
            applied, note = apply_false_positive(engine, alert_id, levels, settings.threshold, settings.alert)
            if not levels and not applied:
                note = f"{note} ({found['note']})"
        return {"alert": store.get_alert(engine, alert_id), "threshold_applied": applied, "threshold_note": note}

    @app.get("/sensors", response_model=list[SensorOut], tags=["sensors"])
    def sensors(_: Reader) -> list[dict[str, Any]]:
        out = []
        for row in store.list_sensors(engine):
            open_alert = None
            if row["open_alert_id"] is not None:
                open_alert = {"id": row["open_alert_id"], "opened_at": row["open_alert_opened_at"],
                              "status": row["open_alert_status"], "severity": row["open_alert_severity"]}
            out.append({**{k: v for k, v in row.items() if not k.startswith("open_alert")}, "open_alert": open_alert})
        return out

    @app.get("/fleet", response_model=FleetOut, tags=["sensors"])
    def fleet(
        _: Reader,
        hours: Annotated[int, Query(ge=1, le=168, description="Hours of alert counts.")] = 24,
        until: Annotated[When | None, Query(description=f"End of the counted hours (default: the latest event): "
                                                        f"{WHEN_HELP}.")] = None,
    ) -> dict[str, Any]:
        """Sensors alerting now, alerts opened per hour (event time), for the page's overview."""
        return fleet_store.overview(engine, hours, until)

    @app.get("/models", tags=["models"])
    def models(_: Reader) -> dict[str, Any]:
        cache: ctx.ModelCache = app.state.models
        bundle, note = ctx.load_model(cache)
        serving = None
        if bundle is not None:
            m = bundle.meta
            serving = {"version": m.version, "created_at": m.created_at, "channels": m.channels,
                       "window_len": m.window_len, "metrics": m.metrics, "training": m.training,
                       "source": cache.source}
        # problem: why the model that should serve does not (damaged artifact, refused promotion), else None
        return {"serving": serving, "note": note or None, "problem": cache.problem,
                "seen": store.alert_model_versions(engine), "registry": _registry(engine, settings.registry.model_name)}

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/ui/")

    app.mount("/ui", StaticFiles(directory=STATIC, html=True), name="ui")
    return app


def _registry(engine: Engine, name: str) -> dict[str, Any]:
    """The registry's view of the model name: active and shadow versions, the shadow's report, recent retrains."""
    from monitor.registry import shadow, versions

    active, shadowing = versions.pointer(engine, name)
    report = shadow.summary(engine, name, shadowing) if shadowing else None
    return {"name": name, "active": active,
            "shadow": None if shadowing is None else {"version": shadowing, **(report.to_json() if report else {})},
            "retrains": versions.retrain_runs(engine, name, 10)}


def _context_timeout_s(settings: Settings) -> float:
    return settings.api.kafka_timeout_s + CONTEXT_GRACE_S


def _no_context(note: str) -> dict[str, Any]:
    return {"available": False, "note": note, "windows": [], "channels": [], "contributions": {},
            "scored_with": None}


def _gated_context(app: FastAPI, alert: dict[str, Any], around: int) -> dict[str, Any]:
    """``_context`` from a worker thread (a sync endpoint): waits for a free slot of the context gate, then for
    the context, each at most the context timeout; an unavailable context (with the reason) otherwise."""
    settings: Settings = app.state.settings
    timeout_s = _context_timeout_s(settings)
    future = app.state.context_gate.submit(lambda: _context(app, alert, around), wait_s=timeout_s)
    if future is None:
        return _no_context(f"every alert-context slot stayed busy for {timeout_s:g} s")
    try:
        found: dict[str, Any] = future.result(timeout=timeout_s)
    except TimeoutError:
        return _no_context(f"reading the context took longer than {timeout_s:g} s")
    return found


def _context(app: FastAPI, alert: dict[str, Any], around: int) -> dict[str, Any]:
    """The alert's context: decision-time evidence (scores, thresholds) plus window values from Kafka; an alert
    without evidence is re-scored with the model version that fired it (``monitor.api.context``)."""
    settings: Settings = app.state.settings
    evidence = load_evidence(app.state.engine, alert["sensor_id"], alert["opened_at"])
    spread = max(1, sum(1 for s in store.list_sensors(app.state.engine) if s["partition"] == alert["partition"]))
    found = ctx.read_windows(
        settings.kafka, sensor_id=alert["sensor_id"], partition=alert["partition"],
        first_offset=alert["first_offset"], last_offset=alert["last_offset"], around=around, spread=spread,
        timeout_s=settings.api.kafka_timeout_s,
    )
    if evidence:
        return ctx.evidence_context(alert, found, evidence, around)
    cache: ctx.ModelCache = app.state.models
    bundle, note = cache.version(alert["model_version"])
    return ctx.build_context(alert, found, bundle, note)
