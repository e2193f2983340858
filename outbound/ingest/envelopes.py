"""The event envelope: its shape (DESIGN.md, "Contracts"), its parsing, and the reports ingest gives back.

Standard types whose `data` is checked: `churn_risk_scored` (`data.score`, a number from 0 to 1)
and `consent_changed` (`data` is a consent item). Every other type, known or not, is stored with
its `data` as given.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from outbound.db.models import Event
from outbound.errors import InvalidInput
from outbound.ingest.contacts import AwareUTC, ConsentIn, ContactIn, JsonObject, bounded, validation_problems
from outbound.ingest.text import Storable

STANDARD_TYPES = (
    "order_placed",
    "order_shipped",
    "shipping_delayed",
    "order_delivered",
    "cart_abandoned",
    "churn_risk_scored",
    "lead_created",
    "consent_changed",
)


EventType = Annotated[str, bounded(64, 1), Storable, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]+$")]
EventId = Annotated[str, bounded(200, 1), Storable]


class EventEnvelope(BaseModel):
    """One event from an order system: what happened, when, to whom, with what data."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    id: EventId
    type: EventType
    occurred_at: AwareUTC
    contact: ContactIn
    data: JsonObject = {}


class InvalidEnvelope(InvalidInput):
    """An event envelope is invalid; `problems` lists every (field, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        first_field, first_message = problems[0]
        rest = "".join(f"; {f}: {m}" for f, m in problems[1:])
        super().__init__(first_message + rest, field=first_field)


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one event: newly `stored`, or a `duplicate` of one stored before."""

    status: Literal["stored", "duplicate"]
    event: Event


@dataclass(frozen=True)
class ItemError:
    """Why one item of a batch was not stored.

    `index` is the item's position in the batch, or its line number when
    `unit` is "line" (file imports). `internal` marks failures that are not
    the sender's fault, worth retrying. `str()` gives 'line 3: field: message'.
    """

    index: int
    field: str | None
    message: str
    internal: bool = False
    unit: str = "item"

    def __str__(self) -> str:
        return f"{self.unit} {self.index}: {self.field + ': ' if self.field else ''}{self.message}"


@dataclass
class IngestReport:
    """What ingesting some events did: events stored, duplicates skipped, errors per item."""

    stored: int = 0
    duplicates: int = 0
    errors: list[ItemError] = field(default_factory=list)

    def messages(self) -> list[str]:
        """The errors as text, e.g. 'line 4: occurred_at: …' for a file import."""
        return [str(error) for error in self.errors]

    def _count_stored(self, indices: Sequence[int]) -> None:
        self.stored += len(indices)

    def _count_duplicates(self, indices: Sequence[int]) -> None:
        self.duplicates += len(indices)


class RequestsReport(IngestReport):
    """The report of several requests' items numbered end to end, split into one report per request."""

    def __init__(self, sizes: Sequence[int]) -> None:
        super().__init__()
        self.starts = list(accumulate(sizes, initial=0))[:-1]
        self.parts = [IngestReport() for _ in sizes]

    def _request(self, index: int) -> int:
        # The last request starting at or before the index: a request of no items holds no index.
        return bisect_right(self.starts, index) - 1

    def _count_stored(self, indices: Sequence[int]) -> None:
        for index in indices:
            self.parts[self._request(index)].stored += 1

    def _count_duplicates(self, indices: Sequence[int]) -> None:
        for index in indices:
            self.parts[self._request(index)].duplicates += 1

    def split(self) -> list[IngestReport]:
        """One report per request, its errors numbered from 0 within the request, in order."""
        for error in self.errors:
            number = self._request(error.index)
            self.parts[number].errors.append(replace(error, index=error.index - self.starts[number]))
        return self.parts


def parse_envelope(raw: dict | str | bytes) -> EventEnvelope:
    """A validated envelope from a dict or a JSON text; InvalidEnvelope names every bad field."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = loads_json(raw)
        except ValueError as error:
            raise InvalidEnvelope([("body", f"invalid JSON: {error}")]) from None
    if not isinstance(raw, dict):
        raise InvalidEnvelope([("body", "expected an event object")])
    try:
        envelope = EventEnvelope.model_validate(raw)
    except ValidationError as error:
        raise InvalidEnvelope(validation_problems(error)) from None
    problems = check_data(envelope.type, envelope.data)
    if problems:
        raise InvalidEnvelope(problems)
    return envelope


def check_data(event_type: str, data: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) pairs for `data` that a standard type does not accept."""
    if event_type == "churn_risk_scored":
        score = data.get("score")
        if score is None:
            return [("data.score", "Field required")]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
            return [("data.score", f"must be a number from 0 to 1, found {score!r}")]
    if event_type == "consent_changed":
        try:
            ConsentIn.model_validate(data)
        except ValidationError as error:
            return validation_problems(error, prefix="data")
    return []


def loads_json(text: str | bytes) -> Any:
    """json.loads that refuses NaN and Infinity (no database stores them) and deep nesting."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
