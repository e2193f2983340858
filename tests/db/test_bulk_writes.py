"""The driver-level executemany of outbound.db.bulk stores exactly what SQLAlchemy's own INSERT and UPDATE store."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select, text, update

from outbound.db.bulk import insert_rows, update_by_id
from outbound.db.models import Contact, Message, MessageTransition

KST = timezone(timedelta(hours=9))


def _contact(session, tenant, clock):
    session.add(
        contact := Contact(
            tenant_id=tenant.id, external_id="c1", attributes={}, created_at=clock.now(), updated_at=clock.now()
        )
    )
    session.flush()
    return contact


def _message(session, tenant, contact_id, at):
    return session.execute(
        insert(Message)
        .values(
            tenant_id=tenant.id,
            contact_id=contact_id,
            campaign="c",
            step="s",
            channel="sms",
            purpose="marketing",
            template="t",
            status="scheduled",
            due_at=at,
            created_at=at,
            updated_at=at,
            attempts=0,
        )
        .returning(Message.id)
    ).scalar_one()


def _raw(session, table, ids, columns):
    # As stored: the driver's own values, without SQLAlchemy's result processing.
    query = f"SELECT {', '.join(columns)} FROM {table} WHERE id IN ({', '.join(map(str, ids))}) ORDER BY id"
    return [tuple(row) for row in session.execute(text(query)).all()]


def test_inserted_rows_are_stored_as_sqlalchemy_stores_them(session, make_tenant, clock):
    tenant = make_tenant()
    contact = _contact(session, tenant, clock)
    message_id = _message(session, tenant, contact.id, clock.now())
    at = datetime(2026, 11, 20, 21, 0, 0, 123456, tzinfo=KST)  # not UTC, with microseconds
    rows = [
        {
            "tenant_id": tenant.id,
            "message_id": message_id,
            "at": at,
            "from_status": None,
            "to_status": "scheduled",
            "source": "worker",
            "rule": None,
            "reason": "한국어 reason",
            "detail": {"until": at.isoformat(), "n": [1, 2]},
        },
        {
            "tenant_id": tenant.id,
            "message_id": message_id,
            "at": at + timedelta(seconds=1),
            "from_status": "scheduled",
            "to_status": "sending",
            "source": "worker",
            "rule": "consent",
            "reason": None,
            "detail": {},
        },
    ]
    table = MessageTransition.__table__
    session.execute(insert(table), rows)
    insert_rows(session, table, rows)
    ids = session.scalars(select(table.c.id).order_by(table.c.id)).all()
    columns = [c.name for c in table.c if c.name != "id"]
    by_sqlalchemy, by_bulk = _raw(session, table.name, ids[:2], columns), _raw(session, table.name, ids[2:], columns)
    assert by_bulk == by_sqlalchemy
    read = session.execute(select(table).where(table.c.id == ids[2])).one()
    assert read.at == at and read.detail == {"until": at.isoformat(), "n": [1, 2]} and read.reason == "한국어 reason"


def test_updates_by_id_change_the_named_rows_as_sqlalchemy_changes_them(session, make_tenant, clock):
    tenant = make_tenant()
    contact = _contact(session, tenant, clock)
    ids = [_message(session, tenant, contact.id, clock.now()) for _ in range(5)]
    later = clock.now() + timedelta(hours=1, microseconds=7)
    table = Message.__table__
    changes = [{"status": "sending", "updated_at": later, "body": f"text {n}", "attempts": n} for n in (1, 2)]
    for message_id, change in zip(ids[:2], changes, strict=True):
        session.execute(update(table).where(table.c.id == message_id).values(**change))
    update_by_id(
        session, table, [{"_id": message_id, **change} for message_id, change in zip(ids[2:4], changes, strict=True)]
    )
    columns = ["status", "updated_at", "body", "attempts", "due_at"]
    assert _raw(session, table.name, ids[2:4], columns) == _raw(session, table.name, ids[:2], columns)
    assert _raw(session, table.name, ids[4:], ["status", "body"]) == [("scheduled", None)]  # untouched
    assert session.execute(select(table.c.updated_at).where(table.c.id == ids[3])).scalar() == later


def test_allocated_ids_are_new_and_rows_inserted_later_by_default_come_after_them(session, make_tenant, clock):
    from outbound.db.bulk import allocate_ids

    tenant = make_tenant()
    contact = _contact(session, tenant, clock)
    before = _message(session, tenant, contact.id, clock.now())
    ids = allocate_ids(session, Message.__table__, 3)
    assert len(set(ids)) == 3 and min(ids) > before
    insert_rows(
        session,
        Message.__table__,
        [
            {
                "id": i,
                "tenant_id": tenant.id,
                "contact_id": contact.id,
                "campaign": "c",
                "step": "s",
                "channel": "sms",
                "purpose": "marketing",
                "template": "t",
                "status": "scheduled",
                "due_at": clock.now(),
                "created_at": clock.now(),
                "updated_at": clock.now(),
                "attempts": 0,
            }
            for i in ids
        ],
    )
    after = _message(session, tenant, contact.id, clock.now())  # the database's own default id
    assert after > max(ids)
    assert sorted(session.scalars(select(Message.id)).all()) == sorted([before, *ids, after])


def test_thousands_of_rows_are_written_whole_across_statements(session, make_tenant, clock):
    from outbound.db.bulk import allocate_ids

    tenant = make_tenant()
    contact = _contact(session, tenant, clock)
    count = 2507
    ids = allocate_ids(session, Message.__table__, count)
    insert_rows(
        session,
        Message.__table__,
        [
            {
                "id": i,
                "tenant_id": tenant.id,
                "contact_id": contact.id,
                "campaign": "c",
                "step": f"s{n}",
                "channel": "sms",
                "purpose": "marketing",
                "template": "t",
                "status": "scheduled",
                "due_at": clock.now() + timedelta(seconds=n),
                "created_at": clock.now(),
                "updated_at": clock.now(),
                "attempts": 0,
            }
            for n, i in enumerate(ids)
        ],
    )
    update_by_id(
        session,
        Message.__table__,
        [{"_id": i, "status": "sending", "attempts": n} for n, i in enumerate(ids) if n % 2 == 0],
    )
    # The same columns again in the same transaction: only these rows change.
    update_by_id(
        session,
        Message.__table__,
        [{"_id": i, "status": "deferred", "attempts": -n} for n, i in enumerate(ids) if n % 3 == 1],
    )
    rows = session.execute(
        select(Message.id, Message.step, Message.due_at, Message.status, Message.attempts).order_by(Message.id)
    ).all()
    assert [row.id for row in rows] == ids
    assert all(row.step == f"s{n}" and row.due_at == clock.now() + timedelta(seconds=n) for n, row in enumerate(rows))
    assert [(row.status, row.attempts) for row in rows] == [
        ("deferred", -n) if n % 3 == 1 else ("sending", n) if n % 2 == 0 else ("scheduled", 0) for n in range(count)
    ]


def test_objects_inserted_through_the_driver_get_their_ids_and_defaults_and_stay_out_of_the_session(
    session, make_tenant, clock
):
    from outbound.db.bulk import insert_objects

    tenant = make_tenant()
    # `attributes` left unset: its column default applies, as an ORM flush applies it.
    made = [
        Contact(
            tenant_id=tenant.id,
            external_id=f"plain-{i}",
            phone="+12125550123" if i == 0 else None,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        for i in range(3)
    ]
    by_orm = Contact(tenant_id=tenant.id, external_id="orm", created_at=clock.now(), updated_at=clock.now())
    session.add(by_orm)
    session.flush()
    insert_objects(session, made[:1])  # one object: INSERT … RETURNING
    insert_objects(session, made[1:])  # more: ids drawn ahead, one executemany
    assert all(contact.id is not None and contact not in session for contact in made)
    assert len({contact.id for contact in made} | {by_orm.id}) == 4
    columns = ["external_id", "phone", "phone_hash", "attributes", "created_at", "erased_at"]
    stored = {row[0]: row for row in _raw(session, "contacts", [c.id for c in made] + [by_orm.id], columns)}
    assert stored["plain-1"][1:] == stored["orm"][1:]  # the same defaults as the ORM's flush
    assert stored["plain-0"][1] == "+12125550123" and stored["plain-0"][2] == made[0].phone_hash is not None
    assert session.get(Contact, made[2].id).attributes == {}


def test_rows_that_leave_out_a_defaulted_column_get_its_default_as_a_flush_gives_it(session, make_tenant, clock):
    tenant = make_tenant()
    contact = _contact(session, tenant, clock)
    message_id = _message(session, tenant, contact.id, clock.now())
    # No `detail` (default: an empty dict): SQLAlchemy's own INSERT fills it in, and so does the bulk write.
    row = {
        "tenant_id": tenant.id,
        "message_id": message_id,
        "at": clock.now(),
        "from_status": None,
        "to_status": "scheduled",
        "source": "trigger",
        "rule": None,
        "reason": "test",
    }
    insert_rows(session, MessageTransition.__table__, [row, {**row, "reason": "test 2"}])
    session.execute(insert(MessageTransition), [{**row, "reason": "by sqlalchemy"}])
    details = dict(session.execute(select(MessageTransition.reason, MessageTransition.detail)).all())
    assert details == {"test": {}, "test 2": {}, "by sqlalchemy": {}}
