"""Review queues: claim the next task with a lock, so two reviewers never hold the same item."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_shared.db.models import ReviewTask, Workflow
from hitl_shared.db.types import UTCDateTime, utcnow
from hitl_shared.lifecycle import ReviewLevel, TaskStatus


@dataclass
class QueueSummary:
    workflow: str
    level: str
    open: int
    claimed: int
    oldest: datetime | None
    # SLA, when tasks carry a deadline (`ReviewTask.due_at`): earliest deadline, overdue count.
    next_due: datetime | None = None
    overdue: int = 0
    has_sla: bool = False

    @property
    def oldest_age_seconds(self) -> float | None:
        return (utcnow() - self.oldest).total_seconds() if self.oldest else None

    @property
    def sla_state(self) -> str | None:
        """None without deadlines; else "overdue", "due soon" (within the hour) or "on time"."""
        if not self.has_sla or self.next_due is None:
            return None
        if self.overdue:
            return "overdue"
        return "due soon" if (self.next_due - utcnow()).total_seconds() < 3600 else "on time"

    @property
    def due_in_seconds(self) -> float | None:
        return (self.next_due - utcnow()).total_seconds() if self.next_due else None


LEVEL_ORDER = {"escalated": 0, "manual": 1, "full": 2, "light": 3, "auto": 4}


def _due_column() -> Any:
    # Deadlines arrive with the SLA migration; until then queues simply show no SLA.
    return getattr(ReviewTask, "due_at", None)


async def queue_summaries(session: AsyncSession) -> list[QueueSummary]:
    due = _due_column()
    now = utcnow()
    sla_columns: list[Any] = (
        [
            sa.type_coerce(sa.func.min(due), UTCDateTime),
            sa.func.sum(sa.case((due < now, 1), else_=0)),
        ]
        if due is not None
        else []
    )
    rows = (
        await session.execute(
            sa.select(
                Workflow.name,
                ReviewTask.level,
                sa.func.sum(sa.case((ReviewTask.status == TaskStatus.OPEN.value, 1), else_=0)),
                sa.func.sum(sa.case((ReviewTask.status == TaskStatus.CLAIMED.value, 1), else_=0)),
                sa.type_coerce(sa.func.min(ReviewTask.created_at), UTCDateTime),
                *sla_columns,
            )
            .join(Workflow, Workflow.id == ReviewTask.workflow_id)
            .where(ReviewTask.status.in_([TaskStatus.OPEN.value, TaskStatus.CLAIMED.value]))
            .group_by(Workflow.name, ReviewTask.level)
        )
    ).all()
    out = []
    for row in rows:
        name, level, waiting, claimed, oldest = row[:5]
        summary = QueueSummary(name, level, int(waiting or 0), int(claimed or 0), oldest)
        if due is not None:
            summary.has_sla = True
            summary.next_due, summary.overdue = row[5], int(row[6] or 0)
        out.append(summary)
    return sorted(out, key=lambda q: (q.workflow, LEVEL_ORDER.get(q.level, 9)))


async def held_tasks(session: AsyncSession, reviewer_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    """Tasks this reviewer still holds a live lock on, to continue where they left off."""
    rows = await session.execute(
        sa.select(ReviewTask.id, Workflow.name)
        .join(Workflow, Workflow.id == ReviewTask.workflow_id)
        .where(
            ReviewTask.status == TaskStatus.CLAIMED.value,
            ReviewTask.claimed_by == reviewer_id,
            ReviewTask.lock_expires_at > utcnow(),
        )
        .order_by(ReviewTask.claimed_at)
    )
    return [(task_id, name) for task_id, name in rows]


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
    lead: bool = False,
) -> uuid.UUID | None:
    """The reviewer's current task in this queue, or the next open one, locked for them.

    Escalated tasks go to leads and admins only; batch tasks are decided on the batch page,
    so "any queue" never hands one out singly."""
    wf_id = await _workflow_id(session, workflow)
    if workflow and wf_id is None:
        return None
    if level == ReviewLevel.ESCALATED.value and not lead:
        return None
    conds = _queue_filter(wf_id, level)
    if not level:
        excluded = [ReviewLevel.BATCH.value] + ([] if lead else [ReviewLevel.ESCALATED.value])
        conds.append(ReviewTask.level.not_in(excluded))
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
