"""Tenant API keys: shown once when created, stored only as a SHA-256 and a short prefix."""

from __future__ import annotations

import hashlib
import secrets
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, make_transient_to_detached

from outbound.clock import Clock
from outbound.db.models import ApiKey, Tenant
from outbound.errors import InvalidInput, NotFound

ROLES = ("ingest", "admin")
KEY_PREFIX = "ob_"
# Enough of the key to tell keys apart in a listing, far too little to guess the rest.
SHOWN_CHARS = len(KEY_PREFIX) + 8
# How long a process trusts a key it has checked: a key revoked elsewhere is refused at most this late.
KEY_CACHE_SECONDS = 5.0


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
    hashes = [key.key_hash for key in keys]
    _forget_everywhere(hashes)
    # Again once committed: a request that checked the key in between still saw it valid.
    event.listen(session, "after_commit", lambda _session: _forget_everywhere(hashes), once=True)
    return len(keys)


@dataclass(frozen=True)
class _Checked:
    tenant: dict[str, Any]  # the tenant's column values
    role: str
    until: float


class KeyCache:
    """The keys a process has checked lately: key → tenant and role, trusted for `ttl` seconds.

    An order system sends every event with the same key, so the API checks it
    against the database once per `ttl` instead of once per request. Only valid
    keys are kept, never a refusal. Revoking a key with `revoke_api_key` drops it
    from every cache of the process at once; a key revoked by another process
    (`outbound keys revoke` while `outbound serve` runs) is refused here at most
    `ttl` seconds later. The tenant's row comes from the cache too, so a change
    to the tenant made elsewhere reaches the API within the same `ttl`.
    """

    def __init__(self, ttl: float = KEY_CACHE_SECONDS, timer: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self._timer = ttl, timer
        self._checked: dict[str, _Checked] = {}
        self._forgotten = 0  # how many times `forget` ran: a check that overlaps one is not kept
        _caches.add(self)

    def authenticate(self, session: Session, raw_key: str | None) -> tuple[Tenant, str] | None:
        """What `authenticate` answers, from the cache while it is fresh; the tenant is attached to `session`."""
        digest = hash_key((raw_key or "").strip())
        now = self._timer()
        checked = self._checked.get(digest)
        if checked is not None and now < checked.until:
            return _attach(session, checked.tenant), checked.role
        forgotten = self._forgotten
        found = authenticate(session, raw_key)
        if found is None:
            self._checked.pop(digest, None)
            return None
        tenant, role = found
        if forgotten == self._forgotten:
            self._checked[digest] = _Checked(_columns(tenant), role, now + self.ttl)
        return tenant, role

    def forget(self, key_hashes: Iterable[str]) -> None:
        """Drop these keys (by hash), so their next use is checked against the database."""
        self._forgotten += 1
        for digest in key_hashes:
            self._checked.pop(digest, None)


_caches: weakref.WeakSet[KeyCache] = weakref.WeakSet()


def _forget_everywhere(key_hashes: list[str]) -> None:
    for cache in list(_caches):
        cache.forget(key_hashes)


def _columns(tenant: Tenant) -> dict[str, Any]:
    return {column.key: getattr(tenant, column.key) for column in Tenant.__mapper__.column_attrs}


def _attach(session: Session, values: dict[str, Any]) -> Tenant:
    # A fresh copy per request, so no two sessions (or threads) share one instance.
    tenant = Tenant(**{**values, "settings": dict(values.get("settings") or {})})
    make_transient_to_detached(tenant)
    return session.merge(tenant, load=False)
