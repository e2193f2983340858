"""Twilio's Messages API as the fake answers it: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.

The request is form-encoded with HTTP Basic auth (account SID and auth token). `twilio_rejection` checks it
as Twilio does (auth, account, To, From or MessagingServiceSid, body, StatusCallback) and words the refusal
as Twilio would; `twilio_message` accepts a valid one with Twilio's Message resource, counting the segments
Twilio bills (`sms_segments`).
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import re
import uuid
from datetime import datetime
from email.utils import format_datetime
from typing import Any

import phonenumbers

from outbound.testing.faults import TWILIO_MESSAGES, Reply, twilio_reply

TWILIO_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
SHORT_CODE = re.compile(r"^\d{5,6}$")
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")


def twilio_rejection(
    match: re.Match[str], form: dict[str, str], authorization: str | None, account_sid: str, auth_token: str
) -> Reply | None:
    """Twilio's error answer to a send it would refuse, the first problem found; None when the send is valid."""
    if not _basic_auth_matches(authorization, account_sid, auth_token):
        return twilio_reply(401, 20003, TWILIO_MESSAGES[20003])
    if match["sid"] != account_sid:
        return twilio_reply(404, 20404, f"The requested resource {match.string} was not found")
    to, sender, service_sid = form.get("To", "").strip(), form.get("From"), form.get("MessagingServiceSid")
    body, callback = form.get("Body"), form.get("StatusCallback")
    if not to:
        return twilio_reply(400, 21604, "A 'To' phone number is required.")
    if not _phone_number(to):
        return twilio_reply(400, 21211, TWILIO_MESSAGES[21211].format(to=to))
    if not sender and not service_sid:
        return twilio_reply(400, 21603, "A 'From' phone number is required.")
    if sender and not (_phone_number(sender) or SHORT_CODE.match(sender) or ALPHANUMERIC_SENDER.match(sender)):
        msg = f"The 'From' number {sender} is not a valid phone number, shortcode, or alphanumeric sender ID."
        return twilio_reply(400, 21212, msg)
    if service_sid and not MESSAGING_SERVICE_SID.match(service_sid):
        return twilio_reply(400, 21701, f"The Messaging Service Sid {service_sid} is invalid.")
    if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
        return twilio_reply(400, 21602, "Message body is required.")
    if body and len(body) > 1600:
        return twilio_reply(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    if callback and not re.match(r"^https?://[^\s_/]+", callback):
        return twilio_reply(400, 21609, "Invalid StatusCallback url")
    return None


def twilio_message(form: dict[str, str], account_sid: str, created_at: datetime) -> tuple[Reply, dict[str, Any]]:
    """Accept a valid send: the 201 with Twilio's Message resource, and the record of the message."""
    to, sender, service_sid = form.get("To", "").strip(), form.get("From"), form.get("MessagingServiceSid")
    body, callback = form.get("Body"), form.get("StatusCallback")
    sid = "SM" + uuid.uuid4().hex
    created = format_datetime(created_at)
    resource = {
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "body": body or "",
        "date_created": created,
        "date_sent": None,
        "date_updated": created,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": sender,
        "messaging_service_sid": service_sid,
        "num_media": "0",
        "num_segments": str(sms_segments(body or "")),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued" if sender else "accepted",
        "to": to,
        "subresource_uris": {"media": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json"},
        "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
    }
    record = {
        "service": "twilio",
        "provider_id": sid,
        "to": to,
        "sender": sender,
        "messaging_service_sid": service_sid,
        "subject": None,
        "body": body or "",
        "html": None,
        "headers": {},
        "custom_args": {},
        "status_callback": callback,
        "fields": form,
    }
    return Reply(201, json.dumps(resource).encode()), record


def sms_segments(body: str) -> int:
    """How many SMS segments Twilio bills for a body: GSM-7 160/153, else UCS-2 70/67 (UTF-16 units)."""
    if all(ch in GSM7 or ch in GSM7_EXTENSION for ch in body):
        units, single, multi = sum(2 if ch in GSM7_EXTENSION else 1 for ch in body), 160, 153
    else:
        units, single, multi = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def _phone_number(value: str) -> bool:
    """E.164 with a country code and a length that country can have, as Twilio checks a 'To'."""
    if not E164.match(value):
        return False
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(value))
    except phonenumbers.NumberParseException:
        return False


def _basic_auth_matches(header: str | None, username: str, password: str) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        given = base64.b64decode(header[6:], validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(given, f"{username}:{password}")
