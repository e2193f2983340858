"""Message format per jurisdiction, checked by `outbound campaigns validate`: a failing template fails naming its file."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from outbound.cli import app
from outbound.definitions import DefinitionErrors, load_definitions

from helpers.definitions import TEMPLATES, write_definitions

runner = CliRunner()

KR_SMS = "(광고) {{ tenant.sender_name }} 장바구니 문의 {{ tenant.support_contact }}\n무료수신거부 {{ tenant.optout_number }}"


def problems(tmp_path, **templates) -> list[str]:
    """The errors of loading the test definitions with some template files replaced."""
    files = dict(TEMPLATES)
    files.update({name.replace("__", "/").replace("_j2", ".j2"): text for name, text in templates.items()})
    root = write_definitions(tmp_path / "defs", templates=files)
    try:
        load_definitions(root)
    except DefinitionErrors as errors:
        return [str(error) for error in errors.errors]
    return []


def test_the_test_and_shipped_definitions_pass_their_formats(tmp_path):
    assert problems(tmp_path) == []
    load_definitions(".")


def test_a_kr_sms_starting_with_the_kr_ad_mark_and_ending_with_a_free_080_number_passes(tmp_path):
    assert problems(tmp_path, **{"cart_note__sms.ko_j2": KR_SMS}) == []


@pytest.mark.parametrize(
    "text, expected",
    [
        (KR_SMS.replace("(광고)", "[광고]"), "must start with '(광고)' exactly (found '[광고]')"),
        (KR_SMS.replace("(광고)", "(광 고)"), "must start with '(광고)' exactly (found '(광 고)')"),
        (KR_SMS.replace("(광고) ", ""), "must start with '(광고)'"),
        (KR_SMS.replace("{{ tenant.sender_name }} ", ""), "must name the sender"),
        (KR_SMS + " 감사합니다", "must end with a free opt-out"),
        (
            KR_SMS.replace("무료수신거부 {{ tenant.optout_number }}", "수신거부는 고객센터로"),
            "must end with a free opt-out",
        ),
    ],
)
def test_a_kr_advertisement_that_breaks_the_format_fails_naming_the_file(tmp_path, text, expected):
    found = problems(tmp_path, **{"cart_note__sms.ko_j2": text})
    assert any(error.startswith("templates/cart_note/sms.ko.j2: ") and expected in error for error in found), found


def test_a_kr_email_subject_must_start_with_the_ad_mark(tmp_path):
    broken = TEMPLATES["cart_note/email.ko.j2"].replace("(광고) 장바구니", "[광고] 장바구니")
    found = problems(tmp_path, **{"cart_note__email.ko_j2": broken})
    assert any(
        "templates/cart_note/email.ko.j2" in e and "the email subject must start with '(광고)'" in e for e in found
    ), found


def test_a_us_marketing_email_needs_the_postal_address_and_the_unsubscribe_link(tmp_path):
    text = "{% block subject %}Hi{% endblock %}{% block text %}Your cart. Unsubscribe: {{ links.unsubscribe }}{% endblock %}"
    found = problems(tmp_path, **{"cart_note__email.en_j2": text})
    assert any(
        "templates/cart_note/email.en.j2" in e and "US marketing email must carry the sender's postal address" in e
        for e in found
    ), found
    text = "{% block subject %}Hi{% endblock %}{% block text %}Your cart. {{ tenant.postal_address }}{% endblock %}"
    found = problems(tmp_path, **{"cart_note__email.en_j2": text})
    assert any("must carry the unsubscribe link" in e for e in found), found


def test_an_eu_marketing_sms_must_offer_an_opt_out(tmp_path):
    found = problems(tmp_path, **{"cart_note__sms.en_j2": "Your cart {{ event.data.cart_id }} is waiting."})
    assert found == [
        "templates/cart_note/sms.en.j2: EU marketing must offer an opt-out in every message "
        "(links.unsubscribe, or 'Reply STOP') (rendered for a EU tenant)"
    ]


def test_an_english_template_that_adapts_to_kr_is_held_to_the_kr_format(tmp_path):
    text = "{% if tenant.jurisdiction == 'KR' %}[광고] {% endif %}{{ tenant.sender_name }}: cart. Reply STOP to opt out"
    found = problems(tmp_path, **{"cart_note__sms.en_j2": text})
    assert any("sms.en.j2" in e and "(found '[광고]')" in e and "KR tenant" in e for e in found), found


def test_transactional_templates_are_not_held_to_advertising_formats(tmp_path):
    assert problems(tmp_path, **{"delay_note__sms.en_j2": "Order {{ event.data.order_id }} is late."}) == []


def test_validate_exits_non_zero_and_names_the_failing_file(tmp_path):
    files = dict(TEMPLATES)
    files["cart_note/sms.ko.j2"] = KR_SMS.replace("(광고)", "[광고]")
    root = write_definitions(tmp_path / "defs", templates=files)
    result = runner.invoke(app, ["campaigns", "validate", "--definitions", str(root)])
    assert result.exit_code == 1
    assert "templates/cart_note/sms.ko.j2" in result.output and "[광고]" in result.output
