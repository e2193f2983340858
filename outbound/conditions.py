"""Condition expressions (`when`, enrollment and exit keys), evaluated in a sandbox, never with `eval`.

A condition is a Jinja expression such as ``event.data.value >= 10000 and contact.phone``.
Dicts are read with dot syntax (``event.data.cart_id``) or subscripts (``event.data['cart-id']``).

Missing values: a name, key or attribute that does not exist is *undefined*; it is falsy and
may be chained (``event.data.missing.deeper`` is still undefined). `Condition.test` treats a
comparison or arithmetic that cannot be made (undefined or None compared with a number, a string
compared with a number) like SQL's unknown: the whole condition does not hold, so an event that
lacks a field simply does not match, and event processing never crashes on it.
`Condition.evaluate` returns the value itself (undefined becomes None) and raises
`InvalidCondition` where `test` would answer False.

Sandbox: attributes and keys starting with an underscore are refused when the expression is
compiled (no ``__class__`` walks), the immutable sandbox refuses unsafe and mutating calls at run
time, and names other than the ones a definition may see are refused at compile time so a typo
(``evnt.data.x``) is an error instead of a condition that silently never holds. The sandbox's
limits on size (`outbound.sandbox`) hold here too: an operation past them whose operands are written
in the expression (``'x' * 10**9``) is refused at compile time, any other when it is evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar, overload

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.parser import Parser

from outbound.errors import InvalidInput
from outbound.sandbox import Sandbox
from outbound.sandbox.static import static_limit_problems

# The names that trigger filters, step conditions and enrollment/exit keys see.
DEFINITION_NAMES = frozenset({"event", "contact"})

# Failures that mean "these values cannot be compared or computed", not "the definition is wrong".
_UNKNOWN = (UndefinedError, TypeError, ValueError, ArithmeticError)

_environment = Sandbox(undefined=ChainableUndefined)

_N = TypeVar("_N", bound=nodes.Node)
_M = TypeVar("_M", bound=nodes.Node)


class InvalidCondition(InvalidInput, ValueError):
    """A condition expression is invalid, or could not be evaluated."""

    def __init__(self, message: str, where: str = "<expr>", line: int | None = None) -> None:
        self.where, self.line, self.detail = where, line, message
        super().__init__(message, field=where)


class Condition:
    """A compiled condition expression; build one with `compile_condition`."""

    def __init__(self, source: str, where: str, function: TemplateExpression) -> None:
        self.source, self.where, self._function = source, where, function

    def evaluate(self, **names: Any) -> Any:
        """The expression's value for these names; undefined becomes None.

        Raises InvalidCondition when the values cannot be compared or computed, or the sandbox
        refuses an operation.
        """
        try:
            return self._function(**names)
        except SecurityError as error:
            raise InvalidCondition(f"refused by the sandbox: {error} (in {self.source!r})", self.where) from error
        except _UNKNOWN as error:
            raise InvalidCondition(f"cannot evaluate {self.source!r}: {error}", self.where) from error

    def test(self, **names: Any) -> bool:
        """Whether the condition holds; a comparison with a missing or incomparable value does not hold.

        Sandbox refusals still raise InvalidCondition: they are mistakes in the definition.
        """
        try:
            return bool(self._function(**names))
        except SecurityError as error:
            raise InvalidCondition(f"refused by the sandbox: {error} (in {self.source!r})", self.where) from error
        except _UNKNOWN:
            return False

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)


def compile_condition(
    source: str, *, where: str = "<expr>", names: Iterable[str] | None = DEFINITION_NAMES
) -> Condition:
    """Compile `source` into a Condition, or raise InvalidCondition saying what is wrong and where.

    `names` are the top-level names the expression may use (None: any name).
    """
    if not isinstance(source, str):
        raise InvalidCondition(f"a condition must be a string expression, not {type(source).__name__}", where)
    if not source.strip():
        raise InvalidCondition("a condition must not be empty", where)
    try:
        parser = Parser(_environment, source, state="variable")
        expression = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError("unexpected text after the expression", parser.stream.current.lineno)
    except TemplateSyntaxError as error:
        raise InvalidCondition(f"syntax error in {source!r}: {error.message}", where, error.lineno) from None
    _refuse_private_access(expression, source, where)
    for line, problem in static_limit_problems(expression):
        raise InvalidCondition(f"{problem} (in {source!r})", where, line)
    if names is not None:
        allowed = set(names)
        unknown = sorted({node.name for node in _walk(expression, nodes.Name)} - allowed)
        if unknown:
            raise InvalidCondition(
                f"unknown name {unknown[0]!r} in {source!r} (known: {', '.join(sorted(allowed))})", where
            )
    function = _environment.compile_expression(source, undefined_to_none=True)
    return Condition(source, where, function)


def _refuse_private_access(expression: nodes.Node, source: str, where: str) -> None:
    # The sandbox would refuse these at run time; refusing them at load time reports the file and line.
    for node in _walk(expression, (nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(name, str) and name.startswith("_"):
            raise InvalidCondition(f"access to {name!r} is not allowed (in {source!r})", where)


@overload
def _walk(expression: nodes.Node, kind: type[_N]) -> Iterator[_N]: ...
@overload
def _walk(expression: nodes.Node, kind: tuple[type[_N], type[_M]]) -> Iterator[_N | _M]: ...
def _walk(expression: nodes.Node, kind: type[nodes.Node] | tuple[type[nodes.Node], ...]) -> Iterator[nodes.Node]:
    # find_all() skips the node it starts from, which may itself be the one to check.
    if isinstance(expression, kind):
        yield expression
    yield from expression.find_all(kind)
