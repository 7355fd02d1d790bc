"""API keys of `monitor serve`: created with a random secret shown once, stored as its SHA-256, revocable.

Scopes: ``read`` (every GET) and ``write`` (acknowledge, resolve, feedback); ``write`` implies ``read``.
A secret looks like ``mk_<43 url-safe characters>`` (256 random bits), so a plain SHA-256 suffices: there
is nothing to brute-force, unlike a password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import ConfigError, StoreError
from monitor.store.schema import ApiKey, utcnow

READ, WRITE = "read", "write"
SCOPES = (READ, WRITE)
SECRET_PREFIX = "mk_"


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def actor(self) -> str:
        """How the audit trail names whoever used this key (``actor_name`` reads the name back)."""
        return f"key:{self.id}:{self.name}"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or (scope == READ and WRITE in self.scopes)


def actor_name(actor: str) -> str:
    """The key name in an audit actor written by ``KeyInfo.actor`` (``key:<id>:<name>``); any other actor as is."""
    kind, _, rest = actor.partition(":")
    key_id, _, name = rest.partition(":")
    return name if kind == "key" and key_id.isdigit() and name else actor


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_key(engine: Engine, name: str, scopes: list[str]) -> tuple[KeyInfo, str]:
    """Create a key; returns its info and the secret (the only time the secret exists in clear)."""
    bad = sorted(set(scopes) - set(SCOPES))
    if bad or not scopes:
        raise ConfigError(f"scopes must be among {', '.join(SCOPES)} (got {', '.join(scopes) or 'none'})")
    if not name.strip() or len(name) > 200:
        raise ConfigError("a key needs a name of 1 to 200 characters")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = {"name": name.strip(), "prefix": secret[:10], "key_hash": hash_secret(secret),
           "scopes": sorted(set(scopes)), "created_at": utcnow(), "revoked_at": None}
    try:
        with engine.begin() as conn:
            key_id = conn.execute(insert(ApiKey).values(row).returning(ApiKey.id)).scalar_one()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot store the API key: {exc.__class__.__name__}") from exc
    return _info({**row, "id": key_id}), secret


def list_keys(engine: Engine) -> list[KeyInfo]:
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(ApiKey.__table__).order_by(ApiKey.id)).mappings().all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read API keys: {exc.__class__.__name__}") from exc
    return [_info(dict(r)) for r in rows]


def revoke_key(engine: Engine, key_id: int) -> bool:
    """Revoke a key at once; False if no such key or already revoked."""
    try:
        with engine.begin() as conn:
            done = conn.execute(
                update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
            )
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot revoke the API key: {exc.__class__.__name__}") from exc
    return done.rowcount == 1


def verify_key(engine: Engine, secret: str) -> KeyInfo | None:
    """The live key with this secret, or None (unknown, malformed or revoked)."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
        return None
    digest = hash_secret(secret)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(ApiKey.__table__).where(ApiKey.key_hash == digest)).mappings().first()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot check the API key: {exc.__class__.__name__}") from exc
    if row is None or not hmac.compare_digest(row["key_hash"], digest) or row["revoked_at"] is not None:
        return None
    return _info(dict(row))


def _info(row: dict[str, object]) -> KeyInfo:
    return KeyInfo(id=int(row["id"]), name=str(row["name"]), prefix=str(row["prefix"]),  # type: ignore[call-overload]
                   scopes=tuple(row["scopes"]), created_at=row["created_at"],  # type: ignore[arg-type]
                   revoked_at=row["revoked_at"])  # type: ignore[arg-type]
