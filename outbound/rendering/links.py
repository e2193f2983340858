"""Links that go out in messages: unforgeable unsubscribe links (RFC 8058 one-click) and survey links.

Each carries a token signed by the runtime's keyring (`outbound.signing`), with a key for its kind.
An unsubscribe link never expires: it must work as long as the message can be read. A survey link
expires `SURVEY_LINK_DAYS` after it was sent, past any answer window a campaign sets (the window is
checked when the answer comes, with its own message).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from outbound.signing import Keyring, TokenKind, expiry_after

SURVEY_LINK_DAYS = 90


def unsubscribe_token(keyring: Keyring, tenant_id: int, contact_id: int, channel: str) -> str:
    """An opaque token for one contact and list (channel)."""
    return keyring.sign(TokenKind.UNSUBSCRIBE, [tenant_id, contact_id, channel])


def read_unsubscribe_token(keyring: Keyring, token: str, now: datetime) -> tuple[int, int, str] | None:
    """(tenant id, contact id, channel) if the token is an unsubscribe token we signed, else None."""
    fields = keyring.read(TokenKind.UNSUBSCRIBE, token, now)
    if fields is None or len(fields) != 3:
        return None
    try:
        return int(fields[0]), int(fields[1]), fields[2]
    except ValueError:
        return None


def unsubscribe_url(base_url: str, keyring: Keyring, tenant_id: int, contact_id: int, channel: str) -> str:
    """The public unsubscribe page of one contact and channel."""
    return f"{base_url.rstrip('/')}/u/{unsubscribe_token(keyring, tenant_id, contact_id, channel)}"


def survey_token(keyring: Keyring, tenant_id: int, message_id: int, now: datetime) -> str:
    """A token naming one survey message, for links sent at `now`."""
    return keyring.sign(TokenKind.SURVEY, [tenant_id, message_id], expires=expiry_after(now, SURVEY_LINK_DAYS))


def read_survey_token(keyring: Keyring, token: str, now: datetime) -> tuple[int, int] | None:
    """(tenant id, message id) if the token is a survey token we signed and it has not expired, else None."""
    fields = keyring.read(TokenKind.SURVEY, token, now)
    if fields is None or len(fields) != 2:
        return None
    try:
        return int(fields[0]), int(fields[1])
    except ValueError:
        return None


def survey_url(base_url: str, keyring: Keyring, tenant_id: int, message_id: int, now: datetime) -> str:
    """The base of a message's one-click survey links; a template appends `/SCORE`."""
    return f"{base_url.rstrip('/')}/s/{survey_token(keyring, tenant_id, message_id, now)}"


@dataclass(frozen=True)
class LinkSigner:
    """Makes the signed links of one install: its public base URL and its keyring."""

    base_url: str
    keyring: Keyring

    def unsubscribe(self, tenant_id: int, contact_id: int, channel: str) -> str:
        return unsubscribe_url(self.base_url, self.keyring, tenant_id, contact_id, channel)

    def survey(self, tenant_id: int, message_id: int, now: datetime) -> str:
        return survey_url(self.base_url, self.keyring, tenant_id, message_id, now)
