"""The ingest API: `POST /v1/events` for order systems, `GET /healthz` for load balancers.

Bad input never gets a 500: malformed JSON → 400, no or wrong key → 401,
too many events → 413, a single malformed envelope → 422 naming the field.
A batch answers 200 with the errors of its bad items; the good ones are stored.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, TypeAdapter
from sqlalchemy.exc import SQLAlchemyError

from outbound.db.session import ping
from outbound.ingest.envelopes import EventEnvelope, IngestReport
from outbound.web.security import KeyFailures

if TYPE_CHECKING:  # the writer imports this module
    from outbound.web.event_writer import EventWriter

log = logging.getLogger(__name__)
router = APIRouter()

MAX_EVENTS = 1000
# Far above 1000 ordinary events; stops a runaway body before it is parsed.
MAX_BODY_BYTES = 16 * 1024 * 1024

bearer = HTTPBearer(auto_error=False, description="A tenant API key, from `outbound keys create`.")


class EventBatch(BaseModel):
    """Several envelopes in one request."""

    events: list[EventEnvelope]


class ErrorOut(BaseModel):
    """Why one event of the request was not stored."""

    index: int
    field: str | None
    message: str


class IngestResult(BaseModel):
    """What the request did."""

    stored: int
    duplicates: int
    errors: list[ErrorOut]


class Detail(BaseModel):
    """An error that concerns the whole request."""

    detail: str


REQUEST_SCHEMA = TypeAdapter(EventEnvelope | EventBatch).json_schema(ref_template="#/components/schemas/{model}")
# The envelope's own models, added to the OpenAPI components by `openapi_components`.
REQUEST_DEFS: dict[str, Any] = REQUEST_SCHEMA.pop("$defs", {})


def openapi_components() -> dict[str, Any]:
    """Schemas the hand-described request body refers to."""
    return REQUEST_DEFS


def unauthorized(message: str, error: str | None = None) -> HTTPException:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HTTPException(401, message, headers={"WWW-Authenticate": challenge})


async def bearer_token(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
    """The API key from `Authorization: Bearer …`; 401 before the body is read when there is none."""
    if credentials is None or not credentials.credentials:
        raise unauthorized("send a tenant API key as Authorization: Bearer <key>")
    return credentials.credentials


async def request_body(request: Request) -> bytes:
    """The raw body, refused with 413 once it passes MAX_BODY_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPException(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def result(report: IngestReport, status: int = 200) -> JSONResponse:
    """The answer to a request: what it stored, the duplicates, and the errors of its items."""
    return JSONResponse(
        {
            "stored": report.stored,
            "duplicates": report.duplicates,
            "errors": [{"index": e.index, "field": e.field, "message": e.message} for e in report.errors],
        },
        status_code=status,
    )


@router.post(
    "/v1/events",
    summary="Send one event or a batch",
    description=(
        'One event envelope, or `{"events": [...]}` with at most 1000. Idempotent on the event id: '
        "an id already stored for the tenant counts as a duplicate and changes nothing."
    ),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": REQUEST_SCHEMA}}}},
    responses={
        200: {"model": IngestResult, "description": "Processed; bad items of a batch are listed in `errors`."},
        400: {"model": Detail, "description": "The body is not JSON."},
        401: {"model": Detail, "description": "No API key, or not a valid one."},
        413: {"model": Detail, "description": "More than 1000 events, or a body too large."},
        429: {"model": Detail, "description": "Too many requests with a wrong key from this address."},
        422: {"model": IngestResult, "description": "The single event sent is invalid; `errors` names the field."},
    },
    tags=["events"],
)
async def post_events(
    request: Request, token: str = Depends(bearer_token), body: bytes = Depends(request_body)
) -> JSONResponse:
    """Store the events of the request under the key's tenant and run the trigger hook on each new one.

    The request waits for the app's event writer, which writes it together with the requests
    waiting at the same moment (`outbound.web.event_writer`); the answer is the one it would get alone.
    """
    failures: KeyFailures = request.app.state.key_failures
    address = request.client.host if request.client else "-"
    wait = failures.retry_after(address)
    if wait is not None:
        raise HTTPException(429, "too many requests with a wrong API key", headers={"Retry-After": str(wait)})
    writer: EventWriter = request.app.state.events
    try:
        return await writer.submit(token, body)
    except HTTPException as refused:
        if refused.status_code == 401:
            failures.failed(address)
        raise


@router.get("/healthz", summary="Is the service up and its database reachable", tags=["health"], response_model=None)
def healthz(request: Request) -> JSONResponse | dict[str, str]:
    """200 when the database answers, 503 when it does not."""
    try:
        with request.app.state.factory() as session:
            ping(session)
    except SQLAlchemyError:
        log.exception("health check: the database does not answer")
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return {"status": "ok", "database": "ok"}
