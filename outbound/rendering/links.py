"""Links that go out in messages: unforgeable unsubscribe links (RFC 8058 one-click) and survey links.

An unsubscribe link names a list: one contact, one channel and the purpose whose messages stop. A
marketing message's link stops marketing (its token has no purpose field, as the links made before
surveys had their own); a survey message's link ("no more surveys") stops surveys on that channel
and nothing else.

Each carries a token signed by the runtime's keyring (`outbound.signing`), with a key for its kind.
An unsubscribe link never expires: it must work as long as the message can be read. A survey link
expires `SURVEY_LINK_DAYS` after it was sent, past any answer window a campaign sets (the window is
checked when the answer comes, with its own message).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from outbound.signing import Keyring, TokenKind, expiry_after
from outbound.vocabulary import Purpose

SURVEY_LINK_DAYS = 90


# The purposes a list can be left for; a transactional message's link (if its template shows one) is marketing's.
LIST_PURPOSES = (Purpose.MARKETING, Purpose.SURVEY)


class UnsubscribeList(NamedTuple):
    """What an unsubscribe token names: one contact's messages of one purpose on one channel."""

    tenant_id: int
    contact_id: int
    channel: str
    purpose: str


def list_purpose(message_purpose: str) -> str:
    """The list a message's unsubscribe link leaves: surveys for a survey, marketing for anything else."""
    return Purpose.SURVEY if message_purpose == Purpose.SURVEY else Purpose.MARKETING


def unsubscribe_token(
    keyring: Keyring, tenant_id: int, contact_id: int, channel: str, purpose: str = Purpose.MARKETING
) -> str:
    """An opaque token for one contact and list (channel and purpose)."""
    if purpose not in LIST_PURPOSES:
        raise ValueError(f"no unsubscribe list for purpose {purpose!r}")
    if purpose == Purpose.MARKETING:
        return keyring.sign(TokenKind.UNSUBSCRIBE, [tenant_id, contact_id, channel])
    return keyring.sign(TokenKind.UNSUBSCRIBE, [tenant_id, contact_id, channel, purpose])


def read_unsubscribe_token(keyring: Keyring, token: str, now: datetime) -> UnsubscribeList | None:
    """The list an unsubscribe token we signed names, else None. A token without a purpose is marketing's."""
    fields = keyring.read(TokenKind.UNSUBSCRIBE, token, now)
    if fields is None or len(fields) not in (3, 4):
        return None
    purpose = fields[3] if len(fields) == 4 else Purpose.MARKETING
    if purpose not in LIST_PURPOSES:
        return None
    try:
        return UnsubscribeList(int(fields[0]), int(fields[1]), fields[2], purpose)
    except ValueError:
        return None


def unsubscribe_url(
    base_url: str, keyring: Keyring, tenant_id: int, contact_id: int, channel: str, purpose: str = Purpose.MARKETING
) -> str:
    """The public unsubscribe page of one contact's list (channel and purpose)."""
    return f"{base_url.rstrip('/')}/u/{unsubscribe_token(keyring, tenant_id, contact_id, channel, purpose)}"


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

    def unsubscribe(self, tenant_id: int, contact_id: int, channel: str, purpose: str = Purpose.MARKETING) -> str:
        return unsubscribe_url(self.base_url, self.keyring, tenant_id, contact_id, channel, purpose)

    def survey(self, tenant_id: int, message_id: int, now: datetime) -> str:
        return survey_url(self.base_url, self.keyring, tenant_id, message_id, now)
