"""What text the engine stores: no NUL character (PostgreSQL's text refuses it; a JSON value holding one
breaks every later query over it) and no lone surrogate (it cannot be encoded as UTF-8). Every input,
from the API, an import, a webhook or a form, is checked here and refused with the field it came in."""

from __future__ import annotations

import re
from typing import Any

from pydantic import AfterValidator

from outbound.errors import InvalidInput

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_DEPTH = 32  # nesting of a JSON value (event data, contact attributes) the engine keeps


def storable(value: str) -> str:
    """`value`, if it can be stored; ValueError saying why not (for pydantic validators)."""
    found = _UNSTORABLE.search(value)
    if found is not None:
        what = "NUL characters" if found.group() == "\x00" else "unpaired surrogate characters"
        raise ValueError(f"must not contain {what} (at character {found.start() + 1})")
    return value


Storable = AfterValidator(storable)


def without_unstorable(value: str) -> str:
    """`value` without the characters `storable` refuses: for text a provider signed (a webhook), which is
    kept rather than refused, since refusing it would lose the report (an opt-out among them)."""
    return _UNSTORABLE.sub("", value)


def check_storable(value: Any, field: str, depth: int = 0) -> None:
    """Refuse (InvalidInput naming the field, e.g. `data.items[2].name`) any string or key in a JSON value
    that cannot be stored, and nesting deeper than `MAX_DEPTH`."""
    if depth > MAX_DEPTH:
        raise InvalidInput(f"nested deeper than {MAX_DEPTH} levels", field=field)
    if isinstance(value, str):
        try:
            storable(value)
        except ValueError as error:
            raise InvalidInput(str(error), field=field) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, f"{field} (a key)", depth + 1)
            check_storable(item, f"{field}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_storable(item, f"{field}[{index}]", depth + 1)
