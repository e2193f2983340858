"""The suppression store: addresses that must not be contacted on a channel, kept by hash. The one writer of suppressions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from outbound.addresses import address_hash
from outbound.db.models import Suppression


def suppress(
    session: Session, tenant_id: int, channel: str, address: str, *, reason: str, source: str, at: datetime
) -> Suppression:
    """Add `address` to the tenant's suppression list for `channel` (once; a second call keeps the first entry)."""
    digest = address_hash(channel, address)
    existing = session.scalar(
        select(Suppression).where(
            Suppression.tenant_id == tenant_id, Suppression.channel == channel, Suppression.address_hash == digest
        )
    )
    if existing is not None:
        return existing
    row = Suppression(
        tenant_id=tenant_id,
        channel=channel,
        address_hash=digest,
        address=address,
        reason=reason,
        source=source,
        created_at=at,
    )
    session.add(row)
    session.flush()
    return row


def is_suppressed(session: Session, tenant_id: int, channel: str, address: str) -> list[str]:
    """The reasons `address` is suppressed on `channel` (empty when it is not)."""
    return list(
        session.scalars(
            select(Suppression.reason).where(
                Suppression.tenant_id == tenant_id,
                Suppression.channel == channel,
                Suppression.address_hash == address_hash(channel, address),
            )
        )
    )
