"""Templates and conditions that would exhaust the worker's memory or time are refused with a clear error.

Each attack runs in a child process held to a time and a memory limit (`helpers.bounded`): without the
sandbox's limits it fails there instead of hanging the test run.
"""

from __future__ import annotations

import pytest

from outbound.conditions import InvalidCondition, compile_condition
from outbound.rendering.templates import Renderer, RenderError

from helpers.bounded import bounded


def render(tmp_path, source: str, **names) -> tuple[str, object]:
    """What rendering `source` as an SMS template gives, in a bounded child: ("returned", text) or
    ("raised", (error type, message))."""
    folder = tmp_path / "templates" / "note"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sms.en.j2").write_text(source)
    renderer = Renderer(tmp_path / "templates")
    return bounded(lambda: renderer.render("note", "sms", ["en"], names))


def refused(tmp_path, source: str, **names) -> str:
    """The render error's message for `source`; fails the test if it renders or fails otherwise."""
    outcome, value = render(tmp_path, source, **names)
    assert outcome == "raised", f"rendered: {str(value)[:100]!r}"
    kind, message = value
    assert kind == RenderError.__name__, f"{kind}: {message[:300]}"
    assert message.startswith("templates/note/sms.en.j2:1: "), message
    return message


def test_a_power_tower_is_refused_with_a_render_error_not_computed(tmp_path):
    assert "a power of over 1,000 bits" in refused(tmp_path, "{{ 9 ** (9 ** 9) }}")
    assert "a power of over 1,000 bits" in refused(tmp_path, "{{ 9 ** n }}", n=9**9)


def test_nine_to_the_nine_to_the_nine_is_only_nine_to_the_81_in_jinja_and_renders(tmp_path):
    # Jinja's ** groups to the left: (9 ** 9) ** 9, a number of 78 digits, where Python's would be 9 ** 387420489.
    outcome, rendered = render(tmp_path, "{{ 9 ** 9 ** 9 }}")
    assert (outcome, rendered.text) == ("returned", str(9**81))


def test_a_string_multiplied_to_a_gigabyte_is_refused_with_a_render_error_not_built(tmp_path):
    assert "a repetition of over 100,000 characters" in refused(tmp_path, "{{ 'x' * 10**9 }}")
    assert "a repetition of over 100,000 characters" in refused(tmp_path, "{{ 'x' * n }}", n=10**9)
    assert "a repetition of over 100,000 characters" in refused(tmp_path, "{{ [0] * 10**9 }}")


def test_a_loop_over_a_range_of_a_billion_or_loops_in_loops_are_refused_with_a_render_error(tmp_path):
    assert "range() of 1,000,000,000 numbers" in refused(tmp_path, "{% for i in range(10**9) %}x{% endfor %}")
    nested = "{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}"
    assert "range() of 100,000 numbers; at most 10,000" in refused(tmp_path, nested)
    deeper = "{% for i in range(10**4) %}{% for j in range(10**4) %}{{ i }}{% endfor %}{% endfor %}"
    assert "over 20,000 steps" in refused(tmp_path, deeper)


@pytest.mark.parametrize(
    "source, reason",
    [
        pytest.param(
            "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "a `~` join of over 100,000",
            id="doubling-with-tilde",
        ),
        pytest.param(
            "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
            "a sum of over 100,000",
            id="doubling-with-plus",
        ),
        pytest.param("{{ 'x'|center(10**9) }}", "a width of over 100,000", id="center-filter"),
        pytest.param("{{ 'x'.ljust(10**9) }}", ".ljust() to over 100,000", id="ljust-method"),
        pytest.param("{{ '{:>1000000000}'.format(1) }}", "a format width or precision", id="format-width"),
        pytest.param("{{ '%1000000000d' % 1 }}", "a format width or precision", id="printf-width"),
        pytest.param("{{ '%.*f' % (10**9, 1.0) }}", "a format width or precision", id="printf-star"),
        pytest.param(
            "{% set s = 'x' * 10**5 %}{{ s.replace('x', s) }}", ".replace() of over 100,000", id="replace-method"
        ),
        pytest.param("{{ range(10**4)|join('x' * 10**5) }}", "a join of over 100,000", id="join-filter"),
        pytest.param(
            "{{ ('x' * 10**5).join(range(10**4)|map('string')) }}", ".join() of over 100,000", id="join-method"
        ),
        pytest.param("{{ [1]|batch(10**9, 'x')|list|length }}", "batches or slices of over", id="batch-fill"),
        pytest.param("{{ lipsum(10**6) }}", "lipsum() of over", id="lipsum"),
        pytest.param(
            "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
            "over 20,000 steps",
            id="macro-fan-out",
        ),
        pytest.param(
            "{% set s = 'x' * 10**5 %}{% set t %}{% for i in range(10**4) %}{{ s }}{% endfor %}{% endset %}{{ t }}",
            "characters",
            id="set-block-of-copies",
        ),
        pytest.param(
            "{% set ns = namespace(n=10) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
            "a product of numbers over 1,000 bits",
            id="squaring-in-a-loop",
        ),
    ],
)
def test_siblings_of_power_and_multiplication_are_refused_with_a_render_error(tmp_path, source, reason):
    assert reason in refused(tmp_path, source)


def test_a_recursive_loop_is_refused_when_the_template_is_read(tmp_path):
    message = refused(tmp_path, "{% for i in [1] recursive %}{{ loop([1, 1]) }}{% endfor %}")
    assert "recursive loops are not allowed" in message


def test_ordinary_templates_render_as_before(tmp_path):
    source = (
        "{{ 2 ** 64 }} {{ 'ab' * 3 }} {{ [1, 2] + [3] }} {{ '%05.1f' % 3.14159 }} {{ '{:>4}'.format('x') }} "
        "{{ 'a' ~ 1 ~ 'b' }} {% for i in range(3) %}{{ loop.index }}/{{ loop.length }} {% endfor %}"
        "{{ items|join(', ') }} {{ 'x'|center(5) }}|{% for k, v in data.items() %}{{ k }}={{ v }}{% endfor %}"
    )
    outcome, text = render(tmp_path, source, items=["a", "b"], data={"n": 1})
    assert (outcome, text.text) == (
        "returned",
        "18446744073709551616 ababab [1, 2, 3] 003.1    x a1b 1/3 2/3 3/3 a, b   x  |n=1",
    )


@pytest.mark.parametrize("source", ["'x' * 10**9 == ''", "9 ** (9 ** 9) > 0", "range(10**9) | length > 0"])
def test_a_condition_that_would_exhaust_memory_or_time_is_refused_when_compiled(source):
    outcome, value = bounded(lambda: compile_condition(source, where="triggers/main.yaml:3"))
    assert outcome == "raised" and value[0] == InvalidCondition.__name__, value
    assert ("over" in value[1] or "at most" in value[1]) and source in value[1]
