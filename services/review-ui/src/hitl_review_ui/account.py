"""A signed-in user's own account: change the (temporary) password an admin gave them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from hitl_review_ui.auth import Reviewer, ReviewerDep
from hitl_review_ui.pages import templates
from hitl_review_ui.ui import NO_STORE
from hitl_shared.audit import record
from hitl_shared.db.models import User
from hitl_shared.http import WorkDep
from hitl_shared.security import hash_password, verify_password

MIN_PASSWORD_LENGTH = 10


def _page(
    request: Request,
    reviewer: Reviewer,
    error: str | None = None,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    return templates.TemplateResponse(
        request,
        "account.html",
        {
            "reviewer": reviewer,
            "error": error,
            "message": message,
            "min_length": MIN_PASSWORD_LENGTH,
        },
        status_code=status_code,
        headers=NO_STORE,
    )


def build_account_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/account", response_class=HTMLResponse)
    async def account_page(request: Request, reviewer: ReviewerDep) -> Response:
        return _page(request, reviewer)

    @router.post("/account/password", response_class=HTMLResponse)
    async def change_password(
        request: Request,
        reviewer: ReviewerDep,
        work: WorkDep,
        current: Annotated[str, Form(max_length=1000)] = "",
        new: Annotated[str, Form(max_length=1000)] = "",
        confirm: Annotated[str, Form(max_length=1000)] = "",
    ) -> Response:
        user = await work.session.get(User, reviewer.id, with_for_update=True)
        assert user is not None  # the session dependency found this active user
        if not verify_password(user.password_hash, current):
            return _page(request, reviewer, "The current password is not right.", status_code=422)
        if len(new) < MIN_PASSWORD_LENGTH:
            return _page(
                request,
                reviewer,
                f"Choose a new password of at least {MIN_PASSWORD_LENGTH} characters.",
                status_code=422,
            )
        if new != confirm:
            return _page(request, reviewer, "The two new passwords differ.", status_code=422)
        if new == current:
            return _page(
                request, reviewer, "Choose a password you have not used here.", status_code=422
            )
        user.password_hash = hash_password(new)
        await record(work.session, user.username, "user.password_changed")
        await work.commit()
        return _page(request, reviewer, message="Your password is changed.")

    return router
