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


def check_storable(value: Any, field: str) -> None:
    """Refuse (InvalidInput naming the field, e.g. `data.items[2].name`) any string or key in a JSON value
    that cannot be stored, and nesting deeper than `MAX_DEPTH`."""
    found = unstorable(value)
    if found is not None:
        path, message = found
        raise InvalidInput(message, field=field + path)


def storable_json(value: Any) -> Any:
    """`value` if `check_storable` accepts it; else ValueError naming the inner field (for pydantic validators,
    which add the outer one)."""
    found = unstorable(value)
    if found is not None:
        path, message = found
        raise ValueError(f"{path.lstrip('.').strip()}: {message}" if path else message)
    return value


def unstorable(value: Any, path: str = "", depth: int = 0) -> tuple[str, str] | None:
    """(where, why) for the first string or key of a JSON value that cannot be stored, else None; `where`
    is relative, e.g. `.items[2].name` or ` (a key)`."""
    if depth > MAX_DEPTH:
        return path, f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        try:
            storable(value)
        except ValueError as error:
            return path, str(error)
    elif isinstance(value, dict):
        for key, item in value.items():
            found = unstorable(key, f"{path} (a key)", depth + 1) or unstorable(item, f"{path}.{key}", depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unstorable(item, f"{path}[{index}]", depth + 1)
            if found is not None:
                return found
    return None
