"""Tenant API keys: shown once when created, stored only as a SHA-256 and a short prefix."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from outbound.clock import Clock
from outbound.db.models import ApiKey, Tenant
from outbound.errors import InvalidInput, NotFound

ROLES = ("ingest", "admin")
KEY_PREFIX = "ob_"
# Enough of the key to tell keys apart in a listing, far too little to guess the rest.
SHOWN_CHARS = len(KEY_PREFIX) + 8


def hash_key(raw_key: str) -> str:
    """The SHA-256 hex under which a key is stored."""
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def create_api_key(session: Session, tenant: Tenant, role: str = "ingest", clock: Clock | None = None) -> str:
    """Create a key for the tenant and return it; this is the only time the key itself is seen."""
    if clock is None:
        raise TypeError("create_api_key needs the clock")
    if role not in ROLES:
        raise InvalidInput(f"must be one of {', '.join(ROLES)}", field="role")
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            tenant_id=tenant.id,
            prefix=raw_key[:SHOWN_CHARS],
            key_hash=hash_key(raw_key),
            role=role,
            created_at=clock.now(),
        )
    )
    session.flush()
    return raw_key


def authenticate(session: Session, raw_key: str | None) -> tuple[Tenant, str] | None:
    """The tenant and role of a valid, unrevoked key; None for anything else."""
    raw_key = (raw_key or "").strip()
    if not raw_key.startswith(KEY_PREFIX):
        return None
    # Looking up by hash leaks nothing about stored keys through timing.
    row = session.execute(
        select(Tenant, ApiKey.role)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == hash_key(raw_key), ApiKey.revoked_at.is_(None))
    ).first()
    return (row[0], row[1]) if row else None


def revoke_api_key(session: Session, tenant: Tenant, prefix: str, clock: Clock) -> int:
    """Revoke the tenant's unrevoked keys that start with `prefix`; returns how many."""
    if len(prefix) < SHOWN_CHARS:
        raise InvalidInput(f"give at least the first {SHOWN_CHARS} characters of the key", field="prefix")
    keys = session.scalars(
        select(ApiKey).where(
            ApiKey.tenant_id == tenant.id,
            ApiKey.prefix == prefix[:SHOWN_CHARS],
            ApiKey.revoked_at.is_(None),
        )
    ).all()
    if not keys:
        raise NotFound(f"no active key starting with {prefix[:SHOWN_CHARS]!r}")
    for key in keys:
        key.revoked_at = clock.now()
    session.flush()
    return len(keys)
