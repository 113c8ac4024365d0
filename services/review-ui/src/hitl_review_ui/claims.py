"""Review queues: claim the next task with a lock, so two reviewers never hold the same item."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_shared.db.models import ReviewTask, Workflow
from hitl_shared.db.types import UTCDateTime, utcnow
from hitl_shared.lifecycle import TaskStatus


@dataclass
class QueueSummary:
    workflow: str
    level: str
    open: int
    claimed: int
    oldest: datetime | None

    @property
    def oldest_age_seconds(self) -> float | None:
        return (utcnow() - self.oldest).total_seconds() if self.oldest else None


LEVEL_ORDER = {"escalated": 0, "manual": 1, "full": 2, "light": 3, "auto": 4}


async def queue_summaries(session: AsyncSession) -> list[QueueSummary]:
    rows = (
        await session.execute(
            sa.select(
                Workflow.name,
                ReviewTask.level,
                sa.func.sum(sa.case((ReviewTask.status == TaskStatus.OPEN.value, 1), else_=0)),
                sa.func.sum(sa.case((ReviewTask.status == TaskStatus.CLAIMED.value, 1), else_=0)),
                sa.type_coerce(sa.func.min(ReviewTask.created_at), UTCDateTime),
            )
            .join(Workflow, Workflow.id == ReviewTask.workflow_id)
            .where(ReviewTask.status.in_([TaskStatus.OPEN.value, TaskStatus.CLAIMED.value]))
            .group_by(Workflow.name, ReviewTask.level)
        )
    ).all()
    out = [QueueSummary(n, lvl, int(o or 0), int(c or 0), oldest) for n, lvl, o, c, oldest in rows]
    return sorted(out, key=lambda q: (q.workflow, LEVEL_ORDER.get(q.level, 9)))


async def _workflow_id(session: AsyncSession, name: str | None) -> uuid.UUID | None:
    if not name:
        return None
    return await session.scalar(sa.select(Workflow.id).where(Workflow.name == name))


def _queue_filter(workflow_id: uuid.UUID | None, level: str | None) -> list[sa.ColumnElement[bool]]:
    conds: list[sa.ColumnElement[bool]] = []
    if workflow_id is not None:
        conds.append(ReviewTask.workflow_id == workflow_id)
    if level:
        conds.append(ReviewTask.level == level)
    return conds


async def claim_next(
    session: AsyncSession,
    reviewer_id: uuid.UUID,
    workflow: str | None,
    level: str | None,
    lock_seconds: int,
    skip: uuid.UUID | None = None,
) -> uuid.UUID | None:
    """The reviewer's current task in this queue, or the next open one, locked for them."""
    wf_id = await _workflow_id(session, workflow)
    if workflow and wf_id is None:
        return None
    conds = _queue_filter(wf_id, level)
    now = utcnow()
    held = await session.scalar(
        sa.select(ReviewTask.id)
        .where(
            ReviewTask.status == TaskStatus.CLAIMED.value,
            ReviewTask.claimed_by == reviewer_id,
            ReviewTask.lock_expires_at > now,
            *conds,
            *([ReviewTask.id != skip] if skip else []),
        )
        .order_by(ReviewTask.claimed_at)
        .limit(1)
    )
    if held is not None:
        return held
    next_open = (
        sa.select(ReviewTask.id)
        .where(
            ReviewTask.status == TaskStatus.OPEN.value,
            *conds,
            *([ReviewTask.id != skip] if skip else []),
        )
        .order_by(ReviewTask.priority.desc(), ReviewTask.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    claimed = await session.scalar(
        sa.update(ReviewTask)
        .where(ReviewTask.id == next_open, ReviewTask.status == TaskStatus.OPEN.value)
        .values(
            status=TaskStatus.CLAIMED.value,
            claimed_by=reviewer_id,
            claimed_at=now,
            lock_expires_at=now + timedelta(seconds=lock_seconds),
        )
        .returning(ReviewTask.id)
        .execution_options(synchronize_session=False)
    )
    return claimed


async def release(session: AsyncSession, task_id: uuid.UUID, reviewer_id: uuid.UUID) -> bool:
    result = await session.execute(
        sa.update(ReviewTask)
        .where(
            ReviewTask.id == task_id,
            ReviewTask.status == TaskStatus.CLAIMED.value,
            ReviewTask.claimed_by == reviewer_id,
        )
        .values(
            status=TaskStatus.OPEN.value, claimed_by=None, claimed_at=None, lock_expires_at=None
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
