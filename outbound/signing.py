"""Signed tokens: what an unsubscribe or survey link carries, and the keys that sign them. Pure.

The operator's secret (`OUTBOUND_SECRET_KEY`) never signs anything itself. Each kind of token signs
with a key of its own, derived from the secret and the kind's name (HMAC-SHA256), and the kind is
written in the token too: an unsubscribe token is worthless as a survey token, and a key that leaked
from one kind opens no other.

Rotation: a `Keyring` holds the current secret and the previous ones (`OUTBOUND_SECRET_KEY_FALLBACKS`).
It signs with the current one and accepts a token signed with any of them, so the links already in
customers' inboxes keep working until the operator removes the previous secret.

A token may carry an expiry (a day, UTC): survey links do, unsubscribe links do not (an unsubscribe
link must keep working as long as the message can be read, and an opt-out is never refused).

Links sent before each kind had its key (signed with the secret itself, without a kind or a
version) are still read, for unsubscribe and survey links only, so that no opt-out is lost by an
upgrade; they are never made any more, and never accepted under the secret that once shipped as a
default.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

MIN_SECRET_LENGTH = 32  # characters: a secret shorter than this is refused
OLD_DEFAULT_SECRET = "change-me-outbound-secret"  # shipped by early versions: never signs, never verifies
_MARK = "!"  # first character of a versioned payload (a payload of the unversioned links never has it)
_EPOCH = date(2020, 1, 1)  # expiry days count from here
_TAG_BYTES = 16


class TokenKind(StrEnum):
    """What a signed token is for; each kind has its own key, and a one-letter code in the token."""

    UNSUBSCRIBE = "unsubscribe"  # one contact's list (channel) of one tenant
    SURVEY = "survey"  # one survey message
    SESSION = "session"  # an agent's login session (its cookie)

    @property
    def code(self) -> str:
        return self.value[0]


class WeakSecret(ValueError):
    """A secret too short, or the one that once shipped in the source."""


def check_secret(secret: str, name: str = "OUTBOUND_SECRET_KEY") -> str:
    """`secret` if it may sign; else WeakSecret saying why."""
    if secret == OLD_DEFAULT_SECRET:
        raise WeakSecret(f"{name} is the example value that once shipped in the source; choose your own")
    if len(secret) < MIN_SECRET_LENGTH:
        raise WeakSecret(f"{name} has {len(secret)} characters; use at least {MIN_SECRET_LENGTH} random characters")
    return secret


@dataclass(frozen=True)
class Keyring:
    """The current secret, which signs, and the previous ones, which still verify."""

    current: str
    previous: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_secret(self.current)
        for secret in self.previous:
            check_secret(secret, "OUTBOUND_SECRET_KEY_FALLBACKS")

    def key(self, kind: TokenKind) -> bytes:
        """The current key of one kind (for what signs outside this module, such as a session cookie)."""
        return _derive(self.current, kind)

    def sign(self, kind: TokenKind, fields: Sequence[str | int], expires: date | None = None) -> str:
        """A token for `fields` (no field may contain a dot), valid for `kind` until `expires` (a UTC day)."""
        text = [str(field) for field in fields]
        if any("." in field for field in text):
            raise ValueError("a signed field may not contain a dot")
        days = "" if expires is None else str((expires - _EPOCH).days)
        payload = ".".join([f"{_MARK}{kind.code}{days}", *text]).encode()
        return f"{_b64(payload)}.{_b64(_tag(_derive(self.current, kind), payload))}"

    def read(self, kind: TokenKind, token: str, now: datetime) -> list[str] | None:
        """The fields of a token signed for `kind` with one of the keyring's secrets and not expired at
        `now`; None for anything else (forged, altered, another kind, expired, malformed)."""
        try:
            payload_part, tag_part = token.split(".")
            payload, tag = _unb64(payload_part), _unb64(tag_part)
        except ValueError:
            return None
        if not payload.startswith(_MARK.encode()):
            return self._read_unversioned(kind, payload, tag)
        if not any(hmac.compare_digest(_tag(_derive(secret, kind), payload), tag) for secret in self._secrets()):
            return None
        try:
            head, *fields = payload.decode().split(".")
        except UnicodeDecodeError:
            return None
        if head[1:2] != kind.code:
            return None
        days = head[2:]
        if days and _expired(days, now):
            return None
        return fields

    def _secrets(self) -> tuple[str, ...]:
        return (self.current, *self.previous)

    def _read_unversioned(self, kind: TokenKind, payload: bytes, tag: bytes) -> list[str] | None:
        # Links made before each kind had its key: signed with the secret itself. Read, never made.
        if kind not in (TokenKind.UNSUBSCRIBE, TokenKind.SURVEY):
            return None
        if not any(
            hmac.compare_digest(hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:_TAG_BYTES], tag)
            for secret in self._secrets()
        ):
            return None
        try:
            fields = payload.decode().split(".")
        except UnicodeDecodeError:
            return None
        if kind is TokenKind.SURVEY:
            return fields[1:] if len(fields) == 3 and fields[0] == "survey" else None
        return fields if len(fields) == 3 and fields[0] != "survey" else None


def expiry_after(now: datetime, days: int) -> date:
    """The UTC day `days` after `now`: a token made now with it is accepted through that whole day."""
    return (now.astimezone(UTC) + timedelta(days=days)).date()


def _expired(days: str, now: datetime) -> bool:
    try:
        last = _EPOCH + timedelta(days=int(days))
    except (ValueError, OverflowError):
        return True
    return now.astimezone(UTC).date() > last


def _derive(secret: str, kind: TokenKind) -> bytes:
    return hmac.new(secret.encode(), b"outbound/" + kind.value.encode(), hashlib.sha256).digest()


def _tag(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:_TAG_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or len(text) > 512:
        raise ValueError("not a token part")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as error:
        raise ValueError("not base64") from error
