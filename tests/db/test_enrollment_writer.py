"""The one enrollment writer: its two statement shapes write the same rows; order, windows, duplicates, dispatch."""

from datetime import timedelta

from sqlalchemy import select

from outbound.db.models import CallbackTask, Contact, Enrollment, Message, MessageTransition, Tenant
from outbound.db.session import transaction
from outbound.enrollment import writer
from outbound.enrollment.writer import candidate, enroll

from helpers.campaigns import CAMPAIGN_TEMPLATES, campaigns, make_world_fixture  # noqa: F401 - fixture

BULK = """
name: bulk
kind: lead
purpose: marketing
holdout: 0.3
enrollment:
  key: "contact.attributes.tier"
  window: 7d
steps:
  - id: email_now
    channel: email
    template: cart_note
    variants:
      - id: a
        weight: 1
      - id: b
        weight: 1
        template: offer_note
  - id: sms_1h
    channel: sms
    delay: 1h
    template: cart_note
    when: "contact.phone"
callback:
  reason: "Call the lead"
  priority: 3
  delay: 30m
"""
NO_TRIGGERS = "triggers: []\n"
NEWS = """
name: news
kind: reminder
purpose: marketing
steps:
  - id: email_now
    channel: email
    template: news_note
"""
NEWS_TEMPLATE = (
    "{% block subject %}News for {{ contact.external_id }}{% endblock %}{% block text %}Hi. "
    "{{ tenant.postal_address }} Unsubscribe: {{ links.unsubscribe }}{% endblock %}"
)


def _world(make_world):
    return make_world(campaigns(bulk=BULK), triggers=NO_TRIGGERS, templates=CAMPAIGN_TEMPLATES)


def _contacts(world, count):
    tenant = world.tenant()
    for n in range(count):
        phone = {"phone": f"+1202555{n:04d}"} if n % 3 else {}  # every third has no phone: its SMS step drops
        world.contact(
            tenant, f"c{n}", email=f"c{n}@example.com", attributes={"tier": "gold" if n % 2 else "silver"}, **phone
        )


def _snapshot(session):
    """Every row enrollment writes, without database ids, so two runs can be compared."""
    contact_of = dict(
        session.execute(
            select(Enrollment.id, Contact.external_id).join(Contact, Contact.id == Enrollment.contact_id)
        ).all()
    )
    enrollments = sorted(
        (
            contact_of[e.id],
            e.campaign,
            e.dedupe_key,
            e.trigger,
            e.status,
            e.enrolled_at,
            e.ended_at,
            e.end_reason,
            e.holdout,
        )
        for e in session.scalars(select(Enrollment))
    )
    messages = {m.id: (contact_of[m.enrollment_id], m.step) for m in session.scalars(select(Message))}
    message_rows = sorted(
        (
            contact_of[m.enrollment_id],
            m.step,
            m.channel,
            m.purpose,
            m.template,
            m.variant,
            m.status,
            m.due_at,
            m.created_at,
            m.updated_at,
            m.attempts,
        )
        for m in session.scalars(select(Message))
    )
    transitions = sorted(
        (messages[t.message_id], t.from_status, t.to_status, t.source, t.rule, t.reason, tuple(t.detail.items()), t.at)
        for t in session.scalars(select(MessageTransition))
    )
    callbacks = sorted(
        (contact_of[c.enrollment_id], c.campaign, c.reason, c.priority, c.status, c.due_at, c.created_at, c.attempts)
        for c in session.scalars(select(CallbackTask))
    )
    return enrollments, message_rows, transitions, callbacks


def enroll_many(session, tenant, campaign, contacts, clock, *, trigger=None):
    """Enroll a list of contacts (rows or objects) without an event, as an operator's list does."""
    now = clock.now()
    made = enroll(session, tenant, [candidate(campaign, c, None, now, trigger) for c in contacts], now)
    return [enrollment_id for enrollment_id in made if enrollment_id is not None]


def _one_by_one(world, campaign, contacts):
    with world.runtime.factory() as session, session.begin():
        tenant = session.scalar(select(Tenant))
        for contact in contacts(session):
            enroll_many(session, tenant, campaign, [contact], world.clock, trigger="operator list")
        snapshot = _snapshot(session)
        session.rollback()
    return snapshot


def test_the_writer_writes_the_same_rows_as_rows_and_as_sets(make_world, monkeypatch):
    world = _world(make_world)
    _contacts(world, 60)
    campaign = world.runtime.definitions.campaigns["bulk"]

    def rows(session):
        return session.execute(select(Contact.__table__).order_by(Contact.id)).all()

    # Rows (with sets only from more than sixty), then sets.
    monkeypatch.setattr(writer, "SETS_FROM", 61)
    expected = _one_by_one(world, campaign, lambda session: session.scalars(select(Contact).order_by(Contact.id)))
    monkeypatch.setattr(writer, "SETS_FROM", 1)
    with transaction(world.runtime.factory) as session:
        ids = enroll_many(
            session, session.scalar(select(Tenant)), campaign, rows(session), world.clock, trigger="operator list"
        )
    with world.runtime.factory() as session:
        assert _snapshot(session) == expected
        assert len(ids) == 60 and len(set(ids)) == 60
        # Held-out contacts are enrolled (for attribution) with no messages; the rest got theirs.
        held_out = [row for row in expected[0] if row[-1]]
        assert held_out and len(held_out) < 60
        assert {row[0] for row in expected[1]} == {row[0] for row in expected[0] if not row[-1]}
        # Every messaged contact got the campaign's callback task, the held out none.
        assert len(expected[3]) == 60 - len(held_out)


def test_bulk_enrollment_returns_each_contacts_enrollment_in_the_order_given(make_world):
    world = _world(make_world)
    _contacts(world, 10)
    campaign = world.runtime.definitions.campaigns["bulk"]
    with transaction(world.runtime.factory) as session:
        contacts = session.execute(select(Contact.__table__).order_by(Contact.id.desc())).all()
        ids = enroll_many(session, session.scalar(select(Tenant)), campaign, contacts, world.clock)
        owners = dict(session.execute(select(Enrollment.id, Enrollment.contact_id)).all())
    assert [owners[i] for i in ids] == [c.id for c in contacts]


def test_bulk_enrollment_skips_contacts_already_enrolled_with_that_key_within_the_window(make_world, clock):
    world = _world(make_world)
    _contacts(world, 6)
    campaign = world.runtime.definitions.campaigns["bulk"]
    with transaction(world.runtime.factory) as session:
        tenant = session.scalar(select(Tenant))
        first = session.scalars(select(Contact).order_by(Contact.id).limit(2)).all()
        enroll_many(session, tenant, campaign, [first[0]], clock)
    clock.advance(timedelta(days=1))
    with transaction(world.runtime.factory) as session:
        tenant = session.scalar(select(Tenant))
        everyone = session.execute(select(Contact.__table__).order_by(Contact.id)).all()
        # The first contact was enrolled yesterday; the second is listed twice today: one enrollment each.
        made = enroll_many(session, tenant, campaign, [*everyone, everyone[1]], clock)
    assert len(made) == 5
    clock.advance(timedelta(days=7))
    with transaction(world.runtime.factory) as session:
        again = enroll_many(
            session, session.scalar(select(Tenant)), campaign, session.execute(select(Contact.__table__)).all(), clock
        )
    assert len(again) == 6  # a week later the window has passed for everyone


def test_bulk_enrolled_messages_are_dispatched_like_any_other(make_world, clock, outbox):
    world = make_world(
        campaigns(news=NEWS),
        triggers=NO_TRIGGERS,
        templates={**CAMPAIGN_TEMPLATES, "news_note/email.en.j2": NEWS_TEMPLATE},
    )
    tenant = world.tenant()
    for n in range(5):
        world.contact(tenant, f"c{n}", email=f"c{n}@example.com", consents=[("email", "marketing")])
    world.contact(tenant, "c-none", email="none@example.com")  # no consent: blocked, never sent
    campaign = world.runtime.definitions.campaigns["news"]
    with transaction(world.runtime.factory) as session:
        enroll_many(
            session, session.scalar(select(Tenant)), campaign, session.execute(select(Contact.__table__)).all(), clock
        )
    report = world.runtime.dispatcher.drain()
    assert (report.sent, report.blocked) == (5, 1), report
    assert sorted(m.to for m in outbox.sent) == [f"c{n}@example.com" for n in range(5)]
    assert {m.subject for m in outbox.sent} == {f"News for c{n}" for n in range(5)}
    for message in world.messages(status="sent"):
        assert world.trail(message.id) == [("scheduled", None), ("sending", "allow"), ("sent", "allow")]
    [blocked] = world.messages(status="blocked")
    assert world.trail(blocked.id) == [("scheduled", None), ("blocked", "consent")]
