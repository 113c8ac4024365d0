"""The public representation of an item: the GET /v1/items/{id} body and the webhook payload.
Integrations depend on it; keep it stable."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_shared.db.models import AIResult, Item, ReviewDecision, RoutingDecision, User, Workflow
from hitl_shared.lifecycle import PUBLIC_STATUS, ItemStatus

SYSTEM_DECIDER = "system"


class AIView(BaseModel):
    output: dict[str, Any] | None = None
    confidence: float | None = None
    provider: str | None = None
    model: str | None = None
    flags: list[str] = Field(default_factory=list)


class ReviewView(BaseModel):
    level: str | None = None
    reason: str | None = None


class DecisionView(BaseModel):
    outcome: Literal["approved", "edited", "rejected"] | None = None
    output: dict[str, Any] | None = None
    reason: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None


class ItemView(BaseModel):
    id: str
    workflow: str
    workflow_version: int
    status: Literal["pending", "in_review", "completed", "cancelled"]
    external_id: str | None
    priority: int
    created_at: datetime
    updated_at: datetime
    ai: AIView
    review: ReviewView
    decision: DecisionView


async def item_view(session: AsyncSession, item: Item) -> ItemView:
    wf_name = (
        await session.execute(sa.select(Workflow.name).where(Workflow.id == item.workflow_id))
    ).scalar_one()
    ai = (
        await session.execute(sa.select(AIResult).where(AIResult.item_id == item.id))
    ).scalar_one_or_none()
    routing = (
        await session.execute(sa.select(RoutingDecision).where(RoutingDecision.item_id == item.id))
    ).scalar_one_or_none()
    decision = None
    decided_by = None
    if item.status == ItemStatus.COMPLETED.value:
        row = (
            await session.execute(
                sa.select(ReviewDecision, User.username)
                .outerjoin(User, User.id == ReviewDecision.reviewer_id)
                .where(ReviewDecision.item_id == item.id)
                .order_by(ReviewDecision.created_at.desc())
                .limit(1)
            )
        ).first()
        if row is not None:
            decision, decided_by = row
            if decision.reviewer_id is None:
                decided_by = SYSTEM_DECIDER  # approved automatically (`auto` level)
    return ItemView(
        id=str(item.id),
        workflow=wf_name,
        workflow_version=item.workflow_version,
        status=PUBLIC_STATUS[ItemStatus(item.status)],  # type: ignore[arg-type]
        external_id=item.external_id,
        priority=item.priority,
        created_at=item.created_at,
        updated_at=item.updated_at,
        ai=AIView(
            output=ai.output if ai else None,
            confidence=ai.confidence if ai else None,
            provider=ai.provider if ai else None,
            model=ai.model if ai else None,
            flags=list(ai.flags) if ai else [],
        ),
        review=ReviewView(
            level=routing.level if routing else None, reason=routing.reason if routing else None
        ),
        decision=DecisionView(
            outcome=decision.outcome if decision else None,  # type: ignore[arg-type]
            output=decision.output if decision else None,
            reason=(decision.reason or None) if decision else None,
            decided_by=decided_by,
            decided_at=decision.created_at if decision else None,
        ),
    )


def pending_view(item: Item, workflow: str) -> ItemView:
    return ItemView(
        id=str(item.id),
        workflow=workflow,
        workflow_version=item.workflow_version,
        status=PUBLIC_STATUS[ItemStatus(item.status)],  # type: ignore[arg-type]
        external_id=item.external_id,
        priority=item.priority,
        created_at=item.created_at,
        updated_at=item.updated_at,
        ai=AIView(),
        review=ReviewView(),
        decision=DecisionView(),
    )


def webhook_payload(view: ItemView, event_type: str, timestamp: datetime) -> dict[str, Any]:
    return {
        "type": event_type,
        "timestamp": timestamp.isoformat(),
        "data": view.model_dump(mode="json"),
    }
