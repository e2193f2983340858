"""A batch run's enrollments, written a chunk of contacts at a time: the rows `outbound.enrollment.planner.enroll`
writes for each contact, to the field, with a handful of statements per chunk.

Per chunk, one pass in Python decides each contact's key, side of the holdout, steps (with their
variants) and offer code; everything else is computed by the database: one `INSERT … SELECT` of
enrollments per (key, outcome) group (`RETURNING` their ids where messages follow), one
`INSERT … SELECT` of messages per step (and variant), one of their first transitions, one of the
callback tasks, and one `INSERT … ON CONFLICT DO NOTHING` of the drawn codes. The chunk's ids and
codes travel as one bound parameter per list (`outbound.db.bulk_sql`), so every chunk runs the same SQL
text, compiled and prepared once.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, bindparam, insert, literal, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from outbound.context import contact_view, event_view
from outbound.db.bulk_sql import among, code_rows
from outbound.db.models import CallbackTask, Contact, Enrollment, Message, MessageTransition, OfferCode, Tenant
from outbound.db.types import UTCDateTime
from outbound.enrollment.planner import CODE_ALPHABET, code_pattern_parts, pick_variant

CONTACT_VIEW = (
    Contact.id,
    Contact.external_id,
    Contact.phone,
    Contact.email,
    Contact.locale,
    Contact.timezone,
    Contact.jurisdiction,
    Contact.attributes,
)
CODE_DRAWS = 8  # draws of a pattern code per contact before giving up, as `assign_offer_code`

_ENROLLMENTS, _MESSAGES, _TRANSITIONS = Enrollment.__table__, Message.__table__, MessageTransition.__table__
_CALLBACKS, _CONTACTS, _CODES = CallbackTask.__table__, Contact.__table__, OfferCode.__table__


def reads_contact(campaign) -> bool:
    """Whether the enrollment key or a step condition reads the contact, so its fields must be loaded."""
    rule = campaign.enrollment
    return (rule is not None and rule.key is not None) or any(step.when is not None for step in campaign.steps)


def holdout_test(tenant: str, campaign: str, share: float):
    """`in_holdout(tenant, campaign, external_id, share)` as a function of the external id alone (pure, the same answers).

    The hash input's constant head is encoded once, instead of joined and encoded for every contact.
    """
    if share <= 0:
        return lambda external_id: False
    head, sha256, scale = f"holdout\x1f{tenant}\x1f{campaign}\x1f".encode(), hashlib.sha256, 2**64

    def held_out(external_id: str) -> bool:
        return int.from_bytes(sha256(head + external_id.encode()).digest()[:8], "big") / scale < share

    return held_out


def pattern_code(pattern: str, seed: str, draw: int) -> str:
    """Draw number `draw` of a code for a pattern such as BACK-{random:6}, from a hash of `seed` (pure)."""
    head, length, tail = code_pattern_parts(pattern)
    bits = int.from_bytes(hashlib.sha256(f"{seed}:{draw}".encode()).digest(), "big")
    return head + "".join([CODE_ALPHABET[(bits >> shift) & 31] for shift in range(0, 5 * length, 5)]) + tail


def pattern_codes(pattern: str, seeds: dict[int, str], draw: int) -> dict[int, str]:
    """`pattern_code(pattern, seed, draw)` for each of `seeds` (by contact id), reading only the hash bytes it uses."""
    head, length, tail = code_pattern_parts(pattern)
    width, shifts, sha256, alphabet = (5 * length + 7) // 8, range(0, 5 * length, 5), hashlib.sha256, CODE_ALPHABET
    codes = {}
    for contact_id, seed in seeds.items():
        bits = int.from_bytes(sha256(f"{seed}:{draw}".encode()).digest()[-width:], "big")
        codes[contact_id] = head + "".join([alphabet[(bits >> shift) & 31] for shift in shifts]) + tail
    return codes


class BatchEnrollment:
    """One batch run's enrollments, written a chunk of contacts at a time with the rows `enroll` writes one by one."""

    def __init__(self, tenant: Tenant, campaign, now: datetime, trigger: str) -> None:
        self.tenant, self.campaign, self.now, self.trigger = tenant, campaign, now, trigger
        rule = campaign.enrollment
        self.key = rule.key if rule is not None else None
        self.window = rule.window if rule is not None else None
        self.pool_left = bool(campaign.offer_codes is not None and campaign.offer_codes.pool)
        self.reads_contact = reads_contact(campaign)
        self.held_out = holdout_test(tenant.slug, campaign.name, campaign.holdout)
        # Steps without a condition or variants are the same for every contact: one tuple shared by all.
        self.same_steps = (
            None
            if self.reads_contact or any(step.variants for step in campaign.steps)
            else tuple((step, None) for step in campaign.steps)
        )

    def enroll(self, session: Session, contacts: list) -> tuple[int, int]:
        """Enroll a chunk of contacts (rows with at least `id` and `external_id`, in id order).

        Returns how many were enrolled and how many of them were held out.
        """
        connection = session.connection()
        chosen = self._choose(connection, contacts)
        if not chosen:
            return 0, 0
        messaged = [
            (contact_id, external_id, steps) for contact_id, external_id, _, held_out, steps in chosen if not held_out
        ]
        enrollment_of = self._insert_enrollments(connection, chosen)
        if messaged and self.campaign.offer_codes is not None:
            self._assign_offer_codes(session, connection, messaged, enrollment_of)
        self._insert_messages(connection, messaged, enrollment_of)
        if messaged and self.campaign.callback is not None:
            self._insert_callbacks(connection, [enrollment_of[contact_id] for contact_id, _, _ in messaged])
        return len(chosen), len(chosen) - len(messaged)

    def _choose(self, connection: Connection, contacts: list) -> list[tuple[int, str, str, bool, tuple]]:
        """(contact id, external id, key, held out, steps with their variants) of each contact to enroll."""
        campaign, slug, name, held_out = self.campaign, self.tenant.slug, self.campaign.name, self.held_out
        recent = self._recently_enrolled(connection, contacts)
        same_steps, key_rule, no_event = self.same_steps, self.key, event_view(None)
        if same_steps is not None and key_rule is None:
            # The common shape (no key, no condition, no variant): one comprehension, a hash per contact.
            return [
                (c.id, c.external_id, "", True, ())
                if held_out(c.external_id)
                else (c.id, c.external_id, "", False, same_steps)
                for c in contacts
                if not recent or (c.id, "") not in recent
            ]
        chosen = []
        for contact in contacts:
            contact_id, external_id = contact.id, contact.external_id
            names = {"event": no_event, "contact": contact_view(contact)} if self.reads_contact else None
            key = "" if key_rule is None else _text(key_rule.evaluate(**names))
            if recent and (contact_id, key) in recent:
                continue
            if held_out(external_id):
                chosen.append((contact_id, external_id, key, True, ()))
            elif same_steps is not None:
                chosen.append((contact_id, external_id, key, False, same_steps))
            else:
                chosen.append(
                    (
                        contact_id,
                        external_id,
                        key,
                        False,
                        tuple(
                            (step, pick_variant(step, slug, name, external_id))
                            for step in campaign.steps
                            if step.when is None or step.when.test(**names)
                        ),
                    )
                )
        return chosen

    def _recently_enrolled(self, connection: Connection, contacts: list) -> set[tuple[int, str]]:
        """(contact, key) pairs of this chunk already enrolled within the window: one range query per chunk."""
        if self.window is None:
            return set()
        table = _ENROLLMENTS
        return set(
            map(
                tuple,
                connection.execute(
                    select(table.c.contact_id, table.c.dedupe_key).where(
                        table.c.tenant_id == self.tenant.id,
                        table.c.campaign == self.campaign.name,
                        table.c.contact_id.between(contacts[0].id, contacts[-1].id),
                        table.c.enrolled_at > self.now - self.window,
                    )
                ),
            )
        )

    def _insert_enrollments(self, connection: Connection, chosen: list) -> dict[int, int]:
        """One `INSERT … SELECT` from `contacts` per (key, outcome) group; the enrollment id of each messaged contact."""
        campaign, now = self.campaign, self.now
        held = f"held out ({campaign.holdout:.0%} control group): never messaged"
        idle = None if campaign.callback is not None else "no step applies to this contact"
        groups: dict[tuple[str, bool, str | None], list[int]] = defaultdict(list)
        for contact_id, _, key, held_out, steps in chosen:
            groups[(key, held_out, held if held_out else None if steps else idle)].append(contact_id)
        ids: dict[int, int] = {}
        at = literal(now, UTCDateTime())
        for (key, held_out, reason), contact_ids in groups.items():
            values = {
                "tenant_id": literal(self.tenant.id),
                "campaign": literal(campaign.name),
                "contact_id": _CONTACTS.c.id,
                "dedupe_key": literal(key),
                "trigger": literal(self.trigger),
                "status": literal("active" if reason is None else "completed"),
                "enrolled_at": at,
                "holdout": literal(held_out),
            }
            if reason is not None:
                values.update(ended_at=at, end_reason=literal(reason))
            statement = insert(_ENROLLMENTS).from_select(
                list(values), select(*values.values()).where(among(_CONTACTS.c.id, contact_ids))
            )
            if held_out:  # nothing follows a held-out enrollment: its id is not needed
                connection.execute(statement)
            else:
                ids.update(connection.execute(statement.returning(_ENROLLMENTS.c.contact_id, _ENROLLMENTS.c.id)).all())
        return ids

    def _insert_messages(self, connection: Connection, messaged: list, enrollment_of: dict[int, int]) -> None:
        """One `INSERT … SELECT` from `enrollments` per step (and variant), then every first transition in one more."""
        now, campaign = self.now, self.campaign
        groups: dict[tuple[str, str | None], list[int]] = defaultdict(list)
        chosen: dict[tuple[str, str | None], tuple[Any, Any]] = {}
        if self.same_steps is not None:
            everyone = [enrollment_of[contact_id] for contact_id, _, _ in messaged]
            for step, variant in self.same_steps if everyone else ():
                groups[(step.id, None)], chosen[(step.id, None)] = everyone, (step, variant)
        else:
            for contact_id, _, steps in messaged:
                for step, variant in steps:
                    group = (step.id, variant.id if variant is not None else None)
                    groups[group].append(enrollment_of[contact_id])
                    chosen[group] = (step, variant)
        if not groups:
            return
        at = literal(now, UTCDateTime())
        for group, enrollment_ids in groups.items():
            step, variant = chosen[group]
            values = {
                "tenant_id": literal(self.tenant.id),
                "enrollment_id": _ENROLLMENTS.c.id,
                "contact_id": _ENROLLMENTS.c.contact_id,
                "campaign": literal(campaign.name),
                "step": literal(step.id),
                "channel": literal(step.channel),
                "purpose": literal(campaign.purpose),
                "template": literal(step.template_of(variant)),
                "status": literal("scheduled"),
                "due_at": literal(max(now + step.delay, now), UTCDateTime()),
                "created_at": at,
                "updated_at": at,
                "attempts": literal(0),
            }
            if variant is not None:
                values["variant"] = literal(variant.id)
            connection.execute(
                insert(_MESSAGES).from_select(
                    list(values), select(*values.values()).where(among(_ENROLLMENTS.c.id, enrollment_ids))
                )
            )
        transitions = {
            "tenant_id": _MESSAGES.c.tenant_id,
            "message_id": _MESSAGES.c.id,
            "at": at,
            "to_status": literal("scheduled"),
            "source": literal("trigger"),
            "reason": literal(f"enrolled by {self.trigger}"),
            "detail": literal({}, _TRANSITIONS.c.detail.type),
        }
        with_steps = (
            everyone
            if self.same_steps is not None
            else sorted({enrollment_id for enrollment_ids in groups.values() for enrollment_id in enrollment_ids})
        )
        connection.execute(
            insert(_TRANSITIONS).from_select(
                list(transitions), select(*transitions.values()).where(among(_MESSAGES.c.enrollment_id, with_steps))
            )
        )

    def _insert_callbacks(self, connection: Connection, enrollment_ids: list[int]) -> None:
        rule, now = self.campaign.callback, self.now
        values = {
            "tenant_id": literal(self.tenant.id),
            "contact_id": _ENROLLMENTS.c.contact_id,
            "campaign": literal(self.campaign.name),
            "enrollment_id": _ENROLLMENTS.c.id,
            "reason": literal(rule.reason),
            "priority": literal(rule.priority),
            "status": literal("open"),
            "due_at": literal(now + rule.delay, UTCDateTime()),
            "created_at": literal(now, UTCDateTime()),
            "attempts": literal(0),
        }
        connection.execute(
            insert(_CALLBACKS).from_select(
                list(values), select(*values.values()).where(among(_ENROLLMENTS.c.id, enrollment_ids))
            )
        )

    # -- offer codes: the pool first, in contact order, then codes drawn from the pattern ---------

    def _assign_offer_codes(
        self, session: Session, connection: Connection, messaged: list, enrollment_of: dict[int, int]
    ) -> None:
        offers = self.campaign.offer_codes
        pooled = self._from_pool(session, [contact_id for contact_id, _, _ in messaged]) if self.pool_left else 0
        if offers.pattern and pooled < len(messaged):
            # The seed names the enrollment, so a contact enrolled again after the window draws a new code.
            prefix = f"{self.tenant.slug}:{self.campaign.name}:"
            self._from_pattern(
                connection,
                offers.pattern,
                {
                    contact_id: f"{prefix}{external_id}:{enrollment_of[contact_id]}"
                    for contact_id, external_id, _ in messaged[pooled:]
                },
            )

    def _from_pool(self, session: Session, contact_ids: list[int]) -> int:
        """Give the next unused pool codes (oldest first) to the first contacts; returns how many got one."""
        tenant_id, name, pool = self.tenant.id, self.campaign.name, self.campaign.offer_codes.pool
        free = self._free_pool_codes(session, len(contact_ids))
        if len(free) < len(contact_ids):
            # Codes enter the table the first time the pool is drawn from (and when the file adds more).
            known = set(
                session.scalars(
                    select(OfferCode.code).where(
                        OfferCode.tenant_id == tenant_id, OfferCode.campaign == name, OfferCode.code.in_(pool)
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
                            "campaign": name,
                            "code": code,
                            "contact_id": None,
                            "assigned_at": None,
                        }
                        for code in fresh
                    ],
                )
                free = self._free_pool_codes(session, len(contact_ids))
            self.pool_left = len(free) >= len(contact_ids)
        if free:
            session.execute(
                update(_CODES)
                .where(_CODES.c.id == bindparam("code_id"))
                .values(contact_id=bindparam("owner"), assigned_at=self.now),
                [
                    {"code_id": code_id, "owner": contact_id}
                    for code_id, contact_id in zip(free, contact_ids, strict=False)
                ],
            )
        return len(free)

    def _free_pool_codes(self, session: Session, count: int) -> list[int]:
        return list(
            session.scalars(
                select(OfferCode.id)
                .where(
                    OfferCode.tenant_id == self.tenant.id,
                    OfferCode.campaign == self.campaign.name,
                    OfferCode.contact_id.is_(None),
                    OfferCode.code.in_(self.campaign.offer_codes.pool),
                )
                .order_by(OfferCode.id)
                .limit(count)
                .with_for_update(skip_locked=True)
            )
        )

    def _from_pattern(self, connection: Connection, pattern: str, seeds: dict[int, str]) -> None:
        """A code per contact drawn from the pattern, redrawn while taken (8 draws at most, as `assign_offer_code`).

        Each draw is a hash of tenant, campaign, contact, enrollment and draw number: as stable as a
        seeded generator, at a tenth of the cost, which counts over a million contacts. Each round is
        one `INSERT … ON CONFLICT DO NOTHING … RETURNING`: a code already given (before, by another
        writer meanwhile, or twice in the round) is skipped by the database, and the contacts it
        returns are the ones that got theirs; the others draw again.
        """
        waiting = seeds
        for draw in range(CODE_DRAWS):
            if not waiting:
                return
            placed = self._insert_codes(connection, pattern_codes(pattern, waiting, draw))
            waiting = {contact_id: seed for contact_id, seed in waiting.items() if contact_id not in placed}

    def _insert_codes(self, connection: Connection, codes: dict[int, str]) -> set[int]:
        """Store each contact's code unless the code is taken; the contacts whose code was stored."""
        rows, values = code_rows(connection.dialect.name, list(codes.values()), list(codes))
        statement = text(
            "INSERT INTO offer_codes (tenant_id, campaign, code, contact_id, assigned_at) "
            f"SELECT :tenant_id, :campaign, v.code, v.id, :assigned_at FROM {rows} "
            # ORDER BY ends the SELECT (SQLite would read ON CONFLICT after a bare FROM as a join) and walks
            # the code index in order.
            "ORDER BY v.code ON CONFLICT DO NOTHING RETURNING contact_id"
        ).bindparams(
            bindparam("tenant_id", self.tenant.id, Integer),
            bindparam("campaign", self.campaign.name, String),
            bindparam("assigned_at", self.now, UTCDateTime()),
        )
        return set(connection.scalars(statement, values))


def _text(value) -> str:
    return "" if value is None else str(value)
