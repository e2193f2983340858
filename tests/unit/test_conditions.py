"""Condition expressions: evaluated in a sandbox, safe with missing values, strict about syntax and names."""

from __future__ import annotations

import pytest

from outbound.conditions import Condition, InvalidCondition, compile_condition
from outbound.errors import InvalidInput

EVENT = {
    "type": "cart_abandoned",
    "data": {"cart_id": "c-9", "value": 129000, "score": 0.8, "tags": ["vip"]},
    "occurred_at": "2026-11-20T00:00:00+00:00",
}
CONTACT = {
    "external_id": "cust-42",
    "phone": "+821012345678",
    "email": None,
    "locale": "ko",
    "timezone": "Asia/Seoul",
    "attributes": {"tier": "gold"},
}


def holds(source: str, event=EVENT, contact=CONTACT) -> bool:
    return compile_condition(source).test(event=event, contact=contact)


def test_a_comparison_on_event_data_holds_when_true_and_not_when_false():
    assert holds("event.data.value >= 10000")
    assert not holds("event.data.value >= 200000")


def test_dicts_are_read_with_dots_and_with_subscripts():
    assert holds("event.data.cart_id == 'c-9' and event['data']['cart_id'] == 'c-9'")
    assert holds("contact.attributes.tier == 'gold'")


def test_boolean_operators_membership_and_filters_work():
    assert holds("'vip' in event.data.tags and contact.phone and not contact.email")
    assert holds("contact.attributes.tier | upper == 'GOLD'")


def test_a_comparison_with_a_missing_value_does_not_hold_and_does_not_raise():
    assert not holds("event.data.missing >= 3")
    assert not holds("3 <= event.data.missing")
    assert not holds("event.data.missing.deeper.still > 0")


def test_a_missing_value_is_falsy_and_its_negation_holds():
    assert not holds("event.data.missing")
    assert holds("not event.data.missing")
    assert holds("event.data.missing is not defined")


def test_a_none_or_incomparable_value_does_not_hold_and_does_not_raise():
    assert not holds("contact.email >= 3")
    assert not holds("event.data.cart_id > 5")


def test_evaluate_returns_the_value_and_none_for_a_missing_one():
    assert compile_condition("event.data.cart_id").evaluate(event=EVENT, contact=CONTACT) == "c-9"
    assert compile_condition("event.data.nothing").evaluate(event=EVENT, contact=CONTACT) is None


def test_evaluate_raises_where_test_would_answer_false():
    condition = compile_condition("event.data.missing >= 3", where="triggers/x.yaml when")
    with pytest.raises(InvalidCondition, match="cannot evaluate"):
        condition.evaluate(event=EVENT, contact=CONTACT)


def test_a_syntax_error_is_refused_at_compile_time_with_a_clear_message():
    with pytest.raises(InvalidCondition) as caught:
        compile_condition("event.data.value >=", where="campaigns/x.yaml:4")
    assert "syntax error" in str(caught.value) and "campaigns/x.yaml:4" in str(caught.value)
    assert isinstance(caught.value, InvalidInput) and isinstance(caught.value, ValueError)


def test_trailing_text_after_the_expression_is_a_syntax_error():
    with pytest.raises(InvalidCondition, match="syntax error"):
        compile_condition("event.data.value >= 3 }} {{ 4")


def test_an_empty_or_non_text_condition_is_refused():
    with pytest.raises(InvalidCondition, match="empty"):
        compile_condition("  ")
    with pytest.raises(InvalidCondition, match="string"):
        compile_condition(3)  # type: ignore[arg-type]


def test_an_unknown_top_level_name_is_refused_so_a_typo_is_not_a_silent_false():
    with pytest.raises(InvalidCondition, match="unknown name 'evnt'"):
        compile_condition("evnt.data.value > 3")
    assert isinstance(compile_condition("anything > 3", names=None), Condition)


@pytest.mark.parametrize(
    "source",
    [
        "event.__class__",
        "event.data['__class__']",
        "event._private",
    ],
)
def test_underscore_attributes_are_refused_at_compile_time(source):
    with pytest.raises(InvalidCondition, match="not allowed"):
        compile_condition(source)


def test_the_sandbox_refuses_a_class_walk_that_hides_its_attribute_name():
    # The attribute name is built at run time, so only the sandbox can stop it.
    hidden = compile_condition("event.data | attr('__cla' ~ 'ss__')")
    assert hidden.evaluate(event=EVENT, contact=CONTACT) is None
    assert not hidden.test(event=EVENT, contact=CONTACT)
    called = compile_condition("(event.data | attr('__cla' ~ 'ss__'))()")
    with pytest.raises(InvalidCondition, match="sandbox"):
        called.test(event=EVENT, contact=CONTACT)


def test_the_sandbox_refuses_to_mutate_the_data_it_reads():
    data = {"data": {"value": 1}}
    condition = compile_condition("event.data.update({'value': 2})")
    with pytest.raises(InvalidCondition, match="sandbox"):
        condition.test(event=data, contact=CONTACT)
    assert data == {"data": {"value": 1}}
