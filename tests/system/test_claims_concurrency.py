"""Many agents claiming at once never get the same callback task (threads on the real database)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from outbound.db.models import Agent, CallbackAttempt, CallbackTask, Contact, DncImport, Tenant
from outbound.db.session import transaction
from outbound.engagement.callback_outcomes import record_outcome
from outbound.engagement.callback_queue import claim_next
from outbound.tenancy.tenants import create_tenant

THREADS, CLAIMS_EACH, TASKS = 8, 50, 300


def _setup(factory, clock, agents: int):
    with transaction(factory) as session:
        tenant = create_tenant(
            session,
            clock,
            "maple",
            jurisdiction="US",
            timezone="America/New_York",
            locale="en",
            settings={"support_contact": "help@maple.example", "postal_address": "1 Main St"},
        )
        session.add(DncImport(tenant_id=tenant.id, source="registry", list_date=clock.now(), imported_at=clock.now()))
        for n in range(agents):
            # No password: these accounts only claim, they never log in (a malformed hash verifies nothing).
            session.add(
                Agent(
                    tenant_id=tenant.id,
                    username=f"agent{n}",
                    name=f"Agent {n}",
                    password_hash="-",
                    role="agent",
                    created_at=clock.now(),
                )
            )
        for n in range(TASKS):
            contact = Contact(
                tenant_id=tenant.id,
                external_id=f"c{n}",
                phone=f"+1212555{n:04d}",
                timezone="America/New_York",
                attributes={},
                created_at=clock.now(),
                updated_at=clock.now(),
            )
            session.add(contact)
            session.flush()
            session.add(
                CallbackTask(
                    tenant_id=tenant.id,
                    contact_id=contact.id,
                    campaign="lead",
                    reason="call",
                    priority=n % 5,
                    status="open",
                    due_at=clock.now() - timedelta(minutes=n % 7),
                    created_at=clock.now(),
                )
            )
    return tenant.id


def _in_threads(count, work):
    start, errors = threading.Barrier(count), []

    def run(n):
        try:
            start.wait()
            work(n)
        except BaseException as error:  # reported to the test below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_eight_agents_making_fifty_claims_each_never_get_the_same_task(factory, clock):
    tenant_id = _setup(factory, clock, THREADS)
    handed_out: list[tuple[int, int]] = []
    lock = threading.Lock()

    def agent_works(n):
        for _ in range(CLAIMS_EACH):
            with transaction(factory) as session:
                tenant = session.get(Tenant, tenant_id)
                agent = session.scalar(select(Agent).where(Agent.username == f"agent{n}"))
                task = claim_next(session, tenant, agent, clock.now())
                if task is None:
                    continue
                with lock:
                    handed_out.append((task.id, agent.id))
            with transaction(factory) as session:
                record_outcome(session, session.get(Tenant, tenant_id), agent, task.id, "reached", now=clock.now())

    _in_threads(THREADS, agent_works)
    claimed = Counter(task_id for task_id, _ in handed_out)
    assert max(claimed.values()) == 1
    assert len(claimed) == TASKS
    with factory() as session:
        per_task = Counter(session.scalars(select(CallbackAttempt.task_id)))
        assert len(per_task) == TASKS and set(per_task.values()) == {1}
        assert session.scalar(select(func.count()).where(CallbackTask.status != "closed")) == 0


def test_agents_claiming_the_last_task_at_the_same_moment_leave_exactly_one_holder(factory, clock):
    tenant_id = _setup(factory, clock, THREADS)
    with transaction(factory) as session:
        for task in session.scalars(select(CallbackTask).where(CallbackTask.id > 1)):
            task.status = "closed"
    winners = []

    def claim(n):
        with transaction(factory) as session:
            agent = session.scalar(select(Agent).where(Agent.username == f"agent{n}"))
            task = claim_next(session, session.get(Tenant, tenant_id), agent, clock.now())
            if task is not None:
                winners.append((task.id, agent.id))

    _in_threads(THREADS, claim)
    assert len(winners) == 1
    with factory() as session:
        task = session.get(CallbackTask, 1)
        assert (task.status, task.claimed_by) == ("claimed", winners[0][1])


def _agent_process(url: str, tenant_id: int, username: str, now, start, results) -> None:
    """One agent in its own process with its own engine: claim and close tasks until none is left."""
    from outbound.db.session import make_engine, session_factory

    engine = make_engine(url)
    factory = session_factory(engine)
    mine = []
    start.wait()
    while True:
        with transaction(factory) as session:
            tenant = session.get(Tenant, tenant_id)
            agent = session.scalar(select(Agent).where(Agent.username == username))
            task = claim_next(session, tenant, agent, now)
            if task is None:
                break
            mine.append(task.id)
        time.sleep(0.005)  # the call itself, outside any transaction: the others claim meanwhile
        with transaction(factory) as session:
            record_outcome(session, session.get(Tenant, tenant_id), agent, task.id, "reached", now=now)
    engine.dispose()
    results.put((username, mine))


def test_agents_in_separate_processes_never_get_the_same_task(db_url, factory, clock):
    import multiprocessing

    processes_count = 4
    tenant_id = _setup(factory, clock, processes_count)
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(processes_count), context.Queue()
    processes = [
        context.Process(target=_agent_process, args=(db_url, tenant_id, f"agent{n}", clock.now(), start, results))
        for n in range(processes_count)
    ]
    for process in processes:
        process.start()
    handed_out = dict(results.get(timeout=300) for _ in processes)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    claimed = Counter(task_id for tasks in handed_out.values() for task_id in tasks)
    assert len(claimed) == TASKS and max(claimed.values()) == 1
    assert sum(1 for tasks in handed_out.values() if tasks) > 1  # the work really was shared
    with factory() as session:
        assert Counter(session.scalars(select(CallbackAttempt.task_id))) == Counter({task_id: 1 for task_id in claimed})
