"""The review workspace's pages: sign in, inbox, review a task, decide, next."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from hitl_review_ui import claims
from hitl_review_ui.auth import (
    COOKIE,
    SESSION_MAX_AGE,
    CsrfFailed,
    Forbidden,
    LoginRequired,
    ReviewerDep,
    authenticate,
    read_session,
    session_cookie,
)
from hitl_review_ui.decisions import (
    REJECT_REASONS,
    DecisionError,
    TaskGone,
    decide,
    load_context,
)
from hitl_review_ui.ui import FILTERS, reading_seconds
from hitl_shared.http import RuntimeDep, WorkDep
from hitl_shared.lifecycle import TaskStatus

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


def _age(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


templates.env.filters["age"] = _age
templates.env.filters.update(FILTERS)

MESSAGES = {
    "empty": "Nothing left in that queue. Good work.",
    "escalated": "Escalated: the item went to a lead's queue with your reason.",
    "batch_done": "Batch decided: each item got its own recorded decision.",
    "released": "Skipped: the item went back to the queue.",
    "signed_out": "You are signed out.",
    "gone": "That item is no longer assigned to you; it went back to the queue or was decided.",
}

LEVEL_HELP = {
    "light": "Glance and approve: the AI is confident. Check the answer fits the text.",
    "full": "Read the item, correct the answer if needed, then approve.",
    "manual": "Do the task yourself: the AI was unsure, its answer is only a hint.",
    "escalated": "Escalated to a lead: read why, then decide. Only leads and admins see these.",
    "batch": "Low-confidence declines: approve them as a group on the batch page.",
}


# Form fields that carry the reviewer's own answer (extract fields are "field.<name>").
ANSWER_KEYS = ("label", "score", "rationale", "text")


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _queue_qs(workflow: str | None, level: str | None) -> str:
    params = {k: v for k, v in (("workflow", workflow), ("level", level)) if v}
    return urlencode(params)


def build_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    # Imported here: those modules render with this module's templates.
    from hitl_review_ui.account import build_account_router
    from hitl_review_ui.admin import build_admin_router
    from hitl_review_ui.batches import build_batch_router
    from hitl_review_ui.escalations import build_escalation_router
    from hitl_review_ui.history import build_history_router
    from hitl_review_ui.team import build_team_router

    for sub in (
        build_history_router(),
        build_team_router(),
        build_admin_router(),
        build_account_router(),
        build_escalation_router(),
        build_batch_router(),
    ):
        router.include_router(sub)

    @router.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, msg: str | None = None) -> Response:
        return templates.TemplateResponse(
            request,
            "login.html",
            {"error": None, "message": MESSAGES.get(msg or ""), "username": ""},
        )

    @router.post("/login", response_class=HTMLResponse)
    async def login(
        request: Request,
        work: WorkDep,
        runtime: RuntimeDep,
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
    ) -> Response:
        user, error = await authenticate(work.session, username, password)
        await work.commit()
        if user is None:
            return templates.TemplateResponse(
                request,
                "login.html",
                {"error": error, "message": None, "username": username},
                status_code=401,
            )
        response = _redirect("/")
        response.set_cookie(
            COOKIE,
            session_cookie(runtime.settings.secret_key, user),
            max_age=SESSION_MAX_AGE,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout")
    async def logout(reviewer: ReviewerDep) -> Response:
        response = _redirect("/login?msg=signed_out")
        response.delete_cookie(COOKIE)
        return response

    @router.get("/", response_class=HTMLResponse)
    async def inbox(
        request: Request,
        reviewer: ReviewerDep,
        work: WorkDep,
        runtime: RuntimeDep,
        msg: str | None = None,
    ) -> Response:
        # Counted at most a few seconds ago in this process (the page says when): cheap
        # however many tasks wait and however many reviewers look.
        board = await claims.queue_board(work.session, runtime.settings.inbox_cache_seconds)
        queues = board.queues
        held = await claims.held_tasks(work.session, reviewer.id)
        return templates.TemplateResponse(
            request,
            "inbox.html",
            {
                "reviewer": reviewer,
                "queues": queues,
                "held": held,
                "has_sla": any(q.has_sla for q in queues),
                "level_help": LEVEL_HELP,
                "message": MESSAGES.get(msg or ""),
                "total_open": board.total_open,
                "total_more": board.total_more,
                "as_of": board.as_of,
                "count_cap": claims.COUNT_CAP,
            },
        )

    @router.post("/queue/start")
    async def start(
        reviewer: ReviewerDep,
        work: WorkDep,
        runtime: RuntimeDep,
        workflow: Annotated[str, Form()] = "",
        level: Annotated[str, Form()] = "",
    ) -> Response:
        task_id = await claims.claim_next(
            work.session,
            reviewer.id,
            workflow or None,
            level or None,
            runtime.settings.review_lock_seconds,
            lead=reviewer.is_lead,
        )
        await work.commit()
        if task_id is None:
            return _redirect("/?msg=empty")
        qs = _queue_qs(workflow, level)
        return _redirect(f"/tasks/{task_id}" + (f"?{qs}" if qs else ""))

    @router.get("/tasks/{task_id}", response_class=HTMLResponse)
    async def review_page(
        request: Request,
        task_id: uuid.UUID,
        reviewer: ReviewerDep,
        work: WorkDep,
        workflow: str | None = None,
        level: str | None = None,
        error: str | None = None,
    ) -> Response:
        ctx = await load_context(work.session, task_id)
        if (
            ctx is None
            or ctx.task.status != TaskStatus.CLAIMED.value
            or ctx.task.claimed_by != reviewer.id
        ):
            return _redirect("/?msg=gone")
        return _render_review(request, reviewer, ctx, workflow, level, error)

    @router.post("/tasks/{task_id}/decide")
    async def decide_task(
        request: Request,
        task_id: uuid.UUID,
        reviewer: ReviewerDep,
        work: WorkDep,
        runtime: RuntimeDep,
        action: Annotated[str, Form()],
        reason_code: Annotated[str | None, Form()] = None,
        note: Annotated[str, Form(max_length=4000)] = "",
        active_ms: Annotated[str | None, Form()] = None,
        queue_workflow: Annotated[str, Form()] = "",
        queue_level: Annotated[str, Form()] = "",
    ) -> Response:
        ctx = await load_context(work.session, task_id)
        if ctx is None:
            return _redirect("/?msg=gone")
        try:
            ms = int(active_ms) if active_ms not in (None, "") else None
        except ValueError:
            ms = None
        form = await request.form()
        answer_form: dict[str, Any] = {
            k: v
            for k, v in form.items()
            if isinstance(v, str) and (k in ANSWER_KEYS or k.startswith("field."))
        }
        answer_form["labels"] = [v for v in form.getlist("label") if isinstance(v, str)]
        try:
            await decide(
                work,
                ctx,
                reviewer.id,
                reviewer.username,
                action,
                answer_form,
                reason_code,
                note,
                ms,
            )
        except TaskGone:
            await work.rollback()
            return _redirect("/?msg=gone")
        except DecisionError as e:
            return _render_review(
                request, reviewer, ctx, queue_workflow, queue_level, str(e), status_code=422
            )
        # The decision and the claim of the next item commit together: one transaction.
        return await _next(
            work, runtime, reviewer.id, queue_workflow, queue_level, None, lead=reviewer.is_lead
        )

    @router.post("/tasks/{task_id}/skip")
    async def skip_task(
        task_id: uuid.UUID,
        reviewer: ReviewerDep,
        work: WorkDep,
        runtime: RuntimeDep,
        queue_workflow: Annotated[str, Form()] = "",
        queue_level: Annotated[str, Form()] = "",
    ) -> Response:
        await claims.release(work.session, task_id, reviewer.id)
        return await _next(
            work,
            runtime,
            reviewer.id,
            queue_workflow,
            queue_level,
            task_id,
            "released",
            lead=reviewer.is_lead,
        )

    return router


async def _next(
    work: Any,
    runtime: Any,
    reviewer_id: uuid.UUID,
    workflow: str,
    level: str,
    skip: uuid.UUID | None,
    empty_msg: str = "empty",
    lead: bool = False,
) -> Response:
    task_id = await claims.claim_next(
        work.session,
        reviewer_id,
        workflow or None,
        level or None,
        runtime.settings.review_lock_seconds,
        skip=skip,
        lead=lead,
    )
    await work.commit()
    if task_id is None:
        return _redirect(f"/?msg={empty_msg}")
    qs = _queue_qs(workflow, level)
    return _redirect(f"/tasks/{task_id}" + (f"?{qs}" if qs else ""))


def _render_review(
    request: Request,
    reviewer: Any,
    ctx: Any,
    workflow: str | None,
    level: str | None,
    error: str | None,
    status_code: int = 200,
) -> Response:
    return templates.TemplateResponse(
        request,
        "review.html",
        {
            "reviewer": reviewer,
            "ctx": ctx,
            "queue_workflow": workflow or "",
            "queue_level": level or "",
            "error": error,
            "reject_reasons": REJECT_REASONS,
            "level_help": LEVEL_HELP.get(ctx.task.level, ""),
            "reading_seconds": reading_seconds(len(ctx.text)),
        },
        status_code=status_code,
    )


def configure_app(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path
        if request.method != "GET" or target == "/":
            return _redirect("/login")
        return _redirect("/login?" + urlencode({"next": target}))

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, _exc: CsrfFailed) -> Response:
        return templates.TemplateResponse(
            request,
            "error.html",
            {
                "title": "Form expired",
                "message": "This form could not be verified (it is stale or came from another "
                "site). Go back, reload the page and try again.",
            },
            status_code=403,
        )

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, _exc: Forbidden) -> Response:
        return templates.TemplateResponse(
            request,
            "error.html",
            {"title": "Not allowed", "message": "Your role does not give access to this page."},
            status_code=403,
        )


__all__ = ["build_router", "configure_app", "read_session"]
