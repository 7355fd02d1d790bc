"""Request and response bodies of the HTTP API (they make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from monitor.core.incidents import Severity, Status


class AlertOut(BaseModel):
    id: int
    sensor_id: str
    opened_at: datetime
    closed_at: datetime | None
    last_window_end: datetime
    status: Status
    severity: Severity
    peak_score: float
    threshold_at_peak: float
    window_count: int
    top_channels: list[str]
    model_version: str
    partition: int
    first_offset: int
    last_offset: int
    created_at: datetime
    updated_at: datetime
    acknowledged_by: str | None = Field(None, description="Name of the API key that acknowledged the alert.")
    resolved_by: str | None = Field(
        None, description="Name of the API key that resolved the alert; null for an alert the detector closed.")


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class EventOut(BaseModel):
    id: int
    action: str
    actor: str
    at: datetime
    from_status: str | None
    to_status: str | None
    note: str | None


class FeedbackOut(BaseModel):
    verdict: str
    note: str | None
    actor: str
    window_start: datetime
    window_end: datetime
    threshold_applied: bool
    threshold_note: str | None
    updated_at: datetime


class AlertDetail(AlertOut):
    events: list[EventOut]
    feedback: FeedbackOut | None
    context: dict[str, Any] | None = Field(
        None, description="Windows around the alert: values, scores, thresholds, contributions (see docs).")


class ActionIn(BaseModel):
    note: str | None = Field(None, max_length=2000)


class FeedbackIn(BaseModel):
    verdict: Literal["true_positive", "false_positive", "new_normal"]
    note: str | None = Field(None, max_length=2000)


class FeedbackResult(BaseModel):
    alert: AlertDetail
    threshold_applied: bool
    threshold_note: str


class SensorOut(BaseModel):
    sensor_id: str
    partition: int
    last_score: float | None
    last_threshold: float | None
    last_window_end: datetime | None
    model_version: str
    updated_at: datetime
    open_alert: dict[str, Any] | None


class AlertingSensor(BaseModel):
    sensor_id: str
    alert_id: int = Field(description="The sensor's newest open or acknowledged alert.")
    status: str
    severity: str = Field(description="The most severe of the sensor's open and acknowledged alerts.")
    opened_at: datetime
    peak_score: float | None
    open_alerts: int = Field(description="How many open or acknowledged alerts the sensor has.")


class HourCount(BaseModel):
    hour: datetime = Field(description="Start of the hour (UTC).")
    opened: int
    minor: int
    major: int
    critical: int


class FleetOut(BaseModel):
    until: datetime = Field(description="End of the counted hours (the hour after the latest event, or `until`).")
    until_source: Literal["given", "latest_event", "now"]
    latest_event: datetime | None = Field(description="Newest window end the monitor has scored (event time).")
    sensors: int = Field(description="Sensors the monitor has state for.")
    alerting: list[AlertingSensor] = Field(description="Sensors with an open or acknowledged alert, worst first.")
    per_hour: list[HourCount] = Field(description="Alerts opened per hour, oldest hour first.")
