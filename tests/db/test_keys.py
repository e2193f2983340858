"""API keys: shown once, stored hashed, tied to one tenant and role, refused once revoked."""

from __future__ import annotations

import pytest
from conftest import BACKEND
from sqlalchemy import select, update

from outbound.db.models import ApiKey
from outbound.errors import InvalidInput
from outbound.tenancy.keys import KeyCache, authenticate, create_api_key, hash_key, revoke_api_key


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


class Timer:
    """A monotonic timer the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_cache_answers_as_authenticate_with_a_tenant_of_the_asking_session(factory, session, clock, make_tenant):
    key = create_api_key(session, make_tenant("shop-one"), "admin", clock)
    session.commit()
    cache = KeyCache()
    with factory() as first, factory() as second:
        one, two = cache.authenticate(first, key), cache.authenticate(second, key)
        assert (one[0].slug, one[1]) == (two[0].slug, two[1]) == ("shop-one", "admin")
        assert one[0] in first and two[0] in second and one[0] is not two[0]
    assert cache.authenticate(session, "ob_wrong") is None


def test_a_key_revoked_in_the_same_process_is_refused_at_once(factory, session, clock, make_tenant):
    tenant = make_tenant()
    old, new = create_api_key(session, tenant, clock=clock), create_api_key(session, tenant, clock=clock)
    session.commit()
    cache = KeyCache(ttl=3600)
    with factory() as request:
        assert cache.authenticate(request, old) is not None and cache.authenticate(request, new) is not None
    revoke_api_key(session, tenant, old, clock)
    session.commit()
    with factory() as request:
        assert cache.authenticate(request, old) is None
        assert cache.authenticate(request, new) is not None


def test_a_key_revoked_by_another_process_is_refused_once_its_check_is_older_than_the_ttl(
    factory, session, clock, make_tenant
):
    key = create_api_key(session, make_tenant(), clock=clock)
    session.commit()
    timer = Timer()
    cache = KeyCache(ttl=5, timer=timer)
    with factory() as request:
        assert cache.authenticate(request, key) is not None
    # Another process revokes it: the database changes, this process's caches are not told.
    session.execute(update(ApiKey).values(revoked_at=clock.now()))
    session.commit()
    timer.now += 4.9
    with factory() as request:
        assert cache.authenticate(request, key) is not None
    timer.now += 0.2
    with factory() as request:
        assert cache.authenticate(request, key) is None


def test_a_refusal_is_not_cached_so_a_new_key_works_at_once(factory, session, clock, make_tenant):
    cache = KeyCache(ttl=3600)
    with factory() as request:
        assert cache.authenticate(request, "ob_not-yet") is None
    key = create_api_key(session, make_tenant(), clock=clock)
    session.commit()
    with factory() as request:
        assert cache.authenticate(request, key) is not None


@pytest.mark.skipif(BACKEND == "sqlite", reason="SQLite readers wait for the revoking transaction (BEGIN IMMEDIATE)")
def test_a_key_checked_before_its_revocation_commits_is_refused_after_the_commit(factory, session, clock, make_tenant):
    tenant = make_tenant()
    key = create_api_key(session, tenant, clock=clock)
    session.commit()
    cache = KeyCache(ttl=3600)
    revoke_api_key(session, tenant, key, clock)
    with factory() as request:
        assert cache.authenticate(request, key) is not None  # the revocation is not visible yet
    session.commit()
    with factory() as request:
        assert cache.authenticate(request, key) is None
