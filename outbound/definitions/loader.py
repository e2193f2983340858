"""Load campaigns/, triggers/ and templates/ from a folder, reporting every error with file, line and field."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from outbound.definitions.formats import format_problems
from outbound.definitions.schema import CampaignDef, ExitRule, TriggerDef, TriggerFile
from outbound.errors import DefinitionError, NotFound, OutboundError
from outbound.rendering.templates import Renderer

_ModelT = TypeVar("_ModelT", bound=BaseModel)


class DefinitionErrors(OutboundError):
    """Definition files are invalid; `.errors` lists each problem with its file, line and field."""

    def __init__(self, errors: list[DefinitionError]) -> None:
        self.errors = errors
        super().__init__(f"{len(errors)} error(s) in definitions:\n" + "\n".join(str(error) for error in errors))


@dataclass
class Definitions:
    """Every campaign, trigger and template, checked against each other."""

    root: Path
    campaigns: dict[str, CampaignDef]
    triggers: list[TriggerDef]
    renderer: Renderer
    _by_event: dict[str, list[TriggerDef]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for trigger in self.triggers:
            self._by_event.setdefault(trigger.on, []).append(trigger)

    def triggers_for(self, event_type: str) -> list[TriggerDef]:
        """The triggers listening for `event_type`, in file order."""
        return list(self._by_event.get(event_type, ()))

    def exits_for(self, event_type: str) -> list[tuple[CampaignDef, ExitRule]]:
        """The campaigns whose enrollments `event_type` ends, each with the exit rule that matches."""
        return [
            (campaign, rule)
            for campaign in self.campaigns.values()
            for rule in campaign.exit_on
            if rule.event == event_type
        ]

    def campaigns_for_tenant(self, slug: str) -> list[CampaignDef]:
        """The campaigns that serve tenant `slug` (those naming no tenants serve all)."""
        return [campaign for campaign in self.campaigns.values() if not campaign.tenants or slug in campaign.tenants]

    def campaign_for(self, name: str, slug: str) -> CampaignDef:
        """The campaign `name`, which must serve tenant `slug`; NotFound saying which of the two it is not."""
        campaign = self.campaigns.get(name)
        if campaign is None:
            raise NotFound(f"no campaign {name!r} (see `outbound campaigns list`)")
        if campaign.tenants and slug not in campaign.tenants:
            raise NotFound(
                f"campaign {name!r} does not serve tenant {slug!r} (it serves {', '.join(campaign.tenants)})"
            )
        return campaign


def load_definitions(root: Path) -> Definitions:
    """Read and check every definition under `root`; raise DefinitionErrors listing all problems."""
    root = Path(root)
    if not root.is_dir():
        raise DefinitionErrors(
            [DefinitionError(str(root), "no such folder (expected campaigns/, triggers/, templates/)")]
        )
    errors: list[DefinitionError] = []
    renderer = Renderer(root / "templates")
    errors.extend(renderer.problems())

    campaigns: dict[str, CampaignDef] = {}
    campaign_files = _yaml_files(root / "campaigns")
    # Every campaign file counts as defined, even a broken one, so triggers naming it don't add noise.
    defined = {path.stem for path in campaign_files}
    for path in campaign_files:
        document = _Document.read(path, root, errors)
        if document is None:
            continue
        name = document.data.get("name") if isinstance(document.data, dict) else None
        if isinstance(name, str) and name != path.stem:
            errors.append(document.error(f"name {name!r} must equal the file name {path.stem!r}", ("name",)))
        campaign = document.validate(CampaignDef, errors)
        if campaign is None or campaign.name != path.stem:
            continue
        campaigns[campaign.name] = campaign
        for index, step in enumerate(campaign.steps):
            for template in step.templates():
                number = next((n for n, v in enumerate(step.variants) if v.template == template), None)
                where = (
                    ("steps", index, "template") if number is None else ("steps", index, "variants", number, "template")
                )
                for channel in (step.channel, step.fallback) if step.fallback else (step.channel,):
                    if not renderer.available_locales(template, channel):
                        errors.append(
                            document.error(
                                f"template {template!r} has no {channel} file"
                                f" (expected templates/{template}/{channel}.<locale>.j2)",
                                where,
                            )
                        )

    triggers: list[TriggerDef] = []
    first_seen: dict[str, str] = {}
    for path in _yaml_files(root / "triggers"):
        document = _Document.read(path, root, errors)
        if document is None:
            continue
        parsed = document.validate(TriggerFile, errors)
        for index, trigger in enumerate(parsed.triggers) if parsed else _valid_triggers(document.data):
            seen_at = f"{document.file}:{document.line(('triggers', index))}"
            if trigger.name in first_seen:
                errors.append(
                    document.error(
                        f"trigger name {trigger.name!r} is already used at {first_seen[trigger.name]}",
                        ("triggers", index, "name"),
                    )
                )
            elif trigger.campaign not in defined:
                errors.append(
                    document.error(
                        f"unknown campaign {trigger.campaign!r} (no campaigns/{trigger.campaign}.yaml)",
                        ("triggers", index, "campaign"),
                    )
                )
            else:
                triggers.append(trigger)
            first_seen.setdefault(trigger.name, seen_at)

    # Marketing templates must satisfy the message format of every jurisdiction they may serve.
    errors.extend(format_problems(campaigns.values(), renderer))
    if errors:
        raise DefinitionErrors(sorted(errors, key=lambda e: (e.file, e.line or 0, e.field or "")))
    return Definitions(root=root, campaigns=campaigns, triggers=triggers, renderer=renderer)


def _valid_triggers(data: Any) -> Iterator[tuple[int, TriggerDef]]:
    # The file has errors (already reported); still cross-check the triggers that are valid on their own.
    items = data.get("triggers") if isinstance(data, dict) else None
    for index, item in enumerate(items if isinstance(items, list) else ()):
        try:
            yield index, TriggerDef.model_validate(item)
        except ValidationError:
            continue


def _yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.suffix in (".yaml", ".yml") and path.is_file())


class _Loader(yaml.SafeLoader):
    """YAML with only true/false as booleans, so a trigger's `on:` key stays the string 'on'."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass
class _Document:
    """One YAML file: its data and its node tree, which knows the line of every key."""

    file: str
    node: yaml.Node | None
    data: Any

    @classmethod
    def read(cls, path: Path, root: Path, errors: list[DefinitionError]) -> _Document | None:
        file = path.relative_to(root).as_posix()
        try:
            loader = _Loader(path.read_text(encoding="utf-8"))
            try:
                node = loader.get_single_node()
                data = loader.construct_document(node) if node is not None else None
            finally:
                loader.dispose()
        except UnicodeDecodeError as error:
            errors.append(DefinitionError(file, f"not UTF-8 text: {error}"))
            return None
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            problem = " ".join(part for part in (error.context, error.problem) if part)
            errors.append(DefinitionError(file, f"YAML syntax error: {problem}", line=mark.line + 1 if mark else None))
            return None
        except yaml.YAMLError as error:
            errors.append(DefinitionError(file, f"YAML error: {error}"))
            return None
        document = cls(file, node, data)
        if node is None:
            errors.append(DefinitionError(file, "the file is empty", line=1))
            return None
        duplicates = list(_duplicate_keys(node))
        errors.extend(
            DefinitionError(file, f"key {key!r} appears twice in the same mapping", line=line, field=key)
            for key, line in duplicates
        )
        return None if duplicates else document

    def line(self, loc: tuple[str | int, ...]) -> int | None:
        """The line of the deepest key or item of `loc` present in the file (1-based)."""
        current = self.node
        if current is None:
            return None
        line = current.start_mark.line + 1
        for part in loc:
            if isinstance(current, yaml.MappingNode):
                match = next(
                    (
                        (key, value)
                        for key, value in current.value
                        if isinstance(key, yaml.ScalarNode) and key.value == str(part)
                    ),
                    None,
                )
                if match is None:
                    return line
                line, current = match[0].start_mark.line + 1, match[1]
            elif isinstance(current, yaml.SequenceNode) and isinstance(part, int) and part < len(current.value):
                current = current.value[part]
                line = current.start_mark.line + 1
            else:
                return line
        return line

    def error(self, message: str, loc: tuple[str | int, ...]) -> DefinitionError:
        """A DefinitionError at `loc` in this file."""
        return DefinitionError(self.file, message, line=self.line(loc), field=_field(loc))

    def validate(self, model: type[_ModelT], errors: list[DefinitionError]) -> _ModelT | None:
        """The data as `model`, or None after adding one DefinitionError per problem."""
        try:
            return model.model_validate(self.data)
        except ValidationError as error:
            for problem in error.errors(include_url=False):
                errors.append(self.error(_message(problem), tuple(problem["loc"])))
            return None


def _duplicate_keys(node: yaml.Node) -> Iterator[tuple[str, int]]:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    yield key.value, key.start_mark.line + 1
                seen.add(key.value)
            yield from _duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(item)


def _field(loc: tuple[str | int, ...]) -> str | None:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def _message(problem: ErrorDetails) -> str:
    kind, message = problem["type"], problem["msg"]
    if kind == "extra_forbidden":
        return f"unknown field {problem['loc'][-1]!r}"
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    value = problem.get("input")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return f"{message} (got {value!r})"
    return message
