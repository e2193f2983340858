"""Message format per jurisdiction (COMPLIANCE 10, 15, 18), checked when definitions load.

Every template file of a marketing campaign is rendered with a sample context of each
jurisdiction it may serve, and the text is held to that jurisdiction's format:

- KR: an SMS starts with `(광고)` exactly (not `[광고]`, not `(광 고)`), an email subject
  starts with `(광고)`; the message names the sender and a way to reach it (its support
  contact, sending number or address, postal address or free 080 line), and ends with a
  free opt-out: `무료수신거부 080-…`.
- US: a marketing email carries the sender's postal address and the unsubscribe link.
- EU: every marketing message offers an opt-out (the unsubscribe link, STOP, 수신거부…).

Which jurisdictions a file may serve: a Korean file (`*.ko.j2`) serves KR; any other file
serves US, EU and default, and KR too when it adapts to the jurisdiction (it reads
`tenant.jurisdiction`), since a KR tenant's English-speaking contacts get it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from outbound.compliance.rendered import format_problems_of
from outbound.errors import DefinitionError, OutboundError
from outbound.rendering.templates import Renderer
from outbound.vocabulary import Purpose

if TYPE_CHECKING:
    from outbound.definitions.schema import CampaignDef

UNSUBSCRIBE_URL = "https://sample.invalid/u/SAMPLE-TOKEN"
SAMPLE_TENANT = {
    "slug": "sample",
    "name": "Sample Shop",
    "sender_name": "Sample Shop",
    "support_contact": "help@sample.invalid",
    "postal_address": "500 Sample Street, Springfield, IL 62701",
    "optout_number": "080-555-0199",
    "sms_from": "+15555550123",
    "email_from": "hello@sample.invalid",
    "timezone": "UTC",
    "locale": "en",
}


class _Sample(dict[str, str]):
    """Event data and attributes in a sample: any key a template reads has a value."""

    def __missing__(self, key: str) -> str:
        return f"sample-{key}"


def served_jurisdictions(locale: str, source: str) -> tuple[str, ...]:
    """The jurisdictions a template file in `locale` with this source may be sent in."""
    if locale.lower().split("-")[0].split("_")[0] == "ko":
        return ("KR",)
    adapts = "jurisdiction" in source
    return ("US", "EU", "default", "KR") if adapts else ("US", "EU", "default")


def format_problems(campaigns: Iterable[CampaignDef], renderer: Renderer) -> list[DefinitionError]:
    """One DefinitionError per template file (and jurisdiction) of a marketing campaign that breaks a format."""
    errors: dict[tuple[str, str], DefinitionError] = {}
    for campaign in campaigns:
        if campaign.purpose != Purpose.MARKETING:
            continue
        for step in campaign.steps:
            variants: list[str | None] = [v.id for v in step.variants] or [None]
            for template in step.templates():
                for channel in (step.channel, step.fallback) if step.fallback else (step.channel,):
                    for locale in renderer.available_locales(template, channel):
                        _check_file(renderer, template, channel, locale, variants, errors)
    return list(errors.values())


def _check_file(
    renderer: Renderer,
    template: str,
    channel: str,
    locale: str,
    variants: Sequence[str | None],
    errors: dict[tuple[str, str], DefinitionError],
) -> None:
    name = f"{template}/{channel}.{locale}.j2"
    shown = f"{renderer.templates_dir.name}/{name}"
    try:
        source = (renderer.templates_dir / name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return  # the loader reports unreadable files itself
    for jurisdiction in served_jurisdictions(locale, source):
        for variant in variants:
            try:
                rendered = renderer.render(template, channel, [locale], _context(jurisdiction, locale, variant))
            except OutboundError:
                continue  # not a format problem; syntax and names are checked elsewhere
            for problem in format_problems_of(rendered, channel, jurisdiction, SAMPLE_TENANT, UNSUBSCRIBE_URL):
                message = f"{problem} (rendered for a {jurisdiction} tenant{f', variant {variant}' if variant else ''})"
                errors.setdefault((shown, problem + jurisdiction), DefinitionError(shown, message))


def _context(jurisdiction: str, locale: str, variant: str | None) -> dict[str, Any]:
    tenant = dict(SAMPLE_TENANT, jurisdiction=jurisdiction, locale=locale)
    contact = {
        "external_id": "sample",
        "phone": "+15555550100",
        "email": "sample@sample.invalid",
        "locale": locale,
        "timezone": "UTC",
        "jurisdiction": jurisdiction,
        "attributes": _Sample(),
    }
    event = {"id": "evt-sample", "type": "sample", "data": _Sample(), "occurred_at": "2026-01-01T00:00:00+00:00"}
    return {
        "contact": contact,
        "event": event,
        "tenant": tenant,
        "campaign": "sample",
        "step": "sample",
        "links": {"unsubscribe": UNSUBSCRIBE_URL, "survey": "https://sample.invalid/s/SAMPLE"},
        "offer": {"code": "SAMPLE-CODE"},
        "variant": variant,
    }
