"""Feedback figures as JSON for operators' scripts and dashboards."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from hitl_feedback.stats import workflow_summaries
from hitl_shared.api_auth import ClientDep
from hitl_shared.http import WorkDep


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/feedback", tags=["feedback"])

    @router.get("/workflows")
    async def summaries(_client: ClientDep, work: WorkDep) -> dict[str, Any]:
        return {"workflows": await workflow_summaries(work.session)}

    return router
