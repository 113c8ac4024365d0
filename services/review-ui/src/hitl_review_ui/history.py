"""Item history (who did what, when, and what the human changed) and the list of decisions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hitl_review_ui.auth import Forbidden, Reviewer, ReviewerDep
from hitl_review_ui.diffs import OutputDiff, diff_outputs
from hitl_review_ui.pages import templates
from hitl_shared.db.models import (
    AIResult,
    ApiKey,
    AuditEvent,
    Delivery,
    Item,
    ReviewDecision,
    ReviewTask,
    RoutingDecision,
    User,
    Workflow,
    WorkflowVersion,
)
from hitl_shared.db.types import utcnow
from hitl_shared.http import WorkDep
from hitl_shared.lifecycle import TaskStatus

INSTANT_SECONDS = 2.0  # the review-theatre line: nobody reads and checks an item faster
PAGE_SIZE = 50


@dataclass
class TimelineEntry:
    at: datetime
    actor: str
    action: str
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class DecisionRow:
    decision: ReviewDecision
    reviewer: str
    level: str


@dataclass
class ItemHistory:
    item: Item
    workflow: str
    text_fields: list[str]
    ai: AIResult | None
    routing: RoutingDecision | None
    tasks: list[tuple[ReviewTask, str | None]]
    decisions: list[DecisionRow]
    deliveries: list[Delivery]
    timeline: list[TimelineEntry]
    diff: OutputDiff

    @property
    def final(self) -> DecisionRow | None:
        return self.decisions[-1] if self.decisions else None

    @property
    def text(self) -> str:
        return "\n\n".join(
            str(self.item.input[name]) for name in self.text_fields if name in self.item.input
        )

    @property
    def other_fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.item.input.items() if k not in self.text_fields}


async def may_view(session: AsyncSession, reviewer: Reviewer, item_id: uuid.UUID) -> bool:
    """Leads and admins see every item; a reviewer sees items they decided or now hold."""
    if reviewer.is_lead:
        return True
    decided = await session.scalar(
        sa.select(ReviewDecision.id)
        .where(ReviewDecision.item_id == item_id, ReviewDecision.reviewer_id == reviewer.id)
        .limit(1)
    )
    if decided is not None:
        return True
    held = await session.scalar(
        sa.select(ReviewTask.id)
        .where(
            ReviewTask.item_id == item_id,
            ReviewTask.claimed_by == reviewer.id,
            ReviewTask.status == TaskStatus.CLAIMED.value,
        )
        .limit(1)
    )
    return held is not None


async def item_history(session: AsyncSession, item_id: uuid.UUID) -> ItemHistory | None:
    item = await session.get(Item, item_id)
    if item is None:
        return None
    workflow = await session.scalar(sa.select(Workflow.name).where(Workflow.id == item.workflow_id))
    config = await session.scalar(
        sa.select(WorkflowVersion.config).where(
            WorkflowVersion.workflow_id == item.workflow_id,
            WorkflowVersion.version == item.workflow_version,
        )
    )
    text_fields = [str(f) for f in (config or {}).get("text_fields", [])]
    ai = await session.scalar(sa.select(AIResult).where(AIResult.item_id == item.id))
    routing = await session.scalar(
        sa.select(RoutingDecision).where(RoutingDecision.item_id == item.id)
    )
    claimer = aliased(User)
    tasks: list[tuple[ReviewTask, str | None]] = [
        (t, name)
        for t, name in (
            await session.execute(
                sa.select(ReviewTask, claimer.username)
                .outerjoin(claimer, claimer.id == ReviewTask.claimed_by)
                .where(ReviewTask.item_id == item.id)
                .order_by(ReviewTask.created_at)
            )
        ).all()
    ]
    decisions = [
        # No reviewer: the system approved it (automatic level).
        DecisionRow(d, name or "system", level)
        for d, name, level in (
            await session.execute(
                sa.select(ReviewDecision, User.username, ReviewTask.level)
                .outerjoin(User, User.id == ReviewDecision.reviewer_id)
                .join(ReviewTask, ReviewTask.id == ReviewDecision.task_id)
                .where(ReviewDecision.item_id == item.id)
                .order_by(ReviewDecision.created_at)
            )
        ).all()
    ]
    deliveries = list(
        (
            await session.scalars(
                sa.select(Delivery).where(Delivery.item_id == item.id).order_by(Delivery.created_at)
            )
        ).all()
    )
    audits = list(
        (
            await session.scalars(
                sa.select(AuditEvent).where(AuditEvent.item_id == item.id).order_by(AuditEvent.id)
            )
        ).all()
    )
    source = "demo" if item.is_demo else "system"
    if item.api_key_id is not None:
        key_name = await session.scalar(sa.select(ApiKey.name).where(ApiKey.id == item.api_key_id))
        source = f"api_key:{key_name}"

    timeline = [
        TimelineEntry(
            item.created_at,
            source,
            "item.received",
            f"Received for {workflow} (version {item.workflow_version})"
            + (f", external id {item.external_id}" if item.external_id else ""),
        )
    ]
    if ai is not None:
        label = ai.output.get("label") if isinstance(ai.output, dict) else None
        summary = (
            f"Failed: {ai.error}"
            if ai.error
            else f"Answered {label!s} with confidence {ai.confidence:.0%}"
        )
        if ai.flags:
            summary += " · flags: " + ", ".join(ai.flags)
        timeline.append(TimelineEntry(ai.created_at, f"AI ({ai.model})", "ai.answered", summary))
    if routing is not None:
        timeline.append(
            TimelineEntry(
                routing.created_at,
                "router",
                "item.routed",
                f"{routing.level} review: {routing.reason}",
                {"rule": routing.rule},
            )
        )
    for task, claimer_name in tasks:
        timeline.append(
            TimelineEntry(task.created_at, "router", "task.opened", f"{task.level} review queue")
        )
        if task.status == TaskStatus.CLAIMED.value and task.claimed_at is not None:
            timeline.append(
                TimelineEntry(
                    task.claimed_at,
                    claimer_name or "?",
                    "task.claimed",
                    f"Being reviewed; the lock expires at {task.lock_expires_at:%H:%M:%S} UTC"
                    if task.lock_expires_at
                    else "Being reviewed",
                )
            )
    for event in audits:
        timeline.append(
            TimelineEntry(
                event.at, event.actor, event.action, _audit_summary(event), dict(event.details)
            )
        )
    for d in deliveries:
        timeline.append(
            TimelineEntry(d.created_at, "system", "webhook.queued", f"{d.event_type} to {d.url}")
        )
        if d.delivered_at is not None:
            timeline.append(
                TimelineEntry(
                    d.delivered_at,
                    "system",
                    "webhook.delivered",
                    f"answered {d.last_status_code} after {d.attempts} attempt(s)",
                )
            )
    timeline.sort(key=lambda e: e.at)
    final = decisions[-1].decision if decisions else None
    diff = diff_outputs(
        ai.output if ai is not None and not ai.error else None,
        final.output if final else None,
        decided=final is not None,
    )
    return ItemHistory(
        item,
        workflow or "",
        text_fields,
        ai,
        routing,
        tasks,
        decisions,
        deliveries,
        timeline,
        diff,
    )


def _audit_summary(event: AuditEvent) -> str:
    d = event.details or {}
    parts = []
    if isinstance(d.get("output"), dict) and "label" in d["output"]:
        parts.append(f"label {d['output']['label']}")
    if d.get("level"):
        parts.append(f"at {d['level']} level")
    if d.get("reason"):
        parts.append(f"reason: {d['reason']}")
    return ", ".join(parts)


@dataclass
class DecisionListRow:
    at: datetime
    item_id: uuid.UUID
    workflow: str
    level: str
    reviewer: str
    outcome: str
    label: str | None
    active_seconds: float
    read_chars: int

    @property
    def instant(self) -> bool:
        return self.outcome == "approved" and self.active_seconds < INSTANT_SECONDS


async def decision_list(
    session: AsyncSession,
    reviewer: str | None,
    since: datetime,
    outcome: str | None,
    instant_only: bool,
    page: int,
) -> tuple[list[DecisionListRow], bool]:
    q = (
        sa.select(
            ReviewDecision.created_at,
            ReviewDecision.item_id,
            Workflow.name,
            ReviewTask.level,
            User.username,
            ReviewDecision.outcome,
            ReviewDecision.output,
            ReviewDecision.active_seconds,
            ReviewDecision.read_chars,
        )
        .outerjoin(User, User.id == ReviewDecision.reviewer_id)
        .join(ReviewTask, ReviewTask.id == ReviewDecision.task_id)
        .join(Workflow, Workflow.id == ReviewTask.workflow_id)
        .where(ReviewDecision.created_at >= since)
    )
    if reviewer:
        q = q.where(User.username == reviewer)
    if outcome:
        q = q.where(ReviewDecision.outcome == outcome)
    if instant_only:
        q = q.where(
            ReviewDecision.outcome == "approved", ReviewDecision.active_seconds < INSTANT_SECONDS
        )
    q = q.order_by(ReviewDecision.created_at.desc()).offset(page * PAGE_SIZE).limit(PAGE_SIZE + 1)
    rows = [
        DecisionListRow(
            at,
            item_id,
            wf,
            level,
            name or "system",
            out,
            str(output["label"]) if isinstance(output, dict) and "label" in output else None,
            secs,
            chars,
        )
        for at, item_id, wf, level, name, out, output, secs, chars in (await session.execute(q))
    ]
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def _not_found(request: Request, reviewer: Reviewer) -> Response:
    return templates.TemplateResponse(
        request,
        "error.html",
        {"reviewer": reviewer, "title": "No such item", "message": "That item does not exist."},
        status_code=404,
    )


def build_history_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/items/{item_id}", response_class=HTMLResponse)
    async def item_page(
        request: Request, item_id: uuid.UUID, reviewer: ReviewerDep, work: WorkDep
    ) -> Response:
        if not await may_view(work.session, reviewer, item_id):
            # Same answer whether or not the item exists, so ids cannot be probed.
            raise Forbidden()
        history = await item_history(work.session, item_id)
        if history is None:
            return _not_found(request, reviewer)
        return templates.TemplateResponse(
            request, "item_history.html", {"reviewer": reviewer, "h": history}
        )

    @router.get("/history", response_class=HTMLResponse)
    async def decisions_page(
        request: Request,
        reviewer: ReviewerDep,
        work: WorkDep,
        who: str = "",
        days: int = 7,
        outcome: str = "",
        instant: bool = False,
        page: int = 0,
    ) -> Response:
        days = days if days in (1, 7, 30, 90) else 7
        # Reviewers see their own decisions; leads choose whose.
        who = who if reviewer.is_lead else reviewer.username
        outcome = outcome if outcome in ("approved", "edited", "rejected") else ""
        page = max(page, 0)
        rows, more = await decision_list(
            work.session,
            who or None,
            utcnow() - timedelta(days=days),
            outcome or None,
            instant,
            page,
        )
        return templates.TemplateResponse(
            request,
            "history.html",
            {
                "reviewer": reviewer,
                "rows": rows,
                "more": more,
                "who": who,
                "days": days,
                "outcome": outcome,
                "instant": instant,
                "page": page,
                "instant_seconds": INSTANT_SECONDS,
            },
        )

    return router
