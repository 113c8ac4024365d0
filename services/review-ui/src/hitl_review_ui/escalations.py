"""Escalation: any reviewer hands an item to a lead with a reason; leads work the
`escalated` queue (their own SLA) and decide like anyone else."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_review_ui.auth import LeadDep, Reviewer, ReviewerDep
from hitl_review_ui.decisions import DecisionError, ReviewContext, TaskGone, load_context
from hitl_review_ui.ui import redirect
from hitl_shared.audit import record
from hitl_shared.db.models import AIResult, ReviewTask, Workflow
from hitl_shared.db.types import utcnow
from hitl_shared.escalation import escalate
from hitl_shared.http import RuntimeDep, WorkDep
from hitl_shared.lifecycle import ReviewLevel, TaskStatus
from hitl_shared.metrics import ESCALATIONS
from hitl_shared.work import Work

REVIEWER_SOURCE = "reviewer"


async def escalate_task(work: Work, ctx: ReviewContext, reviewer: Reviewer, reason: str) -> None:
    task = ctx.task
    if task.status != TaskStatus.CLAIMED.value or task.claimed_by != reviewer.id:
        raise TaskGone()
    if task.level == ReviewLevel.ESCALATED.value:
        raise DecisionError("This item is already with a lead: decide it here.")
    reason = reason.strip()
    if len(reason) < 3:
        raise DecisionError("Say why you escalate this item, so the lead knows what to check.")
    escalate(task, reviewer.username, reason, utcnow(), ctx.config.routing.sla)
    await record(
        work.session,
        reviewer.username,
        "item.escalated",
        ctx.item.id,
        {"task": str(task.id), "from": task.escalated_from, "reason": reason},
    )
    await work.session.flush()
    ESCALATIONS.labels(ctx.workflow, REVIEWER_SOURCE).inc()


@dataclass
class EscalatedTask:
    task_id: uuid.UUID
    workflow: str
    escalated_from: str | None
    escalated_by: str | None
    reason: str | None
    escalated_at: datetime | None
    due_at: datetime | None
    status: str
    ai_label: str | None

    @property
    def overdue(self) -> bool:
        return self.due_at is not None and self.due_at < utcnow()


async def escalated_tasks(session: AsyncSession) -> list[EscalatedTask]:
    rows = await session.execute(
        sa.select(ReviewTask, Workflow.name, AIResult.output)
        .join(Workflow, Workflow.id == ReviewTask.workflow_id)
        .outerjoin(AIResult, AIResult.item_id == ReviewTask.item_id)
        .where(
            ReviewTask.level == ReviewLevel.ESCALATED.value,
            ReviewTask.status.in_([TaskStatus.OPEN.value, TaskStatus.CLAIMED.value]),
        )
        .order_by(ReviewTask.due_at.nulls_last(), ReviewTask.escalated_at)
        .limit(500)
    )
    out = []
    for task, name, output in rows:
        label = (output or {}).get("label")
        labels = (output or {}).get("labels")
        if label is None and isinstance(labels, list):
            label = " + ".join(str(v) for v in labels)
        out.append(
            EscalatedTask(
                task.id,
                name,
                task.escalated_from,
                task.escalated_by,
                task.escalation_reason,
                task.escalated_at,
                task.due_at,
                task.status,
                label if isinstance(label, str) else None,
            )
        )
    return out


def build_escalation_router() -> APIRouter:
    from hitl_review_ui.pages import _next, _render_review, templates

    router = APIRouter(include_in_schema=False)

    @router.post("/tasks/{task_id}/escalate")
    async def escalate_page(
        request: Request,
        task_id: uuid.UUID,
        reviewer: ReviewerDep,
        work: WorkDep,
        runtime: RuntimeDep,
        escalation_reason: Annotated[str, Form(max_length=4000)] = "",
        queue_workflow: Annotated[str, Form()] = "",
        queue_level: Annotated[str, Form()] = "",
    ) -> Response:
        ctx = await load_context(work.session, task_id)
        if ctx is None:
            return redirect("/?msg=gone")
        try:
            await escalate_task(work, ctx, reviewer, escalation_reason)
        except DecisionError as e:
            if ctx.task.status != TaskStatus.CLAIMED.value or ctx.task.claimed_by != reviewer.id:
                return redirect("/?msg=gone")
            return _render_review(
                request, reviewer, ctx, queue_workflow, queue_level, str(e), status_code=422
            )
        await work.commit()
        return await _next(
            work,
            runtime,
            reviewer.id,
            queue_workflow,
            queue_level,
            None,
            "escalated",
            lead=reviewer.is_lead,
        )

    @router.get("/escalations", response_class=HTMLResponse)
    async def escalations_page(request: Request, lead: LeadDep, work: WorkDep) -> Response:
        tasks = await escalated_tasks(work.session)
        return templates.TemplateResponse(
            request,
            "escalations.html",
            {"reviewer": lead, "tasks": tasks, "open": sum(t.status == "open" for t in tasks)},
        )

    return router
