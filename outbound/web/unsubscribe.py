"""Unsubscribe pages (COMPLIANCE 10, 11; RFC 8058).

A token names a list (`outbound.rendering.links`): a marketing message's link unsubscribes from
marketing on its channel (a suppression of the address, and marketing consent revoked); a survey's
"no more surveys" link revokes survey consent on its channel and nothing else: no suppression, which
would stop marketing and surveys alike, and marketing consent as it was.

`GET /u/{token}` shows a confirmation page and changes nothing: mail scanners follow links.
`POST /u/{token}` with the body `List-Unsubscribe=One-Click` (what mailbox providers send, and
what the page's button sends) unsubscribes at once: no login, no cookie, no redirect, 200.
A token we did not sign, or one naming a contact that does not exist, is a 404.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from outbound.db.models import Consent, Contact, Tenant
from outbound.db.session import transaction
from outbound.db.suppressions import suppress
from outbound.delivery.keywords import is_korean
from outbound.rendering.links import UnsubscribeList, read_unsubscribe_token
from outbound.signing import Keyring
from outbound.vocabulary import Channel, Purpose, SuppressionReason
from outbound.web.api import request_body

router = APIRouter(tags=["unsubscribe"])
_pages = Environment(
    loader=FileSystemLoader(str(Path(__file__).parent / "templates")), autoescape=select_autoescape(["html"])
)
ONE_CLICK = "One-Click"


def unsubscribe(
    session: Session,
    tenant: Tenant,
    contact: Contact,
    channel: str,
    now: datetime,
    *,
    source: str,
    notified: bool,
    purpose: str = Purpose.MARKETING,
) -> None:
    """Leave the list at once. Marketing: suppress the contact's address on `channel` (reason
    `unsubscribe`) and revoke its marketing consent there in the ledger. Survey: revoke its survey
    consent on `channel` in the ledger, and only that."""
    address = contact.email if channel == Channel.EMAIL else contact.phone
    if address and purpose == Purpose.MARKETING:
        suppress(session, tenant.id, channel, address, reason=SuppressionReason.UNSUBSCRIBE, source=source, at=now)
    if contact.erased_at is None:
        session.add(
            Consent(
                tenant_id=tenant.id,
                contact_id=contact.id,
                channel=channel,
                purpose=purpose,
                granted=False,
                at=now,
                source=source,
                text="unsubscribe link" if purpose == Purpose.MARKETING else "no more surveys link",
                recorded_at=now,
                notified_at=now if notified else None,
            )
        )
    session.flush()


def _find(session: Session, keyring: Keyring, token: str, now: datetime) -> tuple[Tenant, Contact, UnsubscribeList]:
    read = read_unsubscribe_token(keyring, token, now)
    if read is None:
        raise HTTPException(404, "no such unsubscribe link")
    contact = session.scalar(select(Contact).where(Contact.tenant_id == read.tenant_id, Contact.id == read.contact_id))
    tenant = session.get(Tenant, read.tenant_id)
    if contact is None or tenant is None or read.channel not in (Channel.EMAIL, Channel.SMS):
        raise HTTPException(404, "no such unsubscribe link")
    return tenant, contact, read


def _page(name: str, tenant: Tenant, contact: Contact, listed: UnsubscribeList, **extra: Any) -> HTMLResponse:
    channel = listed.channel
    address = (contact.email if channel == Channel.EMAIL else contact.phone) or ""
    html = _pages.get_template(name).render(
        sender=(tenant.settings or {}).get("sender_name") or tenant.name,
        channel=channel,
        surveys=listed.purpose == Purpose.SURVEY,
        address=_masked(address, channel),
        korean=is_korean(contact.locale or tenant.locale),
        **extra,
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _masked(address: str, channel: str) -> str:
    # The page is reachable by anyone holding the link; show enough to recognise the address, no more.
    if channel == Channel.EMAIL and "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:2]}…@{domain}"
    return f"…{address[-4:]}" if address else ""


@router.get("/u/{token}", response_class=HTMLResponse, summary="Unsubscribe confirmation page")
def confirm_page(token: str, request: Request) -> HTMLResponse:
    """The confirmation page; it unsubscribes nobody until its button is pressed."""
    state = request.app.state
    with transaction(state.factory) as session:
        tenant, contact, listed = _find(session, state.keyring, token, state.clock.now())
        return _page("unsubscribe.html", tenant, contact, listed)


@router.post("/u/{token}", response_class=HTMLResponse, summary="RFC 8058 one-click unsubscribe")
def one_click(token: str, request: Request, body: bytes = Depends(request_body)) -> HTMLResponse:
    """Unsubscribe at once on `List-Unsubscribe=One-Click`; answers 200 with a confirmation, never a redirect."""
    state = request.app.state
    text = body.decode("utf-8", "replace")
    fields = parse_qs(text)
    if ONE_CLICK not in fields.get("List-Unsubscribe", []) and f"List-Unsubscribe={ONE_CLICK}" not in text:
        raise HTTPException(400, "expected the body List-Unsubscribe=One-Click")
    now = state.clock.now()
    with transaction(state.factory) as session:
        tenant, contact, listed = _find(session, state.keyring, token, now)
        # A browser posting the page's form sees the confirmation; a mailbox provider's POST has no reader.
        from_page = "text/html" in request.headers.get("accept", "")
        unsubscribe(
            session,
            tenant,
            contact,
            listed.channel,
            now,
            source="unsubscribe page" if from_page else "one-click unsubscribe",
            notified=from_page,
            purpose=listed.purpose,
        )
        return _page("unsubscribe_done.html", tenant, contact, listed, when=f"{now:%Y-%m-%d %H:%M} UTC")
