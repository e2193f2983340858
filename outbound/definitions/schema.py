"""The shapes of campaign and trigger files: pydantic models that parse durations and compile conditions."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal, cast

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from outbound import vocabulary
from outbound.clock import parse_duration
from outbound.compliance.zones import real_zone
from outbound.conditions import Condition, InvalidCondition, compile_condition
from outbound.db.audience import Audience, InvalidAudience, compile_audience

Kind = Literal["notification", "reminder", "survey", "winback", "lead"]
# The words of `outbound.vocabulary` a file may use, spelled out so that pydantic's messages list the plain
# words: every purpose, the channels a step sends on (not voice, which is for calls).
Purpose = Literal["transactional", "survey", "marketing"]
Channel = Literal["sms", "email"]
Scale = Literal["nps", "csat"]
IDENTIFIER = r"^[a-z0-9][a-z0-9_-]*$"
SCALES = {"nps": (0, 10), "csat": (1, 5)}
# Default service-recovery thresholds: NPS detractors (0-6), CSAT dissatisfied (1-2).
RECOVERY_AT = {"nps": 6, "csat": 2}
OFFER_PATTERN = re.compile(r"^[A-Z0-9-]*\{random:(?P<length>\d+)\}[A-Z0-9-]*$")


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


def _audience(value: Any) -> Audience:
    if isinstance(value, Audience):
        return value
    try:
        return compile_audience(value)
    except InvalidAudience as error:
        raise ValueError(str(error)) from None


Duration = Annotated[timedelta, BeforeValidator(_duration)]
ConditionField = Annotated[Condition, BeforeValidator(_condition)]
AudienceField = Annotated[Audience, BeforeValidator(_audience)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class VariantDef(_Model):
    """One arm of an A/B test of a step: its share of the split (by weight) and its template.

    A variant without a template uses the step's; the template can tell the arms apart by `variant`
    (for example a second subject line), so a small test needs no second file.
    """

    id: str = Field(pattern=IDENTIFIER, max_length=32)
    template: str | None = Field(default=None, pattern=IDENTIFIER)
    weight: int = Field(default=1, ge=1)


class StepDef(_Model):
    """One message of a campaign: its channel, its delay, its template (or A/B variants), its fallback channel."""

    id: str = Field(pattern=IDENTIFIER)
    channel: Channel
    delay: Duration = timedelta(0)
    template: str | None = Field(default=None, pattern=IDENTIFIER)
    variants: list[VariantDef] = Field(default_factory=list)
    when: ConditionField | None = None
    # When the address turns out undeliverable (no number, invalid number, landline), send on this channel.
    fallback: Channel | None = None
    # An SMS whose rendered text needs more segments than this is blocked, never sent (COMPLIANCE 22).
    max_segments: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _template_or_variants(self) -> StepDef:
        if self.max_segments is not None and self.channel != vocabulary.Channel.SMS:
            raise ValueError("max_segments limits SMS steps only")
        if self.template is None and (not self.variants or any(v.template is None for v in self.variants)):
            raise ValueError("a step needs a template, or variants each with a template")
        if len(self.variants) == 1:
            raise ValueError("an A/B test needs at least two variants")
        ids = [variant.id for variant in self.variants]
        if len(set(ids)) != len(ids):
            raise ValueError("variant ids must be unique within a step")
        if self.fallback is not None and self.fallback == self.channel:
            raise ValueError(f"the fallback channel must differ from the step's channel ({self.channel})")
        return self

    def templates(self) -> list[str]:
        """Every template this step may send: its own and its variants', once each."""
        names = [self.template] + [variant.template for variant in self.variants]
        return list(dict.fromkeys(name for name in names if name))

    def template_of(self, variant: VariantDef | None) -> str:
        """The template a contact gets with this variant (the step's when the variant names none)."""
        # Never None: `_template_or_variants` refuses a step without a template unless each variant names one.
        return cast(str, variant.template if variant is not None and variant.template else self.template)


class SurveyConfig(_Model):
    """How a survey's answers are read: the scale, how long an answer counts, when an agent calls back."""

    scale: Scale = "nps"
    window: Duration = timedelta(days=7)
    recovery_threshold: int | None = None
    recovery_reason: str = Field(default="Low survey score: call to recover the customer", min_length=1)
    recovery_priority: int = 5

    @model_validator(mode="after")
    def _threshold_on_scale(self) -> SurveyConfig:
        low, high = SCALES[self.scale]
        if self.recovery_threshold is not None and not low <= self.recovery_threshold <= high:
            raise ValueError(f"recovery_threshold must be on the {self.scale} scale ({low}-{high})")
        return self

    @property
    def threshold(self) -> int:
        """Scores at or below this open a service-recovery callback."""
        return RECOVERY_AT[self.scale] if self.recovery_threshold is None else self.recovery_threshold


class ScheduleDef(_Model):
    """A batch campaign's cron schedule (minute hour day month weekday), in a time zone (default: the tenant's)."""

    cron: str = Field(min_length=1)
    timezone: str | None = None

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(cron, timezone="UTC")
        except ValueError as error:
            raise ValueError(
                f"not a cron expression {cron!r} (five fields: minute hour day month weekday): {error}"
            ) from None
        return cron

    @field_validator("timezone")
    @classmethod
    def _real_zone(cls, zone: str | None) -> str | None:
        return None if zone is None else real_zone(zone)


class OfferCodes(_Model):
    """Where offer codes come from: a pool given out once each, else a pattern such as WB-{random:6}."""

    pool: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{3,64}$")]] = Field(default_factory=list)
    pattern: str | None = None

    @field_validator("pattern")
    @classmethod
    def _pattern_shape(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return pattern
        match = OFFER_PATTERN.match(pattern)
        if match is None or not 4 <= int(match["length"]) <= 16 or len(pattern) > 64:
            raise ValueError(
                "a pattern is upper-case letters, digits and dashes around one {random:N} (N from 4 to 16)"
            )
        return pattern

    @model_validator(mode="after")
    def _some_source(self) -> OfferCodes:
        if not self.pool and self.pattern is None:
            raise ValueError("give a pool of codes, a pattern, or both (the pattern serves when the pool runs out)")
        if len(set(self.pool)) != len(self.pool):
            raise ValueError("a code appears twice in the pool")
        return self


class AttributionRule(_Model):
    """An order within `window` of a message (or of a holdout assignment) counts as a conversion."""

    window: Duration = timedelta(days=7)


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
    state: Literal["draft", "active"] = vocabulary.CampaignState.ACTIVE.value
    ends_at: AwareDatetime | None = None
    tenants: list[str] = Field(default_factory=list)
    essential: bool = False
    enrollment: EnrollmentRule | None = None
    exit_on: list[ExitRule] = Field(default_factory=list)
    steps: list[StepDef] = Field(min_length=1)
    callback: CallbackRule | None = None
    survey: SurveyConfig | None = None
    schedule: ScheduleDef | None = None
    audience: AudienceField | None = None
    holdout: float = Field(default=0.0, ge=0.0, le=0.5)
    attribution: AttributionRule | None = None
    offer_codes: OfferCodes | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults_by_kind(cls, data: Any) -> Any:
        # A survey always has a scale; a scheduled campaign always has a re-pick window, so that
        # running the same cron time twice (two schedulers, a restart) enrolls nobody twice.
        if isinstance(data, dict):
            data = dict(data)
            if data.get("kind") == "survey" and data.get("survey") is None:
                data["survey"] = {}
            if data.get("schedule") is not None and data.get("enrollment") is None:
                data["enrollment"] = {}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> CampaignDef:
        if self.survey is not None and self.purpose != vocabulary.Purpose.SURVEY:
            raise ValueError("survey settings belong to a campaign whose purpose is survey")
        if (self.schedule is None) != (self.audience is None):
            raise ValueError("a batch campaign needs both a schedule (cron) and an audience rule")
        if self.holdout and self.purpose == vocabulary.Purpose.TRANSACTIONAL:
            raise ValueError("a transactional campaign cannot hold contacts out: they need the message")
        return self

    @property
    def attribution_window(self) -> timedelta | None:
        """How long after a message an order counts for this campaign (marketing: 7 days unless set)."""
        if self.attribution is not None:
            return self.attribution.window
        return timedelta(days=7) if self.purpose == vocabulary.Purpose.MARKETING else None

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
        if essential and info.data.get("purpose", vocabulary.Purpose.TRANSACTIONAL) != vocabulary.Purpose.TRANSACTIONAL:
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
