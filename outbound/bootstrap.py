"""One place builds the engine from settings: database, definitions, providers, clock, dispatcher."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from outbound.clock import Clock, SystemClock
from outbound.config import Settings
from outbound.db.local_secret import kept_secret
from outbound.db.models import Contact, Event, Tenant
from outbound.db.session import make_engine, session_factory, transaction
from outbound.definitions import Definitions, load_definitions
from outbound.dispatch.dispatcher import Dispatcher
from outbound.enrollment.triggers import EventOutcome, process_event, process_events
from outbound.errors import ConfigurationError
from outbound.providers import Provider, build_providers
from outbound.rendering.links import LinkSigner
from outbound.signing import Keyring, WeakSecret
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
        self.dispatcher = Dispatcher(
            self.factory, self.definitions, self.providers, self.clock, self.settings, lambda: self.signer
        )

    @cached_property
    def keyring(self) -> Keyring:
        """What signs links and sessions (`keyring_for`), worked out on first use."""
        return keyring_for(self.settings, self.factory, self.clock)

    @cached_property
    def signer(self) -> LinkSigner:
        """What signs the links messages carry: the public base URL and the keyring."""
        return LinkSigner(self.settings.base_url, self.keyring)

    @property
    def on_event(self) -> TriggerHook:
        """The trigger hook given to ingest: exits and enrollments for stored events."""
        return TriggerHook(self)

    def close(self) -> None:
        self.engine.dispose()


def keyring_for(settings: Settings, factory: sessionmaker[Session], clock: Clock) -> Keyring:
    """The keyring of `OUTBOUND_SECRET_KEY` (and its fallbacks). Without one, a local install (links to a
    loopback address) makes a secret and keeps it in its database, so its links stay valid across
    restarts; any other install is refused with what to set, since links and sessions signed with a key
    nobody chose could be forged by whoever reads it."""
    fallbacks = settings.secret_key_fallbacks.get_secret_value()
    previous = tuple(part.strip() for part in fallbacks.split(",") if part.strip())
    try:
        if settings.secret_key:
            return Keyring(settings.secret_key.get_secret_value(), previous)
        host = urlsplit(settings.base_url).hostname or ""
        if not is_loopback(host):
            raise ConfigurationError(
                f"OUTBOUND_SECRET_KEY is not set and links go to {host or settings.base_url!r}, not to this machine. "
                "Set OUTBOUND_SECRET_KEY to at least 32 random characters, for example the output of "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))', and keep it: links already sent "
                "and agents' sessions depend on it."
            )
        with transaction(factory) as session:
            return Keyring(kept_secret(session, secrets.token_urlsafe(48), clock.now()), previous)
    except WeakSecret as error:
        raise ConfigurationError(str(error)) from None


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (localhost, 127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
