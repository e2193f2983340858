"""Tenants: the brands whose customers are contacted. Every query is scoped by one.

A tenant's own SMS number (`sms_from`) is its alone: kept in E.164 and refused for a second tenant,
so an inbound SMS to it is that tenant's. A tenant without one sends from the shared sender
(OUTBOUND_TWILIO_FROM_NUMBER or the messaging service), whose replies `outbound.delivery.routing` sorts out.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from outbound.addresses import default_region, sender_number
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
    if session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        raise InvalidInput(f"tenant {slug!r} already exists", field="slug")
    tenant = Tenant(
        slug=slug,
        name=name or slug,
        jurisdiction=jurisdiction,
        timezone=timezone,
        locale=locale,
        settings=_checked_settings(session, None, jurisdiction, timezone, settings or {}),
        created_at=clock.now(),
    )
    session.add(tenant)
    session.flush()
    return tenant


def update_settings(session: Session, tenant: Tenant, changes: dict[str, Any]) -> Tenant:
    """Change some of a tenant's settings (a value None or empty removes the key), checked as `create_tenant`
    checks them: what its jurisdiction requires, and a number no other tenant sends from."""
    merged = {**(tenant.settings or {}), **changes}
    merged = {key: value for key, value in merged.items() if value is not None and value != ""}
    # A new dict, not the old one changed: the JSON column sees a change only by assignment.
    tenant.settings = _checked_settings(session, tenant.id, tenant.jurisdiction, tenant.timezone, merged)
    session.flush()
    return tenant


def own_number(tenant: Tenant) -> str | None:
    """The number the tenant sends SMS from, as numbers are compared (`sender_number`: E.164 for a phone
    number); None when it has none of its own and sends from the shared sender."""
    return sender_number((tenant.settings or {}).get("sms_from"), default_region(tenant.jurisdiction, tenant.timezone))


def tenants_sending_from(session: Session, number: str | None, *, shared: bool) -> list[Tenant]:
    """The tenants that send SMS from `number` (compared as `sender_number`), by id: the one whose own number
    it is and, when it is the shared sender, every tenant without a number of its own."""
    wanted = sender_number(number, None)
    found = []
    for tenant in session.scalars(select(Tenant).order_by(Tenant.id)):
        own = own_number(tenant)
        if (own is not None and own == wanted) or (own is None and shared):
            found.append(tenant)
    return found


def _checked_settings(
    session: Session, tenant_id: int | None, jurisdiction: str, timezone: str, settings: dict[str, Any]
) -> dict[str, Any]:
    """`settings` as stored (`sms_from` in E.164), or InvalidInput naming what is missing or taken."""
    missing = [key for key in REQUIRED_SETTINGS[jurisdiction] if not settings.get(key)]
    if missing:
        raise InvalidInput(
            f"a {jurisdiction} tenant needs {', '.join(missing)} (set with --set KEY=VALUE)", field="settings"
        )
    number = sender_number(settings.get("sms_from"), default_region(jurisdiction, timezone))
    if number is None:
        return dict(settings)
    others = select(Tenant).where(Tenant.id != tenant_id) if tenant_id is not None else select(Tenant)
    if any(own_number(other) == number for other in session.scalars(others)):
        # Which tenant is not this one's business: the number is taken, that is all it learns.
        raise InvalidInput(f"the number {number} is already used by another tenant", field="settings.sms_from")
    return {**settings, "sms_from": number}


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
