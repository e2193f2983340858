"""Limits of size and work for what runs in the template sandbox (`outbound.sandbox`). Pure.

Jinja's sandbox keeps a template from reaching Python's internals, not from asking for more memory or
time than a machine has (`{{ 9 ** (9 ** 9) }}`, `{{ 'x' * 10**9 }}`, loops inside loops). A message
needs none of that, so the sandbox refuses, with `TemplateLimit`, before the work is done:

- a number made by `**`, `*` or `+` of over `MAX_INT_BITS` bits (about 300 digits);
- a string or list made by `*`, `+`, `~`, `%`, `.format`, padding, joining, replacing, wrapping or
  batching (methods and filters) of over `MAX_LENGTH` characters or items;
- `range` of over `MAX_RANGE` numbers, `lipsum` of over a tenth of `MAX_LENGTH` words; `recursive`
  loops, when the template is read;
- a render of over `MAX_STEPS` steps (loop turns and calls, macros included), or one that makes over
  `MAX_MADE` characters in all (values made as above, values printed, text joined), or whose text
  is over `MAX_OUTPUT` characters.

A render's budget (steps, characters made) is held by its outermost join of text (`render_text`):
a template, or each block of an email, has its own, and its macros and `set` blocks count against
it. A condition expression has no loops and no budget; its operations keep the per-value limits.

Operations whose operands are written in a template or expression are checked when it is read too
(`outbound.sandbox.static`): `outbound campaigns validate` refuses them with their line. The checked
operators are never folded by Jinja's compiler, so a template cannot exhaust the machine while it
loads either. Jinja's `**` groups to the left: `9 ** 9 ** 9` is (9 ** 9) ** 9, 78 digits.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from functools import update_wrapper
from typing import Any

from jinja2 import nodes, pass_eval_context
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.nodes import EvalContext
from jinja2.runtime import markup_join, str_join
from jinja2.utils import generate_lorem_ipsum
from jinja2.visitor import NodeTransformer
from markupsafe import soft_str

MAX_INT_BITS = 1_000
MAX_LENGTH = 100_000
MAX_RANGE = 10_000
MAX_STEPS = 20_000
MAX_OUTPUT = 1_000_000
MAX_MADE = 10_000_000

# The operators the sandbox intercepts (Jinja then never folds them at compile time).
CHECKED_OPERATORS = frozenset({"**", "*", "+", "%"})
# The filters the parser puts around every loop's iterable and every `~` (not names a template can write).
_LOOP, _CONCAT = "(loop)", "(concat)"
_PRINTF_SIZES = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_STR_PADDING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


class TemplateLimit(SecurityError):
    """A template asked for more than a message can need (a number, a string, a loop); nothing was made."""


class _Budget:
    """What one render may still do."""

    __slots__ = ("steps", "made")

    def __init__(self) -> None:
        self.steps = 0
        self.made = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateLimit(f"the template takes over {MAX_STEPS:,} steps (loop turns and calls)")

    def make(self, size: int) -> None:
        self.made += size
        if self.made > MAX_MADE:
            raise TemplateLimit(f"the template makes over {MAX_MADE:,} characters in all")


_budget: ContextVar[_Budget | None] = ContextVar("outbound_template_budget", default=None)


def step() -> None:
    """Count a step (a call) of the render under way, if any."""
    budget = _budget.get()
    if budget is not None:
        budget.step()


def render_text(parts: Iterable[str]) -> str:
    """Join a render's text (a whole template, a block, a macro's or a `set` block's output) within the
    limits; the outermost join of a render holds its budget."""
    budget = _budget.get()
    token = _budget.set(_Budget()) if budget is None else None
    try:
        # The parts are references (the same literal text a loop yields again and again takes no room);
        # only their join would be as long as they are.
        kept = list(parts)
        total = sum(map(len, kept))
        if total > MAX_OUTPUT:
            raise TemplateLimit(f"the template's text is over {MAX_OUTPUT:,} characters")
        _make(total)
        return "".join(kept)
    finally:
        if token is not None:
            _budget.reset(token)


def checked_format(text: str, wrapped: Callable[..., str]) -> Callable[..., str]:
    """`text.format` (Jinja's sandboxed `wrapped`), refusing widths and precisions past the limits."""

    def checked(*args: Any, **kwargs: Any) -> str:
        _check_format(text)
        return wrapped(*args, **kwargs)

    return checked


def limited_globals() -> dict[str, Any]:
    """What replaces Jinja's own `range` and `lipsum`."""
    return {"range": _range, "lipsum": _lipsum}


def limited_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """What replaces, or adds to, Jinja's filters `filters`: the checked ones, and the loop and `~` guards."""
    limited = {name: _checked_filter(filters[name], check) for name, check in _FILTER_CHECKS.items()}
    limited["join"] = _checked_join(filters["join"])
    return {**limited, _LOOP: _loop, _CONCAT: _concat}


def guarded(tree: nodes.Template, name: str | None, filename: str | None) -> nodes.Template:
    """A parsed template with every loop's iterable counted and every `~` measured; TemplateSyntaxError
    for a `recursive` loop."""
    result: nodes.Template = _Guard(name, filename).visit(tree)
    return result


# -- checks ------------------------------------------------------------------------------------


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `left operator right` (one of CHECKED_OPERATORS) if what it makes would pass a limit."""
    if operator == "**":
        if (
            _is_int(left)
            and _is_int(right)
            and right > 0
            and abs(left) > 1
            and right * math.log2(abs(left)) > MAX_INT_BITS
        ):
            raise TemplateLimit(f"a power of over {MAX_INT_BITS:,} bits")
    elif operator == "*":
        if _is_int(left) and _is_int(right):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
                raise TemplateLimit(f"a product of numbers over {MAX_INT_BITS:,} bits")
        elif _is_int(right) or _is_int(left):
            sequence, times = (left, right) if _is_int(right) else (right, left)
            if isinstance(sequence, str | bytes | list | tuple) and times > 0:
                _check_size(_size(sequence) * times, "a repetition")
    elif operator == "+":
        if _is_int(left) and _is_int(right):
            if max(left.bit_length(), right.bit_length()) > MAX_INT_BITS:
                raise TemplateLimit(f"a sum of numbers over {MAX_INT_BITS:,} bits")
        elif isinstance(left, str | bytes | list | tuple) and isinstance(right, str | bytes | list | tuple):
            _check_size(_size(left) + _size(right), "a sum")
    elif operator == "%" and isinstance(left, str):
        _check_printf(left, right)


def _check_size(size: int, what: str) -> None:
    if size > MAX_LENGTH:
        raise TemplateLimit(f"{what} of over {MAX_LENGTH:,} characters or items")


def _check_printf(text: str, values: Any) -> None:
    stars = False
    for match in _PRINTF_SIZES.finditer(text):
        for size in match.groups():
            if size == "*":
                stars = True
            elif size is not None and int(size) > MAX_LENGTH:
                raise TemplateLimit(f"a format width or precision of over {MAX_LENGTH:,}")
    if stars:
        numbers = values if isinstance(values, tuple) else (values,)
        if any(_is_int(n) and abs(n) > MAX_LENGTH for n in numbers):
            raise TemplateLimit(f"a format width or precision of over {MAX_LENGTH:,}")


def _check_format(text: str) -> None:
    for _, field, spec, _ in string.Formatter().parse(text):
        if field is None or not spec:
            continue
        if "{" in spec:
            raise TemplateLimit("a format width or precision must be written out, not taken from a value")
        if any(int(size) > MAX_LENGTH for size in re.findall(r"\d+", spec)):
            raise TemplateLimit(f"a format width or precision of over {MAX_LENGTH:,}")


def check_str_method(owner: str | bytes, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """The arguments to call the method with (what `.join` joins, read once), if the call stays in the limits."""
    numbers = [n for n in (*args, *kwargs.values()) if _is_int(n)]
    if name in _STR_PADDING and any(n > MAX_LENGTH for n in numbers):
        raise TemplateLimit(f".{name}() to over {MAX_LENGTH:,} characters")
    if name == "expandtabs" and numbers:
        tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
        _check_size(len(owner) + tabs * numbers[0], ".expandtabs()")
    elif name == "replace" and len(args) >= 2:
        _check_size(_replaced_size(owner, args[0], args[1], args[2] if len(args) > 2 else None), ".replace()")
    elif name == "join" and len(args) == 1:
        items = args[0] if isinstance(args[0], list | tuple | str | bytes) else list(args[0])
        _check_size(len(owner) * max(len(items) - 1, 0) + _size(items), ".join()")
        return (items,)
    return args


def _replaced_size(text: Any, old: Any, new: Any, count: Any) -> int:
    text, old, new = soft_str(text), soft_str(old), soft_str(new)
    times = text.count(old) if old else len(text) + 1
    if _is_int(count) and count >= 0:
        times = min(times, count)
    return len(text) + times * max(len(new) - len(old), 0)


def _size(value: Any, limit: int = MAX_LENGTH) -> int:
    """Characters and items in a value, nested ones included, counted until past `limit`."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if not isinstance(value, list | tuple):
        return 0
    total = len(value)
    for item in value:
        if total > limit:
            break
        total += _size(item, limit - total)
    return total


def _is_int(value: Any) -> bool:
    return isinstance(value, int)


def made(value: Any) -> Any:
    """`value`, counted against the render's budget of characters made."""
    budget = _budget.get()
    if budget is not None and isinstance(value, str | bytes | list | tuple):
        budget.make(len(value))
    return value


def _make(size: int) -> None:
    budget = _budget.get()
    if budget is not None:
        budget.make(size)


def printed(value: Any) -> Any:
    """Jinja's `finalize`: every value a template prints passes here before it becomes text."""
    kind = type(value)
    if kind is int or kind is float:  # nearly always a number or a str: both on the fast path
        return value
    budget = _budget.get()
    if budget is None:
        return value
    if kind is str:
        budget.made += len(value)
        if budget.made > MAX_MADE:
            budget.make(0)
    elif isinstance(value, str | list | tuple | dict):
        size = _size(value, MAX_OUTPUT)
        if size > MAX_OUTPUT:
            raise TemplateLimit(f"a printed value of over {MAX_OUTPUT:,} characters or items")
        budget.make(size)
    return value


# -- what the sandbox gives templates instead of Jinja's own ---------------------------------------


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateLimit(f"range() of {len(numbers):,} numbers; at most {MAX_RANGE:,}")
    return numbers


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002 - Jinja's names
    if n * max > MAX_LENGTH // 10:
        raise TemplateLimit(f"lipsum() of over {MAX_LENGTH // 10:,} words")
    return generate_lorem_ipsum(n, html, min, max)


def _loop(iterable: Iterable[Any]) -> Iterator[Any]:
    budget = _budget.get()
    for item in iterable:
        if budget is not None:
            budget.step()
        yield item


@pass_eval_context
def _concat(eval_ctx: EvalContext, parts: list[Any]) -> str:
    texts = [soft_str(part) for part in parts] if eval_ctx.autoescape else [str(part) for part in parts]
    size = sum(map(len, texts))
    _check_size(size, "a `~` join")
    _make(size)
    return markup_join(texts) if eval_ctx.autoescape else str_join(texts)


def _checked_filter(original: Callable[..., Any], check: Callable[..., None]) -> Callable[..., Any]:
    # Jinja passes a filter marked pass_context, pass_eval_context or pass_environment that first.
    passes = getattr(original, "jinja_pass_arg", None) is not None

    def checked(*args: Any, **kwargs: Any) -> Any:
        check(*(args[1:] if passes else args), **kwargs)
        return made(original(*args, **kwargs))

    return update_wrapper(checked, original)


def _check_width(value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    if _is_int(width) and width > MAX_LENGTH:
        raise TemplateLimit(f"a width of over {MAX_LENGTH:,}")


def _check_indent(s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    text = soft_str(s)
    by = width if _is_int(width) else len(soft_str(width))
    _check_size(len(text) + (text.count("\n") + 1) * by, "an indented text")


def _check_format_filter(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_printf(soft_str(value), kwargs or args)


def _checked_join(original: Callable[..., Any]) -> Callable[..., Any]:
    # What is joined is read once, measured, then joined: it may be a generator (`|map`, `|select`).
    @pass_eval_context
    def join(eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> Any:
        items = value if isinstance(value, list | tuple | str) else list(value)
        _check_size(len(soft_str(d)) * max(len(items) - 1, 0) + _size(items), "a join")
        return made(original(eval_ctx, items, d, attribute))

    return join


def _check_replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    _check_size(_replaced_size(s, old, new, count), "a replace")


def _check_wordwrap(s: Any, width: Any = 79, _: Any = True, wrapstring: Any = None, *__: Any, **kwargs: Any) -> None:
    text = soft_str(s)
    wrap = kwargs.get("wrapstring", wrapstring)
    lines = len(text) // max(width if _is_int(width) else 1, 1) + text.count("\n") + 1
    _check_size(len(text) + lines * len(soft_str(wrap or "\n")), "a wrapped text")


def _check_count(value: Any, count: Any = 1, *_: Any, **__: Any) -> None:
    if _is_int(count) and count > MAX_LENGTH:
        raise TemplateLimit(f"batches or slices of over {MAX_LENGTH:,}")


# Filters whose result can be far larger than what they are given, or take as long as a number says.
_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _check_width,
    "indent": _check_indent,
    "format": _check_format_filter,
    "replace": _check_replace,
    "wordwrap": _check_wordwrap,
    "batch": _check_count,
    "slice": _check_count,
}


# -- reading a template ------------------------------------------------------------------------


class _Guard(NodeTransformer):
    """Puts every loop's iterable through the step count and every `~` through the size check."""

    def __init__(self, name: str | None, filename: str | None) -> None:
        self.name, self.filename = name, filename

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)  # in place: a loop's children are nodes, never removed
        if node.recursive:
            raise TemplateSyntaxError(
                "recursive loops are not allowed in templates", node.lineno, self.name, self.filename
            )
        node.iter = nodes.Filter(node.iter, _LOOP, [], [], None, None, lineno=node.iter.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        parts = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(parts, _CONCAT, [], [], None, None, lineno=node.lineno)
