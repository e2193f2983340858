"""Audience rules for batch campaigns: a safe expression compiled to SQL and run in the database.

A rule is an expression over a contact's event history and fields, for example::

    count("order_placed") >= 2 and count("order_placed", within="90d") == 0
    days_since("order_placed") >= 90 and contact.attributes.tier == "vip"
    total("order_placed", "value", within="365d") > 100000 and contact.locale in ["ko", "ko-KR"]

It is parsed with the Jinja expression parser (never `eval`) and translated node by node into
one SQL `WHERE` clause with correlated subqueries on `events`, so a rule over a large contact
table runs where the data is instead of loading every contact into Python.

Vocabulary:

* ``count(TYPE, within="90d")`` events of TYPE (in the last 90 days; default: ever);
* ``total(TYPE, FIELD, within=...)`` the sum of the numeric ``data.FIELD`` of those events (0 if none);
* ``days_since(TYPE)`` days since the latest such event, compared with a number; a contact with no
  such event never matches a comparison on it (SQL's unknown);
* ``contact.locale|jurisdiction|timezone|phone|email|external_id`` and ``contact.attributes.NAME``;
* comparisons (``== != < <= > >=``, ``in [..]``, ``not in [..]``), ``and``, ``or``, ``not``, and a bare
  operand as a test (``contact.phone``: present; ``count(...)``: at least one).

Only events that occurred up to the evaluation time count, so a dry run on a past clock sees
the history as it was then.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from jinja2 import TemplateSyntaxError, nodes
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import ColumnElement, Row, and_, false, func, not_, or_, select, true
from sqlalchemy.orm import Session

from outbound.clock import parse_duration
from outbound.db.models import Contact, Event

CONTACT_FIELDS = ("locale", "jurisdiction", "timezone", "phone", "email", "external_id")
FUNCTIONS = ("count", "total", "days_since")
DAYS_SINCE_LIMIT = 36_600  # a century of days: any further and the boundary leaves the calendar
_COMPARE = {"eq": "__eq__", "ne": "__ne__", "gt": "__gt__", "gteq": "__ge__", "lt": "__lt__", "lteq": "__le__"}
# days_since(T) OP n  ⇔  latest(T) FLIPPED (now - n days): more days since means an earlier event.
_DAYS_FLIP = {"gt": "__lt__", "gteq": "__le__", "lt": "__gt__", "lteq": "__ge__"}
_MIRROR = {"gt": "lt", "gteq": "lteq", "lt": "gt", "lteq": "gteq", "eq": "eq", "ne": "ne"}
_environment = ImmutableSandboxedEnvironment()


class InvalidAudience(ValueError):
    """An audience rule is not valid; the message says which part and why."""


@dataclass(frozen=True)
class _Scope:
    tenant_id: Any
    now: Any


@dataclass(frozen=True)
class _Days:
    """days_since(TYPE): only meaningful inside a comparison with a number."""

    latest: Any


class Audience:
    """A compiled audience rule; `where` gives its SQL clause, `contact_ids` runs it."""

    def __init__(self, source: str, tree: nodes.Expr) -> None:
        self.source, self._tree = source, tree

    def where(self, tenant_id: int, now: datetime) -> ColumnElement[bool]:
        """The rule as a SQL condition on `contacts`, for one tenant at time `now`."""
        return _test(self._tree, _Scope(tenant_id, now))

    def contact_ids(
        self, session: Session, tenant_id: int, now: datetime, *, only: list[int] | None = None
    ) -> list[int]:
        """The ids of the tenant's (not erased) contacts the rule matches at `now`, in id order."""
        query = (
            select(Contact.id)
            .where(Contact.tenant_id == tenant_id, Contact.erased_at.is_(None), self.where(tenant_id, now))
            .order_by(Contact.id)
        )
        if only is not None:
            query = query.where(Contact.id.in_(only))
        return list(session.scalars(query))

    def contact_chunks(
        self, session: Session, tenant_id: int, now: datetime, size: int, *, columns: tuple = (Contact.id,)
    ) -> Iterator[Sequence[Row[Any]]]:
        """The matching contacts' `columns` (the first being `Contact.id`) in id order, `size` rows at a time.

        Each chunk is its own query that resumes after the last id of the one before (keyset paging),
        so a rule matching millions of contacts is never held in memory, and no cursor stays open
        while the caller writes what it does with the chunk. The rows are plain column rows, read
        through the session's connection (without the ORM's result processing, a third of the time);
        pending ORM changes are flushed first, as a session query would.
        """
        where = self.where(tenant_id, now)
        session.flush()
        connection = session.connection()
        after = None
        while True:
            query = select(*columns).where(Contact.tenant_id == tenant_id, Contact.erased_at.is_(None), where)
            if after is not None:
                query = query.where(Contact.id > after)
            rows = connection.execute(query.order_by(Contact.id).limit(size)).all()
            if rows:
                yield rows
            if len(rows) < size:
                return
            after = rows[-1].id

    def __repr__(self) -> str:
        return f"Audience({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Audience) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)


def compile_audience(source: Any) -> Audience:
    """Parse and check an audience rule; InvalidAudience says what is wrong."""
    if not isinstance(source, str) or not source.strip():
        raise InvalidAudience('an audience rule is a non-empty expression, e.g. count("order_placed") >= 2')
    try:
        parser = Parser(_environment, source, state="variable")
        tree = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError("unexpected text after the expression", parser.stream.current.lineno)
    except TemplateSyntaxError as error:
        raise InvalidAudience(f"syntax error in {source!r}: {error.message}") from None
    audience = Audience(source, tree)
    # Translating once with placeholder values checks every node now, at load time.
    audience.where(0, datetime(2000, 1, 1, tzinfo=UTC))
    return audience


def _test(node: nodes.Node, scope: _Scope) -> ColumnElement[bool]:
    if isinstance(node, nodes.And):
        return and_(_test(node.left, scope), _test(node.right, scope))
    if isinstance(node, nodes.Or):
        return or_(_test(node.left, scope), _test(node.right, scope))
    if isinstance(node, nodes.Not):
        return not_(_test(node.node, scope))
    if isinstance(node, nodes.Compare):
        if len(node.ops) != 1:
            raise InvalidAudience("compare two things at a time (write a < b and b < c)")
        return _compare(node.expr, node.ops[0].op, node.ops[0].expr, scope)
    if isinstance(node, nodes.Const) and isinstance(node.value, bool):
        return true() if node.value else false()
    value = _operand(node, scope)
    if isinstance(value, _Days):
        return value.latest.is_not(None)
    if isinstance(value, (int, float, str)) or value is None:
        raise InvalidAudience(f"a constant ({value!r}) is not a test")
    if getattr(value, "_audience_kind", None) == "number":
        return value > 0
    return and_(value.is_not(None), value != "")


def _compare(left_node: nodes.Node, op: str, right_node: nodes.Node, scope: _Scope) -> ColumnElement[bool]:
    if op in ("in", "notin"):
        left = _operand(left_node, scope)
        if not isinstance(right_node, (nodes.List, nodes.Tuple)) or not all(
            isinstance(item, nodes.Const) for item in right_node.items
        ):
            raise InvalidAudience('`in` needs a list of constants, e.g. contact.locale in ["ko", "en"]')
        values = [cast(nodes.Const, item).value for item in right_node.items]
        left = _typed(left, values[0] if values else "")
        return left.in_(values) if op == "in" else left.not_in(values)
    left, right = _operand(left_node, scope), _operand(right_node, scope)
    if _is_constant(left) and not _is_constant(right):
        left, right, op = right, left, _MIRROR[op]
    if _is_constant(left):
        raise InvalidAudience("a comparison needs a count(), total(), days_since() or contact field on one side")
    if isinstance(left, _Days):
        if op not in _DAYS_FLIP or isinstance(right, bool) or not isinstance(right, (int, float)):
            raise InvalidAudience("compare days_since() with a number using <, <=, > or >=")
        if not 0 <= right <= DAYS_SINCE_LIMIT:  # also refuses NaN
            raise InvalidAudience(f"days_since() is compared with a number of days from 0 to {DAYS_SINCE_LIMIT}")
        boundary = scope.now - timedelta(days=right)
        return getattr(left.latest, _DAYS_FLIP[op])(boundary)
    if isinstance(right, _Days):
        raise InvalidAudience("compare days_since() with a number")
    if not _is_constant(right):
        return getattr(left, _COMPARE[op])(right)
    if right is None:
        if op not in ("eq", "ne"):
            raise InvalidAudience("only == and != compare with none")
        return left.is_(None) if op == "eq" else left.is_not(None)
    return getattr(_typed(left, right), _COMPARE[op])(right)


def _is_constant(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _typed(column: Any, example: Any) -> Any:
    # A JSON attribute is read as the type of the constant it is compared with.
    if getattr(column, "_audience_kind", None) != "json":
        return column
    if isinstance(example, bool):
        return column.as_boolean()
    if isinstance(example, (int, float)):
        return column.as_float()
    return column.as_string()


def _operand(node: nodes.Node, scope: _Scope) -> Any:
    if isinstance(node, nodes.Const):
        if not (node.value is None or isinstance(node.value, (bool, int, float, str))):
            raise InvalidAudience(f"unsupported constant {node.value!r}")
        return node.value
    if isinstance(node, nodes.Neg) and isinstance(node.node, nodes.Const) and isinstance(node.node.value, (int, float)):
        return -node.node.value
    if isinstance(node, nodes.Name) and node.name in ("none", "None"):
        return None
    if isinstance(node, nodes.Getattr):
        return _contact_field(node)
    if isinstance(node, nodes.Call):
        return _call(node, scope)
    if isinstance(node, nodes.Name):
        raise InvalidAudience(f"unknown name {node.name!r} (use contact.…, {', '.join(f + '()' for f in FUNCTIONS)})")
    raise InvalidAudience(f"unsupported expression: {type(node).__name__}")


def _contact_field(node: nodes.Getattr) -> Any:
    if isinstance(node.node, nodes.Name) and node.node.name == "contact":
        if node.attr not in CONTACT_FIELDS:
            raise InvalidAudience(
                f"unknown contact field {node.attr!r} (known: {', '.join(CONTACT_FIELDS)}, attributes.NAME)"
            )
        return getattr(Contact, node.attr)
    parent = node.node
    if (
        isinstance(parent, nodes.Getattr)
        and parent.attr == "attributes"
        and isinstance(parent.node, nodes.Name)
        and parent.node.name == "contact"
    ):
        if node.attr.startswith("_"):
            raise InvalidAudience(f"access to {node.attr!r} is not allowed")
        column = Contact.attributes[node.attr]
        column._audience_kind = "json"  # type: ignore[attr-defined]  # a mark read back by _typed
        return column
    raise InvalidAudience("fields are contact.NAME or contact.attributes.NAME")


def _call(node: nodes.Call, scope: _Scope) -> Any:
    name = node.node.name if isinstance(node.node, nodes.Name) else None
    if name not in FUNCTIONS:
        raise InvalidAudience(f"unknown function {name!r} (known: {', '.join(FUNCTIONS)})")
    if node.dyn_args is not None or node.dyn_kwargs is not None:
        raise InvalidAudience(f"{name}() takes plain arguments")
    args = [_string(arg, name) for arg in node.args]
    kwargs = {keyword.key: _string(keyword.value, name) for keyword in node.kwargs}
    expected = 2 if name == "total" else 1
    if len(args) != expected:
        usage = 'total("order_placed", "value")' if name == "total" else f'{name}("order_placed")'
        raise InvalidAudience(f"{name}() takes {expected} argument(s), e.g. {usage}")
    allowed = set() if name == "days_since" else {"within"}
    unknown = set(kwargs) - allowed
    if unknown:
        raise InvalidAudience(f"{name}() has no argument {sorted(unknown)[0]!r}")
    conditions = [
        Event.tenant_id == scope.tenant_id,
        Event.contact_id == Contact.id,
        Event.type == args[0],
        Event.occurred_at <= scope.now,
    ]
    if "within" in kwargs:
        try:
            conditions.append(Event.occurred_at > scope.now - parse_duration(kwargs["within"]))
        except ValueError as error:
            raise InvalidAudience(f"{name}(): within: {error}") from None
    if name == "days_since":
        return _Days(select(func.max(Event.occurred_at)).where(*conditions).correlate(Contact).scalar_subquery())
    if name == "count":
        column = select(func.count(Event.id)).where(*conditions).correlate(Contact).scalar_subquery()
    else:
        column = (
            select(func.coalesce(func.sum(Event.data[args[1]].as_float()), 0.0))
            .where(*conditions)
            .correlate(Contact)
            .scalar_subquery()
        )
    column._audience_kind = "number"  # type: ignore[attr-defined]  # a mark read back by _typed
    return column


def _string(node: nodes.Node, function: str) -> str:
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    raise InvalidAudience(f'{function}() takes quoted text arguments, e.g. {function}("order_placed")')
