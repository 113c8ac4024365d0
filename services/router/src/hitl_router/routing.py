"""The route_item job: give a processed item its review level and put it in a human queue."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa

from hitl_router.policy import choose_level
from hitl_shared.db.models import AIResult, Item, ReviewTask, RoutingDecision, Workflow
from hitl_shared.db.types import utcnow
from hitl_shared.jobs import ROUTE_ITEM
from hitl_shared.lifecycle import ItemStatus, TaskStatus, transition
from hitl_shared.metrics import ITEMS_ROUTED, SWEEP_REQUEUED
from hitl_shared.runtime import Runtime
from hitl_shared.work import Work
from hitl_shared.workflows.store import config_for


async def route_item(work: Work, runtime: Runtime, item_id: str) -> None:
    session = work.session
    item = await session.get(Item, uuid.UUID(item_id), with_for_update=True)
    if item is None or item.status != ItemStatus.PROCESSED.value:
        return
    ai = (
        await session.execute(sa.select(AIResult).where(AIResult.item_id == item.id))
    ).scalar_one()
    config = await config_for(session, item.workflow_id, item.workflow_version)
    choice = choose_level(config.routing, ai.confidence, list(ai.flags))
    session.add(
        RoutingDecision(
            item_id=item.id,
            level=choice.level.value,
            reason=choice.reason,
            rule=choice.rule,
            confidence=ai.confidence,
            policy_version=item.workflow_version,
        )
    )
    session.add(
        ReviewTask(
            item_id=item.id,
            workflow_id=item.workflow_id,
            level=choice.level.value,
            status=TaskStatus.OPEN.value,
            priority=item.priority,
        )
    )
    transition(item, ItemStatus.IN_REVIEW)
    item.updated_at = utcnow()
    name = await session.scalar(sa.select(Workflow.name).where(Workflow.id == item.workflow_id))
    ITEMS_ROUTED.labels(name or "unknown", choice.level.value).inc()


async def sweep_processed(work: Work, runtime: Runtime) -> int:
    cutoff = utcnow() - timedelta(seconds=runtime.settings.stuck_after_seconds)
    ids = (
        await work.session.scalars(
            sa.select(Item.id)
            .where(Item.status == ItemStatus.PROCESSED.value, Item.updated_at < cutoff)
            .limit(1000)
        )
    ).all()
    for item_id in ids:
        work.enqueue(ROUTE_ITEM, item_id)
    SWEEP_REQUEUED.labels(ROUTE_ITEM).inc(len(ids))
    return len(ids)


async def sweep_expired_locks(work: Work, runtime: Runtime) -> int:
    """An abandoned review goes back to its queue when its lock expires."""
    result = await work.session.execute(
        sa.update(ReviewTask)
        .where(ReviewTask.status == TaskStatus.CLAIMED.value, ReviewTask.lock_expires_at < utcnow())
        .values(
            status=TaskStatus.OPEN.value, claimed_by=None, claimed_at=None, lock_expires_at=None
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
