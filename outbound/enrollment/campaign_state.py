"""A campaign's state per tenant: draft, active, paused or finished; pausing and resuming.

`draft` is written in the campaign file (`state: draft`): the campaign loads, validates,
previews and dry-runs, but enrolls nobody. `finished` comes from the file's `ends_at` (or a
stored state). `paused` is an operator's decision stored per tenant: no new enrollments, and
its due messages wait (dispatch does not claim them) until it is resumed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from outbound.clock import Clock
from outbound.db import campaign_states as store
from outbound.errors import InvalidInput
from outbound.vocabulary import CampaignState as State

STATES = tuple(State)


def state_of(campaign, stored: str | None, now: datetime) -> str:
    """The state from the definition and the stored state (pure)."""
    if campaign.state == State.DRAFT:
        return State.DRAFT
    if stored == State.FINISHED or (campaign.ends_at is not None and now >= campaign.ends_at):
        return State.FINISHED
    return State.PAUSED if stored == State.PAUSED else State.ACTIVE


def campaign_states(session: Session, tenant_id: int, campaigns, now: datetime) -> dict[str, str]:
    """The state of each of `campaigns` for one tenant, with one query."""
    stored = store.stored_states(session, tenant_id)
    return {campaign.name: state_of(campaign, stored.get(campaign.name), now) for campaign in campaigns}


def campaign_state(session: Session, tenant_id: int, campaign, now: datetime) -> str:
    """The state of one campaign for one tenant."""
    return state_of(campaign, store.stored_state(session, tenant_id, campaign.name), now)


def is_live(session: Session, tenant_id: int, campaign, now: datetime) -> bool:
    """Whether the campaign may enroll contacts now: it is active for this tenant."""
    return campaign_state(session, tenant_id, campaign, now) == State.ACTIVE


def pause(session: Session, tenant_id: int, campaign, clock: Clock) -> str:
    """Pause an active campaign for one tenant (pausing a paused one changes nothing); returns the new state."""
    current = campaign_state(session, tenant_id, campaign, clock.now())
    if current in (State.DRAFT, State.FINISHED):
        raise InvalidInput(
            f"campaign {campaign.name!r} is {current}; only an active campaign can be paused", field="campaign"
        )
    store.store_state(session, tenant_id, campaign.name, State.PAUSED, clock.now())
    return State.PAUSED


def resume(session: Session, tenant_id: int, campaign, clock: Clock) -> str:
    """Resume a paused campaign for one tenant; its waiting messages become due again at once."""
    current = campaign_state(session, tenant_id, campaign, clock.now())
    if current in (State.DRAFT, State.FINISHED):
        raise InvalidInput(
            f"campaign {campaign.name!r} is {current}; only a paused campaign can be resumed", field="campaign"
        )
    store.store_state(session, tenant_id, campaign.name, State.ACTIVE, clock.now())
    return State.ACTIVE
