"""The campaign state store: the state an operator stored for a campaign of a tenant (paused, active,
finished). What a campaign's state is, from its file and this, is `outbound.enrollment.campaign_state`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from outbound.db import direct
from outbound.db.models import CampaignState

# Built once: each run of ingested events asks it, and building it costs more than running it.
_STORED_STATES = select(CampaignState.campaign, CampaignState.state).where(
    CampaignState.tenant_id == bindparam("tenant_id")
)


def stored_states(session: Session, tenant_id: int) -> dict[str, str]:
    """The stored state of each of the tenant's campaigns that has one, by campaign name."""
    return dict(direct.fetch(session, _STORED_STATES, {"tenant_id": tenant_id}))


def stored_state(session: Session, tenant_id: int, campaign: str) -> str | None:
    """The stored state of one campaign of the tenant, None if none was stored."""
    return session.scalar(
        select(CampaignState.state).where(CampaignState.tenant_id == tenant_id, CampaignState.campaign == campaign)
    )


def store_state(session: Session, tenant_id: int, campaign: str, state: str, at: datetime) -> None:
    """Store the campaign's state for the tenant (`at` is when it changed, kept if it did not)."""
    row = session.scalar(
        select(CampaignState).where(CampaignState.tenant_id == tenant_id, CampaignState.campaign == campaign)
    )
    if row is None:
        session.add(CampaignState(tenant_id=tenant_id, campaign=campaign, state=state, changed_at=at))
    elif row.state != state:
        row.state, row.changed_at = state, at
    session.flush()
