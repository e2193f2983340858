"""SendGrid's mail/send as the fake answers it: `POST /v3/mail/send`, a JSON body with a Bearer key.

`sendgrid_errors` checks a body as SendGrid does (at most 1000 personalizations, each address once,
string maps, no reserved header, substitutions within their size limit, subject and content rules) and
`sendgrid_rejection` words the refusal as SendGrid would. `sendgrid_messages` accepts a valid body: one
message per personalization, with its substitutions applied, under one X-Message-Id.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from outbound.testing.faults import SENDGRID_MESSAGES, Reply, sendgrid_reply

SENDGRID_PATH = "/v3/mail/send"
EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
MAX_PERSONALIZATIONS = 1000
MAX_SUBSTITUTION_BYTES = 10_000
# Headers SendGrid sets itself and refuses in `headers`.
SENDGRID_RESERVED_HEADERS = {
    "x-sg-id",
    "x-sg-eid",
    "received",
    "dkim-signature",
    "content-type",
    "content-transfer-encoding",
    "to",
    "from",
    "subject",
    "reply-to",
    "cc",
    "bcc",
}


def sendgrid_rejection(payload: Any, authorization: str | None, api_key: str) -> Reply | None:
    """SendGrid's error answer to a request it would refuse (no or wrong key, not a JSON object, an invalid
    body); None when the request is valid."""
    if not authorization:
        return sendgrid_reply(401, [("authorization required", None)])
    if authorization != f"Bearer {api_key}":
        return sendgrid_reply(401, [(SENDGRID_MESSAGES[401], None)])
    if not isinstance(payload, dict):
        return sendgrid_reply(400, [("Bad Request", None)])
    errors = sendgrid_errors(payload)
    if errors:
        return sendgrid_reply(400, errors)
    return None


def sendgrid_messages(payload: dict[str, Any]) -> tuple[Reply, list[dict[str, Any]]]:
    """Accept a valid body: the 202 with its X-Message-Id, and the record of each personalization's message."""
    message_id = secrets.token_urlsafe(16)[:22]
    # One message per personalization: the same X-Message-Id, its own recipient, subject, headers and text.
    records = [
        _sendgrid_record(payload, personalization, message_id) for personalization in payload["personalizations"]
    ]
    return Reply(202, b"", (("X-Message-Id", message_id),)), records


def _sendgrid_record(payload: dict[str, Any], personalization: dict[str, Any], message_id: str) -> dict[str, Any]:
    """What one personalization delivers: the request's content and subject with its substitutions made."""
    substitutions = personalization.get("substitutions") or {}

    def substituted(text: str | None) -> str | None:
        # SendGrid makes substitutions in one pass: a value is never searched for tags again.
        if text is None or not substitutions:
            return text
        pattern = re.compile("|".join(re.escape(tag) for tag in sorted(substitutions, key=len, reverse=True)))
        return pattern.sub(lambda found: substitutions[found.group(0)], text)

    recipients = [to["email"] for to in personalization["to"]]
    contents = {c["type"]: c["value"] for c in payload.get("content") or []}
    return {
        "service": "sendgrid",
        "provider_id": message_id,
        "to": recipients[0],
        "recipients": recipients,
        "sender": payload["from"]["email"],
        "sender_name": payload["from"].get("name"),
        "subject": substituted(personalization.get("subject") or payload.get("subject")),
        "body": substituted(contents.get("text/plain")),
        "html": substituted(contents.get("text/html")),
        "headers": {**(payload.get("headers") or {}), **(personalization.get("headers") or {})},
        "custom_args": {**(payload.get("custom_args") or {}), **(personalization.get("custom_args") or {})},
        "status_callback": None,
        "fields": payload,
    }


def sendgrid_errors(payload: dict[str, Any]) -> list[tuple[str, str | None]]:
    """SendGrid's validation of a mail/send body: (message, field) pairs, empty when valid."""
    errors: list[tuple[str, str | None]] = []
    personalizations = payload.get("personalizations")
    has_template = bool(payload.get("template_id"))
    if not isinstance(personalizations, list) or not personalizations:
        msg = "The personalizations field is required and must have at least one personalization."
        errors.append((msg, "personalizations"))
        personalizations = []
    elif len(personalizations) > MAX_PERSONALIZATIONS:
        errors.append(
            (
                f"The personalization block is limited to 1000 personalizations per API request. You have provided "
                f"{len(personalizations)} personalizations. Please consider splitting this into multiple requests "
                "and resending your request.",
                "personalizations",
            )
        )
        personalizations = []
    seen: set[str] = set()
    for i, personalization in enumerate(personalizations):
        to = personalization.get("to") if isinstance(personalization, dict) else None
        if not isinstance(to, list) or not to:
            errors.append(
                (
                    "The to array is required for all personalization objects, and must have at least one email "
                    "object with a valid email address.",
                    f"personalizations.{i}.to",
                )
            )
            continue
        for j, address in enumerate(to):
            email = address.get("email") if isinstance(address, dict) else None
            if not isinstance(email, str) or not EMAIL.match(email):
                errors.append(("Does not contain a valid address.", f"personalizations.{i}.to.{j}.email"))
            elif email.lower() in seen:
                errors.append(
                    (
                        "Each unique email address in the personalizations array should only be included once. "
                        "You have included email address more than once.",
                        f"personalizations.{i}.to.{j}.email",
                    )
                )
            else:
                seen.add(email.lower())
        errors.extend(_personalization_errors(personalization, i))
    if len(seen) > MAX_PERSONALIZATIONS:
        errors.append(("There is a limit of 1000 total recipients (to + cc + bcc) per request.", "personalizations"))
    sender = payload.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        errors.append(
            (
                "The from object must be provided for every email send. It is an object that requires the email "
                'parameter, but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or '
                '{"email" : "example@example.com", "name" : "Example Recipient"}.',
                "from.email",
            )
        )
    elif not isinstance(sender["email"], str) or not EMAIL.match(sender["email"]):
        errors.append(("The from email does not contain a valid address.", "from.email"))
    every_has_subject = bool(personalizations) and all(
        isinstance(p, dict) and p.get("subject") for p in personalizations
    )
    subject = payload.get("subject")
    if not has_template and not every_has_subject and (not isinstance(subject, str) or not subject):
        errors.append(
            (
                "The subject is required. You can get around this requirement if you use a template with a subject "
                "defined or if every personalization has a subject defined.",
                "subject",
            )
        )
    errors.extend(_content_errors(payload.get("content"), has_template))
    errors.extend(_string_map_errors(payload.get("custom_args"), "custom_args"))
    errors.extend(_string_map_errors(payload.get("headers"), "headers"))
    headers = payload.get("headers")
    for name in headers if isinstance(headers, dict) else {}:
        if name.lower() in SENDGRID_RESERVED_HEADERS:
            errors.append((f"The header {name} is reserved and cannot be set.", f"headers.{name}"))
    return errors


def _personalization_errors(personalization: dict[str, Any], i: int) -> list[tuple[str, str | None]]:
    """A personalization's headers, custom_args and substitutions: string maps, no reserved header,
    substitutions within their size limit."""
    where = f"personalizations.{i}"
    errors = _string_map_errors(personalization.get("headers"), f"{where}.headers")
    errors.extend(_string_map_errors(personalization.get("custom_args"), f"{where}.custom_args"))
    substitutions = personalization.get("substitutions")
    errors.extend(_string_map_errors(substitutions, f"{where}.substitutions"))
    headers = personalization.get("headers")
    for name in headers if isinstance(headers, dict) else {}:
        if name.lower() in SENDGRID_RESERVED_HEADERS:
            errors.append((f"The header {name} is reserved and cannot be set.", f"{where}.headers.{name}"))
    if isinstance(substitutions, dict):
        size = sum(len(str(k).encode()) + len(v.encode()) for k, v in substitutions.items() if isinstance(v, str))
        if size > MAX_SUBSTITUTION_BYTES:
            errors.append(
                (
                    f"The total size of your substitutions may not exceed {MAX_SUBSTITUTION_BYTES:,} bytes per "
                    "personalization object.",
                    f"{where}.substitutions",
                )
            )
    return errors


def _content_errors(content: Any, has_template: bool) -> list[tuple[str, str | None]]:
    if content is None or content == []:
        if has_template:
            return []
        return [
            (
                "Unless a valid template_id is provided, the content parameter is required. There must be at least "
                "one defined content block. We typically suggest both text/plain and text/html blocks are included, "
                "but only one block is required.",
                "content",
            )
        ]
    if not isinstance(content, list):
        return [("Invalid type. Expected: array, given: " + _json_type(content) + ".", "content")]
    errors: list[tuple[str, str | None]] = []
    types: list[object] = []
    for i, block in enumerate(content):
        block = block if isinstance(block, dict) else {}
        kind, value = block.get("type"), block.get("value")
        if not isinstance(kind, str) or not kind or ";" in kind or "\r" in kind or "\n" in kind:
            msg = (
                "The content type cannot contain ';', or CRLF characters. "
                "The content type must be at least one character in length."
            )
            errors.append((msg, f"content.{i}.type"))
        if not isinstance(value, str) or not value:
            msg = "The content value must be a string at least one character in length."
            errors.append((msg, f"content.{i}.value"))
        types.append(kind)
    # text/plain first, then text/html, then any other type.
    order: dict[object, int] = {"text/plain": 0, "text/html": 1}
    ranks = [order.get(t, 2) for t in types]
    if ranks != sorted(ranks):
        msg = "If present, text/plain and text/html may only be provided in this order: text/plain, text/html, other."
        errors.append((msg, "content"))
    return errors


def _string_map_errors(value: Any, name: str) -> list[tuple[str, str | None]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        return [(f"Invalid type. Expected: object, given: {_json_type(value)}.", name)]
    return [
        (f"Invalid type. Expected: string, given: {_json_type(v)}.", f"{name}.{k}")
        for k, v in value.items()
        if not isinstance(v, str)
    ]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}.get(type(value), "unknown")
