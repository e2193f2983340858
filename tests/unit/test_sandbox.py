"""The sandbox of templates and conditions answers every read as Jinja's own immutable sandbox does."""

from __future__ import annotations

import pytest
from jinja2 import ChainableUndefined, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from outbound.sandbox import Sandbox

NAMES = {
    "contact": {"email": "a@example.com", "attributes": {"first_name": "Minji", "tags": ["vip"]}},
    "event": {"type": "order_placed", "data": {"items": "a key named items", "get": 3, "value": 120}},
    "name": "Minji",
}
READS = [
    "contact.email",
    "contact.attributes.first_name",
    "contact.attributes.get('first_name')",
    "contact.attributes.get('nickname', 'friend')",
    "contact.attributes.items() | list",
    "contact.attributes.keys",
    "event.data.items",
    "event.data.get",
    "event.data['get']",
    "event.data['items']",
    "contact['email']",
    "contact.nickname",
    "contact.nickname.deeper",
    "contact.attributes.nickname is defined",
    "event.data.value > 100",
    "contact.__class__",
    "contact.__class__.__mro__",
    "contact.attributes.__len__",
    "contact.mro",
    "contact.attributes.update({'x': 1})",
    "contact.attributes.pop('first_name')",
    "contact.attributes.tags.append(1)",
    "contact.attributes.setdefault",
    "name.upper()",
    "name.__class__",
    "'{0.__class__}'.format(name)",
    "range(3) | list",
    "lipsum is defined",
]


def _answer(environment, expression: str):
    try:
        return "ok", repr(environment.compile_expression(expression, undefined_to_none=False)(**NAMES))
    except Exception as error:
        return "error", type(error).__name__, str(error)


@pytest.mark.parametrize("undefined", [StrictUndefined, ChainableUndefined])
@pytest.mark.parametrize("expression", READS)
def test_every_read_answers_as_jinjas_immutable_sandbox(expression, undefined):
    ours = _answer(Sandbox(undefined=undefined), expression)
    assert ours == _answer(ImmutableSandboxedEnvironment(undefined=undefined), expression)


def test_a_templates_own_globals_overlay_the_environments():
    environment = Sandbox()
    environment.globals["shop"] = "Hanbit Mall"
    template = environment.from_string("{{ shop }} {{ greeting }} {{ range(2) | list }}", globals={"greeting": "hi"})
    assert template.render() == "Hanbit Mall hi [0, 1]"
    assert environment.from_string("{{ greeting is defined }}").render() == "False"
