"""The Jinja sandbox that templates and condition expressions run in, answering as Jinja's own does, faster.

Everything a template or an expression reads is a plain dict (the views of `outbound.context`), and
Jinja's sandbox reads `name.key` by trying an attribute first: for a dict that is an exception on
every read, then the sandbox's safety checks on every method looked up. Here a dict's key is read
directly when no dict attribute has its name, and the dict methods the immutable sandbox always
allows (`.get`, `.items`, …) are returned without the checks; everything else goes through Jinja.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment, modifies_known_mutable

# Names of a dict's attributes: Jinja looks attributes up first, so `d.items` stays the method.
_DICT_ATTRIBUTES = frozenset(dir(dict))
# Of those, the ones the immutable sandbox lets an expression read: public and not mutating.
_DICT_READS = frozenset(
    name for name in _DICT_ATTRIBUTES if not name.startswith("_") and not modifies_known_mutable({}, name)
)


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the same answers for dict reads, without their exceptions and checks."""

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
