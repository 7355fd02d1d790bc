"""The serving model, the versions alerts were made with, and the registry's view (active, shadow, retrains)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import Engine

from monitor.api import context as ctx
from monitor.api.deps import AppSettings, Db, Reader
from monitor.store import alerts_api as store

router = APIRouter(tags=["models"])


@router.get("/models")
def models(request: Request, _: Reader, db: Db, settings: AppSettings) -> dict[str, Any]:
    cache: ctx.ModelCache = request.app.state.models
    bundle, note = ctx.load_model(cache)
    serving = None
    if bundle is not None:
        m = bundle.meta
        serving = {"version": m.version, "created_at": m.created_at, "channels": m.channels,
                   "window_len": m.window_len, "metrics": m.metrics, "training": m.training,
                   "source": cache.source}
    # problem: why the model that should serve does not (damaged artifact, refused promotion), else None
    return {"serving": serving, "note": note or None, "problem": cache.problem,
            "seen": store.alert_model_versions(db), "registry": _registry(db, settings.registry.model_name)}


def _registry(engine: Engine, name: str) -> dict[str, Any]:
    """The registry's view of the model name: active and shadow versions, the shadow's report, recent retrains."""
    from monitor.registry import shadow, versions

    active, shadowing = versions.pointer(engine, name)
    report = shadow.summary(engine, name, shadowing) if shadowing else None
    return {"name": name, "active": active,
            "shadow": None if shadowing is None else {"version": shadowing, **(report.to_json() if report else {})},
            "retrains": versions.retrain_runs(engine, name, 10)}
