"""Throttling failed logins: per account and per address, counted in the database so every server
process sees the same counts. Past the limit, further attempts are refused (429) until the window
has passed, whether or not the password would be right; a successful login clears the account's count.

The limits follow OWASP's authentication guidance: few enough failures that guessing a password is
slow, enough that a person mistyping is never locked out for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from outbound.db import logins as store

WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class Limit:
    scope: str
    failures: int  # in WINDOW


ACCOUNT = Limit("account", 5)  # one tenant's username
ADDRESS = Limit("address", 20)  # one client address, whatever accounts it tries


def account_key(tenant: str, username: str) -> str:
    return f"{tenant.strip().lower()}\x1f{username.strip().lower()}"


def blocked_for(session: Session, account: str, address: str, now: datetime) -> timedelta | None:
    """How long to refuse further attempts on this account or from this address; None: go ahead."""
    since = now - WINDOW
    for limit, key in ((ACCOUNT, account), (ADDRESS, address)):
        if store.recent_failures(session, limit.scope, key, since) >= limit.failures:
            return WINDOW
    return None


def count_failure(session: Session, account: str, address: str, now: datetime) -> None:
    store.record_failure(session, ACCOUNT.scope, account, now)
    store.record_failure(session, ADDRESS.scope, address, now)


def count_success(session: Session, account: str) -> None:
    store.clear_failures(session, ACCOUNT.scope, account)
