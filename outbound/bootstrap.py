"""One place builds the engine from settings: database, definitions, providers, clock, dispatcher."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from outbound.clock import Clock, SystemClock
from outbound.config import Settings
from outbound.db.models import Contact, Event, Tenant
from outbound.db.session import make_engine, session_factory
from outbound.definitions import Definitions, load_definitions
from outbound.dispatch.dispatcher import Dispatcher
from outbound.enrollment.triggers import EventOutcome, process_event, process_events
from outbound.providers import Provider, build_providers
from outbound.tenancy.keys import KeyCache

SHIPPED_DEFINITIONS = Path(__file__).resolve().parents[1]


@dataclass
class Runtime:
    """The wired engine: what entry points (CLI, web, scheduler) work with."""

    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    clock: Clock
    definitions: Definitions
    providers: dict[str, Provider]
    # API keys checked once per few seconds, not once per request (outbound.tenancy.keys).
    keys: KeyCache = field(default_factory=KeyCache)
    dispatcher: Dispatcher = field(init=False)
    # When a simulated run last did each duty, by name (outbound.jobs.simulation.run_until).
    duty_runs: dict[str, datetime] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.dispatcher = Dispatcher(self.factory, self.definitions, self.providers, self.clock, self.settings)

    @property
    def on_event(self) -> TriggerHook:
        """The trigger hook given to ingest: exits and enrollments for stored events."""
        return TriggerHook(self)

    def close(self) -> None:
        self.engine.dispose()


@dataclass(frozen=True)
class TriggerHook:
    """Ingest's trigger hook, with the runtime's current definitions and clock.

    Called for one stored event, or through `run` for a run of them at once (one query per run
    rather than per event; see `events.OnEvent`).
    """

    runtime: Runtime

    def __call__(self, session: Session, tenant: Tenant, event: Event, contact: Contact) -> EventOutcome:
        return process_event(session, tenant, event, contact, self.runtime.definitions, self.runtime.clock)

    def run(self, session: Session, tenant: Tenant, stored: Sequence[tuple[Event, Contact]]) -> None:
        process_events(session, tenant, stored, self.runtime.definitions, self.runtime.clock)


def build(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    providers: dict[str, Provider] | None = None,
    definitions: Definitions | None = None,
) -> Runtime:
    """Wire the engine from settings; anything passed in replaces what settings would build."""
    settings = settings or Settings()
    engine = make_engine(settings.database_url)
    return Runtime(
        settings=settings,
        engine=engine,
        factory=session_factory(engine),
        clock=clock or SystemClock(),
        definitions=definitions or load_definitions(settings.definitions),
        providers=providers or build_providers(settings),
    )
