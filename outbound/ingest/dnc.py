"""Do-Not-Call lists (COMPLIANCE 9): import a list with its publication date; scrub numbers before calls.

A list file has one phone number per line (or a CSV whose first column is the number, each
line read on its own and strictly: a quote left open is that line's error; a header line and
`#` comments are skipped). Each number becomes a suppression on the
`voice` channel with reason `dnc`. Where the tenant's policy asks for a list (US by
default), calls need one published at most 31 days ago, else every call is blocked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from outbound.addresses import address_hash, default_region, normalise_phone
from outbound.compliance import Block, Decision, dnc_decision, policy_for
from outbound.compliance.zones import resolve_jurisdiction
from outbound.db.models import DncImport, Suppression, Tenant
from outbound.db.suppressions import is_suppressed, suppress
from outbound.errors import InvalidInput, NotFound
from outbound.ingest.csv_files import csv_line
from outbound.vocabulary import Channel, Rule, SuppressionReason

_LINE_END = re.compile("\r\n|\r|\n")


@dataclass
class DncReport:
    """What a Do-Not-Call import did: numbers added, already listed, and one message per bad line."""

    added: int = 0
    already: int = 0
    errors: list[str] = field(default_factory=list)
    import_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class DncStatus:
    """Whether the tenant's newest Do-Not-Call list is fresh enough to call with."""

    fresh: bool
    list_date: datetime | None
    age_days: int | None


def import_dnc(
    session: Session, tenant: Tenant, path: str | Path, *, list_date: date | datetime, source: str, clock
) -> DncReport:
    """Add every number of the list file at `path` to the tenant's voice suppressions (reason `dnc`) and
    record the import with the list's publication date. Bad lines are reported; the rest go in."""
    path = Path(path)
    published = _as_utc(list_date)
    now = clock.now()
    if published > now:
        raise InvalidInput(f"the list date {published:%Y-%m-%d} is in the future", field="list_date")
    region = default_region(tenant.jurisdiction, tenant.timezone)
    report = DncReport()
    try:
        # Only a CR, an LF or both end a line, as in any CSV file (str.splitlines would also break at a form
        # feed or U+2028 and shift the line numbers of the errors).
        lines = _LINE_END.split(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"{path.name}: cannot read the list: {error}", field="file") from None
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith("#"):
            continue
        parsed = csv_line(line, number)
        if parsed.cells is None:
            report.errors.append(f"line {number}: {parsed.unreadable}")
            continue
        raw = parsed.cells[0].strip() if parsed.cells else ""
        if not raw or raw.startswith("#") or (number == 1 and not any(ch.isdigit() for ch in raw)):
            continue
        try:
            phone = normalise_phone(raw, region)
        except InvalidInput as error:
            report.errors.append(f"line {number}: {str(error).removeprefix('contact.phone: ')}")
            continue
        if phone in seen:
            continue
        seen.add(phone)
        if is_suppressed(session, tenant.id, Channel.VOICE, phone):
            report.already += 1
            continue
        suppress(
            session, tenant.id, Channel.VOICE, phone, reason=SuppressionReason.DNC, source=f"DNC list {source}", at=now
        )
        report.added += 1
    record = DncImport(
        tenant_id=tenant.id, source=source, list_date=published, imported_at=now, entries=report.added + report.already
    )
    session.add(record)
    session.flush()
    report.import_id = record.id
    return report


def dnc_status(session: Session, tenant_id: int, now: datetime) -> DncStatus:
    """The newest imported list's date and age; fresh when the tenant's policy accepts its age."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"no tenant with id {tenant_id}")
    policy = _policy(tenant)
    newest = session.scalar(select(func.max(DncImport.list_date)).where(DncImport.tenant_id == tenant_id))
    decision = dnc_decision(listed=False, list_date=newest, now=now, policy=policy)
    age = (now - newest).days if newest is not None else None
    return DncStatus(fresh=decision.rule == Rule.ALLOW, list_date=newest, age_days=age)


def may_call(session: Session, tenant_id: int, phone: str, now: datetime) -> Decision:
    """Allow, or Block with rule `dnc` (the number is listed) or `dnc_stale` (no list fresh enough)."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"no tenant with id {tenant_id}")
    # Any suppression of the number for calls (the DNC list, an erasure, a request) keeps it off the dial list.
    reasons = list(
        session.scalars(
            select(Suppression.reason).where(
                Suppression.tenant_id == tenant_id,
                Suppression.channel == Channel.VOICE,
                Suppression.address_hash == address_hash(Channel.VOICE, _phone(phone, tenant)),
            )
        )
    )
    newest = session.scalar(select(func.max(DncImport.list_date)).where(DncImport.tenant_id == tenant_id))
    decision = dnc_decision(listed=bool(reasons), list_date=newest, now=now, policy=_policy(tenant))
    if reasons and reasons != [SuppressionReason.DNC]:
        return Block(rule=Rule.DNC, reason=f"the number must not be called ({', '.join(sorted(reasons))})")
    return decision


def _policy(tenant: Tenant):
    return policy_for(resolve_jurisdiction(None, tenant.jurisdiction), (tenant.settings or {}).get("compliance"))


def _phone(raw: str, tenant: Tenant) -> str:
    try:
        return normalise_phone(raw, default_region(tenant.jurisdiction, tenant.timezone))
    except InvalidInput:
        return raw


def _as_utc(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInput("the list date needs a time zone", field="list_date")
        return value.astimezone(UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)
