"""At most once under crashes: a real `outbound worker` process is SIGKILLed mid-batch, again and again.

Each round: messages are due, the fake Twilio answers slowly, the worker is killed after a random
number of requests, a fresh worker finishes the rest, housekeeping expires what was in flight. Then
every message is in exactly one state and the provider saw each at most once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from outbound.db.models import Message, MessageTransition
from outbound.db.session import transaction
from outbound.dispatch.record import expire_sending
from outbound.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeProviderServer

from helpers.waiting import wait_until

ROUNDS = 10
PER_ROUND = 12
OUTBOUND = Path(sys.executable).parent / "outbound"


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
            "OUTBOUND_DISPATCH_BATCH_SIZE": "4",
            "OUTBOUND_SMS_RATE_PER_SECOND": "0",
        }
    )
    return env


def _start(env):
    return subprocess.Popen(
        [str(OUTBOUND), "worker", "--interval", "0.02"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _kill(process):
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_a_worker_killed_mid_batch_never_causes_a_second_send_and_loses_no_message(world, runtime, db_url):
    rng = random.Random(20261122)
    tenant = world.tenant()
    left_unknown = 0
    with FakeProviderServer() as fake:
        env = _env(db_url, runtime.settings.definitions, fake)
        for round_ in range(ROUNDS):
            fake.reset()
            for i in range(PER_ROUND):
                external = f"r{round_}-{i}"
                world.contact(tenant, external, phone=f"+1202555{round_:02d}{i:02d}")
                world.event(
                    tenant, "shipping_delayed", external, {"order_id": f"o-{external}", "new_eta": "2026-11-25"}
                )
            with transaction(runtime.factory) as session:
                # Due now on the workers' wall clock.
                session.execute(
                    update(Message)
                    .where(Message.status == "scheduled")
                    .values(due_at=datetime.now(UTC) - timedelta(minutes=1))
                )
            fake.fail_next("twilio", delay=0.04, times=PER_ROUND)
            kill_after = rng.randint(1, PER_ROUND - 1)

            first = _start(env)
            wait_until(lambda kill_after=kill_after: len(fake.attempts) >= kill_after, 20, "the worker's sends")
            _kill(first)
            second = _start(env)
            try:
                wait_until(lambda: not world.messages(status="scheduled"), 20, "the worker to claim the batch")
            finally:
                _kill(second)
            with transaction(runtime.factory) as session:
                expire_sending(session, datetime.now(UTC) + timedelta(hours=1), timedelta(minutes=15))

            left_unknown += _check_round(world, runtime, fake, round_)
    # The kills did land mid-batch: some sends were in flight and are now `unknown`, not re-sent.
    assert left_unknown > 0


def _check_round(world, runtime, fake, round_):
    messages = [m for m in world.messages() if m.body and f"o-r{round_}-" in m.body]
    assert len(messages) == PER_ROUND, "a message was lost"
    seen = Counter(r["body"] for r in fake.accepted("twilio"))
    # A worker killed while writing its request leaves a truncated one, which the provider refuses.
    tried = Counter(
        a["fields"]["Body"] for a in fake.attempts if a["service"] == "twilio" and a["fields"] and "Body" in a["fields"]
    )
    assert set(tried.values()) == {1}, f"round {round_}: a message reached the provider twice: {tried}"
    with runtime.factory() as session:
        for message in messages:
            trail = [
                t.to_status
                for t in session.scalars(
                    select(MessageTransition)
                    .where(MessageTransition.message_id == message.id)
                    .order_by(MessageTransition.id)
                )
            ]
            assert trail.count("sending") == 1 and trail[-1] == message.status
            assert message.status in ("sent", "unknown"), (round_, message.id, trail)
            if message.status == "sent":
                [request] = [r for r in fake.accepted("twilio") if r["body"] == message.body]
                assert request["provider_id"] == message.provider_id and seen[message.body] == 1
    return sum(m.status == "unknown" for m in messages)
