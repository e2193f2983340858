"""Batch win-back: an audience rule on a cron schedule, fired on the simulated clock and by APScheduler from our database."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from outbound.db.models import BatchRun, Enrollment, OfferCode, Tenant
from outbound.db.session import transaction
from outbound.enrollment.audience_runs import fire_batch
from outbound.enrollment.campaign_state import pause
from outbound.jobs.batch_campaigns import JOB_REFERENCE, prune_batch_jobs, run_batch_job, schedule_batch_jobs

from helpers.campaigns import WINBACK, campaigns, make_world_fixture  # noqa: F401 - fixture

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
        world.contact(
            tenant,
            name,
            email=f"{name}@example.com",
            phone="+1202555" + str(1000 + len(name) * 7 + days[0] // 10),
            consents=[("email", "marketing"), ("sms", "marketing")],
        )
        for n, ago in enumerate(days):
            world.event(
                tenant,
                "order_placed",
                name,
                {"order_id": f"{name}-{n}", "value": 50},
                occurred_at=world.clock.now() - timedelta(days=ago),
            )
    return world, tenant


def test_a_cron_campaign_fires_at_its_local_times_on_the_simulated_clock(make_world, clock):
    world, tenant = _lapsed_shop(make_world)
    world.run(clock.now() + timedelta(days=3))
    with world.runtime.factory() as session:
        runs = session.execute(
            select(BatchRun.fire_time, BatchRun.audience, BatchRun.enrolled).order_by(BatchRun.fire_time)
        ).all()
    day = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
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
    world.run(datetime(2026, 11, 20, 16, 0, tzinfo=UTC))
    world.event(tenant, "order_placed", "lapsed-1", {"order_id": "back", "value": 80})
    [email, sms] = [
        m for m in world.messages(campaign="lapsed") if m.contact_id == world.messages(campaign="lapsed")[0].contact_id
    ]
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


def test_a_job_stored_under_an_earlier_module_path_is_rewritten_when_the_scheduler_starts(make_world):
    import pickle

    from apscheduler.schedulers.background import BackgroundScheduler

    world, _ = _lapsed_shop(make_world)
    runtime = world.runtime
    earlier = BackgroundScheduler(timezone="UTC")
    schedule_batch_jobs(earlier, runtime)
    earlier.start(paused=True)
    earlier.shutdown(wait=False)
    # As a database written before the job's module moved holds it: a reference that no longer imports.
    with runtime.engine.begin() as connection:
        [state] = connection.execute(text("SELECT job_state FROM apscheduler_jobs")).scalars()
        old = pickle.loads(state)
        old["func"] = "outbound.batch:run_batch_job"
        connection.execute(text("UPDATE apscheduler_jobs SET job_state = :state"), {"state": pickle.dumps(old)})
    scheduler = BackgroundScheduler(timezone="UTC")
    wanted = schedule_batch_jobs(scheduler, runtime)
    scheduler.start(paused=True)
    try:
        removed = prune_batch_jobs(scheduler, wanted)
        [job] = scheduler.get_jobs(jobstore="batch")
    finally:
        scheduler.shutdown(wait=False)
    assert removed == 0 and job.id == "batch:shop-us:lapsed" and job.func_ref == JOB_REFERENCE
    with runtime.engine.connect() as connection:
        [state] = connection.execute(text("SELECT job_state FROM apscheduler_jobs")).scalars()
    assert pickle.loads(state)["func"] == JOB_REFERENCE


def test_apscheduler_keeps_one_cron_job_per_tenant_and_campaign_in_our_database(make_world, clock):
    from apscheduler.schedulers.background import BackgroundScheduler

    world, tenant = _lapsed_shop(make_world)
    runtime = world.runtime
    # A job left in the store by an earlier start, for a campaign that has since been deleted.
    earlier = BackgroundScheduler(timezone="UTC")
    schedule_batch_jobs(earlier, runtime)
    earlier.add_job(
        JOB_REFERENCE,
        "cron",
        hour=3,
        args=["shop-us", "deleted"],
        id="batch:shop-us:deleted",
        jobstore="batch",
    )
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
    next_run = datetime.fromtimestamp(rows[0][1], tz=UTC)
    assert next_run.astimezone(job.trigger.timezone).hour == 10 and next_run.minute == 0

    # The stored job runs the batch for the minute it wakes in.
    clock.set(datetime(2026, 11, 20, 15, 0, 7, tzinfo=UTC))
    run_batch_job("shop-us", "lapsed")
    with runtime.factory() as session:
        [run] = session.scalars(select(BatchRun)).all()
        enrolled = session.scalars(select(Enrollment).where(Enrollment.campaign == "lapsed")).all()
    assert run.fire_time == datetime(2026, 11, 20, 15, 0, tzinfo=UTC) and len(enrolled) == 2


# -- the set-based run writes what `enroll` writes, a chunk of contacts at a time ------------------

SPLIT = """
name: split
kind: winback
purpose: marketing
schedule:
  cron: "0 10 * * *"
audience: 'contact.email'
enrollment:
  key: "contact.locale"
  window: 30d
holdout: 0.3
callback:
  reason: "Lapsed: call if the email does nothing"
  priority: 3
  delay: 1d
steps:
  - id: email_now
    channel: email
    variants:
      - id: a
        template: offer_note
      - id: b
        template: cart_note
  - id: sms_2d
    channel: sms
    delay: 2d
    template: offer_note
    when: 'contact.locale == "ko"'
"""


def _split_shop(make_world, count=30, slug="shop-us"):
    world = make_world(campaigns(split=SPLIT))
    tenant = world.tenant(slug)
    for n in range(count):
        world.contact(tenant, f"s{n}", email=f"s{n}@example.com", locale="ko" if n % 3 == 0 else "en")
    world.contact(tenant, "no-email")  # not in the audience
    return world, tenant


def _written(session):
    """Every row an enrollment writes, without ids or codes, keyed by the contact's external id."""
    from outbound.db.models import CallbackTask, Contact, Message, MessageTransition

    names = dict(session.execute(select(Contact.id, Contact.external_id)).all())
    enrollments = sorted(
        (
            names[e.contact_id],
            e.campaign,
            e.dedupe_key,
            e.trigger,
            e.event_id,
            e.status,
            e.enrolled_at,
            e.ended_at,
            e.end_reason,
            e.holdout,
        )
        for e in session.scalars(select(Enrollment))
    )
    messages = {m.id: m for m in session.scalars(select(Message))}
    rows = sorted(
        (
            names[m.contact_id],
            m.enrollment_id is not None,
            m.step,
            m.channel,
            m.purpose,
            m.template,
            m.variant,
            m.status,
            m.due_at,
            m.created_at,
            m.updated_at,
            m.attempts,
        )
        for m in messages.values()
    )
    trail = sorted(
        (
            names[messages[t.message_id].contact_id],
            messages[t.message_id].step,
            t.from_status,
            t.to_status,
            t.source,
            t.rule,
            t.reason,
            t.detail,
            t.at,
        )
        for t in session.scalars(select(MessageTransition))
    )
    calls = sorted(
        (names[c.contact_id], c.campaign, c.reason, c.priority, c.status, c.due_at, c.created_at)
        for c in session.scalars(select(CallbackTask))
    )
    return enrollments, rows, trail, calls


def _forget_enrollments(session):
    from outbound.db.models import CallbackTask, Message, MessageTransition

    for table in (MessageTransition, Message, CallbackTask, Enrollment, BatchRun):
        session.execute(table.__table__.delete())


def test_a_batch_run_writes_as_sets_exactly_the_rows_the_writer_writes_for_one_contact_at_a_time(
    make_world, clock, monkeypatch
):
    from outbound.db.models import Contact
    from outbound.enrollment import audience_runs as batch
    from outbound.enrollment import writer

    world, tenant = _split_shop(make_world)
    campaign = world.runtime.definitions.campaigns["split"]
    now = clock.now()
    monkeypatch.setattr(writer, "SETS_FROM", 1000)
    with transaction(world.runtime.factory) as session:
        tenant_row = session.get(Tenant, tenant.id)
        ids = campaign.audience.contact_ids(session, tenant.id, now)
        for contact in session.scalars(select(Contact).where(Contact.id.in_(ids)).order_by(Contact.id)):
            # One contact at a time, written as rows.
            writer.enroll(
                session, tenant_row, [writer.candidate(campaign, contact, None, now, "schedule 0 10 * * *")], now
            )
    with world.runtime.factory() as session:
        one_by_one = _written(session)
    with transaction(world.runtime.factory) as session:
        _forget_enrollments(session)
    monkeypatch.setattr(batch, "CHUNK", 7)  # several chunks, the last one short
    monkeypatch.setattr(writer, "SETS_FROM", 1)  # each chunk written as sets
    with transaction(world.runtime.factory) as session:
        run = fire_batch(session, session.get(Tenant, tenant.id), campaign, clock.now(), clock)
    with world.runtime.factory() as session:
        set_based = _written(session)
    enrollments, messages, trail, calls = set_based
    assert set_based == one_by_one
    assert (run.audience, run.enrolled, run.held_out) == (30, 30, sum(e[-1] for e in enrollments))
    assert 0 < run.held_out < 30 and {m[6] for m in messages if m[2] == "email_now"} == {"a", "b"}
    assert {m[0] for m in messages if m[2] == "sms_2d"} == {e[0] for e in enrollments if e[2] == "ko" and not e[-1]}
    assert len(trail) == len(messages) and len(calls) == 30 - run.held_out


def test_a_batch_run_skips_contacts_enrolled_within_the_window_in_every_chunk(make_world, clock, monkeypatch):
    from outbound.enrollment import audience_runs as batch

    world, tenant = _split_shop(make_world)
    campaign = world.runtime.definitions.campaigns["split"]
    monkeypatch.setattr(batch, "CHUNK", 4)
    with transaction(world.runtime.factory) as session:
        first = fire_batch(session, session.get(Tenant, tenant.id), campaign, clock.now(), clock)
    clock.advance(timedelta(days=1))
    world.contact(tenant, "newcomer", email="newcomer@example.com")
    with transaction(world.runtime.factory) as session:
        second = fire_batch(session, session.get(Tenant, tenant.id), campaign, clock.now(), clock)
    with world.runtime.factory() as session:
        newcomer = session.scalars(select(Enrollment).where(Enrollment.enrolled_at == clock.now())).all()
    assert (first.audience, first.enrolled, second.audience, second.enrolled) == (30, 30, 31, 1)
    assert len(newcomer) == 1


def test_a_batch_run_issues_the_same_number_of_queries_for_ten_contacts_as_for_a_chunk_full(make_world, clock):
    from sqlalchemy import event

    def statements_for(count):
        world, tenant = _split_shop(make_world, count, slug=f"shop-{count}")
        campaign = world.runtime.definitions.campaigns["split"]
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(world.runtime.engine, "before_cursor_execute", listener)
        try:
            with transaction(world.runtime.factory) as session:
                fire_batch(session, session.get(Tenant, tenant.id), campaign, clock.now(), clock)
        finally:
            event.remove(world.runtime.engine, "before_cursor_execute", listener)
        return len(seen)

    assert statements_for(10) == statements_for(60)


def test_a_batch_run_gives_pool_codes_in_contact_order_then_codes_from_the_pattern(make_world, clock):
    from outbound.db.models import Contact
    from outbound.enrollment.plan import pattern_code

    pooled = LAPSED.replace(
        'pattern: "BACK-{random:6}"', 'pool: [POOL-A, POOL-B, POOL-C]\n  pattern: "BACK-{random:6}"'
    )
    world = make_world(
        campaigns(
            lapsed=pooled.replace(
                'audience: \'count("order_placed") >= 2 and count("order_placed", within="90d") == 0\'',
                "audience: 'contact.email'",
            )
        )
    )
    tenant = world.tenant()
    for n in range(6):
        world.contact(tenant, f"p{n}", email=f"p{n}@example.com", consents=[("email", "marketing")])
    campaign = world.runtime.definitions.campaigns["lapsed"]
    with transaction(world.runtime.factory) as session:
        fire_batch(session, session.get(Tenant, tenant.id), campaign, clock.now(), clock)
    world.runtime.dispatcher.drain()
    with world.runtime.factory() as session:
        codes = session.execute(
            select(Contact.external_id, OfferCode.code, OfferCode.assigned_at)
            .join(Contact, Contact.id == OfferCode.contact_id)
            .order_by(Contact.id)
        ).all()
    assert [code for _, code, _ in codes[:3]] == ["POOL-A", "POOL-B", "POOL-C"]
    assert all(code.startswith("BACK-") and len(code) == 11 for _, code, _ in codes[3:]) and len(codes) == 6
    assert len({code for _, code, _ in codes}) == 6 and {at for _, _, at in codes} == {clock.now()}
    bodies = {m.to_address: m.body for m in world.messages(campaign="lapsed", channel="email")}
    assert all(f"Code {code}." in bodies[f"{name}@example.com"] for name, code, _ in codes)
    assert pattern_code("BACK-{random:6}", "seed", 0) == pattern_code("BACK-{random:6}", "seed", 0)
    assert pattern_code("BACK-{random:6}", "seed", 0) != pattern_code("BACK-{random:6}", "seed", 1)


# -- the writer's own parts: the holdout and codes by hash, codes redrawn by the database, one SQL text -----


def test_the_batch_holdout_test_answers_exactly_as_in_holdout():
    from outbound.enrollment.plan import holdout_test, in_holdout

    names = [f"cust-{n}" for n in range(3000)] + ["고객-7", "ünïcode", "", "a\x1fb"]
    for share in (0.0, 0.1, 0.2, 0.5, 1.0):
        held_out = holdout_test("shop-kr", "lapsed", share)
        assert [held_out(name) for name in names] == [in_holdout("shop-kr", "lapsed", name, share) for name in names]


def test_codes_drawn_for_a_whole_chunk_are_the_codes_pattern_code_draws():
    from outbound.enrollment.plan import pattern_code, pattern_codes

    seeds = {n: f"shop:lapsed:c{n}:{n + 7}" for n in range(500)}
    for pattern in ("BACK-{random:4}", "{random:6}", "X-{random:16}-Y"):
        for draw in (0, 3):
            assert pattern_codes(pattern, seeds, draw) == {
                n: pattern_code(pattern, seed, draw) for n, seed in seeds.items()
            }


def _colliding_seeds(pattern):
    """Two seeds whose first draws are the same code (a birthday search over a short pattern)."""
    from outbound.enrollment.plan import pattern_code

    first: dict[str, str] = {}
    for n in range(100_000):
        seed = f"seed-{n}"
        code = pattern_code(pattern, seed, 0)
        if code in first:
            return first[code], seed
        first[code] = seed
    raise AssertionError("no collision found")


def test_a_code_taken_before_or_drawn_twice_in_a_round_is_redrawn_and_eight_taken_draws_give_up(make_world, clock):
    from outbound.db.models import Contact
    from outbound.enrollment.plan import CODE_DRAWS, pattern_code
    from outbound.enrollment.writer import draw_pattern_codes

    pattern = "T-{random:4}"
    world = make_world(campaigns(lapsed=LAPSED.replace("BACK-{random:6}", pattern)))
    tenant = world.tenant()
    for n in range(5):
        world.contact(tenant, f"t{n}", email=f"t{n}@example.com")
    campaign = world.runtime.definitions.campaigns["lapsed"]
    twin_a, twin_b = _colliding_seeds(pattern)
    with transaction(world.runtime.factory) as session:
        ids = list(session.scalars(select(Contact.id).order_by(Contact.id)))
        seeds = dict(enumerate([twin_a, twin_b, "plain", "taken-once", "always-taken"]))
        # Codes given before (to nobody yet, as pool codes are): the first draw of one contact, all of another's.
        taken = [pattern_code(pattern, "taken-once", 0)] + [
            pattern_code(pattern, "always-taken", d) for d in range(CODE_DRAWS)
        ]
        session.add_all(OfferCode(tenant_id=tenant.id, campaign="lapsed", code=code) for code in taken)
        session.flush()
        left = draw_pattern_codes(session, tenant.id, campaign.name, pattern, seeds, ids, clock.now())
    with world.runtime.factory() as session:
        given = dict(
            session.execute(select(OfferCode.contact_id, OfferCode.code).where(OfferCode.contact_id.is_not(None))).all()
        )
    assert given[ids[2]] == pattern_code(pattern, "plain", 0)
    assert given[ids[3]] == pattern_code(pattern, "taken-once", 1)
    assert ids[4] not in given and left == {4}  # eight draws, all taken: no code
    twins = {given[ids[0]], given[ids[1]]}
    assert pattern_code(pattern, twin_a, 0) in twins and len(twins) == 2  # one keeps the code, the other redraws
    assert len(set(given.values())) == len(given) == 4


def test_every_chunk_of_a_run_sends_the_same_sql_text_whatever_its_ids(make_world, clock, monkeypatch):
    """Ids travel as one parameter: a new SQL text per chunk would fill the driver's statement cache."""
    from sqlalchemy import event

    from outbound.enrollment import audience_runs as batch

    def texts_for(count):
        world, tenant = _split_shop(make_world, count, slug=f"shop-{count}")
        campaign = world.runtime.definitions.campaigns["split"]
        seen = set()
        listener = lambda *args: seen.add(args[2])  # noqa: E731
        event.listen(world.runtime.engine, "before_cursor_execute", listener)
        try:
            with transaction(world.runtime.factory) as session:
                run = fire_batch(session, session.get(Tenant, tenant.id), campaign, clock.now(), clock)
        finally:
            event.remove(world.runtime.engine, "before_cursor_execute", listener)
        assert run.enrolled == count
        return seen

    monkeypatch.setattr(batch, "CHUNK", 4)
    few, many = texts_for(8), texts_for(60)
    assert many == few and len(many) < 25


def test_postgres_plans_the_run_without_jit_and_puts_the_setting_back_after(engine):
    import pytest

    from outbound.db.session import without_jit

    if engine.dialect.name != "postgresql":
        pytest.skip("JIT is PostgreSQL's")
    with engine.begin() as connection:
        before = connection.exec_driver_sql("SHOW jit").scalar()
        with without_jit(connection):
            inside = connection.exec_driver_sql("SHOW jit").scalar()
        after = connection.exec_driver_sql("SHOW jit").scalar()
    assert (inside, after) == ("off", before)


def test_a_list_bound_as_one_parameter_selects_exactly_its_ids_none_or_more_than_sqlite_has_parameters(engine):
    from sqlalchemy import func, literal, union_all

    from outbound.db.bulk_sql import among

    numbers = union_all(*[select(literal(n).label("n")) for n in (3, 5, 8, 13, 40_000)]).subquery()
    with engine.connect() as connection:

        def picked(values):
            return sorted(connection.scalars(select(numbers.c.n).where(among(numbers.c.n, values))))

        assert picked([]) == [] and picked([5, 13, 99]) == [5, 13]
        assert picked(range(40_001)) == [3, 5, 8, 13, 40_000]  # one parameter, not 40,001 of them
        assert connection.scalar(select(func.count()).where(among(literal(7), [7]))) == 1
