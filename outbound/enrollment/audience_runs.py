"""Batch campaigns: an audience rule, run in the database, enrolls contacts on the campaign's cron schedule.

Each run is stored once per tenant, campaign and cron fire time (`batch_runs`), and enrollment
skips contacts picked within the campaign's window, so a fire time run twice (two schedulers, a
restart) enrolls nobody twice.

Two drivers share `fire_batch` (`outbound.jobs.batch_campaigns`): with a real clock, APScheduler
runs one cron job per tenant and campaign from its job store in our database; with a simulated
clock, the due fire times are computed with the same `CronTrigger` (`fire_times`) and run.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import lru_cache

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from outbound.clock import Clock
from outbound.db.models import BatchRun, Contact, Tenant
from outbound.db.session import without_jit
from outbound.enrollment.campaign_state import is_live
from outbound.enrollment.plan import Planner, reads_contact
from outbound.enrollment.writer import candidates_without_event, enroll

log = logging.getLogger(__name__)
# What conditions may read of a contact, loaded only when the campaign's key or a step condition reads it.
CONTACT_VIEW = (
    Contact.id,
    Contact.external_id,
    Contact.phone,
    Contact.email,
    Contact.locale,
    Contact.timezone,
    Contact.jurisdiction,
    Contact.attributes,
)
CHUNK = 20_000  # contacts per chunk: a handful of statements each, memory bounded by it


def cron_trigger(campaign, tenant: Tenant) -> CronTrigger:
    """The campaign's cron schedule in its time zone, else the tenant's."""
    return _trigger(campaign.schedule.cron, campaign.schedule.timezone or tenant.timezone)


@lru_cache(maxsize=256)
def _trigger(cron: str, zone: str) -> CronTrigger:
    return CronTrigger.from_crontab(cron, timezone=zone)


def batch_campaigns(definitions, tenant: Tenant) -> list:
    """The scheduled campaigns that serve the tenant."""
    return [c for c in definitions.campaigns_for_tenant(tenant.slug) if c.schedule is not None]


def fire_batch(session: Session, tenant: Tenant, campaign, fire_time: datetime, clock: Clock) -> BatchRun | None:
    """Enroll the campaign's audience for one fire time; None if the campaign is not active or the time already ran.

    The audience query is read a chunk of contacts at a time (in id order), and each chunk goes to the
    one enrollment writer (`outbound.enrollment.writer`), which writes a chunk this size as a handful of
    `INSERT … SELECT`s, so a run over millions of contacts holds one chunk in memory.
    """
    now = clock.now()
    if not is_live(session, tenant.id, campaign, now):
        return None
    run = BatchRun(
        tenant_id=tenant.id,
        campaign=campaign.name,
        fire_time=fire_time,
        started_at=now,
        audience=0,
        enrolled=0,
        held_out=0,
    )
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:
        return None
    columns = CONTACT_VIEW if reads_contact(campaign) else (Contact.id, Contact.external_id)
    trigger = f"schedule {campaign.schedule.cron}"
    planner = Planner(tenant.slug)
    audience = enrolled = 0
    with without_jit(session.connection()):
        for chunk in campaign.audience.contact_chunks(session, tenant.id, now, CHUNK, columns=columns):
            audience += len(chunk)
            made = enroll(session, tenant, candidates_without_event(campaign, chunk, now, trigger), now, planner)
            enrolled += sum(enrollment_id is not None for enrollment_id in made)
    run.audience, run.enrolled, run.held_out = audience, enrolled, planner.held_out
    session.flush()
    log.info(
        "batch %s for %s at %s: %d in audience, %d enrolled (%d held out)",
        campaign.name,
        tenant.slug,
        fire_time.isoformat(),
        run.audience,
        run.enrolled,
        run.held_out,
    )
    return run


def fire_times(trigger: CronTrigger, after: datetime, until: datetime) -> list[datetime]:
    """The trigger's fire times in (after, until], oldest first."""
    times: list[datetime] = []
    moment = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    while moment is not None and moment <= until:
        times.append(moment)
        moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
        if len(times) > 10_000:
            break  # a cron every minute over a very long simulated jump: the latest ones are what matter
    return times
