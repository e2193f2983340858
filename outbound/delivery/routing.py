"""Which tenants an inbound SMS is for: by the number it was sent to, then by the phone it came from.

A tenant's own number (its `sms_from`) is its alone (`outbound.tenancy.tenants` refuses it to a second
tenant), so an SMS to it is that tenant's. The shared sender, OUTBOUND_TWILIO_FROM_NUMBER (with a
messaging service, any number no tenant owns: the service's numbers are not listed here), is the
number of every tenant without one of its own. An SMS to it is the tenant's that has the phone it came
from as a contact, when exactly one of them has; otherwise it stays with all of them, and
`outbound.delivery.inbound.receive_inbound` applies only what holds for all: an opt-out (never lost)
and a START that undoes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from outbound.addresses import default_region, normalise_phone, sender_number
from outbound.db.contacts import contacts_with_phone
from outbound.db.models import Tenant
from outbound.errors import InvalidInput
from outbound.tenancy.tenants import own_number, tenants_sending_from

if TYPE_CHECKING:
    from outbound.config import Settings


@dataclass(frozen=True)
class Senders:
    """The tenants that send from the number an inbound SMS went to, by id, and whether it is the shared
    sender. No tenant and not shared: the number is none of ours."""

    tenants: list[Tenant]
    shared: bool

    @property
    def owners(self) -> list[Tenant]:
        """The tenants whose own number it is (one; more only in data older than that rule)."""
        return [tenant for tenant in self.tenants if own_number(tenant) is not None]


def senders_of(session: Session, to_number: str | None, settings: Settings) -> Senders:
    """Who sends from `to_number`: its owner and, when it is the shared sender, every tenant without a number."""
    number = sender_number(to_number, None)
    if number is None:
        return Senders(tenants=[], shared=False)
    owners = tenants_sending_from(session, number, shared=False)
    shared = number == sender_number(settings.twilio_from_number, None) or (
        bool(settings.twilio_messaging_service_sid) and not owners
    )
    return Senders(tenants=tenants_sending_from(session, number, shared=True) if shared else owners, shared=shared)


def attribute(session: Session, senders: Senders, from_number: str) -> list[Tenant]:
    """The tenants an inbound SMS from `from_number` is for: the only one sending from its number, else the
    only one of them that has the phone as a contact, else all of them (it cannot be told)."""
    if len(senders.tenants) <= 1:
        return senders.tenants
    having = [t for t in senders.tenants if contacts_with_phone(session, t.id, inbound_phone(from_number, t))]
    return having if len(having) == 1 else senders.tenants


def inbound_phone(number: str, tenant: Tenant) -> str:
    """The phone an inbound SMS came from as `tenant` keeps phones (E.164), or the text as it came when it is no
    phone number (a sender id): a suppression must hold even for a number that cannot be parsed."""
    try:
        return normalise_phone(number, default_region(tenant.jurisdiction, tenant.timezone))
    except InvalidInput:
        return (number or "").strip()
