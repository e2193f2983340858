"""Links that go out in messages: unforgeable unsubscribe tokens (RFC 8058 one-click)."""

from __future__ import annotations

import base64
import hashlib
import hmac


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unsubscribe_token(secret: str, tenant_id: int, contact_id: int, channel: str) -> str:
    """An opaque token for one contact and list (channel), signed with the server secret."""
    payload = f"{tenant_id}.{contact_id}.{channel}".encode()
    signature = hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(signature)}"


def read_unsubscribe_token(secret: str, token: str) -> tuple[int, int, str] | None:
    """(tenant id, contact id, channel) if the token is one we signed, else None."""
    try:
        payload_part, signature_part = token.split(".")
        payload = _unb64(payload_part)
        expected = hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(expected, _unb64(signature_part)):
            return None
        tenant_id, contact_id, channel = payload.decode().split(".")
        return int(tenant_id), int(contact_id), channel
    except (ValueError, UnicodeDecodeError):
        return None


def unsubscribe_url(base_url: str, secret: str, tenant_id: int, contact_id: int, channel: str) -> str:
    """The public unsubscribe page of one contact and channel."""
    return f"{base_url.rstrip('/')}/u/{unsubscribe_token(secret, tenant_id, contact_id, channel)}"
