"""Feedback figures as JSON for operators' scripts and dashboards (API key required)."""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_feedback.calibration import reliability
from hitl_feedback.loop import analyse, decided_history
from hitl_feedback.patterns import confusions, corrections_jsonl
from hitl_feedback.stats import workflow_summaries
from hitl_feedback.theatre import team_theatre
from hitl_shared import figures
from hitl_shared.api_auth import ApiClient, ClientDep
from hitl_shared.calibration import current_calibration
from hitl_shared.db.models import Workflow
from hitl_shared.http import ApiError, RuntimeDep, WorkDep
from hitl_shared.workflows.config import WorkflowConfig
from hitl_shared.workflows.store import current_version


async def _workflow(
    session: AsyncSession, client: ApiClient, name: str
) -> tuple[Workflow, WorkflowConfig]:
    wf = (
        await session.execute(sa.select(Workflow).where(Workflow.name == name))
    ).scalar_one_or_none()
    if wf is None or not client.may_use(name):
        raise ApiError(
            404, "unknown_workflow", f"There is no workflow named {name!r} for this API key."
        )
    version = await current_version(session, wf)
    return wf, WorkflowConfig.model_validate(version.config)


def _clean(bins: list[dict[str, float]]) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in b.items()}
        for b in bins
    ]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/feedback", tags=["feedback"])

    @router.get("/workflows")
    async def summaries(_client: ClientDep, work: WorkDep) -> dict[str, Any]:
        return {"workflows": await workflow_summaries(work.session)}

    @router.get("/workflows/{name}/calibration")
    async def calibration(name: str, client: ClientDep, work: WorkDep) -> dict[str, Any]:
        wf, _config = await _workflow(work.session, client, name)
        cmap = await current_calibration(work.session, wf.id)
        history = await decided_history(work.session, wf.id)
        calibrated = cmap.apply(history.raw) if len(history.raw) else history.raw
        return {
            "workflow": name,
            "map": cmap.to_json(),
            "decided_items": len(history.raw),
            "reliability_raw": _clean(reliability(history.raw, history.correct)),
            "reliability_calibrated": _clean(reliability(calibrated, history.correct)),
        }

    @router.get("/workflows/{name}/recommendation")
    async def recommendation(
        name: str,
        client: ClientDep,
        work: WorkDep,
        target_error: float | None = Query(default=None, gt=0, lt=0.5),
    ) -> dict[str, Any]:
        wf, config = await _workflow(work.session, client, name)
        if target_error is not None:
            config.feedback.target_light_error = target_error
        result = await analyse(work.session, wf.id, config)
        rec = result["recommendation"]
        return {
            "workflow": name,
            "current": config.routing.thresholds.model_dump(),
            "decided_items": result["items"],
            "ece_raw": result.get("ece_raw"),
            "ece_calibrated": result.get("ece_calibrated"),
            "recommendation": rec.to_json() if rec else None,
        }

    @router.get("/workflows/{name}/errors")
    async def errors(name: str, client: ClientDep, work: WorkDep) -> dict[str, Any]:
        wf, _ = await _workflow(work.session, client, name)
        return {"workflow": name, **await confusions(work.session, wf.id)}

    @router.get("/workflows/{name}/corrections.jsonl")
    async def corrections(name: str, client: ClientDep, runtime: RuntimeDep) -> StreamingResponse:
        async with runtime.sessionmaker() as session:
            wf, _ = await _workflow(session, client, name)

        async def lines() -> Any:
            async with runtime.sessionmaker() as session:
                async for line in corrections_jsonl(session, wf.id):
                    yield line

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    # The figures behind the review UI's insight pages (/insights/<workflow>), same numbers.
    days_query = Query(default=figures.DEFAULT_DAYS, ge=1, le=figures.MAX_DAYS)

    @router.get("/workflows/{name}/reliability")
    async def reliability_diagram(name: str, client: ClientDep, work: WorkDep) -> dict[str, Any]:
        wf, _ = await _workflow(work.session, client, name)
        return {"workflow": name, **await figures.reliability(work.session, wf.id)}

    @router.get("/workflows/{name}/bands")
    async def bands(
        name: str, client: ClientDep, work: WorkDep, days: int = days_query
    ) -> dict[str, Any]:
        wf, _ = await _workflow(work.session, client, name)
        return {"workflow": name, **await figures.band_accuracy(work.session, wf.id, days)}

    @router.get("/workflows/{name}/review-times")
    async def review_times(
        name: str, client: ClientDep, work: WorkDep, days: int = days_query
    ) -> dict[str, Any]:
        wf, _ = await _workflow(work.session, client, name)
        return {"workflow": name, **await figures.review_times(work.session, wf.id, days)}

    @router.get("/workflows/{name}/queue-load")
    async def queue_load(
        name: str, client: ClientDep, work: WorkDep, days: int = days_query
    ) -> dict[str, Any]:
        wf, _ = await _workflow(work.session, client, name)
        return {"workflow": name, **await figures.queue_load(work.session, wf.id, days)}

    @router.get("/reviewers")
    async def reviewers(_client: ClientDep, work: WorkDep) -> dict[str, Any]:
        team = await team_theatre(work.session)
        return {"reviewers": [r.to_json() for r in team]}

    return router
