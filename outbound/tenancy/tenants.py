"""Tenants: the brands whose customers are contacted. Every query is scoped by one."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from outbound.clock import Clock
from outbound.compliance.zones import real_zone
from outbound.db.models import Tenant
from outbound.errors import InvalidInput, UnknownTenant

JURISDICTIONS = ("US", "KR", "EU", "default")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Sender details the messages of each jurisdiction must carry (COMPLIANCE.md rules 10 and 15).
REQUIRED_SETTINGS = {
    "US": ("support_contact", "postal_address"),
    "KR": ("support_contact", "optout_number"),
    "EU": ("support_contact", "postal_address"),
    "default": ("support_contact",),
}


def create_tenant(
    session: Session,
    clock: Clock,
    slug: str,
    *,
    jurisdiction: str,
    timezone: str,
    locale: str,
    name: str | None = None,
    settings: dict[str, Any] | None = None,
) -> Tenant:
    """Add a tenant; its slug must be new, its jurisdiction known and its time zone real."""
    if not SLUG.match(slug):
        raise InvalidInput("use lower-case letters, digits and dashes", field="slug")
    if jurisdiction not in JURISDICTIONS:
        raise InvalidInput(f"must be one of {', '.join(JURISDICTIONS)}", field="jurisdiction")
    try:
        real_zone(timezone)
    except ValueError as error:
        raise InvalidInput(str(error), field="timezone") from None
    missing = [key for key in REQUIRED_SETTINGS[jurisdiction] if not (settings or {}).get(key)]
    if missing:
        raise InvalidInput(
            f"a {jurisdiction} tenant needs {', '.join(missing)} (set with --set KEY=VALUE)", field="settings"
        )
    if session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        raise InvalidInput(f"tenant {slug!r} already exists", field="slug")
    tenant = Tenant(
        slug=slug,
        name=name or slug,
        jurisdiction=jurisdiction,
        timezone=timezone,
        locale=locale,
        settings=settings or {},
        created_at=clock.now(),
    )
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: Session, slug: str | None) -> Tenant:
    """The tenant named `slug`; with no slug, the only tenant, if there is exactly one."""
    if slug:
        tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            raise UnknownTenant(f"no tenant {slug!r} (see `outbound tenants list`)")
        return tenant
    tenants = session.scalars(select(Tenant).limit(2)).all()
    if len(tenants) == 1:
        return tenants[0]
    if not tenants:
        raise UnknownTenant("no tenant yet: create one with `outbound tenants create`")
    raise UnknownTenant("more than one tenant: name one with --tenant SLUG (see `outbound tenants list`)")
