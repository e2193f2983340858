"""RFC 8058 unsubscribe: one-click POST, a confirmation page on GET, unforgeable tokens, immediate effect."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from outbound.db.models import Consent
from outbound.db.suppressions import is_suppressed
from outbound.rendering.links import unsubscribe_token
from outbound.signing import Keyring
from outbound.web.app import create_app


@pytest.fixture
def shop(world):
    tenant = world.tenant(sender_name="Maple Goods")
    contact = world.contact(
        tenant,
        "c1",
        email="Ann@Example.com",
        phone="+15125550100",
        consents=[("email", "marketing"), ("sms", "marketing")],
    )
    return tenant, contact


@pytest.fixture
def client(runtime, clock):
    with TestClient(create_app(runtime, on_event=None), follow_redirects=False) as client:
        yield client


def token_for(runtime, tenant, contact, channel="email") -> str:
    return unsubscribe_token(runtime.keyring, tenant.id, contact.id, channel)


def email_state(runtime, tenant):
    with runtime.factory() as session:
        reasons = is_suppressed(session, tenant.id, "email", "ann@example.com")
        ledger = [
            (c.granted, c.source)
            for c in session.scalars(select(Consent).where(Consent.channel == "email").order_by(Consent.id))
        ]
    return reasons, ledger


def test_one_click_post_unsubscribes_at_once_with_200_no_redirect_and_no_cookie(runtime, client, shop):
    tenant, contact = shop
    response = client.post(
        f"/u/{token_for(runtime, tenant, contact)}",
        content="List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "location" not in response.headers and "set-cookie" not in response.headers
    reasons, ledger = email_state(runtime, tenant)
    assert reasons == ["unsubscribe"]
    assert ledger[-1] == (False, "one-click unsubscribe")


def test_a_get_shows_a_confirmation_page_and_unsubscribes_nobody(runtime, client, shop):
    tenant, contact = shop
    token = token_for(runtime, tenant, contact)
    page = client.get(f"/u/{token}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<form method="post"' in page.text and 'value="One-Click"' in page.text and "Maple Goods" in page.text
    assert "ann@example.com" not in page.text  # masked: the link may be forwarded
    assert email_state(runtime, tenant) == ([], [(True, "test form")])


def test_the_pages_button_unsubscribes(runtime, client, shop):
    tenant, contact = shop
    response = client.post(
        f"/u/{token_for(runtime, tenant, contact)}",
        data={"List-Unsubscribe": "One-Click"},
        headers={"accept": "text/html"},
    )
    assert response.status_code == 200 and "unsubscribed" in response.text
    assert email_state(runtime, tenant)[1][-1] == (False, "unsubscribe page")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: "garbage",
        lambda t: t.replace(".", ""),
        lambda t: "x.y.z",
    ],
)
def test_forged_or_garbled_tokens_are_404(runtime, client, shop, mangle):
    tenant, contact = shop
    token = mangle(token_for(runtime, tenant, contact))
    assert client.get(f"/u/{token}").status_code == 404
    assert client.post(f"/u/{token}", content="List-Unsubscribe=One-Click").status_code == 404
    assert email_state(runtime, tenant)[0] == []


def test_a_token_signed_with_another_secret_is_404(client, shop):
    tenant, contact = shop
    forged = unsubscribe_token(Keyring(secrets.token_urlsafe(32)), tenant.id, contact.id, "email")
    assert client.post(f"/u/{forged}", content="List-Unsubscribe=One-Click").status_code == 404


def test_a_post_without_the_one_click_body_changes_nothing(runtime, client, shop):
    tenant, contact = shop
    assert client.post(f"/u/{token_for(runtime, tenant, contact)}", content="hello").status_code == 400
    assert email_state(runtime, tenant)[0] == []


def test_marketing_email_carries_rfc_8058_headers_and_stops_right_after_unsubscribing(
    world, runtime, client, outbox, shop
):
    tenant, contact = shop
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "k1", "value": 200})
    world.run(world.clock.now() + timedelta(hours=2))
    sent = [m for m in outbox.sent if m.channel == "email"]
    assert len(sent) == 1
    link = sent[0].headers["List-Unsubscribe"].strip("<>")
    assert sent[0].headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link.startswith("https://ob.example/u/")
    assert client.post(link.removeprefix("https://ob.example"), content="List-Unsubscribe=One-Click").status_code == 200
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "k2", "value": 200})
    world.run(world.clock.now() + timedelta(hours=2))
    second = world.messages(channel="email")[-1]
    assert second.status == "blocked" and second.rule == "suppression"
    assert len([m for m in outbox.sent if m.channel == "email"]) == 1
