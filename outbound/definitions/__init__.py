"""Campaign, trigger and template definitions, loaded from files and checked against each other."""

from outbound.definitions.loader import DefinitionErrors, Definitions, load_definitions
from outbound.definitions.schema import (
    CallbackRule,
    CampaignDef,
    EnrollmentRule,
    ExitRule,
    StepDef,
    TriggerDef,
)

__all__ = [
    "CallbackRule",
    "CampaignDef",
    "DefinitionErrors",
    "Definitions",
    "EnrollmentRule",
    "ExitRule",
    "StepDef",
    "TriggerDef",
    "load_definitions",
]
