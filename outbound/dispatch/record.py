"""Recording the providers' answers: each message handed over becomes sent, failed, scheduled again or unknown.

Sending is at most once: a message the provider may have taken (a timeout, a dropped connection) is
`unknown`, settled by a status callback, never sent again blindly; `expire_sending` does the same for
messages whose answer was never recorded (a worker that died mid-send).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from outbound.db import dispatch as store
from outbound.db.messages import ClaimedMessage, move, record_transitions, transition, write_changes
from outbound.db.suppressions import suppress
from outbound.definitions import Definitions
from outbound.delivery.status import MAX_ATTEMPTS, SUPPRESSING_CODES, attach_pending, retry_delay
from outbound.dispatch.report import TickReport
from outbound.enrollment.fallback import schedule_fallback, undeliverable
from outbound.providers import PermanentProviderError, ProviderError
from outbound.vocabulary import MessageStatus, Rule, Source


def record_results(
    session: Session,
    results,
    report: TickReport,
    ours: dict[int, ClaimedMessage],
    handed_at: datetime,
    now: datetime,
    *,
    definitions: Definitions,
    rng: random.Random,
) -> None:
    """Record the providers' answers to a group handed over at `handed_at`: (message id, result or error) pairs.

    `ours` are the group's rows as the claim left them; counts go into `report`.
    """
    # The rows as this worker left them (`sending`, stamped when handed over) are the group's own objects;
    # only those a status callback moved meanwhile are read again, whole.
    ids = [r[0] for r in results]
    moved = [
        row.id
        for row in store.lock_handed_over(session, ids)
        if row.status != MessageStatus.SENDING or row.updated_at != handed_at
    ]
    messages = {i: ours[i] for i in ids}
    if moved:
        messages.update((m.id, m) for m in store.claimed_again(session, moved))
    steps: list[dict[str, Any]] = []
    sent: list[ClaimedMessage] = []
    for message_id, result in results:
        message = messages[message_id]
        failed = isinstance(result, ProviderError)
        if message.status != MessageStatus.SENDING and (
            message.status != MessageStatus.UNKNOWN or (failed and result.ambiguous)
        ):
            # A status callback got here first (delivered, or back to scheduled): keep what it recorded.
            if not failed:
                message.provider_id = message.provider_id or result.provider_id
                message.sent_at = message.sent_at or now
                report.sent += 1
            continue
        if not failed:
            message.provider_id, message.sent_at = result.provider_id, now
            steps.append(
                move(
                    message,
                    MessageStatus.SENT,
                    at=now,
                    source=Source.WORKER,
                    rule=message.rule,
                    reason=message.reason,
                    detail={"provider": result.provider, "provider_id": result.provider_id},
                )
            )
            sent.append(message)
            report.sent += 1
        elif result.ambiguous:
            # The provider may have taken it (timeout, dropped connection): never re-send blindly.
            steps.append(
                move(
                    message,
                    MessageStatus.UNKNOWN,
                    at=now,
                    source=Source.WORKER,
                    rule=Rule.PROVIDER_AMBIGUOUS,
                    reason=f"no clear answer from the provider, not re-sent; a status callback settles it: {result}",
                    detail={"code": result.code},
                )
            )
            report.failed += 1
        elif isinstance(result, PermanentProviderError) or message.attempts >= MAX_ATTEMPTS:
            steps.append(_fail(session, message, result, now, definitions))
            report.failed += 1
        else:
            message.error_code = result.code
            message.due_at = now + retry_delay(message.attempts, rng, result.retry_after)
            steps.append(
                move(
                    message,
                    MessageStatus.SCHEDULED,
                    at=now,
                    source=Source.WORKER,
                    rule=Rule.PROVIDER_RETRY,
                    reason=f"transient provider error, attempt {message.attempts}: {result}",
                    detail={"code": result.code, "retry_at": message.due_at.isoformat()},
                )
            )
            report.retried += 1
    # The worker's own steps first, so callbacks applied below come after `sent` in each message's trail.
    record_transitions(session, steps)
    # Callbacks that arrived before this answer was recorded are waiting, unattached.
    attach_pending(session, sent, now, rng)
    write_changes(session, list(messages.values()))


def _fail(
    session: Session, message: ClaimedMessage, error: ProviderError, now: datetime, definitions: Definitions
) -> dict[str, Any]:
    """Fail a message the provider refused for good; a fallback on another channel, a suppression by the code."""
    message.error_code = error.code
    step = move(
        message,
        MessageStatus.FAILED,
        at=now,
        source=Source.WORKER,
        rule=Rule.PROVIDER,
        reason=f"provider refused{' (code ' + error.code + ')' if error.code else ''}: {error}",
        detail={"code": error.code},
    )
    if undeliverable(Rule.PROVIDER, code=error.code):
        schedule_fallback(session, message, definitions, now, f"provider error {error.code}")
    reason = SUPPRESSING_CODES.get(error.code or "")
    if reason and message.to_address:
        suppress(
            session,
            message.tenant_id,
            message.channel,
            message.to_address,
            reason=reason,
            source=f"provider error {error.code}",
            at=now,
        )
    return step


def expire_sending(session: Session, now: datetime, older_than: timedelta) -> int:
    """`sending` rows older than `older_than` become `unknown`: reconciled by callbacks, never re-sent."""
    count = 0
    for message in store.stale_sending(session, now - older_than):
        transition(
            session,
            message,
            MessageStatus.UNKNOWN,
            at=now,
            source=Source.WORKER,
            rule=Rule.SENDING_EXPIRED,
            reason=f"no provider answer recorded within {older_than}; not re-sent",
        )
        count += 1
    return count
