"""Builds the FastAPI application from what the caller wires in: sessions, clock, trigger hook."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from outbound.clock import Clock
from outbound.events import OnEvent
from outbound.web import api


def create_app(factory: sessionmaker[Session], clock: Clock, on_event: OnEvent | None = None) -> FastAPI:
    """The HTTP app. Each request opens its own session from `factory` and commits at its end."""
    app = FastAPI(
        title="outbound",
        summary="Events in, compliant campaigns out over SMS and email.",
        version="0.1.0",
    )
    app.state.factory = factory
    app.state.clock = clock
    app.state.on_event = on_event
    app.include_router(api.router)
    _add_schemas(app, api.openapi_components())
    return app


def _add_schemas(app: FastAPI, schemas: dict) -> None:
    # Request bodies read by hand refer to models FastAPI never saw; list them in the components.
    generate = app.openapi

    def openapi() -> dict:
        document = generate()
        known = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in schemas.items():
            known.setdefault(name, schema)
        return document

    app.openapi = openapi
