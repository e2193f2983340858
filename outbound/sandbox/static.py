"""The sandbox's limits checked on a parsed template or expression, before it runs. Pure.

An operation whose operands are written out (`{{ 'x' * 10**9 }}`, `range(10**9)`, `9 ** (9 ** 9)`) is
computed here under the same limits as at render time, so `outbound campaigns validate` refuses it
with its line; anything that depends on data is left to the render.
"""

from __future__ import annotations

from typing import Any

from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from outbound.sandbox.limits import TemplateLimit, check_binop, limited_globals


def static_limit_problems(tree: nodes.Node) -> list[tuple[int, str]]:
    """(line, what) for each operation of a parsed template or expression whose operands are written in
    it and that goes past a limit: `{{ 9 ** (9 ** 9) }}`, `{{ 'x' * 10**9 }}`, `range(10**9)`."""
    found: dict[tuple[int, str], None] = {}
    for node in [tree, *tree.find_all((nodes.BinExpr, nodes.Call))]:
        try:
            _static(node)
        except TemplateLimit as error:
            found[(node.lineno, str(error))] = None
        except (_NotStatic, ArithmeticError, TypeError, ValueError):
            continue
    return list(found)


class _NotStatic(Exception):
    """The value is not written in the template."""


_STATIC_OPERATORS = {nodes.Pow: "**", nodes.Mul: "*", nodes.Add: "+", nodes.Mod: "%"}


def _static(node: nodes.Node) -> Any:
    # The value of an expression written out in the template, computed under the limits.
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.Neg):
        return -_static(node.node)
    if isinstance(node, nodes.List | nodes.Tuple):
        values = [_static(item) for item in node.items]
        return values if isinstance(node, nodes.List) else tuple(values)
    if isinstance(node, nodes.BinExpr):
        operator = _STATIC_OPERATORS.get(type(node))
        if operator is None:
            raise _NotStatic
        left, right = _static(node.left), _static(node.right)
        check_binop(operator, left, right)
        return ImmutableSandboxedEnvironment.default_binop_table[operator](left, right)
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "range":
        if node.kwargs or node.dyn_args or node.dyn_kwargs:
            raise _NotStatic
        return limited_globals()["range"](*(_static(arg) for arg in node.args))
    raise _NotStatic
