"""End to end through the real dispatcher and a real database: whatever the contacts, consents, suppressions,
purchases, past sends, complaint rates, time zones, jurisdictions and clocks, nothing a rule forbids reaches the
provider (judged by an independent oracle over the generated inputs), and every blocked or deferred message
names its rule and reason."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from outbound.clock import SimulatedClock
from outbound.compliance import ConsentRecord, MessageFacts
from outbound.db.models import DeliveryEvent, Enrollment, Event, Message, MessageTransition
from outbound.db.session import transaction
from outbound.db.suppressions import suppress
from outbound.dispatch.dispatcher import Dispatcher
from outbound.ingest.contacts import ConsentIn, ContactIn, record_consent, upsert_contact
from outbound.providers.outbox import Outbox
from outbound.tenancy.tenants import create_tenant

from helpers.compliance_oracle import EDGES, oracle_allows

UTC = UTC
TENANT_ZONES = {"US": "America/New_York", "KR": "Asia/Seoul", "EU": "Europe/Berlin", "default": "UTC"}
CONTACT_ZONES = [None, "America/Los_Angeles", "America/Chicago", "Asia/Seoul", "Europe/London", "Pacific/Honolulu"]
# (campaign, template channel, purpose) of the test definitions; a survey reuses the cart template.
KINDS = [
    ("cart", "email", "marketing"),
    ("cart", "sms", "marketing"),
    ("lead", "email", "marketing"),
    ("delay", "sms", "transactional"),
    ("cart", "sms", "survey"),
    ("cart", "email", "survey"),
]
REASONS = ["opt_out", "unsubscribe", "spam_report", "hard_bounce", "undeliverable"]
_slugs = itertools.count()


@st.composite
def worlds(draw):
    jurisdiction = draw(st.sampled_from(list(TENANT_ZONES)))
    zone = ZoneInfo(TENANT_ZONES[jurisdiction])
    day = draw(st.dates(min_value=datetime(2026, 1, 1).date(), max_value=datetime(2027, 12, 31).date()))
    hour, minute = draw(st.sampled_from(EDGES + [(10, 0), (22, 30)]))
    now = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)
    ago = st.one_of(
        st.sampled_from([1, 60, 1440, 183 * 1440, 730 * 1440, 731 * 1440]), st.integers(1, 1200 * 1440)
    ).map(lambda minutes: now - timedelta(minutes=minutes))
    contacts = []
    for index in range(draw(st.integers(1, 3))):
        korean_phone = draw(st.booleans())
        phone = draw(
            st.sampled_from([None] + [f"+8210123400{index:02d}" if korean_phone else f"+1512555010{index}"] * 3)
        )
        due = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=3))
        consents = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "channel": st.sampled_from(["sms", "email"]),
                        "purpose": st.sampled_from(["marketing", "marketing", "survey", "transactional"]),
                        "granted": st.booleans(),
                        "night": st.booleans(),
                        "at": ago,
                    }
                ),
                max_size=3,
            )
        )
        if draw(st.booleans()):
            # Often a recent grant for what is due, so that the later rules get their turn.
            consents += [
                {
                    "channel": channel,
                    "purpose": purpose,
                    "granted": True,
                    "night": draw(st.booleans()),
                    "at": now - timedelta(minutes=draw(st.sampled_from([1, 60, 10_080]))),
                }
                for _, channel, purpose in due
            ]
        contacts.append(
            {
                "phone": phone,
                "email": draw(st.sampled_from([None, f"c{index}@example.com", f"c{index}@example.com"])),
                # A US number always comes with its zone, so the oracle needs no numbering-plan lookup.
                "timezone": draw(st.sampled_from(CONTACT_ZONES))
                if (phone or "").startswith("+82") or not phone
                else draw(st.sampled_from(CONTACT_ZONES[1:])),
                "jurisdiction": draw(st.sampled_from([None, None, "US", "KR", "EU", "default"])),
                "consents": consents,
                "suppressed": draw(
                    st.lists(st.tuples(st.sampled_from(["sms", "email"]), st.sampled_from(REASONS)), max_size=1)
                ),
                "purchase": draw(st.one_of(st.none(), ago)),
                "history": draw(
                    st.lists(
                        st.tuples(
                            st.sampled_from(["sms", "email"]),
                            st.integers(1, 9 * 1440).map(lambda m: now - timedelta(minutes=m)),
                        ),
                        max_size=3,
                    )
                ),
                "due": due,
            }
        )
    return {
        "jurisdiction": jurisdiction,
        "now": now,
        "contacts": contacts,
        "postal": draw(st.booleans()) if jurisdiction == "US" else True,
        "bulk": draw(st.sampled_from([(0, 0), (300, 1), (1000, 1), (1000, 2), (1000, 4)])),
        "later": draw(st.sampled_from([timedelta(0), timedelta(hours=3), timedelta(hours=11), timedelta(days=1)])),
    }


def build(runtime, w):
    """Store the generated world; return the tenant id and, per message id, what the oracle needs to know."""
    now, slug = w["now"], f"prop-{next(_slugs)}"
    with transaction(runtime.factory) as session:
        settings = {
            "sender_name": slug,
            "support_contact": "help@example.com",
            "optout_number": "080-123-4567",
            "postal_address": "1 Main St, Springfield",
        }
        tenant = create_tenant(
            session,
            SimulatedClock(now),
            slug,
            jurisdiction=w["jurisdiction"],
            timezone=TENANT_ZONES[w["jurisdiction"]],
            locale="en",
            settings=settings,
        )
        if not w["postal"]:
            tenant.settings = {k: v for k, v in settings.items() if k != "postal_address"}
        sent_count, complaints = w["bulk"]
        filler = upsert_contact(session, tenant, ContactIn(external_id="filler"), SimulatedClock(now))
        session.add_all(
            Message(
                tenant_id=tenant.id,
                contact_id=filler.id,
                campaign="history",
                step="x",
                channel="email",
                purpose="transactional",
                template="x",
                status="delivered",
                due_at=now - timedelta(days=2),
                created_at=now,
                updated_at=now,
                sent_at=now - timedelta(days=2),
            )
            for _ in range(sent_count)
        )
        session.add_all(
            DeliveryEvent(
                tenant_id=tenant.id,
                provider="sendgrid",
                provider_event_id=f"{slug}-{i}",
                type="spamreport",
                at=now - timedelta(days=1),
                received_at=now,
            )
            for i in range(complaints)
        )
        expected = {}
        for index, c in enumerate(w["contacts"]):
            contact = upsert_contact(
                session,
                tenant,
                ContactIn(
                    external_id=f"c{index}",
                    phone=c["phone"],
                    email=c["email"],
                    timezone=c["timezone"],
                    jurisdiction=c["jurisdiction"],
                ),
                SimulatedClock(now),
            )
            for item in c["consents"]:
                record_consent(session, tenant, contact, ConsentIn(**item, source="form"), SimulatedClock(now))
            for channel, reason in c["suppressed"]:
                address = c["phone"] if channel == "sms" else c["email"]
                if address:
                    suppress(session, tenant.id, channel, address, reason=reason, source="test", at=now)
            if c["purchase"] is not None:
                session.add(
                    Event(
                        tenant_id=tenant.id,
                        event_id=f"buy-{index}",
                        type="order_placed",
                        occurred_at=c["purchase"],
                        received_at=now,
                        contact_id=contact.id,
                        data={},
                    )
                )
            for channel, at in c["history"]:
                session.add(
                    Message(
                        tenant_id=tenant.id,
                        contact_id=contact.id,
                        campaign="history",
                        step="x",
                        channel=channel,
                        purpose="marketing",
                        template="x",
                        status="delivered",
                        due_at=at,
                        created_at=at,
                        updated_at=at,
                        sent_at=at,
                    )
                )
            # The event the messages came from: what their templates read.
            trigger = Event(
                tenant_id=tenant.id,
                event_id=f"trigger-{index}",
                type="cart_abandoned",
                occurred_at=now,
                received_at=now,
                contact_id=contact.id,
                data={"cart_id": "k1", "order_id": "o1", "new_eta": "2 days", "value": 200},
            )
            session.add(trigger)
            session.flush()
            enrollment = Enrollment(
                tenant_id=tenant.id,
                campaign="cart",
                contact_id=contact.id,
                event_id=trigger.id,
                status="active",
                enrolled_at=now,
            )
            session.add(enrollment)
            session.flush()
            for number, (campaign, channel, purpose) in enumerate(c["due"]):
                message = Message(
                    tenant_id=tenant.id,
                    contact_id=contact.id,
                    campaign=campaign,
                    step=f"s{number}",
                    enrollment_id=enrollment.id,
                    channel=channel,
                    purpose=purpose,
                    template="cart_note" if campaign != "delay" else "delay_note",
                    status="scheduled",
                    due_at=now - timedelta(minutes=number),
                    created_at=now,
                    updated_at=now,
                )
                session.add(message)
                session.flush()
                expected[message.id] = (index, channel, purpose)
    return tenant.id, expected


def oracle(w, index, channel, purpose, at, sent_before):
    """Whether COMPLIANCE.md, read plainly, lets this message go at `at`, given what was sent before it."""
    c = w["contacts"][index]
    jurisdiction = c["jurisdiction"] or w["jurisdiction"]
    zone = c["timezone"] or ("Asia/Seoul" if (c["phone"] or "").startswith("+82") else TENANT_ZONES[w["jurisdiction"]])
    to = c["phone"] if channel == "sms" else c["email"]
    own = [
        s
        for (i, s_channel, s_purpose, s_at) in sent_before
        if i == index and s_purpose == "marketing"
        for s in [(s_channel, s_at)]
    ]
    facts = MessageFacts(
        channel=channel,
        purpose=purpose,
        to=to,
        jurisdiction=jurisdiction,
        timezone=zone,
        now=at,
        consents=tuple(ConsentRecord(**item) for item in c["consents"]),
        suppressions=tuple(reason for ch, reason in c["suppressed"] if ch == channel and to),
        recent_marketing=tuple(c["history"]) + tuple(own),
        last_purchase_at=c["purchase"],
    )
    if not oracle_allows(facts):
        return False
    if purpose == "marketing" and channel == "email":
        if jurisdiction == "US" and not w["postal"]:
            return False
        sent, complaints = w["bulk"]
        emails = sent + sum(
            1 for cc in w["contacts"] for ch, t in cc["history"] if ch == "email" and t > at - timedelta(days=30)
        )
        emails += sum(1 for (_, ch, _, s_at) in sent_before if ch == "email" and s_at < at)
        # The rate counts once 1,000 emails went out in the window (the breaker's minimum volume).
        if complaints and emails >= 1000 and complaints / emails > 0.003:
            return False
    return True


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(w=worlds())
def test_nothing_a_rule_forbids_reaches_the_provider_and_every_refusal_is_explained(runtime, w):
    tenant_id, expected = build(runtime, w)
    clock, outbox = SimulatedClock(w["now"]), Outbox()
    signer = runtime.signer
    dispatcher = Dispatcher(
        runtime.factory, runtime.definitions, {"sms": outbox, "email": outbox}, clock, runtime.settings, lambda: signer
    )
    sent_before: list[tuple[int, str, str, datetime]] = []
    try:
        for step in (timedelta(0), w["later"]):
            clock.advance(step)
            first = len(outbox.sent)
            dispatcher.drain()
            for out in outbox.sent[first:]:
                index, channel, purpose = expected[out.message_id]
                assert oracle(w, index, channel, purpose, clock.now(), sent_before), (
                    f"sent what a rule forbids: message {out.message_id} ({purpose} {channel}) at {clock.now()}"
                )
                sent_before.append((index, channel, purpose, clock.now()))
        with runtime.factory() as session:
            messages = session.scalars(
                select(Message).where(Message.tenant_id == tenant_id, Message.id.in_(expected))
            ).all()
            for message in messages:
                event(f"{message.purpose} {message.channel} → {message.status}:{message.rule}")
                if message.status in ("blocked", "deferred"):
                    last = session.scalars(
                        select(MessageTransition)
                        .where(MessageTransition.message_id == message.id)
                        .order_by(MessageTransition.id.desc())
                    ).first()
                    assert message.rule and message.reason and message.reason.strip()
                    assert last.to_status == message.status and last.rule == message.rule and last.reason
                if message.status == "deferred":
                    assert message.due_at > clock.now() - w["later"]
            assert {out.message_id for out in outbox.sent} == {m.id for m in messages if m.status == "sent"}
    finally:
        # Examples share the database: leave nothing due for the next one.
        with transaction(runtime.factory) as session:
            session.execute(
                update(Message)
                .where(Message.tenant_id == tenant_id, Message.status.in_(("scheduled", "deferred")))
                .values(status="cancelled")
            )
