"""Campaign definitions and a runtime builder for the tests of campaign kinds (surveys, batches, holdouts...)."""

from __future__ import annotations

import secrets

import pytest

from helpers.definitions import TEMPLATES, TRIGGERS, write_definitions

SURVEY = """
name: survey
kind: survey
purpose: survey
enrollment:
  key: "event.data.order_id"
survey:
  scale: nps
  window: 3d
steps:
  - id: sms_2h
    channel: sms
    delay: 2h
    template: survey_note
"""

CSAT = """
name: csat
kind: survey
purpose: survey
survey:
  scale: csat
steps:
  - id: email_now
    channel: email
    template: csat_note
"""

WINBACK = """
name: winback
kind: winback
purpose: marketing
holdout: 0.5
exit_on:
  - event: order_placed
offer_codes:
  pool: [POOL-AAAA, POOL-BBBB]
  pattern: "WB-{random:6}"
steps:
  - id: email_now
    channel: email
    template: offer_note
  - id: sms_2d
    channel: sms
    delay: 2d
    template: offer_note
"""

CAMPAIGN_TRIGGERS = (
    TRIGGERS
    + """
  - name: delivered
    on: order_delivered
    campaign: survey
  - name: ticket_closed
    on: ticket_closed
    campaign: csat
  - name: churn
    on: churn_risk_scored
    campaign: winback
"""
)

CAMPAIGN_TEMPLATES = {
    **TEMPLATES,
    "survey_note/sms.en.j2": "{{ tenant.sender_name }}: how likely are you to recommend us, 0-10? Reply STOP to opt out.",
    "survey_note/sms.ko.j2": "[{{ tenant.sender_name }}] 추천 의향을 0~10점으로 답장해 주세요.",
    "csat_note/email.en.j2": "{% block subject %}How did we do?{% endblock %}"
    "{% block text %}{% for n in range(1, 6) %}{{ n }}: {{ links.survey }}/{{ n }}\n{% endfor %}{% endblock %}",
    "offer_note/email.en.j2": "{% block subject %}We miss you{% endblock %}{% block text %}Code {{ offer.code }}. "
    "{{ tenant.postal_address }} Unsubscribe: {{ links.unsubscribe }}{% endblock %}",
    "offer_note/sms.en.j2": "Come back: code {{ offer.code }}. Reply STOP to opt out",
}


def campaigns(**extra: str) -> dict[str, str]:
    """The kit's campaigns plus the base kit's (cart, delay, lead), with `extra` added or replacing them."""
    from helpers.definitions import CART, DELAY, LEAD

    return {"cart": CART, "delay": DELAY, "lead": LEAD, "survey": SURVEY, "csat": CSAT, "winback": WINBACK, **extra}


@pytest.fixture(name="make_world")
def make_world_fixture(db_url, tmp_path, clock, outbox):
    """Build a World over definitions written from the given campaigns (default: this kit's)."""
    from conftest import World

    from outbound.bootstrap import build
    from outbound.config import Settings

    runtimes = []

    def _make(
        campaign_files: dict[str, str] | None = None,
        triggers: str = CAMPAIGN_TRIGGERS,
        templates: dict[str, str] | None = None,
        providers=None,
    ):
        root = write_definitions(
            tmp_path / f"defs{len(runtimes)}", campaign_files or campaigns(), triggers, templates or CAMPAIGN_TEMPLATES
        )
        runtime = build(
            Settings(
                database_url=db_url,
                definitions=root,
                base_url="https://ob.example",
                secret_key=secrets.token_urlsafe(32),
            ),
            clock=clock,
            providers=providers or {"sms": outbox, "email": outbox},
        )
        runtimes.append(runtime)
        return World(runtime, clock)

    yield _make
    for runtime in runtimes:
        runtime.close()
