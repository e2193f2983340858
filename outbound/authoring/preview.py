"""Preview a campaign for one contact: every step, variant, channel and locale rendered, with SMS cost.

The names a template sees are built as dispatch builds them (contact, the contact's latest event that
would trigger the campaign, tenant, links, offer code), so what the marketer reads is what would go.
Nothing is stored: no offer code is given out and no message is created.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from outbound.compliance.decisions import Block
from outbound.compliance.rendered import RENDERED_RULES, RenderedFacts
from outbound.compliance.zones import resolve_jurisdiction
from outbound.config import Settings
from outbound.context import contact_view, event_view, tenant_view
from outbound.db.models import Contact, Event, Tenant
from outbound.definitions import CampaignDef, Definitions
from outbound.definitions.schema import VariantDef
from outbound.enrollment.plan import pattern_code
from outbound.errors import NotFound, OutboundError
from outbound.rendering.links import LinkSigner, list_purpose
from outbound.rendering.templates import SmsInfo, locale_chain, sms_segments
from outbound.signing import Keyring
from outbound.vocabulary import Channel, Purpose

DEFAULT_SMS_COST = 0.0083  # USD per segment, a typical US long-code rate; tenants set their own
PREVIEW_MESSAGE_ID = 0


@dataclass(frozen=True, kw_only=True)
class RenderedVersion:
    """One step rendered in one channel and locale (or the error that stops it rendering)."""

    step: str
    delay: timedelta
    variant: str | None
    template: str
    channel: str
    locale: str
    chosen: bool  # the locale this contact would get
    fallback: bool  # the step's fallback channel, sent only when the main one is undeliverable
    applies: bool  # the step's `when` holds for this contact
    subject: str | None = None
    text: str | None = None
    error: str | None = None
    sms: SmsInfo | None = None
    cost: float | None = None
    problems: tuple[str, ...] = ()  # what would block this text at send time (format, segment limit)


@dataclass
class CampaignPreview:
    """A campaign rendered for one contact."""

    campaign: str
    tenant: str
    contact: str
    currency: str
    event: str | None
    versions: list[RenderedVersion] = field(default_factory=list)


def preview_campaign(
    session: Session,
    definitions: Definitions,
    settings: Settings,
    tenant: Tenant,
    campaign_name: str,
    external_id: str,
    event_data: dict[str, Any] | None = None,
) -> CampaignPreview:
    """Render every step of `campaign_name` for the tenant's contact `external_id`.

    Its links have the shape and length of the real ones (so SMS segments and costs are right) but are
    signed with a key made for this preview: a link copied from a preview opens nothing.
    """
    signer = LinkSigner(settings.base_url, Keyring(secrets.token_urlsafe(48)))
    now = datetime.now(UTC)
    campaign = definitions.campaign_for(campaign_name, tenant.slug)
    contact = session.scalar(select(Contact).where(Contact.tenant_id == tenant.id, Contact.external_id == external_id))
    if contact is None:
        raise NotFound(f"no contact {external_id!r} in tenant {tenant.slug!r}")
    event = _triggering_event(session, definitions, tenant, contact, campaign_name) if event_data is None else None
    event_names = event_view(event)
    if event_data is not None:
        event_names = {"id": "preview", "type": "preview", "data": dict(event_data), "occurred_at": None}
    tenant_settings = tenant.settings or {}
    cost_per_segment = float(tenant_settings.get("sms_cost_per_segment", DEFAULT_SMS_COST))
    preview = CampaignPreview(
        campaign_name,
        tenant.slug,
        external_id,
        str(tenant_settings.get("sms_cost_currency", "USD")),
        f"{event.type} {event.event_id}" if event is not None else None,
    )
    chain = locale_chain(contact.locale, tenant.locale)
    jurisdiction = resolve_jurisdiction(contact.jurisdiction, tenant.jurisdiction)
    condition_names = {"event": event_names, "contact": contact_view(contact)}
    renderer = definitions.renderer
    for step in campaign.steps:
        applies = step.when is None or step.when.test(**condition_names)
        variants: Sequence[VariantDef | None] = step.variants or [None]
        for variant in variants:
            template = step.template_of(variant)
            for channel in (step.channel, step.fallback) if step.fallback else (step.channel,):
                locales = renderer.available_locales(template, channel)
                chosen = next((found for wanted in chain for found in locales if found.lower() == wanted.lower()), None)
                for locale in locales:
                    names = _names(signer, now, tenant, contact, campaign, step.id, channel, event_names, variant)
                    version = RenderedVersion(
                        step=step.id,
                        delay=step.delay,
                        variant=variant.id if variant else None,
                        template=template,
                        channel=channel,
                        locale=locale,
                        chosen=locale == chosen,
                        fallback=channel != step.channel,
                        applies=applies,
                    )
                    try:
                        rendered = renderer.render(template, channel, [locale], names)
                    except OutboundError as error:
                        preview.versions.append(dataclasses.replace(version, error=str(error)))
                        continue
                    sms = sms_segments(rendered.text) if channel == Channel.SMS else None
                    # Every rule of the gate's second phase that would block this version, as at dispatch.
                    facts = RenderedFacts(
                        rendered=rendered,
                        channel=channel,
                        purpose=campaign.purpose,
                        jurisdiction=jurisdiction,
                        tenant=names["tenant"],
                        unsubscribe_url=names["links"]["unsubscribe"],
                        max_segments=step.max_segments if channel == step.channel else None,
                    )
                    problems = [
                        decision.reason for rule in RENDERED_RULES if isinstance(decision := rule(facts), Block)
                    ]
                    preview.versions.append(
                        dataclasses.replace(
                            version,
                            subject=rendered.subject,
                            text=rendered.text,
                            sms=sms,
                            problems=tuple(problems),
                            cost=round(sms.segments * cost_per_segment, 6) if sms else None,
                        )
                    )
    return preview


def _names(
    signer: LinkSigner,
    now: datetime,
    tenant: Tenant,
    contact: Contact,
    campaign: CampaignDef,
    step: str,
    channel: str,
    event_names: dict[str, Any],
    variant: VariantDef | None,
) -> dict[str, Any]:
    links = {"unsubscribe": signer.unsubscribe(tenant.id, contact.id, channel, list_purpose(campaign.purpose))}
    if campaign.purpose == Purpose.SURVEY:
        links["survey"] = signer.survey(tenant.id, PREVIEW_MESSAGE_ID, now)
    return {
        "contact": contact_view(contact),
        "event": event_names,
        "tenant": tenant_view(tenant),
        "campaign": campaign.name,
        "step": step,
        "links": links,
        "offer": {"code": sample_offer_code(campaign)},
        "variant": variant.id if variant else None,
    }


def sample_offer_code(campaign: CampaignDef) -> str | None:
    """A code like the ones the campaign gives out (the pool's first, or one from the pattern)."""
    offers = campaign.offer_codes
    if offers is None:
        return None
    if offers.pool:
        return offers.pool[0]
    return pattern_code(offers.pattern, campaign.name, 0) if offers.pattern else None


def _triggering_event(
    session: Session, definitions: Definitions, tenant: Tenant, contact: Contact, campaign: str
) -> Event | None:
    types = sorted({trigger.on for trigger in definitions.triggers if trigger.campaign == campaign})
    if not types:
        return None
    return session.scalar(
        select(Event)
        .where(Event.tenant_id == tenant.id, Event.contact_id == contact.id, Event.type.in_(types))
        .order_by(Event.occurred_at.desc())
        .limit(1)
    )
