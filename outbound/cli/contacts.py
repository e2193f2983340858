"""Contact commands: import contacts with their consents, show one's consent ledger, erase one; DNC lists."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from outbound.cli.common import DbOption, TenantOption, console, database, friendly_errors, runtime_for
from outbound.cli.data import FileArg, print_errors
from outbound.db.session import transaction
from outbound.vocabulary import Channel, MessageStatus

app = typer.Typer(no_args_is_help=True, help="Contacts and their consents.")
dnc_app = typer.Typer(no_args_is_help=True, help="Do-Not-Call lists: calls are scrubbed against them.")
app.add_typer(dnc_app, name="dnc")


@app.command("import")
def contacts_import(file: FileArg, tenant: TenantOption = None, db: DbOption = None) -> None:
    """Import contacts (JSONL or CSV) with their consents; bad lines are reported, the rest imported."""
    from outbound.ingest.contact_files import import_contacts
    from outbound.tenancy.tenants import get_tenant

    with friendly_errors(), runtime_for(db) as runtime, transaction(runtime.factory) as session:
        report = import_contacts(session, get_tenant(session, tenant), file, runtime.clock)
    console.print(f"contacts: {report.created} created, {report.updated} updated, {len(report.errors)} lines refused")
    print_errors(report.errors)
    if report.errors:
        raise typer.Exit(2)


def _say(line: str) -> None:
    # Ledger lines are long; never wrap them, so each entry stays one line for grep and for the eye.
    console.print(line, soft_wrap=True, highlight=False, markup=False)


def _when(at: datetime | None) -> str:
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M} UTC"


@app.command("show")
def contacts_show(
    external_id: Annotated[str, typer.Argument(help="The contact's external id")],
    tenant: TenantOption = None,
    db: DbOption = None,
    limit: Annotated[int, typer.Option(help="How many recent messages to show", min=0)] = 20,
) -> None:
    """A contact, its consent history (when, source, text shown), its suppressions and recent messages."""
    from sqlalchemy import select

    from outbound.addresses import address_hash
    from outbound.compliance.zones import resolve_jurisdiction, resolve_timezone
    from outbound.db.models import Consent, Contact, Message, Suppression
    from outbound.errors import NotFound
    from outbound.tenancy.tenants import get_tenant

    with friendly_errors(), database(db) as factory, factory() as session:
        owner = get_tenant(session, tenant)
        contact = session.scalar(
            select(Contact).where(Contact.tenant_id == owner.id, Contact.external_id == external_id)
        )
        if contact is None:
            raise NotFound(f"no contact {external_id!r} in tenant {owner.slug!r}")
        _say(
            f"contact {contact.external_id} (id {contact.id}, tenant {owner.slug})"
            + (f", erased {_when(contact.erased_at)}" if contact.erased_at else "")
        )
        _say(f"  phone: {contact.phone or '-'}  email: {contact.email or '-'}  locale: {contact.locale or '-'}")
        _say(
            f"  jurisdiction: {resolve_jurisdiction(contact.jurisdiction, owner.jurisdiction)}"
            f"  time zone: {resolve_timezone(contact.timezone, contact.phone, owner.timezone)}"
        )
        _say("consent history (oldest first):")
        ledger = session.scalars(
            select(Consent)
            .where(Consent.tenant_id == owner.id, Consent.contact_id == contact.id)
            .order_by(Consent.at, Consent.id)
        ).all()
        for entry in ledger:
            _say(
                f"  {_when(entry.at)}  {entry.channel:<5} {entry.purpose:<13} "
                f"{'granted' if entry.granted else 'revoked'}{' +night' if entry.night else ''}"
                f"  source: {entry.source or '-'}  text: {entry.text or '-'!r}"
                f"  recorded: {_when(entry.recorded_at)}  notified: {_when(entry.notified_at)}"
            )
        if not ledger:
            _say("  (none)")
        _say("suppressions:")
        addresses = [
            (c, a)
            for c, a in ((Channel.SMS, contact.phone), (Channel.VOICE, contact.phone), (Channel.EMAIL, contact.email))
            if a
        ]
        hashes = {(c, address_hash(c, a)) for c, a in addresses}
        rows = [
            row
            for row in session.scalars(
                select(Suppression).where(
                    Suppression.tenant_id == owner.id, Suppression.address_hash.in_({h for _, h in hashes})
                )
            )
            if (row.channel, row.address_hash) in hashes
        ]
        for row in rows:
            _say(f"  {row.channel:<5} {row.reason}  source: {row.source or '-'}  since {_when(row.created_at)}")
        if not rows:
            _say("  (none)")
        _say(f"recent messages (newest {limit}):")
        messages = session.scalars(
            select(Message)
            .where(Message.tenant_id == owner.id, Message.contact_id == contact.id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(limit)
        ).all()
        for message in messages:
            _say(
                f"  #{message.id} {_when(message.sent_at or message.due_at)} {message.campaign}/{message.step} "
                f"{message.channel} {message.purpose} {message.status}"
                + (
                    f"  [{message.rule}] {message.reason}"
                    if message.rule and message.status != MessageStatus.SENT
                    else ""
                )
            )
        if not messages:
            _say("  (none)")


@app.command("erase")
def contacts_erase(
    external_id: Annotated[str, typer.Argument(help="The contact's external id")],
    tenant: TenantOption = None,
    db: DbOption = None,
) -> None:
    """Erase a contact: personal data and message bodies go; hashed suppressions stay, so a re-import stays blocked."""
    from outbound.clock import SystemClock
    from outbound.ingest.erasure import erase_contact
    from outbound.tenancy.tenants import get_tenant

    with friendly_errors(), database(db) as factory, transaction(factory) as session:
        report = erase_contact(session, get_tenant(session, tenant), external_id, SystemClock().now())
    _say(
        f"erased contact {external_id} (id {report.contact_id}): {report.messages_cleared} messages cleared, "
        f"{report.messages_cancelled} pending cancelled, {report.suppressions_kept} hashed suppressions kept"
    )


@dnc_app.command("import")
def dnc_import(
    file: FileArg,
    list_date: Annotated[str, typer.Option("--list-date", help="The date the list was published (YYYY-MM-DD)")],
    source: Annotated[str, typer.Option(help="Where the list came from")] = "national registry",
    tenant: TenantOption = None,
    db: DbOption = None,
) -> None:
    """Import a Do-Not-Call list (one number per line) with its publication date."""
    from datetime import date

    from outbound.clock import SystemClock
    from outbound.errors import InvalidInput
    from outbound.ingest.dnc import dnc_status, import_dnc
    from outbound.tenancy.tenants import get_tenant

    with friendly_errors():
        try:
            published = date.fromisoformat(list_date)
        except ValueError:
            raise InvalidInput(f"not a date: {list_date!r} (use YYYY-MM-DD)", field="list_date") from None
        clock = SystemClock()
        with database(db) as factory, transaction(factory) as session:
            owner = get_tenant(session, tenant)
            report = import_dnc(session, owner, file, list_date=published, source=source, clock=clock)
            status = dnc_status(session, owner.id, clock.now())
    _say(
        f"DNC list of {published}: {report.added} numbers added, {report.already} already suppressed, "
        f"{len(report.errors)} lines refused; calls {'allowed' if status.fresh else 'BLOCKED: list too old'}"
    )
    print_errors(report.errors)
    if report.errors:
        raise typer.Exit(2)


@app.command("complaints")
def complaints(tenant: TenantOption = None, db: DbOption = None) -> None:
    """Each tenant's spam-complaint rate over 30 days: ok, warn (over 0.1%) or paused (over 0.3%)."""
    from sqlalchemy import select

    from outbound.clock import SystemClock
    from outbound.db.models import Tenant
    from outbound.dispatch.breaker import breaker_status
    from outbound.tenancy.tenants import get_tenant

    with friendly_errors(), database(db) as factory, factory() as session:
        tenants = (
            [get_tenant(session, tenant)] if tenant else list(session.scalars(select(Tenant).order_by(Tenant.slug)))
        )
        for each in tenants:
            status = breaker_status(session, each, SystemClock().now())
            _say(
                f"{each.slug}: {status.rate:.3%} spam complaints ({status.complaints} of {status.delivered} emails) "
                f"→ {status.level}" + (" (marketing email paused)" if status.level == "paused" else "")
            )
