"""Erasure keeps a hashed suppression: personal data and bodies go, a re-imported address stays blocked;
`outbound contacts show` demonstrates the consent ledger."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from outbound.cli import app
from outbound.db.models import Contact, Event, InboundMessage, Message, Suppression
from outbound.db.session import transaction
from outbound.delivery.inbound import receive_inbound_sms
from outbound.ingest.erasure import erase_contact

runner = CliRunner()


def erase(world, tenant, external_id):
    with transaction(world.runtime.factory) as session:
        return erase_contact(session, session.merge(tenant, load=False), external_id, world.clock.now())


def test_erase_then_reimport_then_message_is_blocked(world, tmp_path):
    tenant = world.tenant()
    world.contact(
        tenant,
        "c1",
        email="ann@example.com",
        phone="+15125550100",
        consents=[("email", "marketing"), ("sms", "marketing")],
    )
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "k1", "value": 200})
    world.run(world.clock.now() + timedelta(hours=2))
    assert world.messages(status="sent")
    erase(world, tenant, "c1")

    # The order system sends the same person again, consents and all.
    line = {
        "external_id": "c1",
        "email": "ANN@example.com",
        "phone": "+1 512 555 0100",
        "consents": [
            {
                "channel": "email",
                "purpose": "marketing",
                "granted": True,
                "at": world.clock.now().isoformat(),
                "source": "re-import",
            }
        ],
    }
    path = tmp_path / "again.jsonl"
    path.write_text(json.dumps(line) + "\n")
    result = runner.invoke(app, ["contacts", "import", str(path), "--db", world.runtime.settings.database_url])
    assert result.exit_code == 0, result.output
    world.clock.advance(timedelta(days=8))
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "k2", "value": 200})
    world.run(world.clock.now() + timedelta(days=2))
    fresh = [m for m in world.messages() if m.created_at > world.clock.now() - timedelta(days=3)]
    assert fresh and all(m.status == "blocked" and m.rule == "suppression" for m in fresh), [
        (m.channel, m.status, m.rule) for m in fresh
    ]


def test_erasure_removes_personal_data_and_bodies_and_keeps_only_hashes(world):
    tenant = world.tenant()
    world.contact(
        tenant,
        "c1",
        email="ann@example.com",
        phone="+15125550100",
        attributes={"first_name": "Ann"},
        consents=[("email", "marketing")],
    )
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "k1", "value": 200})
    world.run(world.clock.now() + timedelta(hours=2))
    with transaction(world.runtime.factory) as session:
        receive_inbound_sms(
            session,
            session.merge(tenant, load=False),
            from_number="+15125550100",
            to_number="+15125550999",
            body="STOP",
            provider_id="SM1",
            clock=world.clock,
            settings=world.runtime.settings,
            definitions=world.runtime.definitions,
        )
    report = erase(world, tenant, "c1")
    assert report.messages_cleared >= 2 and report.messages_cancelled >= 1
    with world.runtime.factory() as session:
        contact = session.scalar(select(Contact))
        assert contact.erased_at is not None and contact.external_id.startswith("erased:")
        assert (contact.phone, contact.email, contact.attributes) == (None, None, {})
        assert all(
            m.body is None and m.subject is None and m.to_address is None for m in session.scalars(select(Message))
        )
        assert all(m.status != "scheduled" for m in session.scalars(select(Message)))
        inbound = session.scalar(select(InboundMessage))
        assert inbound.body is None and inbound.from_address is None
        assert all(e.data == {} for e in session.scalars(select(Event)))
        rows = session.scalars(select(Suppression)).all()
        assert {(r.channel, r.reason) for r in rows} == {("sms", "opt_out"), ("voice", "erased"), ("email", "erased")}
        assert all(r.address is None and len(r.address_hash) == 64 for r in rows)


def test_contacts_show_prints_the_consent_history_suppressions_and_messages(world):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="ann@example.com", phone="+15125550100", consents=[("sms", "marketing", True)])
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "k1", "value": 200})
    world.run(world.clock.now() + timedelta(hours=2))
    with transaction(world.runtime.factory) as session:
        receive_inbound_sms(
            session,
            session.merge(tenant, load=False),
            from_number="+15125550100",
            to_number="+15125550999",
            body="Stop texting me",
            provider_id="SM1",
            clock=world.clock,
            settings=world.runtime.settings,
            definitions=world.runtime.definitions,
        )
    result = runner.invoke(app, ["contacts", "show", "c1", "--db", world.runtime.settings.database_url])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(
        "sms" in line
        and "marketing" in line
        and "granted +night" in line
        and "source: test form" in line
        and "text: 'Yes'" in line
        for line in lines
    )
    assert any("revoked" in line and "source: inbound SMS" in line and "'Stop texting me'" in line for line in lines)
    assert any(line.strip().startswith("sms") and "opt_out" in line for line in lines)
    assert any("cart/email_1h" in line and "blocked" in line and "[consent]" in line for line in lines)


def test_contacts_erase_from_the_command_line_and_show_refuses_an_unknown_contact(world):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="ann@example.com")
    url = world.runtime.settings.database_url
    result = runner.invoke(app, ["contacts", "erase", "c1", "--db", url])
    assert result.exit_code == 0 and "hashed suppressions kept" in result.output
    missing = runner.invoke(app, ["contacts", "show", "c1", "--db", url])
    assert missing.exit_code == 1 and "no contact 'c1'" in missing.output
