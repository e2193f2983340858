"""API keys: shown once, stored hashed, tied to one tenant and role, refused once revoked."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from outbound.db.models import ApiKey
from outbound.errors import InvalidInput
from outbound.keys import authenticate, create_api_key, hash_key, revoke_api_key


def test_a_new_key_authenticates_as_its_tenant_and_role(session, clock, make_tenant):
    one, two = make_tenant("shop-one"), make_tenant("shop-two")
    ingest_key = create_api_key(session, one, clock=clock)
    admin_key = create_api_key(session, two, "admin", clock)
    assert ingest_key.startswith("ob_") and ingest_key != admin_key
    tenant, role = authenticate(session, ingest_key)
    assert (tenant.slug, role) == ("shop-one", "ingest")
    tenant, role = authenticate(session, admin_key)
    assert (tenant.slug, role) == ("shop-two", "admin")


def test_only_the_hash_and_a_short_prefix_of_a_key_are_stored(session, clock, make_tenant):
    key = create_api_key(session, make_tenant(), clock=clock)
    (row,) = session.scalars(select(ApiKey)).all()
    assert row.key_hash == hash_key(key) and row.key_hash != key
    assert key.startswith(row.prefix) and len(row.prefix) < len(key) // 3
    assert row.created_at == clock.now() and row.revoked_at is None


@pytest.mark.parametrize("attempt", [None, "", "ob_", "ob_wrong", "Bearer x", "not-a-key"])
def test_anything_but_a_stored_key_is_refused(session, clock, make_tenant, attempt):
    create_api_key(session, make_tenant(), clock=clock)
    assert authenticate(session, attempt) is None


def test_a_key_one_character_off_is_refused(session, clock, make_tenant):
    key = create_api_key(session, make_tenant(), clock=clock)
    assert authenticate(session, key[:-1] + ("A" if key[-1] != "A" else "B")) is None


def test_a_revoked_key_is_refused_and_others_still_work(session, clock, make_tenant):
    tenant = make_tenant()
    old, new = create_api_key(session, tenant, clock=clock), create_api_key(session, tenant, clock=clock)
    assert revoke_api_key(session, tenant, old, clock) == 1
    assert authenticate(session, old) is None
    assert authenticate(session, new) is not None


def test_an_unknown_role_is_refused(session, clock, make_tenant):
    with pytest.raises(InvalidInput) as caught:
        create_api_key(session, make_tenant(), "owner", clock)
    assert caught.value.field == "role"
