"""The alerts: list (filtered, cursor-paged), one with its context, and the operators' actions on it."""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from monitor.api import context as ctx
from monitor.api.deps import AlertId, AppSettings, Db, Reader, When, Writer, is_bigint
from monitor.api.gate import Gate
from monitor.api.schemas import ActionIn, AlertDetail, AlertPage, FeedbackIn, FeedbackResult
from monitor.core.contract import parse_time
from monitor.core.feedback import levels_from_scores
from monitor.core.incidents import ACKNOWLEDGED, RESOLVED, Severity, Status
from monitor.core.when import HELP as WHEN_HELP
from monitor.errors import ApiError
from monitor.ingest import replay
from monitor.settings import Settings
from monitor.store import alerts_api as store
from monitor.store.evidence import load_evidence
from monitor.store.feedback import apply_false_positive, apply_new_normal

Sort = Literal["-opened_at", "opened_at", "-id", "id"]
CONTEXT_GRACE_S = 5.0  # beyond api.kafka_timeout_s: loading the serving model and re-scoring the windows

router = APIRouter()


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
            if at is None or len(key) != 2 or not is_bigint(key[1]):
                raise ValueError
            return (at, key[1])
        if len(key) != 1 or not is_bigint(key[0]):
            raise ValueError
        return (key[0],)
    except ApiError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ApiError(422, "invalid_request", "cursor is malformed: pass back next_cursor unchanged") from exc


@router.get("/alerts", response_model=AlertPage, tags=["alerts"])
def list_alerts(
    _: Reader,
    db: Db,
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
    if since is not None and until is not None and since >= until:
        raise ApiError(422, "invalid_request", "since must be before until")
    flt = store.AlertFilter(sensor, status, severity, model_version, since, until)
    after = decode_cursor(cursor, sort) if cursor else None
    rows, last = store.page_alerts(db, flt, sort=sort, limit=limit, after=after)
    return {"items": rows, "next_cursor": encode_cursor(sort, last) if last else None}


@router.get("/alerts/{alert_id}", response_model=AlertDetail, tags=["alerts"],
            responses={503: {"description": "Every alert-context slot is busy: retry after Retry-After seconds."}})
async def alert_detail(
    request: Request,
    alert_id: AlertId,
    _: Reader,
    db: Db,
    settings: AppSettings,
    context: Annotated[bool, Query(description="Read the windows around the alert from Kafka.")] = True,
    around: Annotated[int | None, Query(ge=0, le=64, description="Windows before and after.")] = None,
) -> dict[str, Any]:
    alert: dict[str, Any] = await run_in_threadpool(store.get_alert, db, alert_id)
    if context:
        n = settings.api.context_windows if around is None else around
        gate: Gate = request.app.state.context_gate
        try:
            found = await gate.run(lambda: _context(request.app, alert, n), _context_timeout_s(settings))
        except TimeoutError:
            found = _no_context(f"reading the context took longer than {_context_timeout_s(settings):g} s")
        if found is None:
            raise ApiError(503, "busy", f"{gate.slots} alert contexts are being read already: retry, or ask "
                           "with context=false", {"Retry-After": str(math.ceil(settings.api.kafka_timeout_s))})
        alert["context"] = found
    return alert


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertDetail, tags=["actions"])
def acknowledge(alert_id: AlertId, key: Writer, db: Db, body: ActionIn | None = None) -> dict[str, Any]:
    return store.change_status(db, alert_id, ACKNOWLEDGED, key.actor, body.note if body else None)


@router.post("/alerts/{alert_id}/resolve", response_model=AlertDetail, tags=["actions"])
def resolve(alert_id: AlertId, key: Writer, db: Db, body: ActionIn | None = None) -> dict[str, Any]:
    return store.change_status(db, alert_id, RESOLVED, key.actor, body.note if body else None)


@router.post("/alerts/{alert_id}/feedback", response_model=FeedbackResult, tags=["actions"])
def feedback(request: Request, alert_id: AlertId, key: Writer, db: Db, settings: AppSettings,
             body: FeedbackIn) -> dict[str, Any]:
    alert = store.record_feedback(db, alert_id, body.verdict, key.actor, body.note)
    applied, note = False, "true positive: nothing to change"
    if body.verdict == "true_positive" and alert["feedback"]["threshold_applied"]:
        # levels admitted by an earlier false-positive verdict are not taken back (the statistics have
        # moved on since); threshold_applied keeps saying that the threshold holds them
        applied, note = True, "true positive: threshold left as is (an earlier false-positive verdict was applied)"
    if body.verdict == "new_normal":  # the sensor's current level becomes the centre it is judged against
        applied, note = apply_new_normal(db, alert_id)
    if body.verdict == "false_positive":
        # the alert's scores as decided (its evidence); an alert without evidence is re-scored with the
        # model version that fired it (the context), on that version's scale or not at all
        evidence = load_evidence(db, alert["sensor_id"], alert["opened_at"])
        found = ctx.decided_windows(alert, evidence) if evidence else _gated_context(request.app, alert, 0)
        scores = [w["score"] for w in found["windows"] if w["in_alert"] and w["score"] is not None]
        levels = levels_from_scores(scores, settings.threshold.smoothing) if found["available"] else []
        if found["scored_with"] not in (None, alert["model_version"]):
            levels = []  # another model's score scale: never teach the threshold with it
        applied, note = apply_false_positive(db, alert_id, levels, settings.threshold, settings.alert)
        if not levels and not applied:
            note = f"{note} ({found['note']})"
    return {"alert": store.get_alert(db, alert_id), "threshold_applied": applied, "threshold_note": note}


def _context_timeout_s(settings: Settings) -> float:
    return settings.api.kafka_timeout_s + CONTEXT_GRACE_S


def _no_context(note: str) -> dict[str, Any]:
    return {"available": False, "note": note, "windows": [], "channels": [], "contributions": {},
            "scored_with": None}


def _gated_context(app: Any, alert: dict[str, Any], around: int) -> dict[str, Any]:
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


def _context(app: Any, alert: dict[str, Any], around: int) -> dict[str, Any]:
    """The alert's context: decision-time evidence (scores, thresholds) plus window values from Kafka; an alert
    without evidence is re-scored with the model version that fired it (``monitor.api.context``)."""
    settings: Settings = app.state.settings
    evidence = load_evidence(app.state.engine, alert["sensor_id"], alert["opened_at"])
    spread = max(1, sum(1 for s in store.list_sensors(app.state.engine) if s["partition"] == alert["partition"]))
    found = replay.read_windows(
        settings.kafka, sensor_id=alert["sensor_id"], partition=alert["partition"],
        first_offset=alert["first_offset"], last_offset=alert["last_offset"], around=around, spread=spread,
        timeout_s=settings.api.kafka_timeout_s,
    )
    if evidence:
        return ctx.evidence_context(alert, found, evidence, around)
    cache: ctx.ModelCache = app.state.models
    bundle, note = cache.version(alert["model_version"])
    return ctx.build_context(alert, found, bundle, note)
