"""What the API's routers share: the database and settings of the app, the key dependencies, request types."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi import Path as PathParam
from pydantic import BeforeValidator
from sqlalchemy import Engine

from monitor.api.auth import require
from monitor.core.when import HELP as WHEN_HELP
from monitor.core.when import parse_when
from monitor.settings import Settings
from monitor.store.apikeys import READ, WRITE, KeyInfo


def _db(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Db = Annotated[Engine, Depends(_db)]
AppSettings = Annotated[Settings, Depends(_settings)]
Reader = Annotated[KeyInfo, Depends(require(READ))]
Writer = Annotated[KeyInfo, Depends(require(WRITE))]
BIGINT_MAX = 2**63 - 1  # ids are BIGINT: a larger number never names an alert, and the databases refuse to bind it
AlertId = Annotated[int, PathParam(ge=1, le=BIGINT_MAX, description="Alert id.")]


def _when(value: object) -> datetime:
    """A query time (``monitor.core.when``: ISO-8601 with a zone, or relative to now such as 1h), in UTC."""
    parsed = parse_when(value) if isinstance(value, str) and len(value) <= 64 else None
    if parsed is None:
        raise ValueError(f"must be {WHEN_HELP}, within years 1..9999 in UTC")
    return parsed


When = Annotated[datetime, BeforeValidator(_when)]


def is_bigint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -BIGINT_MAX - 1 <= value <= BIGINT_MAX
