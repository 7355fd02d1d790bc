"""Liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitor.api.deps import Db, Reader
from monitor.api.gate import Gate
from monitor.errors import StoreError
from monitor.store.database import ping

READY_TIMEOUT_S = 5.0  # /readyz: a database that has not answered by then is not ready

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:  # on the event loop: no thread pool can starve it
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request, db: Db) -> JSONResponse:
    def answered() -> bool:
        ping(db)
        return True

    gate: Gate = request.app.state.ready_gate
    try:
        done: Any = await gate.run(answered, READY_TIMEOUT_S)
    except StoreError as exc:
        return JSONResponse({"status": "unavailable", "detail": str(exc)}, 503)
    except TimeoutError:
        return JSONResponse({"status": "unavailable",
                             "detail": f"the database did not answer within {READY_TIMEOUT_S:g} s"}, 503)
    if done is None:
        return JSONResponse({"status": "unavailable", "detail": "earlier readiness checks still wait for the "
                             "database"}, 503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics")
def prometheus(_: Reader) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
