"""One-click survey answers from email: `GET /s/{token}/{score}` records the score, then asks for a comment.

The token is signed (see `outbound.rendering.links.survey_token`) and names one survey message, so a link
cannot be forged or pointed at someone else's survey. The first click counts; later clicks are
stored but not counted, as for SMS replies.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from outbound.db.models import SurveyResponse
from outbound.db.session import transaction
from outbound.engagement.surveys import answer_from_link
from outbound.errors import InvalidInput, NotFound
from outbound.rendering.links import read_survey_token
from outbound.signing import Keyring

router = APIRouter(tags=["surveys"])


def _keyring(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        status_code=status,
        content=(
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{html.escape(title)}</title></head><body style="font-family:sans-serif;max-width:32rem;margin:3rem auto">'
            f"<h1>{html.escape(title)}</h1>{body}</body></html>"
        ),
    )


@router.get("/s/{token}/{score}", response_class=HTMLResponse, summary="Record a one-click survey score")
def record_score(token: str, score: int, request: Request) -> HTMLResponse:
    """Record the score the contact clicked and show a thank-you page with a comment box."""
    state = request.app.state
    try:
        with transaction(state.factory) as session:
            response = answer_from_link(session, _keyring(request), token, score, state.clock, state.definitions)
            counted = response.counted
    except InvalidInput as error:
        status = 404 if error.field == "token" else 400
        return _page("Survey link not valid", f"<p>{html.escape(str(error))}</p>", status)
    except NotFound as error:
        return _page("Survey not found", f"<p>{html.escape(str(error))}</p>", 404)
    if not counted:
        return _page("Thank you", "<p>We already have your answer to this survey. Thank you for taking part!</p>")
    form = (
        f"<p>You answered <strong>{score}</strong>. Thank you! 감사합니다!</p>"
        f'<form method="post" action="/s/{html.escape(token)}/comment">'
        '<label for="comment">Anything you would like to add? (optional)</label><br>'
        '<textarea id="comment" name="comment" rows="4" cols="40" maxlength="2000"></textarea><br>'
        '<button type="submit">Send</button></form>'
    )
    return _page("Thank you for your answer", form)


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
