"""The enrollment store: the statements of the one enrollment writer (`outbound.enrollment.writer`), and
`insert_messages`, the one way a message is first written (by an enrollment, or as a step's fallback).

Two statement shapes write the same rows, chosen by the writer by how many there are:

* rows (`insert_rows_of`): one multi-row INSERT per table (enrollments, messages, their first
  transitions, callback tasks) of values computed by the writer; for the few enrollments of a
  request or a run of events;
* sets (`insert_sets_of`): for a chunk of thousands of enrollments into one campaign without an
  event, one `INSERT … SELECT` of enrollments per (key, outcome) group, one of messages per step
  and variant, one of all their first transitions and one of the callback tasks, so the database
  computes the rows; the chunk's ids travel as one bound parameter (`outbound.db.bulk_sql.among`).

Offer codes: `give_pool_codes` hands out a pool's unused codes oldest first; `insert_codes` stores
drawn codes with `INSERT … ON CONFLICT DO NOTHING … RETURNING`, so a code already given (before, by
another writer meanwhile, or twice in the round) is skipped by the database and drawn again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, bindparam, insert, literal, select, text, update
from sqlalchemy.orm import Session

from outbound.db import direct
from outbound.db.bulk import insert_returning_ids, insert_rows, insert_with_ids
from outbound.db.bulk_sql import among, code_rows
from outbound.db.models import CallbackTask, Contact, Enrollment, Message, MessageTransition, OfferCode, table
from outbound.db.types import UTCDateTime
from outbound.vocabulary import EnrollmentStatus, MessageStatus, Source, TaskStatus

LOOKUP_IN_LIST = 1000  # contacts up to which the window read binds each id (beyond: one list parameter)

_ENROLLMENTS, _MESSAGES, _TRANSITIONS = table(Enrollment), table(Message), table(MessageTransition)
_CALLBACKS, _CONTACTS, _CODES = table(CallbackTask), table(Contact), table(OfferCode)

# Built once: building a statement costs more than running it for a run of one event.
_WITHIN_WINDOWS = select(
    Enrollment.campaign, Enrollment.contact_id, Enrollment.dedupe_key, Enrollment.enrolled_at
).where(
    Enrollment.tenant_id == bindparam("tenant_id"),
    Enrollment.campaign.in_(bindparam("campaigns", expanding=True)),
    Enrollment.contact_id.in_(bindparam("contact_ids", expanding=True)),
    Enrollment.enrolled_at > bindparam("since"),
)


def enrolled_within(
    session: Session, tenant_id: int, windows: dict[str, timedelta], contact_ids: Sequence[int], now: datetime
) -> set[tuple[str, int, str]]:
    """(campaign, contact id, key) of these contacts' enrollments that the campaigns' windows still count."""
    if not windows or not contact_ids:
        return set()
    since = now - max(windows.values())
    if len(contact_ids) <= LOOKUP_IN_LIST:
        params = {"tenant_id": tenant_id, "campaigns": sorted(windows), "contact_ids": sorted(set(contact_ids))}
        rows: Sequence[Any] = direct.fetch(session, _WITHIN_WINDOWS, {**params, "since": since})
    else:
        rows = session.execute(
            select(Enrollment.campaign, Enrollment.contact_id, Enrollment.dedupe_key, Enrollment.enrolled_at).where(
                Enrollment.tenant_id == tenant_id,
                Enrollment.campaign.in_(sorted(windows)),
                among(Enrollment.contact_id, sorted(set(contact_ids))),
                Enrollment.enrolled_at > since,
            )
        ).all()
    return {(campaign, contact_id, key) for campaign, contact_id, key, at in rows if at > now - windows[campaign]}


@dataclass(frozen=True, slots=True)
class StepRows:
    """The messages of one step (and variant) for a set of enrollments: what each row holds but its ids."""

    step: str
    channel: str
    template: str
    variant: str | None
    due_at: datetime
    enrollment_ids: list[int]


def insert_rows_of(
    session: Session,
    enrollments: list[dict[str, Any]],
    messages: list[tuple[int, dict[str, Any]]],
    transitions: list[dict[str, Any]],
    callbacks: list[tuple[int, dict[str, Any]]],
) -> list[int]:
    """INSERT enrollments, then their messages, each message's first transition and the callback tasks,
    one statement per table; the enrollment ids in order.

    Messages and callback tasks come as (index of their enrollment, row); `transitions[i]` is the first
    transition of message i, without its `message_id`.
    """
    ids = insert_with_ids(session, _ENROLLMENTS, enrollments)
    if messages:
        rows = [{**row, "enrollment_id": ids[index]} for index, row in messages]
        # The messages of one enrollment get the same first transition: any id will do for any of them.
        insert_messages(session, rows, transitions, interchangeable=len(ids) == 1)
    if callbacks:
        insert_rows(session, _CALLBACKS, [{**row, "enrollment_id": ids[index]} for index, row in callbacks])
    return ids


def insert_messages(
    session: Session,
    messages: list[dict[str, Any]],
    transitions: list[dict[str, Any]],
    *,
    interchangeable: bool = False,
) -> list[int]:
    """INSERT messages and the first transition of each (`transitions[i]` for message i, without its
    `message_id`); the message ids in order. `interchangeable`: the transitions are all alike, so each
    message is inserted with its own RETURNING (cheaper than drawing ids ahead for a few rows)."""
    if interchangeable:
        message_ids = sorted(insert_returning_ids(session, _MESSAGES, messages))
    else:
        message_ids = insert_with_ids(session, _MESSAGES, messages)
    insert_rows(
        session,
        _TRANSITIONS,
        [{**row, "message_id": message_id} for message_id, row in zip(message_ids, transitions, strict=True)],
    )
    return message_ids


def insert_sets_of(
    session: Session,
    *,
    tenant_id: int,
    campaign: str,
    trigger: str | None,
    now: datetime,
    groups: dict[tuple[str, bool, str | None], list[int]],
) -> dict[int, int]:
    """Enroll contacts by id, one `INSERT … SELECT` from contacts per (key, held out, end reason) group;
    the enrollment id of each contact. Their messages follow with `insert_step_sets`."""
    connection = session.connection()
    at = literal(now, UTCDateTime())
    enrollment_of: dict[int, int] = {}
    for (key, held_out, reason), contact_ids in groups.items():
        values: dict[str, Any] = {
            "tenant_id": literal(tenant_id),
            "campaign": literal(campaign),
            "contact_id": _CONTACTS.c.id,
            "dedupe_key": literal(key),
            "trigger": literal(trigger),
            "status": literal((EnrollmentStatus.ACTIVE if reason is None else EnrollmentStatus.COMPLETED).value),
            "enrolled_at": at,
            "holdout": literal(held_out),
        }
        if reason is not None:
            values.update(ended_at=at, end_reason=literal(reason))
        statement = insert(_ENROLLMENTS).from_select(
            list(values), select(*values.values()).where(among(_CONTACTS.c.id, contact_ids))
        )
        enrollment_of.update(
            connection.execute(statement.returning(_ENROLLMENTS.c.contact_id, _ENROLLMENTS.c.id)).all()
        )
    return enrollment_of


def insert_step_sets(
    session: Session,
    *,
    tenant_id: int,
    campaign: str,
    purpose: str,
    reason: str,
    now: datetime,
    steps: list[StepRows],
    callback: Any = None,
    called: list[int] | None = None,
) -> None:
    """The messages of each step for the enrollments it names, one `INSERT … SELECT` each, all their first
    transitions in one more, and a callback task (`callback`: the campaign's rule) for each of `called`."""
    connection = session.connection()
    at = literal(now, UTCDateTime())
    for rows in steps:
        message: dict[str, Any] = {
            "tenant_id": literal(tenant_id),
            "enrollment_id": _ENROLLMENTS.c.id,
            "contact_id": _ENROLLMENTS.c.contact_id,
            "campaign": literal(campaign),
            "step": literal(rows.step),
            "channel": literal(rows.channel),
            "purpose": literal(purpose),
            "template": literal(rows.template),
            "status": literal(MessageStatus.SCHEDULED.value),
            "due_at": literal(rows.due_at, UTCDateTime()),
            "created_at": at,
            "updated_at": at,
            "attempts": literal(0),
        }
        if rows.variant is not None:
            message["variant"] = literal(rows.variant)
        connection.execute(
            insert(_MESSAGES).from_select(
                list(message), select(*message.values()).where(among(_ENROLLMENTS.c.id, rows.enrollment_ids))
            )
        )
    if steps:
        transitions = {
            "tenant_id": _MESSAGES.c.tenant_id,
            "message_id": _MESSAGES.c.id,
            "at": at,
            "to_status": literal(MessageStatus.SCHEDULED.value),
            "source": literal(Source.TRIGGER.value),
            "reason": literal(reason),
            "detail": literal({}, _TRANSITIONS.c.detail.type),
        }
        with_steps = sorted({e for rows in steps for e in rows.enrollment_ids})
        connection.execute(
            insert(_TRANSITIONS).from_select(
                list(transitions), select(*transitions.values()).where(among(_MESSAGES.c.enrollment_id, with_steps))
            )
        )
    if called and callback is not None:
        task = {
            "tenant_id": literal(tenant_id),
            "contact_id": _ENROLLMENTS.c.contact_id,
            "campaign": literal(campaign),
            "enrollment_id": _ENROLLMENTS.c.id,
            "reason": literal(callback.reason),
            "priority": literal(callback.priority),
            "status": literal(TaskStatus.OPEN.value),
            "due_at": literal(now + callback.delay, UTCDateTime()),
            "created_at": at,
            "attempts": literal(0),
        }
        connection.execute(
            insert(_CALLBACKS).from_select(list(task), select(*task.values()).where(among(_ENROLLMENTS.c.id, called)))
        )


def give_pool_codes(
    session: Session, tenant_id: int, campaign: str, pool: list[str], contact_ids: list[int], now: datetime
) -> int:
    """Give the next unused pool codes (oldest first) to the first contacts; returns how many got one."""
    free = _free_pool_codes(session, tenant_id, campaign, pool, len(contact_ids))
    if len(free) < len(contact_ids):
        # Codes enter the table the first time the pool is drawn from (and when the file adds more).
        known = set(
            session.scalars(
                select(OfferCode.code).where(
                    OfferCode.tenant_id == tenant_id, OfferCode.campaign == campaign, OfferCode.code.in_(pool)
                )
            )
        )
        fresh = [code for code in pool if code not in known]
        if fresh:
            session.execute(
                insert(_CODES),
                [
                    {
                        "tenant_id": tenant_id,
                        "campaign": campaign,
                        "code": code,
                        "contact_id": None,
                        "assigned_at": None,
                    }
                    for code in fresh
                ],
            )
            free = _free_pool_codes(session, tenant_id, campaign, pool, len(contact_ids))
    if free:
        session.execute(
            update(_CODES)
            .where(_CODES.c.id == bindparam("code_id"))
            .values(contact_id=bindparam("owner"), assigned_at=now),
            [{"code_id": code_id, "owner": contact_id} for code_id, contact_id in zip(free, contact_ids, strict=False)],
        )
    return len(free)


def _free_pool_codes(session: Session, tenant_id: int, campaign: str, pool: list[str], count: int) -> list[int]:
    return list(
        session.scalars(
            select(OfferCode.id)
            .where(
                OfferCode.tenant_id == tenant_id,
                OfferCode.campaign == campaign,
                OfferCode.contact_id.is_(None),
                OfferCode.code.in_(pool),
            )
            .order_by(OfferCode.id)
            .limit(count)
            .with_for_update(skip_locked=True)
        )
    )


def insert_codes(
    session: Session, tenant_id: int, campaign: str, drawn: list[tuple[str, int]], now: datetime
) -> list[bool]:
    """Store each drawn (code, contact id) unless the code is taken; for each, whether it was stored.

    A code drawn twice in one call is stored once: for the first that drew it.
    """
    if not drawn:
        return []
    codes = [code for code, _ in drawn]
    first: dict[str, int] = {}  # each code with its first owner: a code drawn again in this call is not offered twice
    for code, owner in drawn:
        first.setdefault(code, owner)
    connection = session.connection()
    rows, values = code_rows(connection.dialect.name, list(first), list(first.values()))
    statement = text(
        "INSERT INTO offer_codes (tenant_id, campaign, code, contact_id, assigned_at) "
        f"SELECT :tenant_id, :campaign, v.code, v.id, :assigned_at FROM {rows} "
        # ORDER BY ends the SELECT (SQLite would read ON CONFLICT after a bare FROM as a join) and walks
        # the code index in order.
        "ORDER BY v.code ON CONFLICT DO NOTHING RETURNING code"
    ).bindparams(
        bindparam("tenant_id", tenant_id, Integer),
        bindparam("campaign", campaign, String),
        bindparam("assigned_at", now, UTCDateTime()),
    )
    stored = set(connection.scalars(statement, values))
    if len(first) == len(codes):
        return [code in stored for code in codes]
    placed = []
    for code in codes:
        placed.append(code in stored)
        stored.discard(code)
    return placed
