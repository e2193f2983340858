"""Signed tokens: each kind its own key, rotation, expiry, and the links made before either."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbound.signing import OLD_DEFAULT_SECRET, Keyring, TokenKind, WeakSecret, expiry_after

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SECRET = "s" * 40
OTHER = "o" * 40


def _unversioned(secret: str, payload: str) -> str:
    """A link as versions before token kinds made it: the payload signed with the secret itself."""
    tag = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()[:16]
    encode = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
    return f"{encode(payload.encode())}.{encode(tag)}"


def test_a_token_reads_back_its_fields_for_its_own_kind_only():
    keyring = Keyring(SECRET)
    token = keyring.sign(TokenKind.UNSUBSCRIBE, [3, 41, "email"])
    assert keyring.read(TokenKind.UNSUBSCRIBE, token, NOW) == ["3", "41", "email"]
    assert keyring.read(TokenKind.SURVEY, token, NOW) is None
    assert keyring.read(TokenKind.SESSION, token, NOW) is None


def test_each_kind_signs_with_a_key_of_its_own_derived_from_the_secret():
    keyring = Keyring(SECRET)
    keys = {kind: keyring.key(kind) for kind in TokenKind}
    assert len(set(keys.values())) == len(TokenKind)
    assert SECRET.encode() not in keys.values()
    assert Keyring(OTHER).key(TokenKind.SURVEY) != keys[TokenKind.SURVEY]


def test_a_token_of_another_kind_with_the_same_fields_cannot_be_made_from_one_of_this_kind():
    keyring = Keyring(SECRET)
    survey = keyring.sign(TokenKind.SURVEY, [3, 41])
    unsubscribe = keyring.sign(TokenKind.UNSUBSCRIBE, [3, 41])
    assert survey.split(".")[1] != unsubscribe.split(".")[1]  # different keys: different tags for the same fields


def test_rotation_signs_with_the_new_secret_and_still_reads_what_the_previous_one_signed():
    old = Keyring(OTHER).sign(TokenKind.UNSUBSCRIBE, [3, 41, "sms"])
    rotated = Keyring(SECRET, previous=(OTHER,))
    assert rotated.read(TokenKind.UNSUBSCRIBE, old, NOW) == ["3", "41", "sms"]
    new = rotated.sign(TokenKind.UNSUBSCRIBE, [3, 41, "sms"])
    assert Keyring(SECRET).read(TokenKind.UNSUBSCRIBE, new, NOW) == ["3", "41", "sms"]
    assert Keyring(OTHER).read(TokenKind.UNSUBSCRIBE, new, NOW) is None
    # Once the previous secret is removed, what it signed is refused.
    assert Keyring(SECRET).read(TokenKind.UNSUBSCRIBE, old, NOW) is None


def test_an_expiring_token_is_read_through_its_last_day_and_refused_after():
    keyring = Keyring(SECRET)
    token = keyring.sign(TokenKind.SURVEY, [3, 41], expires=date(2026, 3, 2))
    assert keyring.read(TokenKind.SURVEY, token, datetime(2026, 3, 2, 23, 59, tzinfo=UTC)) == ["3", "41"]
    assert keyring.read(TokenKind.SURVEY, token, datetime(2026, 3, 3, 0, 0, tzinfo=UTC)) is None
    assert expiry_after(datetime(2026, 3, 2, 23, 30, tzinfo=UTC), 30) == date(2026, 4, 1)


def test_links_made_before_token_kinds_are_still_read_for_unsubscribe_and_survey_and_never_made():
    keyring = Keyring(SECRET)
    assert keyring.read(TokenKind.UNSUBSCRIBE, _unversioned(SECRET, "3.41.email"), NOW) == ["3", "41", "email"]
    assert keyring.read(TokenKind.SURVEY, _unversioned(SECRET, "survey.3.77"), NOW) == ["3", "77"]
    # Not across kinds, not for sessions, not under another secret.
    assert keyring.read(TokenKind.SURVEY, _unversioned(SECRET, "3.41.email"), NOW) is None
    assert keyring.read(TokenKind.UNSUBSCRIBE, _unversioned(SECRET, "survey.3.77"), NOW) is None
    assert keyring.read(TokenKind.SESSION, _unversioned(SECRET, "3.41.email"), NOW) is None
    assert keyring.read(TokenKind.UNSUBSCRIBE, _unversioned(OTHER, "3.41.email"), NOW) is None
    assert keyring.sign(TokenKind.UNSUBSCRIBE, [3, 41, "email"]) != _unversioned(SECRET, "3.41.email")


def test_forging_with_the_secret_that_once_shipped_in_the_source_opens_nothing():
    with pytest.raises(WeakSecret, match="once shipped"):
        Keyring(OLD_DEFAULT_SECRET)
    with pytest.raises(WeakSecret, match="FALLBACKS"):
        Keyring(SECRET, previous=(OLD_DEFAULT_SECRET,))
    forged = _unversioned(OLD_DEFAULT_SECRET, "3.41.email")
    assert Keyring(SECRET).read(TokenKind.UNSUBSCRIBE, forged, NOW) is None


def test_a_short_secret_is_refused_with_the_length_it_needs():
    with pytest.raises(WeakSecret, match="at least 32"):
        Keyring("short-secret")


def test_a_field_with_a_dot_cannot_be_signed():
    with pytest.raises(ValueError, match="dot"):
        Keyring(SECRET).sign(TokenKind.UNSUBSCRIBE, [3, "a.b"])


@given(st.text(max_size=200))
def test_any_string_read_as_a_token_is_refused_or_read_never_raises(token):
    assert Keyring(SECRET).read(TokenKind.UNSUBSCRIBE, token, NOW) is None


@given(st.lists(st.integers(0, 2**63), min_size=1, max_size=4), st.data())
def test_changing_any_character_of_a_token_makes_it_refused(fields, data):
    keyring = Keyring(SECRET)
    token = keyring.sign(TokenKind.SURVEY, fields)
    assert keyring.read(TokenKind.SURVEY, token, NOW) == [str(f) for f in fields]
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."))
    changed = token[:position] + replacement + token[position + 1 :]
    if changed != token:
        # base64 ignores the unused low bits of a part's last character: such a change decodes to the same
        # bytes and is the same token. Any other change is refused.
        read = keyring.read(TokenKind.SURVEY, changed, NOW)
        if read is not None:
            assert _decoded(changed) == _decoded(token)


def _decoded(token: str) -> list[bytes]:
    return [base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in token.split(".")]
