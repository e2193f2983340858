"""Many worker processes and two schedulers on one database: every message is sent exactly once."""

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from outbound.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeProviderServer

SCHEDULER = """
import time
from outbound.bootstrap import build
from outbound.jobs.scheduler import start_scheduler
runtime = build()
scheduler = start_scheduler(runtime)
print("leader" if scheduler.leadership.acquire() else "follower", flush=True)
time.sleep(600)
"""


def _why_not_sent(world) -> Counter:
    """(status, rule, reason) of the last step of each message that did not end `sent`: a failure names its cause."""
    from sqlalchemy import select

    from outbound.db.models import Message, MessageTransition

    with world.runtime.factory() as session:
        rows = session.execute(
            select(Message.id, Message.status, MessageTransition.rule, MessageTransition.reason)
            .join(MessageTransition, MessageTransition.message_id == Message.id)
            .where(Message.status != "sent")
            .order_by(MessageTransition.id)
        ).all()
    last = {row.id: (row.status, row.rule, row.reason) for row in rows}
    return Counter(last.values())


def _env(db_url, definitions, fake):
    env = dict(os.environ)
    env.update(
        {
            "OUTBOUND_DATABASE_URL": db_url,
            "OUTBOUND_DEFINITIONS": str(definitions),
            "OUTBOUND_TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
            "OUTBOUND_TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
            "OUTBOUND_TWILIO_FROM_NUMBER": "+12155550123",
            "OUTBOUND_TWILIO_API_BASE": fake.url,
            "OUTBOUND_DISPATCH_INTERVAL_SECONDS": "0.1",
            "OUTBOUND_DISPATCH_BATCH_SIZE": "25",
            "OUTBOUND_SMS_RATE_PER_SECOND": "100000",
        }
    )
    return env


def test_four_workers_and_two_schedulers_send_every_message_exactly_once(world, runtime, tmp_path, db_url):
    tenant = world.tenant()
    count = 400
    for i in range(count):
        world.contact(tenant, f"c{i}", phone=f"+1202555{i:04d}")
        world.event(tenant, "shipping_delayed", f"c{i}", {"order_id": f"o-{i}", "new_eta": "2026-11-25"})
    outbound = Path(sys.executable).parent / "outbound"
    with FakeProviderServer() as fake:
        env = _env(db_url, runtime.settings.definitions, fake)
        processes = [
            subprocess.Popen(
                [str(outbound), "worker", "--interval", "0.05"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for _ in range(4)
        ]
        processes += [
            subprocess.Popen(
                [sys.executable, "-c", SCHEDULER], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if all(m.status not in ("scheduled", "sending") for m in world.messages()):
                    break
                assert all(p.poll() is None for p in processes), [p.stderr.read() for p in processes if p.poll()]
                time.sleep(0.2)
            roles = sorted(p.stdout.readline().strip() for p in processes[4:])
        finally:
            for process in processes:
                process.kill()
                process.wait()
        seen = Counter(request["body"] for request in fake.accepted("twilio"))
    statuses = Counter(m.status for m in world.messages())
    assert statuses == {"sent": count}, (statuses, _why_not_sent(world), Counter(a["outcome"] for a in fake.attempts))
    assert len(seen) == count and set(seen.values()) == {1}
    assert roles == ["follower", "leader"]
