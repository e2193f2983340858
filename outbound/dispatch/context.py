"""What the gate and the renderer need for one group of claimed messages, loaded with a query per kind.

Tenants, contacts, consent ledgers, suppressions, recent marketing (sent in the frequency window, or
with a provider now), last purchases, the events that started the enrollments, offer codes and
complaint rates: each read once for the whole group (`outbound.db.dispatch`), never once per message.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from outbound.addresses import contact_address_hash
from outbound.compliance import ConsentRecord, Policy, policy_for
from outbound.context import tenant_view
from outbound.db import dispatch as store
from outbound.db.messages import ClaimedMessage
from outbound.db.models import Tenant
from outbound.dispatch.breaker import rates_for_dispatch
from outbound.rendering.templates import locale_chain
from outbound.vocabulary import Channel, Purpose

RECENT = timedelta(days=7)  # how far back marketing messages are read for the frequency caps


@dataclass
class GroupContext:
    """Everything the gate and the renderer need for one group of claimed messages."""

    tenants: dict[int, Tenant]
    contacts: dict[int, Any]  # contact rows
    consents: dict[int, tuple[ConsentRecord, ...]]
    suppressions: dict[tuple[int, str, str], list[str]]
    recent_marketing: dict[int, list[tuple[str, datetime]]]
    last_purchase: dict[int, datetime]
    events: dict[int, Any]  # the event row that started each enrollment
    offer_codes: dict[tuple[int, str, int], str] = field(default_factory=dict)
    complaint_rates: dict[int, float] = field(default_factory=dict)
    # Pure per-tenant values, worked out once per group instead of once per message.
    policies: dict[tuple[int, str], Policy] = field(default_factory=dict)
    tenant_views: dict[int, dict[str, Any]] = field(default_factory=dict)
    locale_chains: dict[tuple[str | None, str | None], list[str]] = field(default_factory=dict)

    def policy(self, tenant: Tenant, jurisdiction: str) -> Policy:
        """The tenant's compliance policy in a jurisdiction."""
        key = (tenant.id, jurisdiction)
        if key not in self.policies:
            self.policies[key] = policy_for(jurisdiction, (tenant.settings or {}).get("compliance"))
        return self.policies[key]

    def tenant_view(self, tenant: Tenant) -> dict[str, Any]:
        """What templates see of the tenant."""
        # One dict shared by the group's messages: templates run in an immutable sandbox and cannot change it.
        if tenant.id not in self.tenant_views:
            self.tenant_views[tenant.id] = tenant_view(tenant)
        return self.tenant_views[tenant.id]

    def locale_chain(self, contact_locale: str | None, tenant_locale: str | None) -> list[str]:
        """The locales to try a template in, for a contact's and a tenant's locales."""
        key = (contact_locale, tenant_locale)
        if key not in self.locale_chains:
            self.locale_chains[key] = locale_chain(contact_locale, tenant_locale)
        return self.locale_chains[key]


def load_context(
    session: Session, group: list[ClaimedMessage], now: datetime, campaigns: Mapping[str, Any]
) -> GroupContext:
    """The context of a group of claimed messages; `campaigns` are the definitions' campaigns by name."""
    tenant_ids = {m.tenant_id for m in group}
    contact_ids = {m.contact_id for m in group}
    contacts = {c.id: c for c in store.contacts(session, contact_ids)}
    ledgers: dict[int, list[ConsentRecord]] = defaultdict(list)
    for row in store.consents(session, tenant_ids, contact_ids):
        ledgers[row.contact_id].append(
            ConsentRecord(
                channel=row.channel,
                purpose=row.purpose,
                granted=row.granted,
                night=row.night,
                at=row.at,
                source=row.source,
            )
        )
    hashes = {
        contact_address_hash(m.channel, contacts[m.contact_id])
        for m in group
        if (contacts[m.contact_id].phone if m.channel == Channel.SMS else contacts[m.contact_id].email)
    }
    suppressions: dict[tuple[int, str, str], list[str]] = defaultdict(list)
    if hashes:
        for row in store.suppressions(session, tenant_ids, hashes):
            suppressions[(row.tenant_id, row.channel, row.address_hash)].append(row.reason)
    recent: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
    # A message still `sending` (with a provider now, or lost there) counts as sent when it was handed over.
    for channel, sent_at, contact_id in store.marketing_sent_since(session, tenant_ids, contact_ids, now - RECENT):
        recent[contact_id].append((channel, sent_at))
    for channel, handed_at, contact_id, tenant_id in store.marketing_sending(session):
        if contact_id in contact_ids and tenant_id in tenant_ids:
            recent[contact_id].append((channel, handed_at))
    last_purchase = store.last_purchases(session, tenant_ids, contact_ids)
    events = store.enrollment_events(session, {m.enrollment_id for m in group if m.enrollment_id is not None})
    tenants = store.tenants(session, tenant_ids)
    # The complaint rate (two counts over 30 days per tenant) only matters to marketing email.
    emailing = {
        m.tenant_id: tenants[m.tenant_id]
        for m in group
        if m.channel == Channel.EMAIL and m.purpose == Purpose.MARKETING
    }
    return GroupContext(
        tenants,
        contacts,
        {k: tuple(v) for k, v in ledgers.items()},
        suppressions,
        recent,
        last_purchase,
        events,
        _offer_codes(session, group, campaigns, tenant_ids, contact_ids),
        rates_for_dispatch(session, emailing, now),
    )


def _offer_codes(
    session: Session,
    group: list[ClaimedMessage],
    campaigns: Mapping[str, Any],
    tenant_ids: set[int],
    contact_ids: set[int],
) -> dict[tuple[int, str, int], str]:
    """The code most recently given to each contact in each offer campaign of the group, for `offer.code`."""
    names = {m.campaign for m in group if (c := campaigns.get(m.campaign)) and c.offer_codes}
    if not names:
        return {}
    newest: dict[tuple[int, str, int], tuple] = {}
    for row in store.offer_codes(session, tenant_ids, names, contact_ids):
        key = (row.tenant_id, row.campaign, row.contact_id)
        rank = (row.assigned_at is not None, row.assigned_at, row.id)
        if key not in newest or rank > newest[key][0]:
            newest[key] = (rank, row.code)
    return {key: code for key, (_, code) in newest.items()}
