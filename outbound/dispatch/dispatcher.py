"""The dispatcher: claim due messages, ask the compliance gate, render, send, record, tick after tick.

Sending is at most once: a message is marked `sending` and committed before the
provider is called, so a worker that dies mid-send leaves `sending` rows that
expire into `unknown` instead of being sent again.

A tick works on one claimed group at once: it reads the messages and what the gate needs with
one query per kind, and writes its decisions back with one INSERT of the group's transitions
and one UPDATE per set of changed columns, never an ORM flush per message. The stages, in order:
`claim` (the due messages, locked), `context` (what the gate and the templates read), `decide`
(the gate; `render` for the allowed), the providers (`outbound.providers.send_all`), `record`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from outbound.clock import Clock
from outbound.config import Settings
from outbound.db.messages import ClaimedMessage
from outbound.db.session import transaction
from outbound.definitions import Definitions
from outbound.dispatch.claim import claim_due_rows
from outbound.dispatch.context import load_context
from outbound.dispatch.decide import decide_group
from outbound.dispatch.ratelimit import SenderLimiter
from outbound.dispatch.record import record_results
from outbound.dispatch.report import TickReport
from outbound.providers import OutgoingMessage, Provider, send_all
from outbound.rendering.links import LinkSigner


@dataclass
class _Claim:
    """A claimed group: its report so far, what goes to providers (None when nothing was claimed),
    the group's rows by id and the time they were handed over (their `updated_at`)."""

    report: TickReport
    outgoing: list[tuple[int, OutgoingMessage]] | None
    ours: dict[int, ClaimedMessage]
    handed_at: datetime


class Dispatcher:
    """Runs dispatch ticks against a database with a set of providers."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        definitions: Definitions,
        providers: dict[str, Provider],
        clock: Clock,
        settings: Settings,
        signer: Callable[[], LinkSigner],
    ) -> None:
        """`signer` gives what signs the messages' links, asked for at the first message rendered (a local
        install reads its secret from its database then)."""
        self.factory, self.definitions, self.providers = factory, definitions, providers
        self.clock, self.settings, self._signer = clock, settings, signer
        self._rng = random.Random()
        self.limiter = SenderLimiter()

    def tick(self) -> TickReport:
        """Claim one group, decide, render and send it."""
        claim = self._claim()
        if claim.outgoing is not None:
            self._record(claim, send_all(self.providers, claim.outgoing))
        return claim.report

    def drain(self) -> TickReport:
        """Tick until nothing is due at the current time; the totals of all ticks.

        Pipelined: while one group is with the providers (network waits, in a thread of its own),
        the next is claimed, decided and rendered; its answers are recorded once that is committed.
        Every message of a group is `sending`, committed, before its group is handed over, as in `tick`.
        """
        total = TickReport()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbound-send") as sender:
            in_flight: tuple[_Claim, Future] | None = None
            while True:
                try:
                    claim = self._claim()
                finally:
                    if in_flight is not None:  # record the group in flight even when the next claim failed
                        self._record(in_flight[0], in_flight[1].result())
                        total.add(in_flight[0].report)
                        in_flight = None
                if claim.outgoing is None:  # nothing was due
                    return total
                in_flight = (claim, sender.submit(send_all, self.providers, claim.outgoing))

    def _claim(self) -> _Claim:
        """Claim, decide and render one group, committed: every message to send is then `sending`."""
        report = TickReport()
        now = self.clock.now()
        signer = self._signer()  # before the claim's transaction: a local install's secret is read in one of its own
        with transaction(self.factory) as session:
            group = claim_due_rows(session, now, self.settings.dispatch_batch_size)
            report.claimed = len(group)
            if not group:
                return _Claim(report, None, {}, now)
            context = load_context(session, group, now, self.definitions.campaigns)
            outgoing = decide_group(
                session,
                group,
                context,
                now,
                report,
                definitions=self.definitions,
                providers=self.providers,
                settings=self.settings,
                signer=signer,
                limiter=self.limiter,
            )
        # Committed: every message to send is now `sending`. Only then may providers be called.
        return _Claim(report, outgoing, {m.id: m for m in group}, now)

    def _record(self, claim: _Claim, results) -> None:
        """Record the providers' answers to a claimed group, in a transaction of its own."""
        with transaction(self.factory) as session:
            record_results(
                session,
                results,
                claim.report,
                claim.ours,
                claim.handed_at,
                self.clock.now(),
                definitions=self.definitions,
                rng=self._rng,
            )
