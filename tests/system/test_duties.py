"""The duties are listed once: the scheduler and the simulated clock run the same list, and both finish enrollments."""

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from outbound.db.models import Contact, Enrollment, Message
from outbound.db.session import make_engine, session_factory
from outbound.jobs.duties import DUTIES
from outbound.jobs.scheduler import start_scheduler

from helpers.cli import US_SHOP, invoke


def _invoke(*args, env):
    result = invoke(*args, env=env)
    assert result.exit_code in (0, 2), result.output  # 2: some lines of a file refused
    return result


def test_outbound_run_past_the_last_step_completes_the_enrollments(db_url, tmp_path):
    from helpers.definitions import write_definitions

    env = {"OUTBOUND_DEFINITIONS": str(write_definitions(tmp_path / "defs"))}
    _invoke(*US_SHOP, "--db", db_url, env=env)
    consents = [
        {
            "channel": channel,
            "purpose": "marketing",
            "granted": True,
            "at": "2026-01-05T09:00:00-05:00",
            "source": "checkout form",
            "text": "Yes, send me offers",
        }
        for channel in ("email", "sms")
    ]
    contacts = tmp_path / "contacts.jsonl"
    contacts.write_text(
        json.dumps({"external_id": "c1", "email": "a@example.com", "phone": "+12025550143", "consents": consents})
        + "\n"
        + json.dumps({"external_id": "c2", "email": "b@example.com"})
        + "\n"
    )
    _invoke("contacts", "import", contacts, "--db", db_url, env=env)
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"e{i}",
                    "type": "cart_abandoned",
                    "occurred_at": "2026-11-20T10:00:00-05:00",
                    "contact": {"external_id": contact},
                    "data": {"cart_id": f"k{i}", "value": 150},
                }
            )
            + "\n"
            for i, contact in enumerate(("c1", "c2"))
        )
    )
    _invoke("events", "import", events, "--db", db_url, env=env)

    # Past the cart campaign's last step (24 h), quiet hours included.
    until = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    _invoke("run", "--until", until, "--db", db_url, env=env)

    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            statuses = {
                m.step: m.status
                for m in session.scalars(
                    select(Message).join(Contact, Contact.id == Message.contact_id).where(Contact.external_id == "c1")
                )
            }
            enrollments = session.execute(select(Enrollment.status, Enrollment.end_reason)).all()
    finally:
        engine.dispose()
    assert statuses == {"email_1h": "sent", "sms_24h": "sent"}
    # c1's steps were sent and c2's blocked: nothing is left to send, so neither enrollment is still active.
    assert sorted(enrollments) == [("completed", "all steps done")] * 2


def test_the_scheduler_runs_exactly_the_listed_duties(runtime):
    scheduler = start_scheduler(runtime)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs(jobstore="default")}
    finally:
        scheduler.shutdown(wait=False)
        scheduler.leadership.release()
    interval_duties = {duty.name: duty for duty in DUTIES if duty.install is None}
    assert set(jobs) == set(interval_duties)
    for name, duty in interval_duties.items():
        assert jobs[name].trigger.interval == duty.every(runtime.settings), name
