"""Model versions in the database: register, promote, reject, roll back, load. The caller owns the engine.

Invariants (kept in ONE transaction per change):
  * at most one version per name has status ``active`` (also a partial unique index);
  * ``model_pointers[name].version`` is that version; consumers poll only this row (cheap);
  * a promotion is compare-and-set on the pointer: two concurrent promotions cannot both win.
Artifacts are stored in the row (``LargeBinary``) with their SHA-256, checked on every load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, case, delete, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from monitor.core.contract import parse_time
from monitor.core.scoring import artifact
from monitor.core.scoring.artifact import ModelBundle
from monitor.errors import ArtifactError, ConfigError, PromotionConflict, StoreError
from monitor.registry import model_files
from monitor.store.schema import ModelPointer, ModelVersion, utcnow

CANDIDATE, ACTIVE, REJECTED, RETIRED = "candidate", "active", "rejected", "retired"


@dataclass(frozen=True)
class VersionInfo:
    """A registry row without its artifact bytes."""

    name: str
    version: str
    status: str
    created_at: datetime
    train_start: datetime | None
    train_end: datetime | None
    sources: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, Any]
    sha256: str
    size_bytes: int
    previous_version: str | None
    promoted_at: datetime | None
    promoted_by: str | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        from monitor.core.contract import format_time

        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = format_time(value) if isinstance(value, datetime) else value
        return out


_T = cast(Table, ModelVersion.__table__)
_INFO_COLUMNS = [c for c in _T.c if c.name not in ("artifact", "id")]


def _info(row: Any, size: int) -> VersionInfo:
    data = {c.name: row[c.name] for c in _INFO_COLUMNS}
    return VersionInfo(size_bytes=size, **data)


def _select_info() -> Any:
    from sqlalchemy import func

    return select(*_INFO_COLUMNS, func.length(_T.c.artifact).label("size_bytes"))


def register(
    db: Engine,
    name: str,
    bundle: ModelBundle,
    *,
    train_start: datetime | None = None,
    train_end: datetime | None = None,
    sources: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    reason: str | None = None,
) -> VersionInfo:
    """Store ``bundle`` as a new candidate version (its ``meta.version`` names it)."""
    data = artifact.to_bytes(bundle)
    row = {
        "name": name, "version": bundle.meta.version, "status": CANDIDATE, "created_at": utcnow(),
        "train_start": train_start, "train_end": train_end, "sources": sources or {}, "config": config or {},
        "metrics": metrics or {}, "artifact": data, "sha256": hashlib.sha256(data).hexdigest(),
        "previous_version": None, "promoted_at": None, "promoted_by": None, "reason": reason,
    }
    try:
        with db.begin() as conn:
            conn.execute(_T.insert().values(row))
    except IntegrityError as exc:
        raise ConfigError(f"model {name} version {bundle.meta.version} is already registered") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot register model version: {exc.__class__.__name__}") from exc
    return get(db, name, bundle.meta.version)


def import_file(
    db: Engine, name: str, path: Path, *, by: str, activate: bool, reason: str | None = None
) -> VersionInfo:
    """Register the model file at ``path`` (its ``meta.version`` names it; its training range, when the artifact
    records one, becomes the version's), and make it active if ``activate``. A version of that name already
    registered with the same artifact is reused (activated if asked); another artifact under that name is refused."""
    bundle = model_files.load(path)
    training = bundle.meta.training
    why = reason or f"imported from {path}"
    try:
        info = register(db, name, bundle, train_start=parse_time(training.get("start")),
                        train_end=parse_time(training.get("end")),
                        sources={"kind": "file", "path": str(path.resolve()), "training": training},
                        config={"window_len": bundle.meta.window_len, "hidden_size": bundle.meta.hidden_size},
                        metrics=dict(bundle.meta.metrics), reason=why)
    except ConfigError:  # already registered: the same artifact is the same version
        info = get(db, name, bundle.meta.version)
        if info.sha256 != hashlib.sha256(artifact.to_bytes(bundle)).hexdigest():
            raise ConfigError(f"{path}: model {name} already has a version {bundle.meta.version!r} with another "
                              "artifact (rename one of them, e.g. retrain the file with another version)") from None
    if activate and info.status != ACTIVE:
        info = promote(db, name, info.version, by=by, reason=why)
    return info


def recently_active(db: Engine, name: str, limit: int) -> list[str]:
    """The ``limit`` versions of ``name`` promoted most recently (active or since retired, except those retired by
    a rollback), newest first."""
    if limit <= 0:
        return []
    try:
        with db.connect() as conn:
            rows = conn.execute(
                select(_T.c.version).where(_T.c.name == name, _T.c.promoted_at.is_not(None),
                                           # a version rolled back from was bad: never the bar to beat
                                           or_(_T.c.reason.is_(None), _T.c.reason.not_like("rolled back to %")))
                .order_by(_T.c.promoted_at.desc()).limit(limit)
            ).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot list model versions: {exc.__class__.__name__}") from exc
    return [r[0] for r in rows]


def get(db: Engine, name: str, version: str) -> VersionInfo:
    try:
        with db.connect() as conn:
            row = conn.execute(_select_info().where(_T.c.name == name, _T.c.version == version)).mappings().first()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the model registry: {exc.__class__.__name__}") from exc
    if row is None:
        raise ConfigError(f"no version {version!r} of model {name!r} in the registry")
    return _info(row, int(row["size_bytes"] or 0))


def list_versions(db: Engine, name: str | None = None) -> list[VersionInfo]:
    """Newest first."""
    stmt = _select_info().order_by(_T.c.created_at.desc(), _T.c.id.desc())
    if name:
        stmt = stmt.where(_T.c.name == name)
    try:
        with db.connect() as conn:
            return [_info(r, int(r["size_bytes"] or 0)) for r in conn.execute(stmt).mappings()]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the model registry: {exc.__class__.__name__}") from exc


def active_version(db: Engine, name: str) -> str | None:
    """The active version's name, from the pointer row (one primary-key read: cheap to poll)."""
    try:
        with db.connect() as conn:
            return conn.execute(select(ModelPointer.version).where(ModelPointer.name == name)).scalar_one_or_none()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the active model pointer: {exc.__class__.__name__}") from exc


def load_bundle(db: Engine, name: str, version: str) -> ModelBundle:
    """Load a version's artifact, checking its SHA-256 and the weights-only format."""
    try:
        with db.connect() as conn:
            row = conn.execute(
                select(_T.c.artifact, _T.c.sha256).where(_T.c.name == name, _T.c.version == version)
            ).first()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read model artifact: {exc.__class__.__name__}") from exc
    if row is None:
        raise ConfigError(f"no version {version!r} of model {name!r} in the registry")
    data, digest = bytes(row[0]), row[1]
    if hashlib.sha256(data).hexdigest() != digest:
        raise ArtifactError(f"registry artifact {name}/{version}: SHA-256 mismatch (row corrupt or edited)")
    bundle = artifact.from_bytes(data, f"registry:{name}/{version}")
    if bundle.meta.version != version:
        raise ArtifactError(f"registry artifact {name}/{version} holds model version {bundle.meta.version!r}")
    return bundle


def load_active(db: Engine, name: str) -> ModelBundle | None:
    version = active_version(db, name)
    return None if version is None else load_bundle(db, name, version)


def promote(
    db: Engine, name: str, version: str, *, by: str, reason: str, expected_active: str | None | object = ...
) -> VersionInfo:
    """Make ``version`` the active one; the previous active becomes ``retired``. One transaction.

    ``expected_active`` (if given) is compare-and-set: the promotion fails with ``PromotionConflict`` when
    the pointer no longer names it (another promotion won meanwhile).
    """
    with _transaction(db, "promote") as conn:
        current = _lock_pointer(conn, name)
        if expected_active is not ... and current != expected_active:
            raise PromotionConflict(f"active model of {name} is {current!r}, expected {expected_active!r}")
        if current == version:
            raise ConfigError(f"{name}/{version} is already active")
        target = conn.execute(select(_T.c.status).where(_T.c.name == name, _T.c.version == version)).first()
        if target is None:
            raise ConfigError(f"no version {version!r} of model {name!r} in the registry")
        _switch(conn, name, current, version, by=by, reason=reason, previous=current, retire_reason=f"replaced by {version}")
    return get(db, name, version)


def pointer(db: Engine, name: str) -> tuple[str | None, str | None]:
    """(active version, shadow version) of ``name`` in one read (the consumers' watcher polls this)."""
    try:
        with db.connect() as conn:
            row = conn.execute(select(ModelPointer.version, ModelPointer.shadow_version)
                               .where(ModelPointer.name == name)).first()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the model pointer: {exc.__class__.__name__}") from exc
    return (None, None) if row is None else (row[0], row[1])


def set_shadow(db: Engine, name: str, version: str | None, *, by: str) -> None:
    """Make ``version`` the shadow of ``name`` (scored by the consumers alongside the active model, never
    alerting), or stop shadowing (None). The shadow must be a registered version other than the active one."""
    with _transaction(db, "set the shadow version") as conn:
        current = _lock_pointer(conn, name)
        if current is None:
            raise ConfigError(f"model {name!r} has no active version: a shadow is compared with the active model")
        if version is not None:
            if version == current:
                raise ConfigError(f"{name}/{version} is the active version")
            status = conn.execute(select(_T.c.status).where(_T.c.name == name, _T.c.version == version)).first()
            if status is None:
                raise ConfigError(f"no version {version!r} of model {name!r} in the registry")
        conn.execute(update(ModelPointer).where(ModelPointer.name == name)
                     .values(shadow_version=version, updated_at=utcnow(), updated_by=by[:200]))
        if version is not None:  # a new shadow period counts from zero
            from monitor.store.schema import ShadowReport

            conn.execute(delete(ShadowReport).where(ShadowReport.name == name, ShadowReport.version == version))


def retrain_runs(db: Engine, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The ``limit`` latest retraining runs of ``name`` (any outcome), newest first, with their reports."""
    from monitor.core.contract import format_time
    from monitor.store.schema import RetrainRun

    t = RetrainRun.__table__.c
    try:
        with db.connect() as conn:
            rows = conn.execute(select(RetrainRun.__table__).where(t.name == name)
                                .order_by(t.started_at.desc(), t.id.desc()).limit(limit)).mappings().all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read retraining runs: {exc.__class__.__name__}") from exc
    return [{**dict(r), "started_at": format_time(r["started_at"]), "finished_at": format_time(r["finished_at"])}
            for r in rows]


def rollback(db: Engine, name: str, *, by: str, reason: str = "rollback") -> VersionInfo:
    """Re-activate the version the current one replaced; the current one becomes ``retired``."""
    with _transaction(db, "roll back") as conn:
        current = _lock_pointer(conn, name)
        if current is None:
            raise ConfigError(f"model {name!r} has no active version to roll back")
        previous = conn.execute(
            select(_T.c.previous_version).where(_T.c.name == name, _T.c.version == current)
        ).scalar_one_or_none()
        if not previous:
            raise ConfigError(f"{name}/{current} has no previous version to roll back to")
        # The target keeps its own previous_version, so repeated rollbacks walk further back.
        _switch(conn, name, current, previous, by=by, reason=reason, previous=None,
                retire_reason=f"rolled back to {previous}: {reason}")
    return get(db, name, previous)


def reject(db: Engine, name: str, version: str, reason: str) -> None:
    """Mark a candidate as rejected (never touches the active model)."""
    try:
        with db.begin() as conn:
            conn.execute(
                update(ModelVersion)
                .where(ModelVersion.name == name, ModelVersion.version == version, ModelVersion.status == CANDIDATE)
                .values(status=REJECTED, reason=reason[:4000])
            )
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record the rejection: {exc.__class__.__name__}") from exc


# -- helpers ---------------------------------------------------------------------------------------------
class _transaction:
    """``engine.begin()`` with SQLAlchemy errors wrapped as StoreError (own errors pass through)."""

    def __init__(self, db: Engine, what: str) -> None:
        self._cm = db.begin()
        self.what = what

    def __enter__(self) -> Connection:
        try:
            return self._cm.__enter__()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot {self.what}: {exc.__class__.__name__}") from exc

    def __exit__(self, typ: Any, val: BaseException | None, tb: Any) -> None:
        try:
            self._cm.__exit__(typ, val, tb)
        except IntegrityError as exc:
            raise PromotionConflict(f"cannot {self.what}: another change won ({exc.__class__.__name__})") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot {self.what}: {exc.__class__.__name__}") from exc
        if isinstance(val, IntegrityError):
            raise PromotionConflict(f"cannot {self.what}: another change won ({val.__class__.__name__})") from val
        if isinstance(val, SQLAlchemyError):
            raise StoreError(f"cannot {self.what}: {val.__class__.__name__}") from val


def _lock_pointer(conn: Connection, name: str) -> str | None:
    """Read the pointer, locking its row on PostgreSQL (SQLite serialises writers anyway)."""
    stmt = select(ModelPointer.version).where(ModelPointer.name == name)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return conn.execute(stmt).scalar_one_or_none()


def _switch(
    conn: Connection, name: str, current: str | None, target: str, *, by: str, reason: str,
    previous: str | None, retire_reason: str,
) -> None:
    now = utcnow()
    if current is not None:
        conn.execute(
            update(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == current)
            .values(status=RETIRED, reason=retire_reason[:4000])
        )
    values: dict[str, Any] = {"status": ACTIVE, "promoted_at": now, "promoted_by": by, "reason": reason[:4000]}
    if previous is not None:
        values["previous_version"] = previous
    conn.execute(update(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == target).values(values))
    if current is None:
        conn.execute(cast(Table, ModelPointer.__table__).insert().values(name=name, version=target, updated_at=now, updated_by=by))
    else:
        moved = conn.execute(
            update(ModelPointer).where(ModelPointer.name == name, ModelPointer.version == current)
            .values(version=target, updated_at=now, updated_by=by,  # a shadow promoted is no longer a shadow
                    shadow_version=case((ModelPointer.shadow_version == target, None),
                                        else_=ModelPointer.shadow_version))
        )
        if moved.rowcount != 1:
            raise PromotionConflict(f"active model of {name} changed during the switch")
