"""The login store: failed attempts are kept by hash only, and forgotten once past any window."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from outbound.db.logins import recent_failures, record_failure
from outbound.db.models import AuthFailure
from outbound.db.session import transaction
from outbound.jobs.duties import DUTIES


def test_failures_are_counted_by_hash_and_the_hourly_duty_forgets_the_old_ones(runtime, clock):
    with transaction(runtime.factory) as session:
        record_failure(session, "account", "maple\x1falice", clock.now() - timedelta(days=2))
        record_failure(session, "account", "maple\x1falice", clock.now())
    with runtime.factory() as session:
        hashes = session.scalars(select(AuthFailure.key_hash)).all()
        assert len(hashes) == 2 and all("alice" not in h for h in hashes)
    [duty] = [d for d in DUTIES if d.name == "forget_login_failures"]
    duty.run(runtime)
    with runtime.factory() as session:
        assert recent_failures(session, "account", "maple\x1falice", clock.now() - timedelta(days=30)) == 1
