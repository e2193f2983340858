"""The pages agents work in: log in, the queue, "next call", the customer's context, the outcome form,
and the supervisor's overview. Server-rendered Jinja2; every form carries a CSRF token.

Each request is its own unit of work: it opens a session from the app's factory, checks the login,
does its work through the `outbound.engagement` callback modules (queue, outcomes, context, summary),
and commits at its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from outbound.compliance import Allow, Defer
from outbound.db.models import Agent, CallbackTask, Tenant
from outbound.db.session import transaction
from outbound.engagement.callback_context import customer_context
from outbound.engagement.callback_outcomes import OUTCOMES, record_outcome
from outbound.engagement.callback_queue import TaskNotHeld, claim_next, get_task, queue
from outbound.engagement.callback_summary import supervisor_summary
from outbound.errors import InvalidInput, NotFound
from outbound.tenancy.agents import active_agent, authenticate_agent
from outbound.tenancy.throttle import account_key, blocked_for, count_failure, count_success
from outbound.vocabulary import TaskStatus
from outbound.web.auth import (
    LoginRequired,
    check_csrf,
    csrf_token,
    current_login,
    flash,
    log_in,
    log_out,
    take_flash,
)

router = APIRouter(prefix="/agent", tags=["agents"], include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
templates.env.filters["at"] = lambda value, zone=None: (
    "" if value is None else value.astimezone(ZoneInfo(zone) if zone else None).strftime("%Y-%m-%d %H:%M")
)
templates.env.globals["OUTCOMES"] = OUTCOMES
templates.env.tests["allowed"] = lambda decision: isinstance(decision, Allow)
templates.env.tests["deferred"] = lambda decision: isinstance(decision, Defer)

_Response = TypeVar("_Response", bound=Response)


@contextmanager
def _work(request: Request) -> Iterator[tuple[Session, Tenant, Agent]]:
    state = request.app.state
    with transaction(state.factory) as session:
        login = current_login(request, session, state.clock.now())
        agent = active_agent(session, login.tenant_id, login.agent_id) if login is not None else None
        if login is None or agent is None:
            raise LoginRequired()
        yield session, session.get_one(Tenant, login.tenant_id), agent


def _render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("agent", None)
    response = templates.TemplateResponse(
        request, name, {"csrf": csrf_token(request), "notice": take_flash(request), **context}, status_code=status
    )
    return _private(response)


def _private(response: _Response) -> _Response:
    # Customer data: never cached, never framed by another site.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _redirect(path: str) -> Response:
    return _private(RedirectResponse(path, status_code=303))


@router.get("", summary="Agent home")
def home() -> Response:
    """The queue is the home page."""
    return _redirect("/agent/queue")


@router.get("/login", response_class=HTMLResponse, summary="Agent login page")
def login_page(request: Request) -> HTMLResponse:
    """The login form: tenant, username, password."""
    return _render(request, "agent/login.html", tenant="", username="", error=None)


@router.post("/login", summary="Log an agent in")
def login(
    request: Request, tenant: str = Form(""), username: str = Form(""), password: str = Form(""), csrf: str = Form("")
) -> Response:
    """Start a session for the agent whose tenant, username and password match; else show the form again."""
    check_csrf(request, csrf)
    state = request.app.state
    now = state.clock.now()
    account, address = account_key(tenant[:200], username[:200]), request.client.host if request.client else "-"
    with transaction(state.factory) as session:
        wait = blocked_for(session, account, address, now)
        agent = None if wait is not None else authenticate_agent(session, tenant, username, password)
        if agent is None and wait is None:
            count_failure(session, account, address, now)
        elif agent is not None:
            count_success(session, account)
            log_in(request, session, agent, now)
    shown = {"tenant": tenant[:200], "username": username[:200]}
    if wait is not None:
        minutes = int(wait.total_seconds() // 60)
        response = _render(
            request,
            "agent/login.html",
            429,
            **shown,
            error=f"Too many failed logins. Try again in {minutes} minutes.",
        )
        response.headers["Retry-After"] = str(int(wait.total_seconds()))
        return response
    if agent is None:
        return _render(request, "agent/login.html", 401, **shown, error="Wrong tenant, username or password.")
    return _redirect("/agent/supervisor" if agent.role == "supervisor" else "/agent/queue")


@router.post("/logout", summary="Log out")
def logout(request: Request, csrf: str = Form("")) -> Response:
    """End the session."""
    check_csrf(request, csrf)
    with transaction(request.app.state.factory) as session:
        log_out(request, session, request.app.state.clock.now())
    return _redirect("/agent/login")


@router.get("/queue", response_class=HTMLResponse, summary="The callback queue")
def queue_page(request: Request) -> HTMLResponse:
    """Open and claimed tasks with priority, due time, reason, the customer's local time and whether calling is allowed."""
    now = request.app.state.clock.now()
    with _work(request) as (session, tenant, agent):
        offers = queue(session, tenant, now)
        return _render(request, "agent/queue.html", agent=agent, tenant=tenant, offers=offers, now=now)


@router.post("/next", summary="Claim the next call")
def next_call(request: Request, csrf: str = Form("")) -> Response:
    """Claim the best task that may be called now (or the one already held) and open it."""
    check_csrf(request, csrf)
    with _work(request) as (session, tenant, agent):
        task = claim_next(session, tenant, agent, request.app.state.clock.now())
        task_id = task.id if task is not None else None
    if task_id is None:
        flash(request, "Nothing to call right now: no task is due inside its customer's calling hours.")
        return _redirect("/agent/queue")
    return _redirect(f"/agent/tasks/{task_id}")


@router.get("/tasks/{task_id}", response_class=HTMLResponse, summary="A task and its customer's context")
def task_page(request: Request, task_id: int) -> HTMLResponse:
    """The customer's context and, for the agent holding the task, the outcome form."""
    now = request.app.state.clock.now()
    with _work(request) as (session, tenant, agent):
        task = _visible_task(session, tenant, agent, task_id, now)
        context = customer_context(session, tenant, task, now)
        return _render(
            request,
            "agent/task.html",
            agent=agent,
            tenant=tenant,
            task=task,
            ctx=context,
            holds=_holds(task, agent, now),
            error=None,
        )


@router.post("/tasks/{task_id}/outcome", summary="Record the outcome of a call")
def outcome(
    request: Request,
    task_id: int,
    outcome: str = Form(""),
    notes: str = Form(""),
    call_back_at: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    """Record one call's outcome on a task the agent holds, then go back to the queue."""
    check_csrf(request, csrf)
    now = request.app.state.clock.now()
    try:
        with _work(request) as (session, tenant, agent):
            task = _tenant_task(session, tenant, task_id)
            zone = customer_context(session, tenant, task, now).zone
            when = _local_time(call_back_at, zone) if outcome == "call_back_later" else None
            record_outcome(session, tenant, agent, task_id, outcome, now=now, notes=notes, call_back_at=when)
    except TaskNotHeld as error:
        flash(request, str(error))
        return _redirect("/agent/queue")
    except InvalidInput as error:
        with _work(request) as (session, tenant, agent):
            task = _visible_task(session, tenant, agent, task_id, now)
            return _render(
                request,
                "agent/task.html",
                422,
                agent=agent,
                tenant=tenant,
                task=task,
                ctx=customer_context(session, tenant, task, now),
                holds=_holds(task, agent, now),
                error=f"{error.field}: {error}" if error.field else str(error),
            )
    flash(request, f"Recorded “{OUTCOMES[outcome]}” for task {task_id}.")
    return _redirect("/agent/queue")


@router.get("/supervisor", response_class=HTMLResponse, summary="Supervisor overview")
def supervisor_page(request: Request) -> HTMLResponse:
    """Queue size and oldest waiting task, outcomes per agent today, tasks created vs closed per hour."""
    now = request.app.state.clock.now()
    with _work(request) as (session, tenant, agent):
        if agent.role != "supervisor":
            raise HTTPException(403, "This page is for supervisors.")
        summary = supervisor_summary(session, tenant, now)
        return _render(
            request,
            "agent/supervisor.html",
            agent=agent,
            tenant=tenant,
            summary=summary,
            now=now,
            chart=bar_chart(summary.hours),
        )


def _visible_task(session: Session, tenant: Tenant, agent: Agent, task_id: int, now: datetime) -> CallbackTask:
    # An agent sees the customer they are calling; a supervisor may look at any task of the tenant.
    task = _tenant_task(session, tenant, task_id)
    if agent.role != "supervisor" and not _holds(task, agent, now):
        raise HTTPException(403, "This task is not yours: take the next call from the queue.")
    return task


def _tenant_task(session: Session, tenant: Tenant, task_id: int) -> CallbackTask:
    try:
        return get_task(session, tenant.id, task_id)
    except NotFound:
        raise HTTPException(404, f"No callback task {task_id}.") from None


def _holds(task: CallbackTask, agent: Agent, now: datetime) -> bool:
    # Until someone else takes it over, an agent whose lease ran out may still record the call they made.
    return task.status == TaskStatus.CLAIMED and task.claimed_by == agent.id


def _local_time(text: str, zone: str) -> datetime | None:
    # The form's datetime-local field is the customer's wall-clock time, as the page labels it.
    if not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip()[:40])
    except ValueError:
        raise InvalidInput(f"not a date and time: {text[:40]!r}", field="call_back_at") from None
    return value.replace(tzinfo=ZoneInfo(zone)) if value.tzinfo is None else value


def bar_chart(hours: list[tuple[datetime, int, int]], width: int = 720, height: int = 200) -> dict[str, Any]:
    """Geometry for the created-vs-closed SVG chart: two bars per hour, labels every third hour."""
    top = max([1] + [max(created, closed) for _, created, closed in hours])
    left, bottom, plot_h = 30, 20, height - 30
    slot = (width - left) / max(len(hours), 1)
    bar = max(slot / 2 - 1, 1)
    bars, labels = [], []
    for i, (hour, created, closed) in enumerate(hours):
        x = left + i * slot
        for offset, count, kind in ((0, created, "created"), (bar, closed, "closed")):
            h = plot_h * count / top
            bars.append(
                {
                    "x": round(x + offset, 1),
                    "y": round(height - bottom - h, 1),
                    "w": round(bar, 1),
                    "h": round(h, 1),
                    "kind": kind,
                    "count": count,
                    "hour": f"{hour:%H}:00",
                }
            )
        if i % 3 == 0:
            labels.append({"x": round(x + bar, 1), "text": f"{hour:%H}"})
    return {
        "width": width,
        "height": height,
        "top": top,
        "bars": bars,
        "labels": labels,
        "baseline": height - bottom,
        "left": left,
    }
