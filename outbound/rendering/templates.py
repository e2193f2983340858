"""Templates rendered in a sandbox with per-locale fallback, and SMS segment math.

Layout: ``templates/<template>/<channel>.<locale>.j2``. An SMS file is the whole body. An email
file has ``{% block subject %}``, ``{% block text %}`` and optionally ``{% block html %}``; only the
html block is autoescaped. Undefined names are errors (StrictUndefined), so a message is never sent
with a blank where a value should be.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.runtime import Context

from outbound.errors import DefinitionError, OutboundError
from outbound.sandbox import Sandbox
from outbound.sandbox.static import static_limit_problems

CHANNELS = ("sms", "email")
# `offer` ({"code": …}) and `variant` (the A/B variant id, or none) come with every message dispatch renders;
# `links.survey` (append /SCORE for a one-click answer) with every survey message.
CONTEXT_NAMES = frozenset({"contact", "event", "tenant", "campaign", "step", "links", "offer", "variant"})
EMAIL_BLOCKS = ("subject", "text")
FILE_NAME = re.compile(r"^(?P<channel>[a-z]+)\.(?P<locale>[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*)\.j2$")


class RenderError(OutboundError):
    """A template could not be rendered."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        self.file, self.line = file, line
        where = "" if file is None else (f"{file}: " if line is None else f"{file}:{line}: ")
        super().__init__(f"{where}{message}")


class TemplateNotFound(RenderError):
    """No file of the template exists for the channel in any of the locales asked for."""


@dataclass(frozen=True, kw_only=True)
class Rendered:
    """A rendered message: subject and html only for email."""

    subject: str | None
    text: str
    html: str | None
    locale: str


@dataclass(frozen=True, kw_only=True)
class SmsInfo:
    """How an SMS body travels: its encoding, its length in that encoding's units, and its segments."""

    encoding: str  # 'GSM-7' or 'UCS-2'
    characters: int  # GSM-7 septets (extension characters count 2) or UTF-16 code units
    segments: int


class Renderer:
    """Renders the template files under one folder."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = Path(templates_dir)
        # No trim_blocks: an inline `{% if %}…{% endif %}` must not swallow the line break after it.
        # No auto_reload: definitions are read once at start (a restart picks up edits), so a render
        # never pays a stat of its file.
        options = dict(loader=FileSystemLoader(str(self.templates_dir)), undefined=StrictUndefined, auto_reload=False)
        self._plain = Sandbox(autoescape=False, **options)
        self._html = Sandbox(autoescape=True, **options)
        # Loaded templates by (html environment or not, file): Jinja's own cache is an LRU behind a lock, keyed by a
        # weak reference to the loader, a cost on every render.
        self._templates: dict[tuple[bool, str], Template] = {}
        # (template, channel) -> {lower-case locale: file locale as written}
        self._index: dict[tuple[str, str], dict[str, str]] = {}
        if self.templates_dir.is_dir():
            for path in sorted(self.templates_dir.glob("*/*.j2")):
                match = FILE_NAME.match(path.name)
                if match and match["channel"] in CHANNELS:
                    locales = self._index.setdefault((path.parent.name, match["channel"]), {})
                    locales[match["locale"].lower()] = match["locale"]

    def template_names(self) -> list[str]:
        """The templates that have at least one file."""
        return sorted({template for template, _ in self._index})

    def available_locales(self, template: str, channel: str) -> list[str]:
        """The locales `template` has a file for on `channel`, sorted."""
        return sorted(self._index.get((template, channel), {}).values())

    def render(self, template: str, channel: str, locales: list[str], context: dict[str, Any]) -> Rendered:
        """Render `template` for `channel` in the first of `locales` that has a file."""
        found = self._index.get((template, channel), {})
        locale = next((found[loc.lower()] for loc in locales if loc and loc.lower() in found), None)
        if locale is None:
            raise TemplateNotFound(
                f"template {template!r} has no {channel} file for locales {', '.join(locales) or '(none)'}"
                f" (has: {', '.join(self.available_locales(template, channel)) or 'none'})"
            )
        name = f"{template}/{channel}.{locale}.j2"
        shown = self._shown(name)
        if channel == "sms":
            return Rendered(
                subject=None, text=self._run(self._plain, name, None, context, shown).strip(), html=None, locale=locale
            )
        plain = self._load(self._plain, name, shown)
        names = plain.new_context(context)  # one context for the blocks of the plain-text environment
        subject = " ".join(self._run(self._plain, name, "subject", context, shown, names).split())
        text = self._run(self._plain, name, "text", context, shown, names).strip()
        html = self._run(self._html, name, "html", context, shown).strip() if "html" in plain.blocks else None
        return Rendered(subject=subject, text=text, html=html, locale=locale)

    def problems(self) -> list[DefinitionError]:
        """Every template file that is misnamed, does not parse, lacks a block or uses an unknown name."""
        errors: list[DefinitionError] = []
        if not self.templates_dir.is_dir():
            return errors
        for path in sorted(self.templates_dir.rglob("*")):
            if path.is_dir():
                continue
            relative = path.relative_to(self.templates_dir).as_posix()
            shown = self._shown(relative)
            match = FILE_NAME.match(path.name)
            if path.parent.parent != self.templates_dir or not match or match["channel"] not in CHANNELS:
                errors.append(
                    DefinitionError(
                        shown, "template files are named templates/<template>/<sms|email>.<locale>.j2", field="file"
                    )
                )
                continue
            try:
                source = path.read_text(encoding="utf-8")
                tree = self._plain.parse(source, name=relative, filename=str(path))
            except UnicodeDecodeError as error:
                errors.append(DefinitionError(shown, f"not UTF-8 text: {error}"))
                continue
            except TemplateSyntaxError as error:
                errors.append(DefinitionError(shown, f"template syntax error: {error.message}", line=error.lineno))
                continue
            errors.extend(_check_tree(tree, match["channel"], shown, set(self._plain.globals)))
            errors.extend(DefinitionError(shown, problem, line=line) for line, problem in static_limit_problems(tree))
        return errors

    def _shown(self, name: str) -> str:
        return f"{self.templates_dir.name}/{name}"

    def _load(self, environment: Sandbox, name: str, shown: str) -> Template:
        key = (environment is self._html, name)
        template = self._templates.get(key)
        if template is None:
            try:
                template = self._templates[key] = environment.get_template(name)
            except TemplateSyntaxError as error:
                raise RenderError(f"template syntax error: {error.message}", shown, error.lineno) from error
        return template

    def _run(
        self,
        environment: Sandbox,
        name: str,
        block: str | None,
        context: dict[str, Any],
        shown: str,
        names: Context | None = None,
    ) -> str:
        template = self._load(environment, name, shown)
        try:
            if block is None:
                return template.render(context)
            return environment.concat(template.blocks[block](names or template.new_context(context)))
        except Exception as error:
            raise RenderError(str(error), shown, _template_line(environment, template)) from error


def _template_line(environment: Sandbox, template: Template) -> int | None:
    # Called while handling a render failure: Jinja rewrites the traceback so that its frames
    # carry the template's own file name and line numbers.
    try:
        environment.handle_exception()
    except Exception as rewritten:
        line = None
        for frame, lineno in traceback.walk_tb(rewritten.__traceback__):
            if frame.f_code.co_filename == template.filename:
                line = lineno
        return line
    return None


def _check_tree(tree: nodes.Template, channel: str, shown: str, globals_: set[str]) -> list[DefinitionError]:
    errors = []
    blocks = {block.name for block in tree.find_all(nodes.Block)}
    if channel == "email":
        for block in EMAIL_BLOCKS:
            if block not in blocks:
                errors.append(DefinitionError(shown, f"an email template needs a {{% block {block} %}}", field=block))
    unknown = meta.find_undeclared_variables(tree) - CONTEXT_NAMES - globals_
    for name in sorted(unknown):
        line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == name), None)
        errors.append(
            DefinitionError(
                shown,
                f"unknown name {name!r} (templates see {', '.join(sorted(CONTEXT_NAMES))})",
                line=line,
                field=name,
            )
        )
    return errors


def locale_chain(contact_locale: str | None, tenant_locale: str | None) -> list[str]:
    """The locales to try, best first: the contact's ('ko-KR', then 'ko'), the tenant's, then 'en'."""
    chain: list[str] = []
    for tag in (contact_locale, tenant_locale, "en"):
        if not tag:
            continue
        tag = tag.strip().replace("_", "-")
        for candidate in (tag, tag.split("-")[0]):
            if candidate and candidate.lower() not in (c.lower() for c in chain):
                chain.append(candidate)
    return chain


# GSM 03.38: the basic set (one septet each) and the extension table (escape + one septet).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")


def sms_segments(text: str) -> SmsInfo:
    """Encoding, length and segment count of an SMS body (GSM-7 160/153, UCS-2 70/67)."""
    if all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text):
        costs = [2 if ch in GSM_EXTENSION else 1 for ch in text]
        encoding, single, multi = "GSM-7", 160, 153
    else:
        costs = [len(ch.encode("utf-16-le")) // 2 for ch in text]
        encoding, single, multi = "UCS-2", 70, 67
    total = sum(costs)
    if total <= single:
        return SmsInfo(encoding=encoding, characters=total, segments=1 if total else 0)
    # An escape pair or a surrogate pair is never split across two segments.
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return SmsInfo(encoding=encoding, characters=total, segments=segments)
