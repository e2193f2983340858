"""One-click survey answers from email: a score link shows the score, and the customer's POST records it.

`GET /s/{token}/{score}` shows the score chosen and a button, and records nothing: mail-security
scanners open every link of a message, and would otherwise answer every survey (with every score)
for the customer. The button POSTs to the same address, which records the answer and asks for a
comment (`POST /s/{token}/comment`). As with the one-click unsubscribe (`outbound.web.unsubscribe`).

The token is signed (see `outbound.rendering.links.survey_token`) and names one survey message, so a
link cannot be forged or pointed at someone else's survey. It is the only credential: the pages set
no cookie and read none, so a form posted from another site carries no authority a page of ours would
add, and whoever holds the token can answer with or without our form; the forms carry no token of
their own. The pages are not cached and send no referrer, so the token stays in the address bar.
The first answer counts; later ones are stored but not counted, as for SMS replies.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from outbound.db.models import Contact, Message, SurveyResponse, Tenant
from outbound.db.session import transaction
from outbound.definitions.schema import SCALES
from outbound.delivery.keywords import is_korean
from outbound.engagement.surveys import read_survey_link, record_linked_answer
from outbound.errors import InvalidInput, NotFound
from outbound.rendering.links import read_survey_token
from outbound.signing import Keyring

router = APIRouter(tags=["surveys"])
_pages = Environment(
    loader=FileSystemLoader(str(Path(__file__).parent / "templates")), autoescape=select_autoescape(["html"])
)
# The address holds the token: no cache keeps the page, no referrer carries it elsewhere.
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _keyring(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        status_code=status,
        headers=_HEADERS,
        content=(
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">'
            f'<title>{html.escape(title)}</title></head><body style="font-family:sans-serif;max-width:32rem;margin:3rem auto">'
            f"<h1>{html.escape(title)}</h1>{body}</body></html>"
        ),
    )


def _refused(error: InvalidInput | NotFound) -> HTMLResponse:
    if isinstance(error, NotFound):
        return _page("Survey not found", f"<p>{html.escape(str(error))}</p>", 404)
    status = 404 if error.field == "token" else 400
    return _page("Survey link not valid", f"<p>{html.escape(str(error))}</p>", status)


def _rendered(session: Session, name: str, message: Message, **names: Any) -> HTMLResponse:
    tenant = session.get_one(Tenant, message.tenant_id)
    contact = session.get(Contact, message.contact_id)
    content = _pages.get_template(name).render(
        sender=(tenant.settings or {}).get("sender_name") or tenant.name,
        korean=is_korean((contact.locale if contact is not None else None) or tenant.locale),
        **names,
    )
    return HTMLResponse(content, headers=_HEADERS)


@router.get("/s/{token}/{score}", response_class=HTMLResponse, summary="Confirm a one-click survey score")
def confirm_score(token: str, score: int, request: Request) -> HTMLResponse:
    """Show the score the link carries and a button that sends it; records nothing."""
    state = request.app.state
    with state.factory() as session:
        try:
            linked = read_survey_link(session, _keyring(request), token, score, state.clock, state.definitions)
        except (InvalidInput, NotFound) as error:
            return _refused(error)
        low, high = SCALES[linked.config.scale]
        return _rendered(session, "survey_confirm.html", linked.message, score=score, low=low, high=high)


@router.post("/s/{token}/comment", response_class=HTMLResponse, summary="Add a comment to a survey answer")
def record_comment(token: str, request: Request, comment: str = Form("")) -> HTMLResponse:
    """Attach the comment to the counted answer of the survey message the token names."""
    read = read_survey_token(_keyring(request), token, request.app.state.clock.now())
    if read is None:
        return _page("Survey link not valid", "<p>This survey link is not valid.</p>", 404)
    tenant_id, message_id = read
    with transaction(request.app.state.factory) as session:
        response = session.scalar(
            select(SurveyResponse).where(SurveyResponse.tenant_id == tenant_id, SurveyResponse.message_id == message_id)
        )
        if response is None:
            return _page("Survey not found", "<p>Please choose a score first.</p>", 404)
        if comment.strip():
            response.comment = comment.strip()[:2000]
    return _page("Thank you", "<p>Your comment reached us. Thank you!</p>")


# After the comment route: `comment` is not a score.
@router.post("/s/{token}/{score}", response_class=HTMLResponse, summary="Record a one-click survey score")
def record_score(token: str, score: int, request: Request) -> HTMLResponse:
    """Record the score the contact confirmed and show a thank-you page with a comment box."""
    state = request.app.state
    with transaction(state.factory) as session:
        try:
            linked = read_survey_link(session, _keyring(request), token, score, state.clock, state.definitions)
        except (InvalidInput, NotFound) as error:
            return _refused(error)
        response = record_linked_answer(session, linked, state.clock)
        return _rendered(
            session, "survey_answered.html", linked.message, score=score, counted=response.counted, token=token
        )
