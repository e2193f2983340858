"""The plain dictionaries that conditions and templates see of contacts, events and tenants."""

from __future__ import annotations

from typing import Any

from outbound.db.models import Contact, Event, Tenant


def contact_view(contact: Contact) -> dict[str, Any]:
    """What a condition or a template may read of a contact."""
    return {
        "external_id": contact.external_id,
        "phone": contact.phone,
        "email": contact.email,
        "locale": contact.locale,
        "timezone": contact.timezone,
        "jurisdiction": contact.jurisdiction,
        "attributes": dict(contact.attributes or {}),
    }


def event_view(event: Event | None) -> dict[str, Any]:
    """What a condition or a template may read of an event (empty when there is none)."""
    if event is None:
        return {"id": None, "type": None, "data": {}, "occurred_at": None}
    return {
        "id": event.event_id,
        "type": event.type,
        "data": dict(event.data or {}),
        "occurred_at": event.occurred_at.isoformat(),
    }


def tenant_view(tenant: Tenant) -> dict[str, Any]:
    """A tenant's name, jurisdiction and sender settings, for templates."""
    view = {key: value for key, value in (tenant.settings or {}).items() if isinstance(value, (str, int, float))}
    view.update(
        slug=tenant.slug,
        name=tenant.name,
        jurisdiction=tenant.jurisdiction,
        timezone=tenant.timezone,
        locale=tenant.locale,
    )
    view.setdefault("sender_name", tenant.name)
    return view
