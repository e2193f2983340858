"""Small definition sets written into a temporary folder, for tests of triggers and dispatch."""

from __future__ import annotations

import textwrap
from pathlib import Path

CART = """
name: cart
kind: reminder
purpose: marketing
enrollment:
  key: "event.data.cart_id"
  window: 7d
exit_on:
  - event: order_placed
    key: "event.data.cart_id"
steps:
  - id: email_1h
    channel: email
    delay: 1h
    template: cart_note
  - id: sms_24h
    channel: sms
    delay: 24h
    template: cart_note
    when: "contact.phone"
"""

DELAY = """
name: delay
kind: notification
purpose: transactional
enrollment:
  key: "event.data.order_id"
steps:
  - id: sms_now
    channel: sms
    delay: 0m
    template: delay_note
"""

LEAD = """
name: lead
kind: lead
purpose: marketing
steps:
  - id: email_now
    channel: email
    delay: 0m
    template: cart_note
callback:
  reason: "New lead: call within 5 minutes"
  priority: 10
  delay: 0m
"""

TRIGGERS = """
triggers:
  - name: cart_abandoned
    on: cart_abandoned
    when: "event.data.value >= 100"
    campaign: cart
  - name: shipping_delayed
    on: shipping_delayed
    campaign: delay
  - name: lead_created
    on: lead_created
    campaign: lead
"""

TEMPLATES = {
    "cart_note/email.en.j2": "{% block subject %}Your cart {{ event.data.cart_id }}{% endblock %}"
    "{% block text %}Hi {{ contact.external_id }}, your cart is waiting. "
    "{{ tenant.postal_address }} Unsubscribe: {{ links.unsubscribe }}{% endblock %}",
    "cart_note/email.ko.j2": "{% block subject %}(광고) 장바구니 {{ event.data.cart_id }}{% endblock %}"
    "{% block text %}(광고) {{ tenant.sender_name }} 장바구니를 확인하세요. 무료수신거부 {{ tenant.optout_number }}{% endblock %}",
    "cart_note/sms.en.j2": "Your cart {{ event.data.cart_id }} is waiting. Reply STOP to opt out",
    "cart_note/sms.ko.j2": "(광고) {{ tenant.sender_name }} 장바구니 {{ event.data.cart_id }} 무료수신거부 {{ tenant.optout_number }}",
    "delay_note/sms.en.j2": "Order {{ event.data.order_id }} is delayed; new date {{ event.data.new_eta }}.",
}


def write_definitions(
    root: Path,
    campaigns: dict[str, str] | None = None,
    triggers: str = TRIGGERS,
    templates: dict[str, str] | None = None,
) -> Path:
    """Write campaigns, triggers and templates under `root` and return it."""
    campaigns = campaigns if campaigns is not None else {"cart": CART, "delay": DELAY, "lead": LEAD}
    for folder in ("campaigns", "triggers", "templates"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name, text in campaigns.items():
        (root / "campaigns" / f"{name}.yaml").write_text(textwrap.dedent(text).lstrip())
    (root / "triggers" / "main.yaml").write_text(textwrap.dedent(triggers).lstrip())
    for path, text in (templates if templates is not None else TEMPLATES).items():
        target = root / "templates" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root
