"""The scheduler's row in the database: a single-flight lease and the persisted schedule.

Acquiring is one conditional UPDATE (free, expired, or already ours), atomic on SQLite and PostgreSQL, so
two schedulers never hold the lease at once. The holder renews it while a retrain runs; a crashed holder's
lease expires after ``lease_s``. ``next_due_at`` lives in the row, so a restart keeps the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Engine, Table, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StoreError
from monitor.store.schema import SchedulerState

_T = cast(Table, SchedulerState.__table__)


@dataclass(frozen=True)
class JobState:
    job: str
    lease_owner: str | None
    lease_expires_at: datetime | None
    next_due_at: datetime | None
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_outcome: str | None
    last_version: str | None
    last_reason: str | None
    runs: int


def _wrap(what: str, exc: SQLAlchemyError) -> StoreError:
    return StoreError(f"scheduler state: cannot {what}: {exc.__class__.__name__}")


def ensure_job(db: Engine, job: str, next_due_at: datetime) -> JobState:
    """Create the job's row if missing (keeping an existing schedule) and return it."""
    insert = (postgresql.insert if db.dialect.name == "postgresql" else sqlite.insert)(_T)
    try:
        with db.begin() as conn:
            conn.execute(insert.values(job=job, next_due_at=next_due_at, runs=0).on_conflict_do_nothing())
    except SQLAlchemyError as exc:
        raise _wrap("create the job", exc) from exc
    return read(db, job)


def read(db: Engine, job: str) -> JobState:
    try:
        with db.connect() as conn:
            row = conn.execute(select(_T).where(_T.c.job == job)).mappings().one()
    except SQLAlchemyError as exc:
        raise _wrap("read", exc) from exc
    return JobState(**dict(row))


def acquire(db: Engine, job: str, owner: str, lease_s: float, now: datetime) -> bool:
    """Take the lease if it is free, expired or already ours. True when this owner holds it now."""
    return _update(db, "acquire the lease", (_T.c.job == job) & or_(
        _T.c.lease_owner.is_(None), _T.c.lease_expires_at < now, _T.c.lease_owner == owner,
    ), lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s))


def renew(db: Engine, job: str, owner: str, lease_s: float, now: datetime) -> bool:
    return _update(db, "renew the lease", (_T.c.job == job) & (_T.c.lease_owner == owner),
                   lease_expires_at=now + timedelta(seconds=lease_s))


def mark_started(db: Engine, job: str, owner: str, now: datetime, **values: Any) -> bool:
    """Record the start (and ``values``, e.g. the next due time) under the lease."""
    return _update(db, "record the start", (_T.c.job == job) & (_T.c.lease_owner == owner),
                   last_started_at=now, runs=_T.c.runs + 1, **values)


def release(db: Engine, job: str, owner: str, **values: Any) -> bool:
    """Give the lease back, recording ``values`` (outcome, next due time, ...) in the same statement."""
    return _update(db, "release the lease", (_T.c.job == job) & (_T.c.lease_owner == owner),
                   lease_owner=None, lease_expires_at=None, **values)


def _update(db: Engine, what: str, where: Any, **values: Any) -> bool:
    try:
        with db.begin() as conn:
            return conn.execute(update(_T).where(where).values(**values)).rowcount == 1
    except SQLAlchemyError as exc:
        raise _wrap(what, exc) from exc
