"""The shapes of campaign and trigger files: pydantic models that parse durations and compile conditions."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from outbound.clock import parse_duration
from outbound.conditions import Condition, InvalidCondition, compile_condition

Kind = Literal["notification", "reminder", "survey", "winback", "lead"]
Purpose = Literal["transactional", "survey", "marketing"]
Channel = Literal["sms", "email"]
IDENTIFIER = r"^[a-z0-9][a-z0-9_-]*$"


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a duration is text such as 30m, 1h, 2d, not {value!r}")
    return parse_duration(value)


def _condition(value: Any) -> Condition:
    if isinstance(value, Condition):
        return value
    try:
        return compile_condition(value)
    except InvalidCondition as error:
        # A ValueError is what pydantic reports at the field's location (the loader adds file and line).
        raise ValueError(error.detail) from None


Duration = Annotated[timedelta, BeforeValidator(_duration)]
ConditionField = Annotated[Condition, BeforeValidator(_condition)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class StepDef(_Model):
    """One message of a campaign: its channel, its delay after the triggering event, its template."""

    id: str = Field(pattern=IDENTIFIER)
    channel: Channel
    delay: Duration = timedelta(0)
    template: str = Field(pattern=IDENTIFIER)
    when: ConditionField | None = None


class EnrollmentRule(_Model):
    """At most one enrollment per contact, campaign and key within the window."""

    key: ConditionField | None = None
    window: Duration = timedelta(days=30)


class ExitRule(_Model):
    """An event that ends a contact's active enrollments (only the one with the same key, if a key is given)."""

    event: str = Field(min_length=1)
    key: ConditionField | None = None


class CallbackRule(_Model):
    """A callback task for agents, created when a contact is enrolled."""

    reason: str = Field(min_length=1)
    priority: int = 0
    delay: Duration = timedelta(0)


class CampaignDef(_Model):
    """A campaign: what it is for, who it serves, and the steps it sends."""

    name: str = Field(pattern=IDENTIFIER)
    kind: Kind
    purpose: Purpose
    description: str = ""
    tenants: list[str] = Field(default_factory=list)
    essential: bool = False
    enrollment: EnrollmentRule | None = None
    exit_on: list[ExitRule] = Field(default_factory=list)
    steps: list[StepDef] = Field(min_length=1)
    callback: CallbackRule | None = None

    @field_validator("steps")
    @classmethod
    def _unique_step_ids(cls, steps: list[StepDef]) -> list[StepDef]:
        seen: set[str] = set()
        for step in steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice; step ids must be unique within a campaign")
            seen.add(step.id)
        return steps

    @field_validator("essential")
    @classmethod
    def _essential_only_when_transactional(cls, essential: bool, info: ValidationInfo) -> bool:
        # An essential campaign may reach a contact after STOP: never acceptable for marketing or surveys.
        if essential and info.data.get("purpose", "transactional") != "transactional":
            raise ValueError("only a transactional campaign may be essential")
        return essential

    def step(self, step_id: str) -> StepDef | None:
        """The step with this id, if any."""
        return next((step for step in self.steps if step.id == step_id), None)


class TriggerDef(_Model):
    """A rule: an event of type `on` (matching `when`) enrolls its contact in `campaign`."""

    name: str = Field(pattern=IDENTIFIER)
    on: str = Field(min_length=1)
    when: ConditionField | None = None
    campaign: str = Field(min_length=1)


class TriggerFile(_Model):
    """A triggers/*.yaml file: a list of trigger rules."""

    triggers: list[TriggerDef] = Field(default_factory=list)
