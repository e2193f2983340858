"""Statements run on the driver by outbound.db.direct read and store exactly what SQLAlchemy's own execution does."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from outbound.db import direct
from outbound.db.models import Contact, Enrollment, MessageTransition

from helpers.statements import Statements

KST = timezone(timedelta(hours=9))


def _contacts(session, tenant, clock, count=4):
    made = [
        Contact(
            tenant_id=tenant.id,
            external_id=f"c{i}",
            email=f"c{i}@example.com",
            locale="en" if i % 2 else "ko",
            attributes={"tier": i, "name": "김철수" if i == 1 else None},
            created_at=clock.now() + timedelta(minutes=i),
            updated_at=clock.now(),
        )
        for i in range(count)
    ]
    session.add_all(made)
    session.flush()
    return made


BY_EXTERNAL_IDS = (
    select(Contact.id, Contact.external_id, Contact.created_at, Contact.attributes, Contact.email)
    .where(
        Contact.tenant_id == bindparam("tenant_id"),
        Contact.external_id.in_(bindparam("ids", expanding=True)),
        Contact.locale == "en",  # a literal the statement holds itself
    )
    .order_by(Contact.id)
    .limit(10)
)


def test_a_select_with_an_in_list_and_literals_reads_what_sqlalchemy_reads(session, make_tenant, clock):
    tenant = make_tenant()
    _contacts(session, tenant, clock)
    for ids in (["c1"], ["c1", "c3", "nobody"], ["c0", "c2"], ["c3", "c1", "c1"]):
        params = {"tenant_id": tenant.id, "ids": ids}
        expected = [tuple(row) for row in session.execute(BY_EXTERNAL_IDS, params)]
        assert direct.fetch(session, BY_EXTERNAL_IDS, params) == expected
    found = direct.fetch(session, BY_EXTERNAL_IDS, {"tenant_id": tenant.id, "ids": ["c1"]})
    ((contact_id, external_id, created_at, attributes, email),) = found
    assert external_id == "c1" and created_at == clock.now() + timedelta(minutes=1)
    assert created_at.tzinfo is not None and attributes == {"tier": 1, "name": "김철수"}


def test_an_in_list_of_another_length_is_its_own_statement_and_an_empty_one_is_refused(session, make_tenant, clock):
    tenant = make_tenant()
    _contacts(session, tenant, clock)
    one = direct.fetch(session, BY_EXTERNAL_IDS, {"tenant_id": tenant.id, "ids": ["c3"]})
    two = direct.fetch(session, BY_EXTERNAL_IDS, {"tenant_id": tenant.id, "ids": ["c3", "c1"]})
    assert [row[1] for row in one] == ["c3"] and [row[1] for row in two] == ["c1", "c3"]
    with pytest.raises(ValueError, match="empty"):
        direct.fetch(session, BY_EXTERNAL_IDS, {"tenant_id": tenant.id, "ids": []})


def test_an_insert_returning_its_id_stores_what_sqlalchemy_stores(session, make_tenant, clock):
    tenant = make_tenant()
    contact = _contacts(session, tenant, clock, 1)[0]
    at = datetime(2026, 11, 20, 21, 0, 0, 123456, tzinfo=KST)  # not UTC, with microseconds
    row = {
        "tenant_id": tenant.id,
        "campaign": "winback",
        "contact_id": contact.id,
        "dedupe_key": "k",
        "trigger": None,
        "event_id": None,
        "status": "active",
        "enrolled_at": at,
        "holdout": False,
    }
    table = Enrollment.__table__
    statement = insert(table).returning(table.c.id)
    by_sqlalchemy = session.execute(statement, row).scalar_one()
    ((by_direct,),) = direct.fetch(session, statement, row, columns=list(row))
    assert by_direct > by_sqlalchemy
    columns = [c.name for c in table.c if c.name != "id"]
    raw = session.execute(
        text(f"SELECT {', '.join(columns)} FROM enrollments WHERE id IN (:a, :b) ORDER BY id"),
        {"a": by_sqlalchemy, "b": by_direct},
    ).all()
    assert tuple(raw[0]) == tuple(raw[1])  # stored alike, as the driver holds them
    read = session.get(Enrollment, by_direct)
    assert read.enrolled_at == at and read.holdout is False and read.trigger is None


def test_a_write_without_returning_counts_the_rows_it_changed(session, make_tenant, clock):
    tenant = make_tenant()
    made = _contacts(session, tenant, clock)
    session.commit()
    later = clock.now() + timedelta(hours=1)
    statement = update(Contact.__table__).where(Contact.tenant_id == bindparam("t"), Contact.locale == "ko")
    changed = direct.execute(session, statement, {"t": tenant.id, "updated_at": later}, columns=["updated_at"])
    assert changed == 2
    session.expire_all()
    assert sorted(c.updated_at == later for c in session.scalars(select(Contact))) == [False, False, True, True]
    assert {c.id for c in made if c.locale == "ko"} == {
        c.id for c in session.scalars(select(Contact).where(Contact.updated_at == later))
    }


def test_what_it_writes_is_in_the_sessions_transaction_and_goes_with_its_rollback(session, make_tenant, clock):
    tenant = make_tenant()
    contact = _contacts(session, tenant, clock, 1)[0]
    session.commit()
    table = MessageTransition.__table__
    statement = select(table.c.id).where(table.c.tenant_id == bindparam("t"))
    with session.begin_nested() as savepoint:
        direct.fetch(
            session,
            insert(Enrollment.__table__).returning(Enrollment.__table__.c.id),
            {
                "tenant_id": tenant.id,
                "campaign": "c",
                "contact_id": contact.id,
                "dedupe_key": "",
                "status": "active",
                "enrolled_at": clock.now(),
                "holdout": False,
            },
            columns=["tenant_id", "campaign", "contact_id", "dedupe_key", "status", "enrolled_at", "holdout"],
        )
        assert session.scalar(select(Enrollment.id)) is not None  # seen by the session's own statements
        savepoint.rollback()
    assert session.scalar(select(Enrollment.id)) is None
    assert direct.fetch(session, statement, {"t": tenant.id}) == []


def test_a_refusal_of_the_database_is_raised_as_sqlalchemy_raises_it(session, make_tenant, clock):
    tenant = make_tenant()
    contact = _contacts(session, tenant, clock, 1)[0]
    row = {
        "tenant_id": tenant.id,
        "external_id": contact.external_id,
        "attributes": {},
        "created_at": clock.now(),
        "updated_at": clock.now(),
    }
    statement = insert(Contact.__table__).returning(Contact.__table__.c.id)
    with pytest.raises(IntegrityError), session.begin_nested():  # the same external id twice for a tenant
        direct.fetch(session, statement, row, columns=list(row))
    assert session.scalar(select(Contact.external_id)) == contact.external_id  # the session goes on


def test_the_statements_it_runs_are_seen_by_the_engines_listeners(session, make_tenant, clock, engine):
    tenant = make_tenant()
    _contacts(session, tenant, clock)
    with Statements(engine) as statements:
        direct.fetch(session, BY_EXTERNAL_IDS, {"tenant_id": tenant.id, "ids": ["c1", "c2"]})
    assert len(statements.selects_from("contacts")) == 1 and "external_id in (" in statements.seen[0]


def test_a_column_left_out_of_an_insert_gets_its_default_as_sqlalchemy_gives_it(session, make_tenant, clock):
    tenant = make_tenant()
    [contact] = _contacts(session, tenant, clock, count=1)
    # No dedupe_key (default ""), holdout (default False): a flush, and SQLAlchemy's own INSERT, fill them in.
    row = {
        "tenant_id": tenant.id,
        "campaign": "cart",
        "contact_id": contact.id,
        "status": "active",
        "enrolled_at": clock.now(),
    }
    statement = insert(Enrollment.__table__).returning(Enrollment.__table__.c.id)
    [(by_driver,)] = direct.fetch(session, statement, row, columns=list(row))
    by_sqlalchemy = session.execute(statement, {**row, "campaign": "cart-2"}).scalar_one()
    stored = {
        e.campaign: (e.dedupe_key, e.holdout)
        for e in session.scalars(select(Enrollment).where(Enrollment.id.in_([by_driver, by_sqlalchemy])))
    }
    assert stored == {"cart": ("", False), "cart-2": ("", False)}
