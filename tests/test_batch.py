"""Batch win-back: an audience rule on a cron schedule, fired on the simulated clock and by APScheduler from our database."""

from datetime import datetime, timedelta, timezone

from sqlalchemy import select, text

from campaign_kit import WINBACK, campaigns, make_world_fixture  # noqa: F401 - fixture
from outbound.batch import fire_batch, prune_batch_jobs, run_batch_job, schedule_batch_jobs
from outbound.campaign_state import pause
from outbound.db.models import BatchRun, Enrollment, OfferCode, Tenant
from outbound.db.session import transaction

LAPSED = """
name: lapsed
kind: winback
purpose: marketing
schedule:
  cron: "0 10 * * *"
audience: 'count("order_placed") >= 2 and count("order_placed", within="90d") == 0'
exit_on:
  - event: order_placed
offer_codes:
  pattern: "BACK-{random:6}"
steps:
  - id: email_now
    channel: email
    template: offer_note
  - id: sms_2d
    channel: sms
    delay: 2d
    template: offer_note
"""


def _lapsed_shop(make_world, **campaign_files):
    world = make_world(campaigns(lapsed=LAPSED, **campaign_files))
    tenant = world.tenant()  # America/New_York: 10:00 there is 15:00 UTC in November
    for name, days in (("lapsed-1", [200, 120]), ("lapsed-2", [300, 150, 100]), ("recent", [200, 10]), ("once", [300])):
        world.contact(tenant, name, email=f"{name}@example.com", phone="+1202555" + str(1000 + len(name) * 7 + days[0] // 10),
                      consents=[("email", "marketing"), ("sms", "marketing")])
        for n, ago in enumerate(days):
            world.event(tenant, "order_placed", name, {"order_id": f"{name}-{n}", "value": 50},
                        occurred_at=world.clock.now() - timedelta(days=ago))
    return world, tenant


def test_a_cron_campaign_fires_at_its_local_times_on_the_simulated_clock(make_world, clock):
    world, tenant = _lapsed_shop(make_world)
    world.run(clock.now() + timedelta(days=3))
    with world.runtime.factory() as session:
        runs = session.execute(select(BatchRun.fire_time, BatchRun.audience, BatchRun.enrolled).order_by(BatchRun.fire_time)).all()
    day = datetime(2026, 11, 20, 15, 0, tzinfo=timezone.utc)
    assert [tuple(r) for r in runs] == [(day, 2, 2), (day + timedelta(days=1), 2, 0), (day + timedelta(days=2), 2, 0)]
    emails = world.messages(campaign="lapsed", channel="email")
    assert sorted(m.status for m in emails) == ["sent", "sent"] and {m.sent_at for m in emails} == {day}


def test_the_same_fire_time_runs_once_and_a_contact_is_not_picked_again_within_the_window(make_world, clock):
    world, tenant = _lapsed_shop(make_world)
    campaign = world.runtime.definitions.campaigns["lapsed"]
    at = clock.now()
    with transaction(world.runtime.factory) as session:
        tenant_row = session.get(Tenant, tenant.id)
        first = fire_batch(session, tenant_row, campaign, at, clock)
        again = fire_batch(session, tenant_row, campaign, at, clock)
        later = fire_batch(session, tenant_row, campaign, at + timedelta(days=1), clock)
    assert (first.enrolled, again, later.audience, later.enrolled) == (2, None, 2, 0)


def test_a_paused_batch_campaign_does_not_fire(make_world, clock):
    world, tenant = _lapsed_shop(make_world)
    with transaction(world.runtime.factory) as session:
        pause(session, tenant.id, world.runtime.definitions.campaigns["lapsed"], clock)
    world.run(clock.now() + timedelta(days=2))
    with world.runtime.factory() as session:
        assert session.scalars(select(BatchRun)).all() == []
    assert world.messages(campaign="lapsed") == []


def test_a_purchase_ends_the_win_back_and_cancels_what_is_still_to_come(make_world, clock):
    world, tenant = _lapsed_shop(make_world)
    world.run(datetime(2026, 11, 20, 16, 0, tzinfo=timezone.utc))
    world.event(tenant, "order_placed", "lapsed-1", {"order_id": "back", "value": 80})
    [email, sms] = [m for m in world.messages(campaign="lapsed") if m.contact_id == world.messages(campaign="lapsed")[0].contact_id]
    assert (email.status, sms.status, sms.rule) == ("sent", "cancelled", "exit")


def test_offer_codes_come_from_the_pool_once_each_then_from_the_pattern(make_world, clock):
    world = make_world(campaigns(winback=WINBACK.replace("holdout: 0.5", "holdout: 0")))
    tenant = world.tenant()
    for n in range(4):
        world.contact(tenant, f"c{n}", email=f"c{n}@example.com", consents=[("email", "marketing")])
        world.event(tenant, "churn_risk_scored", f"c{n}", {"score": 0.9})
    world.run(clock.now() + timedelta(minutes=5))
    with world.runtime.factory() as session:
        codes = session.execute(select(OfferCode.code, OfferCode.contact_id).order_by(OfferCode.id)).all()
    given = [code for code, contact in codes if contact is not None]
    assert given[:2] == ["POOL-AAAA", "POOL-BBBB"] and len(set(given)) == 4
    assert all(code.startswith("WB-") and len(code) == 9 for code in given[2:])
    bodies = [m.body for m in world.messages(campaign="winback", channel="email")]
    assert sorted(code for code in given if any(f"Code {code}." in body for body in bodies)) == sorted(given)


def test_apscheduler_keeps_one_cron_job_per_tenant_and_campaign_in_our_database(make_world, clock):
    from apscheduler.schedulers.background import BackgroundScheduler

    world, tenant = _lapsed_shop(make_world)
    runtime = world.runtime
    # A job left in the store by an earlier start, for a campaign that has since been deleted.
    earlier = BackgroundScheduler(timezone="UTC")
    schedule_batch_jobs(earlier, runtime)
    earlier.add_job("outbound.batch:run_batch_job", "cron", hour=3, args=["shop-us", "deleted"],
                    id="batch:shop-us:deleted", jobstore="batch")
    earlier.start(paused=True)
    earlier.shutdown(wait=False)
    scheduler = BackgroundScheduler(timezone="UTC")
    wanted = schedule_batch_jobs(scheduler, runtime)
    scheduler.start(paused=True)
    try:
        removed = prune_batch_jobs(scheduler, wanted)
        [job] = scheduler.get_jobs(jobstore="batch")
        with runtime.engine.connect() as connection:
            rows = connection.execute(text("SELECT id, next_run_time FROM apscheduler_jobs")).all()
    finally:
        scheduler.shutdown(wait=False)
    assert wanted == {"batch:shop-us:lapsed"} and removed == 1
    assert [row[0] for row in rows] == ["batch:shop-us:lapsed"]
    # Stored with APScheduler's own schema: the next run as a UTC timestamp, at 10:00 New York time.
    next_run = datetime.fromtimestamp(rows[0][1], tz=timezone.utc)
    assert next_run.astimezone(job.trigger.timezone).hour == 10 and next_run.minute == 0

    # The stored job runs the batch for the minute it wakes in.
    clock.set(datetime(2026, 11, 20, 15, 0, 7, tzinfo=timezone.utc))
    run_batch_job("shop-us", "lapsed")
    with runtime.factory() as session:
        [run] = session.scalars(select(BatchRun)).all()
        enrolled = session.scalars(select(Enrollment).where(Enrollment.campaign == "lapsed")).all()
    assert run.fire_time == datetime(2026, 11, 20, 15, 0, tzinfo=timezone.utc) and len(enrolled) == 2
