"""Tables of the monitor's database. SQLite and PostgreSQL; every time is stored as UTC."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: all times are timezone-aware UTC")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class Alert(Base):
    """One incident: consecutive anomalous windows of a sensor. Identity: (sensor_id, opened_at)."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("sensor_id", "opened_at", name="uq_alerts_sensor_opened"),
        Index("ix_alerts_opened_at", "opened_at"),
        Index("ix_alerts_status", "status"),
        CheckConstraint("status IN ('open', 'acknowledged', 'resolved')", name="ck_alerts_status"),
        CheckConstraint("severity IN ('minor', 'major', 'critical')", name="ck_alerts_severity"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    sensor_id: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    last_window_end: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(20))
    peak_score: Mapped[float] = mapped_column(Float)
    threshold_at_peak: Mapped[float] = mapped_column(Float)
    window_count: Mapped[int]
    top_channels: Mapped[list[str]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))  # jsonb: SQL can query it
    model_version: Mapped[str] = mapped_column(String(64))
    partition: Mapped[int]
    first_offset: Mapped[int] = mapped_column(BigInteger)
    last_offset: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SensorState(Base):
    """Threshold and incident state of one sensor, written in the same transaction as its alerts."""

    __tablename__ = "sensor_state"

    sensor_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    partition: Mapped[int]
    state: Mapped[dict[str, Any]]
    last_score: Mapped[float | None] = mapped_column(Float)
    last_threshold: Mapped[float | None] = mapped_column(Float)
    last_window_end: Mapped[datetime | None]
    model_version: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Bumped by every write (each batch that touches the sensor, operator feedback); a consumer's batch transaction
    # checks it and replays instead of overwriting a change it has not seen (repository.commit_batch).
    revision: Mapped[int] = mapped_column(default=0, server_default="0")


class AlertEvidence(Base):
    """Decision-time evidence of an alert (``monitor.core.evidence``): one judged window as the engine decided it.

    Keyed by the alert's identity (sensor_id, opened_at) and the window's end; written in the batch transaction
    with the alert upserts. ``score`` and ``threshold`` are the float64 values compared (NULL for a non-finite one:
    nothing non-finite is stored); ``seq`` is the alert's window count at this window (0: before, pending or after it).
    """

    __tablename__ = "alert_evidence"

    sensor_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    opened_at: Mapped[datetime] = mapped_column(primary_key=True)
    window_end: Mapped[datetime] = mapped_column(primary_key=True)
    window_start: Mapped[datetime]
    record_offset: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int]
    score: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    contributions: Mapped[list[float | None]] = mapped_column(JSON)
    model_version: Mapped[str] = mapped_column(String(64))


class ConsumerOffset(Base):
    """Next offset to read per partition, stored with the output (Kafka's advice for external sinks)."""

    __tablename__ = "consumer_offsets"

    group_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    partition: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Records that expired from the log (retention) before they were read, and when the last gap was found
    # (runner: the stored offset was below the partition's log start).
    lost_records: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    lost_at: Mapped[datetime | None]


# --- Query surface (API keys, operator actions, feedback). Appended; owned by the API. ---


class ApiKey(Base):
    """An API key of `monitor serve`. Only the SHA-256 of the secret is stored; the secret is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))  # first characters of the secret, to recognise a key
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the whole secret
    scopes: Mapped[list[str]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class AlertEvent(Base):
    """Audit trail of operator actions on alerts: who (API key), when, what, and a note."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_alert", "alert_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("alerts.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(40))  # acknowledge, resolve, feedback:true_positive, ...
    actor: Mapped[str] = mapped_column(String(250))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)


class AlertFeedback(Base):
    """The operator's verdict on an alert (latest wins; the history is in alert_events).

    A false positive keeps the alert's window range here, so retraining can admit those windows again, and
    records whether the sensor's threshold statistics took the windows in (``threshold_applied``).
    """

    __tablename__ = "alert_feedback"

    alert_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    verdict: Mapped[str] = mapped_column(String(20))  # true_positive | false_positive | new_normal
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(250))
    sensor_id: Mapped[str] = mapped_column(String(200))
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    threshold_applied: Mapped[bool] = mapped_column(default=False)
    threshold_note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
# -- model registry and retraining (issue 4) ----------------------------------------------------------------


class ModelVersion(Base):
    """One trained model of a model name: its artifact, provenance, gate metrics and lifecycle status.

    ``status``: candidate -> active | rejected; active -> retired (replaced or rolled back). At most one
    active version per name (partial unique index); ``model_pointers`` names it, changed in the same
    transaction. ``previous_version`` is the version that was active when this one was promoted (rollback
    returns to it).
    """

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
        Index("ix_model_versions_one_active", "name", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    train_start: Mapped[datetime | None]
    train_end: Mapped[datetime | None]
    sources: Mapped[dict[str, Any]]
    config: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    artifact: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    previous_version: Mapped[str | None] = mapped_column(String(64))
    promoted_at: Mapped[datetime | None]
    promoted_by: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)


class ModelPointer(Base):
    """The active version of each model name: what consumers load and watch (one cheap row to poll)."""

    __tablename__ = "model_pointers"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(200))
    shadow_version: Mapped[str | None] = mapped_column(String(64))  # scored alongside, never alerts (shadow mode)


class SchedulerState(Base):
    """Retraining schedule of one job: the single-flight lease and the next due time (survive restarts)."""

    __tablename__ = "scheduler_state"

    job: Mapped[str] = mapped_column(String(100), primary_key=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    next_due_at: Mapped[datetime | None]
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_outcome: Mapped[str | None] = mapped_column(String(20))
    last_version: Mapped[str | None] = mapped_column(String(64))
    last_reason: Mapped[str | None] = mapped_column(Text)
    runs: Mapped[int] = mapped_column(default=0)


class ReferenceWindows(Base):
    """Windows of an operator-confirmed alert, kept for the retraining gate: a true positive the next model must
    still detect, a false positive it must not raise again (monitor/training/reference.py). Harvested from the
    history a retrain reads and kept here, beyond the topic's retention; one row per model name and alert."""

    __tablename__ = "reference_windows"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)  # model name
    alert_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(20))  # true_positive | false_positive
    sensor_id: Mapped[str] = mapped_column(String(200))
    alert_start: Mapped[datetime]  # the confirmed alert's window range
    alert_end: Mapped[datetime]
    channels: Mapped[list[str]]
    window_len: Mapped[int]
    starts: Mapped[list[float]] = mapped_column(JSON)  # each window's start and end, unix seconds
    ends: Mapped[list[float]] = mapped_column(JSON)
    values: Mapped[bytes] = mapped_column(LargeBinary)  # float32 (n, window_len, channels), C order
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ShadowReport(Base):
    """One consumer's comparison of a shadow version with the active model on the same windows (shadow mode):
    windows judged, windows in an alert under both / only the active / only the shadow, alerts each opened."""

    __tablename__ = "shadow_reports"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)  # the shadow version
    consumer: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid of the consumer process
    active_version: Mapped[str] = mapped_column(String(64))
    windows: Mapped[int] = mapped_column(BigInteger)
    both: Mapped[int] = mapped_column(BigInteger)
    only_active: Mapped[int] = mapped_column(BigInteger)
    only_shadow: Mapped[int] = mapped_column(BigInteger)
    opened_active: Mapped[int] = mapped_column(BigInteger)
    opened_shadow: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RetrainRun(Base):
    """One retraining run, whatever its outcome (promoted, shadowed, rejected, skipped, failed): its report."""

    __tablename__ = "retrain_runs"
    __table_args__ = (Index("ix_retrain_runs_name_started", "name", "started_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    triggered_by: Mapped[str] = mapped_column(String(200))
    trigger_reason: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(20))
    version: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    report: Mapped[dict[str, Any]]  # data range, windows read / excluded / used, both models' gate figures
