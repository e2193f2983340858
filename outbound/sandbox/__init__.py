"""The Jinja sandbox that templates and condition expressions run in, answering as Jinja's own does, faster,
and within limits of size and work (`outbound.sandbox.limits`).

Everything a template or an expression reads is a plain dict (the views of `outbound.context`), and
Jinja's sandbox reads `name.key` by trying an attribute first: for a dict that is an exception on
every read, then the sandbox's safety checks on every method looked up. Here a dict's key is read
directly when no dict attribute has its name, and the dict methods the immutable sandbox always
allows (`.get`, `.items`, …) are returned without the checks; everything else goes through Jinja.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from functools import update_wrapper
from typing import Any

from jinja2 import nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, modifies_known_mutable

from outbound.sandbox import limits

# Names of a dict's attributes: Jinja looks attributes up first, so `d.items` stays the method.
_DICT_ATTRIBUTES = frozenset(dir(dict))
# Of those, the ones the immutable sandbox lets an expression read: public and not mutating.
_DICT_READS = frozenset(
    name for name in _DICT_ATTRIBUTES if not name.startswith("_") and not modifies_known_mutable({}, name)
)


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the same answers for dict reads, without their exceptions and checks,
    and the limits of `outbound.sandbox.limits` (`TemplateLimit` when one is passed)."""

    intercepted_binops = limits.CHECKED_OPERATORS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("finalize", limits.printed)  # every value a template prints passes here
        super().__init__(*args, **kwargs)
        self.globals.update(limits.limited_globals())
        self.filters.update(limits.limited_filters(self.filters))

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            if attribute not in _DICT_ATTRIBUTES:
                try:
                    return obj[attribute]
                except KeyError:
                    return self.undefined(obj=obj, name=attribute)
            if attribute in _DICT_READS:
                return getattr(obj, attribute)
        return super().getattr(obj, attribute)

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        # One plain dict per template instead of Jinja's ChainMap over the environment's globals: each
        # render copies the globals into its context, and copying a ChainMap costs more than the render
        # of a short template. The environment's globals are set once, before any template is loaded.
        return {**self.globals, **(d or {})}

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        limits.check_binop(operator, left, right)
        return limits.made(self.binop_table[operator](left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        limits.step()
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str | bytes):
            args = limits.check_str_method(owner, getattr(obj, "__name__", ""), args, kwargs)
        return limits.made(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        return update_wrapper(limits.checked_format(value.__self__, wrapped), value)

    # Environment.concat is "".join: each render's text is joined here, under its budget.
    concat = staticmethod(limits.render_text)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return limits.guarded(super()._parse(source, name, filename), name, filename)
