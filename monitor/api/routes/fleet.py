"""The sensors and the fleet overview of the web page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from monitor.api.deps import Db, Reader, When
from monitor.api.schemas import FleetOut, SensorOut
from monitor.core.when import HELP as WHEN_HELP
from monitor.store import alerts_api as store
from monitor.store import fleet as fleet_store

router = APIRouter(tags=["sensors"])


@router.get("/sensors", response_model=list[SensorOut])
def sensors(_: Reader, db: Db) -> list[dict[str, Any]]:
    out = []
    for row in store.list_sensors(db):
        open_alert = None
        if row["open_alert_id"] is not None:
            open_alert = {"id": row["open_alert_id"], "opened_at": row["open_alert_opened_at"],
                          "status": row["open_alert_status"], "severity": row["open_alert_severity"]}
        out.append({**{k: v for k, v in row.items() if not k.startswith("open_alert")}, "open_alert": open_alert})
    return out


@router.get("/fleet", response_model=FleetOut)
def fleet(
    _: Reader,
    db: Db,
    hours: Annotated[int, Query(ge=1, le=168, description="Hours of alert counts.")] = 24,
    until: Annotated[When | None, Query(description=f"End of the counted hours (default: the latest event): "
                                                    f"{WHEN_HELP}.")] = None,
) -> dict[str, Any]:
    """Sensors alerting now, alerts opened per hour (event time), for the page's overview."""
    return fleet_store.overview(db, hours, until)
