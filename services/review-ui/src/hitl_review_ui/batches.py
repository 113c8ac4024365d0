"""Batch review: low-confidence declines a workflow marks as batchable (``routing.batch``) are
approved as a group by a human, never sent unreviewed. The reviewer takes a batch (its tasks
are locked to them like any claim), sees every item with the AI's answer and why it is here,
approves all or some (each item gets its own recorded decision) and sends the rest to normal
review."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_review_ui.auth import Reviewer, ReviewerDep
from hitl_review_ui.decisions import DecisionError, decide, load_context
from hitl_review_ui.ui import redirect
from hitl_shared.audit import record
from hitl_shared.db.models import AIResult, Item, ReviewTask, RoutingDecision, Workflow
from hitl_shared.db.types import utcnow
from hitl_shared.escalation import due_at
from hitl_shared.http import RuntimeDep, WorkDep
from hitl_shared.lifecycle import ReviewLevel, TaskStatus
from hitl_shared.metrics import BATCH_DECISIONS
from hitl_shared.work import Work
from hitl_shared.workflows.store import current_version

DEFAULT_BATCH_SIZE = 50
MESSAGES = {
    "approved": "Approved: each selected item got its own recorded decision.",
    "sent": "Sent to normal review.",
    "released": "The rest of the batch went back to the queue.",
    "none": "Select at least one item first.",
}


@dataclass
class BatchRow:
    task_id: uuid.UUID
    item_id: uuid.UUID
    text: str
    label: str | None
    confidence: float | None
    reason: str


async def _workflow(session: AsyncSession, name: str) -> Workflow | None:
    return (
        await session.execute(sa.select(Workflow).where(Workflow.name == name))
    ).scalar_one_or_none()


async def _batch_size(session: AsyncSession, wf: Workflow) -> int:
    from hitl_shared.workflows.config import WorkflowConfig

    config = WorkflowConfig.model_validate((await current_version(session, wf)).config)
    return config.routing.batch.size if config.routing.batch else DEFAULT_BATCH_SIZE


def _held(reviewer_id: uuid.UUID, workflow_id: uuid.UUID) -> list[sa.ColumnElement[bool]]:
    return [
        ReviewTask.workflow_id == workflow_id,
        ReviewTask.level == ReviewLevel.BATCH.value,
        ReviewTask.status == TaskStatus.CLAIMED.value,
        ReviewTask.claimed_by == reviewer_id,
        ReviewTask.lock_expires_at > utcnow(),
    ]


async def take_batch(
    session: AsyncSession, reviewer_id: uuid.UUID, wf: Workflow, size: int, lock_seconds: int
) -> int:
    """Lock up to ``size`` open batch tasks for this reviewer (what they hold counts)."""
    held = int(
        await session.scalar(
            sa.select(sa.func.count()).select_from(ReviewTask).where(*_held(reviewer_id, wf.id))
        )
        or 0
    )
    wanted = size - held
    if wanted <= 0:
        return held
    now = utcnow()
    free = (
        sa.select(ReviewTask.id)
        .where(
            ReviewTask.workflow_id == wf.id,
            ReviewTask.level == ReviewLevel.BATCH.value,
            ReviewTask.status == TaskStatus.OPEN.value,
        )
        .order_by(ReviewTask.priority.desc(), ReviewTask.created_at)
        .limit(wanted)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        sa.update(ReviewTask)
        .where(ReviewTask.id.in_(free), ReviewTask.status == TaskStatus.OPEN.value)
        .values(
            status=TaskStatus.CLAIMED.value,
            claimed_by=reviewer_id,
            claimed_at=now,
            lock_expires_at=now + timedelta(seconds=lock_seconds),
        )
        .execution_options(synchronize_session=False)
    )
    return held + int(getattr(result, "rowcount", 0) or 0)


async def held_batch(session: AsyncSession, reviewer_id: uuid.UUID, wf: Workflow) -> list[BatchRow]:
    from hitl_review_ui.decisions import _config

    rows = (
        await session.execute(
            sa.select(ReviewTask, Item, AIResult, RoutingDecision.reason)
            .join(Item, Item.id == ReviewTask.item_id)
            .outerjoin(AIResult, AIResult.item_id == Item.id)
            .outerjoin(RoutingDecision, RoutingDecision.item_id == Item.id)
            .where(*_held(reviewer_id, wf.id))
            .order_by(ReviewTask.priority.desc(), ReviewTask.created_at)
        )
    ).all()
    out = []
    for task, item, ai, reason in rows:
        config = await _config(session, item.workflow_id, item.workflow_version)
        text = "\n\n".join(
            str(item.input.get(f)) for f in config.text_fields if item.input.get(f) is not None
        )
        answer: dict[str, Any] = (ai.output or {}) if ai else {}
        label = answer.get("label")
        if label is None and isinstance(answer.get("score"), int | float):
            label = f"score {answer['score']:g}"
        out.append(
            BatchRow(
                task.id,
                item.id,
                text,
                label if isinstance(label, str) else None,
                ai.confidence if ai else None,
                reason or "",
            )
        )
    return out


async def open_batches(session: AsyncSession) -> list[tuple[str, int]]:
    rows = await session.execute(
        sa.select(Workflow.name, sa.func.count())
        .select_from(ReviewTask)
        .join(Workflow, Workflow.id == ReviewTask.workflow_id)
        .where(
            ReviewTask.level == ReviewLevel.BATCH.value,
            ReviewTask.status == TaskStatus.OPEN.value,
        )
        .group_by(Workflow.name)
        .order_by(Workflow.name)
    )
    return [(name, int(n)) for name, n in rows]


async def approve_selected(
    work: Work, reviewer: Reviewer, task_ids: list[uuid.UUID], active_ms: int | None
) -> int:
    """Each selected item gets its own decision, exactly as if approved on its own.

    The page measures the reviewer's active, visible time on the batch (as the review page
    does for one item); each approved item records an equal share of it. Without a measure
    (no JavaScript) the share is of the time since the batch was taken, never that whole time
    once per item."""
    contexts = []
    for task_id in dict.fromkeys(task_ids):
        ctx = await load_context(work.session, task_id)
        if ctx is not None and ctx.task.level == ReviewLevel.BATCH.value:
            contexts.append(ctx)
    if not contexts:
        return 0
    if active_ms is None:
        now = utcnow()
        taken = [c.task.claimed_at for c in contexts if c.task.claimed_at is not None]
        active_ms = int((now - min(taken)).total_seconds() * 1000) if taken else 0
    share = max(active_ms, 0) // len(contexts)
    for ctx in contexts:
        await decide(work, ctx, reviewer.id, reviewer.username, "approve", {}, None, "", share)
        BATCH_DECISIONS.labels(ctx.workflow, "approved").inc()
    return len(contexts)


async def send_to_review(work: Work, reviewer: Reviewer, task_ids: list[uuid.UUID]) -> int:
    """Out of the batch into the normal queue the confidence calls for (never lighter than
    full), unclaimed, with that level's deadline."""
    session = work.session
    now = utcnow()
    moved = 0
    for task_id in task_ids:
        ctx = await load_context(session, task_id)
        if (
            ctx is None
            or ctx.task.level != ReviewLevel.BATCH.value
            or ctx.task.status != TaskStatus.CLAIMED.value
            or ctx.task.claimed_by != reviewer.id
        ):
            continue
        confidence = ctx.ai.confidence if ctx.ai else 0.0
        level = (
            ReviewLevel.FULL
            if confidence >= ctx.config.routing.thresholds.full
            else ReviewLevel.MANUAL
        )
        task = ctx.task
        task.level = level.value
        task.status = TaskStatus.OPEN.value
        task.claimed_by = None
        task.claimed_at = None
        task.lock_expires_at = None
        task.due_at = due_at(ctx.config.routing.sla, level.value, now)
        await record(
            session,
            reviewer.username,
            "item.sent_to_review",
            ctx.item.id,
            {"task": str(task.id), "from": "batch", "to": level.value},
        )
        BATCH_DECISIONS.labels(ctx.workflow, "sent_to_review").inc()
        moved += 1
    await session.flush()
    return moved


async def release_batch(session: AsyncSession, reviewer_id: uuid.UUID, wf: Workflow) -> None:
    await session.execute(
        sa.update(ReviewTask)
        .where(*_held(reviewer_id, wf.id))
        .values(
            status=TaskStatus.OPEN.value, claimed_by=None, claimed_at=None, lock_expires_at=None
        )
        .execution_options(synchronize_session=False)
    )


def _ids(values: list[str]) -> list[uuid.UUID]:
    out = []
    for v in values:
        try:
            out.append(uuid.UUID(v))
        except ValueError:
            continue
    return out


def build_batch_router() -> APIRouter:
    from hitl_review_ui.pages import templates

    router = APIRouter(include_in_schema=False)

    @router.get("/batches", response_class=HTMLResponse)
    async def batches_index(request: Request, reviewer: ReviewerDep, work: WorkDep) -> Response:
        batches = await open_batches(work.session)
        return templates.TemplateResponse(
            request, "batches.html", {"reviewer": reviewer, "batches": batches}
        )

    @router.get("/batches/{workflow}", response_class=HTMLResponse)
    async def batch_page(
        request: Request,
        workflow: str,
        reviewer: ReviewerDep,
        work: WorkDep,
        msg: str | None = None,
    ) -> Response:
        wf = await _workflow(work.session, workflow)
        if wf is None:
            return redirect("/?msg=empty")
        rows = await held_batch(work.session, reviewer.id, wf)
        waiting = dict(await open_batches(work.session)).get(wf.name, 0)
        context: dict[str, Any] = {
            "reviewer": reviewer,
            "workflow": wf.name,
            "rows": rows,
            "waiting": waiting,
            "message": MESSAGES.get(msg or ""),
        }
        return templates.TemplateResponse(request, "batch.html", context)

    @router.post("/batches/{workflow}/take")
    async def take(
        workflow: str, reviewer: ReviewerDep, work: WorkDep, runtime: RuntimeDep
    ) -> Response:
        wf = await _workflow(work.session, workflow)
        if wf is None:
            return redirect("/?msg=empty")
        size = await _batch_size(work.session, wf)
        await take_batch(work.session, reviewer.id, wf, size, runtime.settings.review_lock_seconds)
        await work.commit()
        return redirect(f"/batches/{wf.name}")

    @router.post("/batches/{workflow}/decide")
    async def decide_batch(
        workflow: str,
        reviewer: ReviewerDep,
        work: WorkDep,
        action: Annotated[str, Form()],
        task_id: Annotated[list[str] | None, Form()] = None,
        active_ms: Annotated[str | None, Form()] = None,
    ) -> Response:
        wf = await _workflow(work.session, workflow)
        if wf is None:
            return redirect("/?msg=empty")
        if action == "release":
            await release_batch(work.session, reviewer.id, wf)
            await work.commit()
            return redirect(f"/batches/{wf.name}?msg=released")
        ids = _ids(task_id or [])
        if not ids:
            return redirect(f"/batches/{wf.name}?msg=none")
        try:
            ms = int(active_ms) if active_ms not in (None, "") else None
        except ValueError:
            ms = None
        if action == "approve":
            try:
                await approve_selected(work, reviewer, ids, ms)
            except DecisionError:
                # One lock expired under the reviewer: nothing of this request is kept.
                await work.rollback()
                return redirect("/?msg=gone")
            msg = "approved"
        elif action == "review":
            await send_to_review(work, reviewer, ids)
            msg = "sent"
        else:
            return redirect(f"/batches/{wf.name}")
        await work.commit()
        return redirect(f"/batches/{wf.name}?msg={msg}")

    return router
