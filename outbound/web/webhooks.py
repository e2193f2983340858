"""Provider webhooks: Twilio status callbacks and inbound SMS, SendGrid's signed event webhook.

Every request is checked before anything is read from it: Twilio's X-Twilio-Signature
against OUTBOUND_BASE_URL + path (403 otherwise), SendGrid's ECDSA signature over
timestamp + raw body (401 when missing, 403 when invalid or stale). Bad bodies get a
4xx naming what is wrong, never a 500. A report about a message we do not know is
answered 200 (stored unattached when its tenant is known) so the provider stops retrying.

What a provider signed is kept without the characters the database cannot hold (NUL, lone
surrogates) rather than refused: refused, the report would be lost (an opt-out among them),
since the provider would only send the same bytes again. A number that cannot be one of our
ids (beyond 64 bits, not a whole number) is read as no id.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import ImmutableMultiDict

from outbound.addresses import is_sender_id
from outbound.config import Settings
from outbound.db.models import Message, Tenant
from outbound.db.session import transaction
from outbound.delivery.inbound import receive_inbound
from outbound.delivery.routing import Senders, attribute, senders_of
from outbound.delivery.signatures import SignatureRefused, check_sendgrid, check_twilio, webhook_url
from outbound.delivery.status import DeliveryReport, apply_report
from outbound.ingest.text import without_unstorable
from outbound.providers.base import redact
from outbound.web.api import request_body

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

TWIML = "text/xml"
SIGNATURE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not a provider callback (a field is missing or malformed)."},
    403: {"description": "The signature is missing, invalid or stale."},
}


# A form-encoded body as it was posted: every value a string.
Form = ImmutableMultiDict[str, str]


def _form(body: bytes) -> Form:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "the body is not UTF-8 form data") from None
    return ImmutableMultiDict(parse_qsl(text, keep_blank_values=True))


# The fields of a Twilio request read here, and the longest value Twilio sends in each (its ids have 34
# characters, numbers 16 at most, sender ids 11, WhatsApp addresses 25); None: no limit but the body's.
TWILIO_FIELDS: dict[str, int | None] = {
    "MessageSid": 64,
    "SmsSid": 64,
    "AccountSid": 64,
    "MessageStatus": 32,
    "SmsStatus": 32,
    "ErrorCode": 32,
    "From": 64,
    "To": 64,
    "Body": None,
}


def _twilio_fields(form: Form) -> dict[str, str]:
    """The fields read of a Twilio request, without the characters the database cannot hold (see the module)."""
    return {name: without_unstorable(form[name]) for name in TWILIO_FIELDS if name in form}


def _check_lengths(fields: dict[str, str]) -> None:
    """400 for a field longer than any Twilio sends: it is not Twilio's, and would not fit where it is kept."""
    for name, value in fields.items():
        limit = TWILIO_FIELDS[name]
        if limit is not None and len(value) > limit:
            raise HTTPException(400, f"{name} is longer than Twilio sends ({limit} characters at most)")


def _twilio_secrets(session: Session, settings: Settings) -> list[tuple[str, int | None]]:
    """(auth token, tenant id) pairs: each tenant's own token, then the global one (tenant None)."""
    secrets: list[tuple[str, int | None]] = [
        (t.settings["twilio_auth_token"], t.id)
        for t in session.scalars(select(Tenant))
        if (t.settings or {}).get("twilio_auth_token")
    ]
    if settings.twilio_auth_token:
        secrets.append((settings.twilio_auth_token.get_secret_value(), None))
    return secrets


def _tenant_token(tenant: Tenant | None, settings: Settings) -> str | None:
    own: str | None = (tenant.settings or {}).get("twilio_auth_token") if tenant else None
    return own or (settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None)


def _verify_twilio(request: Request, form: Form, tokens: list[str]) -> str:
    settings = request.app.state.settings
    url = webhook_url(settings.base_url, request.url.path, request.url.query)
    try:
        return check_twilio(
            tokens,
            url,
            form,
            request.headers.get("X-Twilio-Signature"),
            request.headers.get("X-Twilio-Webhooks-Signature-Settings"),
        )
    except SignatureRefused as refused:
        raise HTTPException(refused.status, str(refused)) from None


@router.post(
    "/webhooks/twilio/status", summary="Twilio status callback", responses=SIGNATURE_RESPONSES, response_model=None
)
def twilio_status(request: Request, body: bytes = Depends(request_body)) -> dict[str, Any]:
    """Record one Twilio status callback (once) and move its message forward: sent, delivered, undelivered,
    failed; error codes 21610/21211/30006 suppress the number, 30003/30005 try again later."""
    state = request.app.state
    form = _form(body)
    fields = _twilio_fields(form)
    sid = fields.get("MessageSid") or fields.get("SmsSid")
    status = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").strip().lower()
    now = state.clock.now()
    with transaction(state.factory) as session:
        message = (
            session.scalar(select(Message).where(Message.provider == "twilio", Message.provider_id == sid).limit(1))
            if sid
            else None
        )
        if message is not None:
            token = _tenant_token(session.get(Tenant, message.tenant_id), state.settings)
            secrets: list[tuple[str, int | None]] = [(token, message.tenant_id)] if token else []
        else:
            secrets = _twilio_secrets(session, state.settings)
        signer = _verify_twilio(request, form, [token for token, _ in secrets])
        _check_lengths(fields)
        if not sid or not status:
            raise HTTPException(400, "MessageSid and MessageStatus are required")
        tenant_id = message.tenant_id if message is not None else dict(secrets).get(signer)
        if tenant_id is None:
            # From is the number we sent from: its tenant, when only one sends from it.
            senders = senders_of(session, fields.get("From"), state.settings).tenants
            tenant_id = senders[0].id if len(senders) == 1 else None
        code = (fields.get("ErrorCode") or "").strip() or None
        report = DeliveryReport(
            provider="twilio",
            event_id=f"{sid}:{status}",
            type=status,
            at=now,
            tenant_id=tenant_id,
            provider_message_id=sid,
            address=fields.get("To"),
            error_code=code,
            detail={"status": status, "account_sid": fields.get("AccountSid")},
        )
        applied = apply_report(session, report, now)
    return {
        "stored": applied.stored,
        "duplicate": applied.duplicate,
        "message_id": applied.message_id,
        "status": applied.status,
    }


@router.post(
    "/webhooks/twilio/inbound", summary="Twilio inbound SMS", responses=SIGNATURE_RESPONSES, response_class=Response
)
def twilio_inbound(request: Request, body: bytes = Depends(request_body)) -> Response:
    """An SMS a contact sent to one of our numbers: keywords (STOP, START, HELP) and survey answers. A tenant's
    own number (`sms_from`) makes it that tenant's; the shared sender (OUTBOUND_TWILIO_FROM_NUMBER), the one
    tenant sending from it that has the phone as a contact, else every tenant sending from it for an
    opt-out. Answers TwiML: the reply, if any, as one <Message>."""
    state = request.app.state
    form = _form(body)
    fields = _twilio_fields(form)
    with transaction(state.factory) as session:
        senders = senders_of(session, fields.get("To"), state.settings)
        _verify_twilio(request, form, _inbound_tokens(senders, state.settings))
        _check_lengths(fields)
        if not fields.get("MessageSid") or not fields.get("From") or not fields.get("To"):
            raise HTTPException(400, "MessageSid, From and To are required")
        if not senders.tenants and not senders.shared:
            raise HTTPException(404, "no tenant sends from this number (tenant setting sms_from)")
        outcome = receive_inbound(
            session,
            attribute(session, senders, fields["From"]),
            from_number=fields["From"],
            to_number=fields["To"],
            body=fields.get("Body") or "",
            provider_id=fields["MessageSid"],
            clock=state.clock,
            settings=state.settings,
            definitions=state.definitions,
        )
    # A sender id ("VERIFY") cannot be texted back: the answer would only fail at Twilio.
    reply = None if is_sender_id(fields["From"]) else outcome.reply
    twiml = (
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{escape(reply)}</Message></Response>'
        if reply
        else '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    )
    return Response(twiml, media_type=TWIML)


def _inbound_tokens(senders: Senders, settings: Settings) -> list[str]:
    """The auth tokens that may sign an SMS to this number: its owner's (its own, else the global one); the
    global one for the shared sender, which sends through the global account, and for a number none owns."""
    tokens = [_tenant_token(tenant, settings) for tenant in senders.owners]
    if (senders.shared or not tokens) and settings.twilio_auth_token:
        tokens.append(settings.twilio_auth_token.get_secret_value())
    return [token for token in tokens if token]


def _sendgrid_keys(session: Session, settings: Settings) -> dict[str, int | None]:
    keys: dict[str, int | None] = {}
    for tenant in session.scalars(select(Tenant).order_by(Tenant.id)):
        key = (tenant.settings or {}).get("sendgrid_webhook_public_key")
        if key:
            keys.setdefault(key, tenant.id)
    if settings.sendgrid_webhook_public_key:
        keys.setdefault(settings.sendgrid_webhook_public_key, None)
    return keys


@router.post(
    "/webhooks/sendgrid/events",
    summary="SendGrid event webhook",
    responses={**SIGNATURE_RESPONSES, 401: {"description": "The signature headers are missing."}},
    response_model=None,
)
def sendgrid_events(request: Request, body: bytes = Depends(request_body)) -> dict[str, Any]:
    """Record SendGrid's events (each once, by sg_event_id) and apply them: message states, email
    suppressions (bounce, spamreport, unsubscribe, group_unsubscribe; group_resubscribe lifts)."""
    state = request.app.state
    now = state.clock.now()
    with transaction(state.factory) as session:
        keys = _sendgrid_keys(session, state.settings)
        try:
            key = check_sendgrid(
                keys,
                body,
                request.headers.get("X-Twilio-Email-Event-Webhook-Signature"),
                request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp"),
                now,
            )
        except SignatureRefused as refused:
            raise HTTPException(refused.status, str(refused)) from None
        try:
            events = json.loads(body)
        except (ValueError, RecursionError):
            raise HTTPException(400, "the body is not JSON") from None
        if not isinstance(events, list):
            raise HTTPException(400, "expected a JSON array of events")
        scope = keys[key]
        slugs = {t.slug: t.id for t in session.scalars(select(Tenant))}
        stored = duplicates = 0
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(events):
            report, problem = _sendgrid_report(item, scope, slugs, now)
            if report is None:
                errors.append({"index": index, "message": problem})
                continue
            applied = apply_report(session, report, now)
            stored += applied.stored
            duplicates += applied.duplicate
    if events and len(errors) == len(events):
        raise HTTPException(400, f"no event could be read: {errors[0]['message']}")
    return {"stored": stored, "duplicates": duplicates, "errors": errors}


def _sendgrid_report(
    item: Any, scope: int | None, slugs: dict[str, int], now: datetime
) -> tuple[DeliveryReport | None, str | None]:
    """A DeliveryReport from one SendGrid event, or the reason it cannot be read."""
    if not isinstance(item, dict):
        return None, "an event must be a JSON object"
    name, event_id = _text(item, "event"), _text(item, "sg_event_id")
    if not name:
        return None, "event is required"
    if not event_id:
        return None, "sg_event_id is required"
    slug = _text(item, "tenant")
    tenant_id = slugs.get(slug) if slug is not None else None
    if scope is not None:
        if tenant_id is not None and tenant_id != scope:
            return None, f"tenant {slug!r} is not the tenant whose key signed this request"
        tenant_id = scope
    stamp: Any = item.get("timestamp")  # any JSON value, or None: int() refuses what is not a time
    try:
        at = datetime.fromtimestamp(int(stamp), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        at = now
    email, sg_message_id = _text(item, "email"), _text(item, "sg_message_id")
    text = item.get("reason") or item.get("response")
    detail = {
        "sg_message_id": sg_message_id,
        "asm_group_id": _id(item.get("asm_group_id")),
        # Bounce texts often quote the address; keep the text, not the address.
        "reason": redact(without_unstorable(str(text)), email or "")[:300] if text else None,
    }
    bounce_type = _text(item, "type") if name == "bounce" else None
    return DeliveryReport(
        provider="sendgrid",
        event_id=event_id[:200],
        type=name,
        at=at,
        tenant_id=tenant_id,
        message_id=_id(item.get("message_id")),
        # sg_message_id is the X-Message-Id we stored, then a dot and SendGrid's own suffix.
        provider_message_id=sg_message_id.split(".")[0] if sg_message_id else None,
        address=email.strip().lower() if email else None,
        bounce_type=bounce_type,
        detail=detail,
    ), None


def _text(item: dict[str, Any], key: str) -> str | None:
    """A text field of a SendGrid event (None when it is not text), without what cannot be stored."""
    value = item.get(key)
    return without_unstorable(value) if isinstance(value, str) else None


ID_RANGE = range(-(2**63), 2**63)  # what a BIGINT holds


def _id(value: Any) -> int | None:
    """A JSON value as one of our ids (a whole number, or its digits as text, within 64 bits); else None."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().lstrip("-").isdigit():
        value = int(value) if len(value) <= 40 else None
    if isinstance(value, bool) or not isinstance(value, int):  # True is an int to Python, not an id
        return None
    return value if value in ID_RANGE else None
