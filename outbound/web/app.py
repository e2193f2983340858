"""Builds the FastAPI application from what the caller wires in: sessions, clock, trigger hook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from outbound.bootstrap import Runtime
from outbound.ingest.events import OnEvent
from outbound.web import agent_pages, api, survey_pages, unsubscribe, webhooks
from outbound.web.auth import install_sessions
from outbound.web.event_writer import EventWriter
from outbound.web.security import KeyFailures, SecurityHeaders, redact_access_log

RUNTIME_HOOK = object()  # create_app's default: the runtime's own trigger hook


def create_app(runtime: Runtime, *, on_event: OnEvent | None | object = RUNTIME_HOOK) -> FastAPI:
    """The HTTP app over the wired runtime (`outbound.bootstrap.build`): its sessions, clock, settings,
    definitions and key cache. Each request opens its own session and commits at its end.

    `on_event` replaces the runtime's trigger hook (None: events are stored, nothing is triggered).
    """
    app = FastAPI(
        lifespan=_lifespan,
        title="outbound",
        summary="Events in, compliant campaigns out over SMS and email.",
        version="0.1.0",
    )
    app.state.runtime = runtime
    app.state.factory = runtime.factory
    app.state.clock = runtime.clock
    app.state.settings = runtime.settings
    app.state.definitions = runtime.definitions
    app.state.keys = runtime.keys
    app.state.keyring = runtime.keyring
    app.state.on_event = runtime.on_event if on_event is RUNTIME_HOOK else on_event
    app.state.key_failures = KeyFailures()
    app.state.events = EventWriter(app.state)  # the waiting requests' events, written together
    app.include_router(api.router)
    app.include_router(survey_pages.router)
    app.include_router(webhooks.router)
    app.include_router(unsubscribe.router)
    app.include_router(agent_pages.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).resolve().parent / "static"), name="static")
    https = runtime.settings.base_url.startswith("https:")
    install_sessions(app, runtime.keyring, https_only=https)
    app.add_middleware(SecurityHeaders, https=https)
    redact_access_log()
    _add_schemas(app, api.openapi_components())
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.events.close()


def _add_schemas(app: FastAPI, schemas: dict[str, Any]) -> None:
    # Request bodies read by hand refer to models FastAPI never saw; list them in the components.
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        known = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in schemas.items():
            known.setdefault(name, schema)
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
