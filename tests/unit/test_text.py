"""What text the engine stores: no NUL, no lone surrogate, bounded nesting; refused with the field."""

from __future__ import annotations

import pytest

from outbound.errors import InvalidInput
from outbound.ingest.text import MAX_DEPTH, check_storable, storable


@pytest.mark.parametrize("value", ["a\x00b", "\x00", "x\ud800", "\udfff tail"])
def test_nul_and_lone_surrogates_are_refused_with_where_they_are(value):
    with pytest.raises(ValueError, match="must not contain"):
        storable(value)


def test_ordinary_text_markup_formulas_and_emoji_pass_unchanged():
    for value in ["", "Ann", '=HYPERLINK("x")', "[bold]hi[/]", "<b>x</b>", "감사합니다 🎉", "tab\there"]:
        assert storable(value) == value


def test_a_nested_value_is_refused_with_the_path_of_the_bad_string():
    with pytest.raises(InvalidInput) as refused:
        check_storable({"items": [{"name": "ok"}, {"name": "bad\x00"}]}, "data")
    assert refused.value.field == "data.items[1].name"
    with pytest.raises(InvalidInput) as refused:
        check_storable({"k\x00": 1}, "attributes")
    assert refused.value.field == "attributes (a key)"


def test_nesting_deeper_than_the_limit_is_refused_and_up_to_it_accepted():
    deep: object = "leaf"
    for _ in range(MAX_DEPTH):
        deep = [deep]
    check_storable(deep, "data")
    with pytest.raises(InvalidInput, match="nested deeper"):
        check_storable([deep], "data")
