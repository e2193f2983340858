"""Deciding a claimed group: the compliance gate's answer for each message, and what follows from it.

Blocked messages end (with a fallback on another channel when the address cannot be reached), deferred
ones wait until the gate's time, allowed ones wait for their sender's rate limit, are rendered and become
`sending`. The group's transitions are stored with one INSERT and its changes with one UPDATE per set of
changed columns, in the claim's transaction: committed before any provider is called.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from outbound.addresses import contact_address_hash
from outbound.compliance import Allow, Block, Defer, MessageFacts, decide
from outbound.compliance.zones import resolve_jurisdiction, resolve_timezone
from outbound.config import Settings
from outbound.db.messages import ClaimedMessage, move, record_transitions, write_changes
from outbound.definitions import Definitions
from outbound.dispatch.context import GroupContext
from outbound.dispatch.ratelimit import SenderLimiter, rate_for, sender_key
from outbound.dispatch.render import Unsendable, render
from outbound.dispatch.report import TickReport
from outbound.enrollment.fallback import schedule_fallback, undeliverable
from outbound.errors import OutboundError
from outbound.providers import OutgoingMessage, Provider
from outbound.rendering.links import LinkSigner
from outbound.vocabulary import Channel, MessageStatus, Purpose, Rule, Source


def decide_group(
    session: Session,
    group: list[ClaimedMessage],
    context: GroupContext,
    now: datetime,
    report: TickReport,
    *,
    definitions: Definitions,
    providers: dict[str, Provider],
    settings: Settings,
    signer: LinkSigner,
    limiter: SenderLimiter,
) -> list[tuple[int, OutgoingMessage]]:
    """Decide and render each message of the group; (message id, what goes to the provider) of those to send.

    Counts each decision in `report` and stores every message's new status and fields.
    """
    outgoing: list[tuple[int, OutgoingMessage]] = []
    steps: list[dict[str, Any]] = []  # the group's transitions, stored together at the end
    for message in group:
        tenant = context.tenants[message.tenant_id]
        contact = context.contacts[message.contact_id]
        campaign = definitions.campaigns.get(message.campaign)
        to = contact.phone if message.channel == Channel.SMS else contact.email
        jurisdiction = resolve_jurisdiction(contact.jurisdiction, tenant.jurisdiction)
        facts = MessageFacts(
            channel=message.channel,
            purpose=message.purpose,
            essential=bool(campaign and campaign.essential),
            to=to,
            jurisdiction=jurisdiction,
            timezone=resolve_timezone(contact.timezone, contact.phone, tenant.timezone),
            now=now,
            consents=context.consents.get(contact.id, ()),
            suppressions=tuple(
                context.suppressions.get(
                    (tenant.id, message.channel, contact_address_hash(message.channel, contact)), ()
                )
            )
            if to
            else (),
            recent_marketing=tuple(context.recent_marketing.get(contact.id, ())),
            last_purchase_at=context.last_purchase.get(contact.id),
            has_postal_address=bool((tenant.settings or {}).get("postal_address")),
            complaint_rate=context.complaint_rates.get(tenant.id, 0.0),
        )
        decision = decide(facts, context.policy(tenant, jurisdiction))
        report.decisions[decision.rule] = report.decisions.get(decision.rule, 0) + 1
        if isinstance(decision, Block):
            steps.append(
                move(
                    message,
                    MessageStatus.BLOCKED,
                    at=now,
                    source=Source.WORKER,
                    rule=decision.rule,
                    reason=decision.reason,
                )
            )
            report.blocked += 1
            if undeliverable(decision.rule, facts.suppressions):
                schedule_fallback(session, message, definitions, now, decision.reason)
            continue
        if isinstance(decision, Defer):
            message.due_at = decision.until
            steps.append(
                move(
                    message,
                    MessageStatus.DEFERRED,
                    at=now,
                    source=Source.WORKER,
                    rule=decision.rule,
                    reason=decision.reason,
                    detail={"until": decision.until.isoformat()},
                )
            )
            report.deferred += 1
            continue
        assert isinstance(decision, Allow)
        if campaign is None:
            steps.append(
                move(
                    message,
                    MessageStatus.FAILED,
                    at=now,
                    source=Source.WORKER,
                    rule=Rule.DEFINITIONS,
                    reason=f"campaign {message.campaign!r} is no longer defined",
                )
            )
            report.failed += 1
            continue
        sender = (tenant.settings or {}).get("sms_from" if message.channel == Channel.SMS else "email_from")
        go_at = limiter.acquire(
            sender_key(message.channel, sender, settings), rate_for(message.channel, tenant.settings, settings), now
        )
        if go_at is not None:
            # Over the sender's messages-per-second limit: stays due, a moment later; never dropped.
            message.due_at = go_at
            report.rate_limited += 1
            continue
        try:
            out = render(
                message, campaign, tenant, contact, context, to, sender, jurisdiction, definitions, signer, now
            )
        except Unsendable as refusal:
            # The text as rendered breaks a rule the gate could not see before rendering.
            steps.append(
                move(
                    message, MessageStatus.BLOCKED, at=now, source=Source.WORKER, rule=refusal.rule, reason=str(refusal)
                )
            )
            report.blocked += 1
            report.decisions[refusal.rule] = report.decisions.get(refusal.rule, 0) + 1
            continue
        except OutboundError as error:
            steps.append(
                move(message, MessageStatus.FAILED, at=now, source=Source.WORKER, rule=Rule.RENDER, reason=str(error))
            )
            report.failed += 1
            continue
        message.to_address = to
        message.attempts += 1
        provider = providers[message.channel]
        message.provider = provider.name
        message.sender = out.sender or (
            (settings.twilio_messaging_service_sid or settings.twilio_from_number)
            if message.channel == Channel.SMS
            else settings.sendgrid_from_email
        )
        steps.append(
            move(
                message, MessageStatus.SENDING, at=now, source=Source.WORKER, rule=decision.rule, reason=decision.reason
            )
        )
        if message.purpose == Purpose.MARKETING:
            context.recent_marketing[contact.id].append((message.channel, now))
        outgoing.append((message.id, out))
    record_transitions(session, steps)
    write_changes(session, group)
    return outgoing
