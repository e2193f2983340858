"""Rendering an allowed message: its links, its template in the contact's locale chain, the format checks.

A rendered text can break a rule the gate could not see before rendering (a marketing message without
its opt-out, an SMS over its step's segment limit): `Unsendable` names the rule, and the message is blocked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from outbound.compliance import Block
from outbound.compliance.rendered import RenderedFacts, decide_rendered
from outbound.context import contact_view, event_view
from outbound.db.messages import ClaimedMessage
from outbound.db.models import Tenant
from outbound.definitions import Definitions
from outbound.dispatch.context import GroupContext
from outbound.errors import OutboundError
from outbound.providers import OutgoingMessage
from outbound.rendering.links import LinkSigner, list_purpose
from outbound.vocabulary import Channel, Purpose, Rule


class Unsendable(OutboundError):
    """A rendered message that a rule forbids sending: blocked with the rule's name."""

    def __init__(self, rule: Rule, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule


class _Links(dict):
    """The links a message may carry, each signed when first read (by its template or its headers):
    an SMS that never shows its unsubscribe link does not pay for the signature."""

    def __init__(self, makers: dict[str, Any]) -> None:
        super().__init__()
        self._makers = makers

    def __missing__(self, key: str) -> str:
        if key not in self._makers:
            raise KeyError(key)
        self[key] = value = self._makers[key]()
        return value


def render(
    message: ClaimedMessage,
    campaign,
    tenant: Tenant,
    contact,
    context: GroupContext,
    to: str,
    sender: str | None,
    jurisdiction: str,
    definitions: Definitions,
    signer: LinkSigner,
    now: datetime,
) -> OutgoingMessage:
    """The message as it goes to its provider; its subject, text and locale are set on `message`.

    Raises `Unsendable` when the text breaks a format rule, and OutboundError when it cannot be rendered.
    """
    # A survey's opt-out link leaves surveys on its channel; any other message's leaves marketing.
    makers = {
        "unsubscribe": lambda: signer.unsubscribe(tenant.id, contact.id, message.channel, list_purpose(message.purpose))
    }
    if message.purpose == Purpose.SURVEY:
        makers["survey"] = lambda: signer.survey(tenant.id, message.id, now)
    links = _Links(makers)
    code = context.offer_codes.get((tenant.id, message.campaign, contact.id)) if campaign.offer_codes else None
    names = {
        "contact": contact_view(contact),
        "event": event_view(context.events.get(message.enrollment_id)),
        "tenant": context.tenant_view(tenant),
        "campaign": message.campaign,
        "step": message.step,
        "links": links,
        "offer": {"code": code},
        "variant": message.variant,
    }
    rendered = definitions.renderer.render(
        message.template, message.channel, context.locale_chain(contact.locale, tenant.locale), names
    )
    message.subject, message.body, message.locale = rendered.subject, rendered.text, rendered.locale
    step = campaign.step(message.step)
    # The gate's second phase, on the message as rendered. A link no template read is in no text:
    # the check sees one that cannot be found.
    decision = decide_rendered(
        RenderedFacts(
            rendered=rendered,
            channel=message.channel,
            purpose=message.purpose,
            jurisdiction=jurisdiction,
            tenant=names["tenant"],
            unsubscribe_url=links.get("unsubscribe", "\0"),
            max_segments=step.max_segments if step is not None else None,
        )
    )
    if isinstance(decision, Block):
        raise Unsendable(decision.rule, decision.reason)
    headers = {}
    if message.channel == Channel.EMAIL and message.purpose == Purpose.MARKETING:
        headers = {
            "List-Unsubscribe": f"<{links['unsubscribe']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    return OutgoingMessage(
        message_id=message.id,
        tenant=tenant.slug,
        channel=message.channel,
        to=to,
        sender=sender,
        sender_name=(tenant.settings or {}).get("sender_name", tenant.name),
        subject=rendered.subject,
        body=rendered.text,
        html=rendered.html,
        headers=headers,
    )
