"""`outbound campaigns validate` refuses templates that would exhaust a worker, where the template shows it."""

from __future__ import annotations

from typer.testing import CliRunner

from outbound.cli import app

from helpers.bounded import bounded
from helpers.definitions import TEMPLATES, write_definitions

runner = CliRunner()


def test_validate_refuses_a_power_tower_a_gigabyte_string_and_a_billion_long_range_with_their_lines(tmp_path):
    root = write_definitions(
        tmp_path / "definitions",
        templates={
            **TEMPLATES,
            "cart_note/email.en.j2": "{% block subject %}Your cart{% endblock %}{% block text %}Hi,\n"
            "{{ 'x' * 10**9 }}\n{{ tenant.postal_address }} Unsubscribe: {{ links.unsubscribe }}{% endblock %}",
            "cart_note/sms.en.j2": "Your cart.\n\n{% for i in range(10**9) %}!{% endfor %} Reply STOP to opt out",
            "delay_note/sms.en.j2": "Order {{ event.data.order_id }}: {{ 9 ** (9 ** 9) }}",
        },
    )

    def validate():
        result = runner.invoke(app, ["campaigns", "validate", "--definitions", str(root)])
        return result.exit_code, " ".join(result.output.split())  # Rich wraps long lines

    outcome, answer = bounded(validate)
    assert outcome == "returned", answer
    exit_code, output = answer
    assert exit_code == 1, output
    assert "templates/cart_note/email.en.j2:2: a repetition of over 100,000 characters or items" in output
    assert "templates/cart_note/sms.en.j2:3: range() of 1,000,000,000 numbers; at most 10,000" in output
    assert "templates/delay_note/sms.en.j2:1: a power of over 1,000 bits" in output
