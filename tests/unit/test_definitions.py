"""Loading definitions: the shipped ones load; every broken file is reported with file, line and field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from outbound.definitions import DefinitionErrors, load_definitions

REPO = Path(__file__).resolve().parents[2]

CAMPAIGN = """\
name: reminder
kind: reminder
purpose: marketing
enrollment:
  key: "event.data.cart_id"
  window: 7d
exit_on:
  - event: order_placed
    key: "event.data.cart_id"
steps:
  - id: first
    channel: sms
    delay: 1h
    template: hello
    when: "contact.phone"
"""

TRIGGERS = """\
triggers:
  - name: on_cart
    on: cart_abandoned
    when: "event.data.value >= 10000"
    campaign: reminder
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def root(tmp_path) -> Path:
    return write(
        tmp_path,
        {
            "campaigns/reminder.yaml": CAMPAIGN,
            "triggers/main.yaml": TRIGGERS,
            # A marketing SMS: it offers an opt-out, as every EU marketing message must (definitions/formats.py).
            "templates/hello/sms.en.j2": "Hi {{ contact.external_id }}. Reply STOP to opt out\n",
        },
    )


def errors_of(root: Path) -> list:
    with pytest.raises(DefinitionErrors) as caught:
        load_definitions(root)
    return caught.value.errors


def only_error(root: Path):
    errors = errors_of(root)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def test_every_shipped_definition_loads():
    loaded = load_definitions(REPO)
    assert set(loaded.campaigns) == {
        "shipping_delay",
        "cart_abandonment",
        "delivery_survey",
        "churn_winback",
        "lead_followup",
        "lapsed_winback",
        "support_csat",
        "kr_consent_notice",
        "kr_consent_reconfirmation",
    }
    assert {t.on for t in loaded.triggers} == {
        "shipping_delayed",
        "cart_abandoned",
        "order_delivered",
        "ticket_closed",
        "churn_risk_scored",
        "lead_created",
    }


def test_every_shipped_template_has_korean_and_english():
    loaded = load_definitions(REPO)
    for campaign in loaded.campaigns.values():
        for step in campaign.steps:
            assert {"en", "ko"} <= set(loaded.renderer.available_locales(step.template, step.channel)), step


def test_shipped_campaigns_have_the_steps_and_rules_the_demo_relies_on():
    loaded = load_definitions(REPO)
    cart = loaded.campaigns["cart_abandonment"]
    assert [(s.channel, s.delay) for s in cart.steps] == [("email", timedelta(hours=1)), ("sms", timedelta(hours=24))]
    assert cart.enrollment.window == timedelta(days=7)
    assert [(c.name, r.key.source) for c, r in loaded.exits_for("order_placed") if c.name == "cart_abandonment"] == [
        ("cart_abandonment", "event.data.cart_id")
    ]
    assert {c.name for c, _ in loaded.exits_for("order_placed")} == {
        "cart_abandonment",
        "churn_winback",
        "lapsed_winback",
        "lead_followup",
    }
    assert loaded.campaigns["shipping_delay"].purpose == "transactional"
    assert loaded.campaigns["lead_followup"].callback.priority == 10
    (winback,) = loaded.triggers_for("churn_risk_scored")
    assert winback.when.test(event={"data": {"score": 0.7}}, contact={})
    assert not winback.when.test(event={"data": {"score": 0.69}}, contact={})


def test_a_valid_folder_loads_with_durations_and_compiled_conditions(root):
    loaded = load_definitions(root)
    campaign = loaded.campaigns["reminder"]
    assert campaign.steps[0].delay == timedelta(hours=1)
    assert campaign.steps[0].when.test(event={}, contact={"phone": "+1"})
    assert campaign.enrollment.key.evaluate(event={"data": {"cart_id": "c-1"}}, contact={}) == "c-1"
    assert [t.name for t in loaded.triggers_for("cart_abandoned")] == ["on_cart"]
    assert loaded.triggers_for("order_placed") == []


def test_the_yaml_key_on_stays_a_string_not_a_boolean(root):
    assert load_definitions(root).triggers[0].on == "cart_abandoned"


def test_campaigns_for_a_tenant_are_those_naming_it_or_naming_none(root):
    write(root, {"campaigns/vip.yaml": CAMPAIGN.replace("name: reminder", "name: vip") + "tenants: [shop-kr]\n"})
    loaded = load_definitions(root)
    assert {c.name for c in loaded.campaigns_for_tenant("shop-kr")} == {"reminder", "vip"}
    assert {c.name for c in loaded.campaigns_for_tenant("shop-us")} == {"reminder"}


def test_an_unknown_field_is_reported_with_its_line_and_field(root):
    write(root, {"campaigns/reminder.yaml": CAMPAIGN.replace("    delay: 1h\n", "    delay: 1h\n    dealy: 2h\n")})
    error = only_error(root)
    assert (error.file, error.line, error.field) == ("campaigns/reminder.yaml", 14, "steps[0].dealy")
    assert "unknown field 'dealy'" in str(error)


def test_a_wrong_type_is_reported_with_its_line_and_field(root):
    write(root, {"campaigns/reminder.yaml": CAMPAIGN.replace("    channel: sms\n", "    channel: fax\n")})
    error = only_error(root)
    assert (error.file, error.line, error.field) == ("campaigns/reminder.yaml", 12, "steps[0].channel")
    assert "'fax'" in str(error)


def test_a_bad_duration_is_reported_with_its_line_and_field(root):
    write(root, {"campaigns/reminder.yaml": CAMPAIGN.replace("window: 7d", "window: 7 days")})
    error = only_error(root)
    assert (error.file, error.line, error.field) == ("campaigns/reminder.yaml", 6, "enrollment.window")
    assert "not a duration" in str(error)


@pytest.mark.parametrize("delay", ["99999999999999999999d", "3000000w", "11000d"])
def test_a_delay_past_any_calendar_is_reported_with_its_line_not_a_traceback(root, delay):
    write(root, {"campaigns/reminder.yaml": CAMPAIGN.replace("window: 7d", f"window: {delay}")})
    error = only_error(root)
    assert (error.file, error.line, error.field) == ("campaigns/reminder.yaml", 6, "enrollment.window")
    assert "longer than 3660 days" in str(error)


def test_a_missing_required_field_is_reported_at_its_parent(root):
    write(root, {"campaigns/reminder.yaml": CAMPAIGN.replace("    channel: sms\n", "")})
    error = only_error(root)
    assert (error.line, error.field) == (11, "steps[0].channel") and "required" in str(error)


def test_a_bad_condition_is_reported_with_its_line_and_field(root):
    write(root, {"triggers/main.yaml": TRIGGERS.replace(">= 10000", ">=")})
    error = only_error(root)
    assert (error.file, error.line, error.field) == ("triggers/main.yaml", 4, "triggers[0].when")
    assert "syntax error" in str(error)


def test_an_unknown_campaign_in_a_trigger_is_reported_at_its_campaign_line(root):
    write(root, {"triggers/main.yaml": TRIGGERS.replace("campaign: reminder", "campaign: remindr")})
    error = only_error(root)
    assert (error.file, error.line, error.field) == ("triggers/main.yaml", 5, "triggers[0].campaign")
    assert "unknown campaign 'remindr'" in str(error)


def test_a_trigger_name_used_twice_is_reported_at_the_second_one(root):
    write(root, {"triggers/more.yaml": TRIGGERS.replace("cart_abandoned", "order_placed")})
    error = only_error(root)
    assert (error.file, error.line, error.field) == ("triggers/more.yaml", 2, "triggers[0].name")
    assert "triggers/main.yaml:2" in str(error)


def test_a_yaml_syntax_error_is_reported_with_its_line(root):
    write(root, {"campaigns/reminder.yaml": CAMPAIGN.replace("  window: 7d\n", "  window: [7d\n")})
    error = only_error(root)
    assert error.file == "campaigns/reminder.yaml" and error.line in (6, 7) and "YAML syntax error" in str(error)


def test_a_key_given_twice_is_reported_rather_than_silently_overwritten(root):
    write(
        root,
        {"campaigns/reminder.yaml": CAMPAIGN.replace("purpose: marketing\n", "purpose: marketing\npurpose: survey\n")},
    )
    error = only_error(root)
    assert (error.line, error.field) == (4, "purpose")


def test_a_campaign_name_must_equal_its_file_name(root):
    write(root, {"campaigns/reminder.yaml": CAMPAIGN.replace("name: reminder", "name: other")})
    error = only_error(root)
    assert (error.file, error.line, error.field) == ("campaigns/reminder.yaml", 1, "name")


def test_step_ids_must_be_unique_within_a_campaign(root):
    second = "  - id: first\n    channel: sms\n    template: hello\n"
    write(root, {"campaigns/reminder.yaml": CAMPAIGN + second})
    error = only_error(root)
    assert (error.field, error.line) == ("steps", 10) and "'first' is used twice" in str(error)


def test_only_a_transactional_campaign_may_be_essential(root):
    write(root, {"campaigns/reminder.yaml": CAMPAIGN + "essential: true\n"})
    error = only_error(root)
    assert (error.field, error.line) == ("essential", 16)


def test_a_jinja_syntax_error_is_reported_with_the_template_file_and_line(root):
    write(root, {"templates/hello/sms.en.j2": "Hi\n{{ contact.external_id }\n"})
    error = only_error(root)
    assert (error.file, error.line) == ("templates/hello/sms.en.j2", 2) and "syntax error" in str(error)


def test_a_missing_template_is_reported_at_the_step_template_line(root):
    write(root, {"campaigns/reminder.yaml": CAMPAIGN.replace("template: hello", "template: goodbye")})
    error = only_error(root)
    assert (error.file, error.line, error.field) == ("campaigns/reminder.yaml", 14, "steps[0].template")
    assert "templates/goodbye/sms.<locale>.j2" in str(error)


def test_a_template_in_only_another_channel_counts_as_missing(root):
    write(root, {"campaigns/reminder.yaml": CAMPAIGN.replace("channel: sms", "channel: email")})
    assert only_error(root).field == "steps[0].template"


def test_an_email_template_without_a_subject_block_is_reported(root):
    write(root, {"templates/hello/email.en.j2": "{% block text %}hi{% endblock %}\n"})
    error = only_error(root)
    assert (error.file, error.field) == ("templates/hello/email.en.j2", "subject")


def test_a_template_using_an_unknown_name_is_reported_with_its_line(root):
    write(root, {"templates/hello/sms.ko.j2": "안녕하세요\n{{ costumer.name }}\n"})
    error = only_error(root)
    assert (error.file, error.line, error.field) == ("templates/hello/sms.ko.j2", 2, "costumer")


def test_a_misnamed_template_file_is_reported(root):
    write(root, {"templates/hello/fax.en.j2": "hi\n"})
    assert only_error(root).file == "templates/hello/fax.en.j2"


def test_several_broken_files_are_all_reported_in_one_go(root):
    write(
        root,
        {
            "campaigns/reminder.yaml": CAMPAIGN.replace("kind: reminder", "kind: nagging").replace(
                "delay: 1h", "delay: soon"
            ),
            "campaigns/broken.yaml": "name: broken\nsteps: [\n",
            "triggers/main.yaml": TRIGGERS + "  - name: two\n    on: x\n    campaign: nowhere\n"
            "  - name: three\n    on: x\n    campaign: reminder\n    extra: 1\n",
            "templates/hello/sms.ko.j2": "{% if %}\n",
        },
    )
    found = {(e.file, e.line, e.field) for e in errors_of(root)}
    assert found == {
        ("campaigns/broken.yaml", 3, None),
        ("campaigns/reminder.yaml", 2, "kind"),
        ("campaigns/reminder.yaml", 13, "steps[0].delay"),
        ("templates/hello/sms.ko.j2", 1, None),
        ("triggers/main.yaml", 8, "triggers[1].campaign"),
        ("triggers/main.yaml", 12, "triggers[2].extra"),
    }


def test_a_trigger_naming_a_broken_campaign_is_not_reported_twice(root):
    write(root, {"campaigns/reminder.yaml": CAMPAIGN.replace("kind: reminder", "kind: nagging")})
    assert only_error(root).file == "campaigns/reminder.yaml"


def test_a_missing_folder_is_an_error():
    with pytest.raises(DefinitionErrors, match="no such folder"):
        load_definitions(Path("/nonexistent/definitions"))
