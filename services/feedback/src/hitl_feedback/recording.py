"""The record_feedback job: turn one human decision into a measurement of the AI."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_shared.db.models import (
    AIResult,
    Canary,
    FeedbackRecord,
    Item,
    ReviewDecision,
    ReviewTask,
    RoutingDecision,
    Workflow,
)
from hitl_shared.db.types import UTCDateTime, utcnow
from hitl_shared.jobs import RECALIBRATE, RECORD_FEEDBACK
from hitl_shared.lifecycle import Outcome, TaskStatus
from hitl_shared.metrics import (
    AI_AGREEMENT,
    CANARY_RESULTS,
    REVIEW_ACTIVE_SECONDS,
    REVIEW_DECISIONS,
    REVIEW_QUEUE_OLDEST,
    REVIEW_QUEUE_OPEN,
    REVIEW_SECONDS_PER_KCHAR,
)
from hitl_shared.runtime import Runtime
from hitl_shared.work import Work
from hitl_shared.workflows.store import config_for
from hitl_shared.workflows.tasks import answer_from_output, answer_key, changes, same_answer


async def record_feedback(work: Work, runtime: Runtime, decision_id: str) -> None:
    session = work.session
    did = uuid.UUID(decision_id)
    exists = await session.scalar(
        sa.select(FeedbackRecord.id).where(FeedbackRecord.decision_id == did)
    )
    if exists is not None:
        return  # already recorded: a repeated message
    decision = await session.get(ReviewDecision, did)
    if decision is None:
        return
    canary = (
        await session.execute(
            sa.select(Canary).where(Canary.item_id == decision.item_id).with_for_update()
        )
    ).scalar_one_or_none()
    if canary is not None:
        await _record_canary(session, canary, decision)
        return
    task = await session.get(ReviewTask, decision.task_id)
    ai = (
        await session.execute(sa.select(AIResult).where(AIResult.item_id == decision.item_id))
    ).scalar_one_or_none()
    routing = (
        await session.execute(
            sa.select(RoutingDecision).where(RoutingDecision.item_id == decision.item_id)
        )
    ).scalar_one_or_none()
    assert task is not None
    item = await session.get(Item, decision.item_id)
    assert item is not None
    config = await config_for(session, item.workflow_id, item.workflow_version)
    ai_answer = answer_from_output(config, ai.output if ai else None) or None
    final_answer: dict[str, Any] | None = None
    ai_correct: bool | None
    if decision.outcome == Outcome.REJECTED.value:
        ai_correct = False if ai_answer is not None else None
    else:
        final_answer = answer_from_output(config, decision.output) or ai_answer
        if decision.outcome == Outcome.APPROVED.value and ai_answer is not None:
            final_answer = final_answer or ai_answer
        ai_correct = (
            ai_answer is not None
            and final_answer is not None
            and same_answer(config, ai_answer, final_answer)
        )
    by_system = decision.reviewer_id is None
    if by_system:
        # Approved automatically: no human judged the AI, so it is no evidence of accuracy
        # and no training example (the model must not learn from its own unchecked answers).
        ai_correct, final_answer = None, None
    record = FeedbackRecord(
        decision_id=decision.id,
        item_id=decision.item_id,
        workflow_id=task.workflow_id,
        level=routing.level if routing else task.level,
        outcome=decision.outcome,
        ai_correct=ai_correct,
        ai_label=answer_key(config, ai_answer),
        final_label=answer_key(config, final_answer),
        confidence=ai.confidence if ai else None,
        active_seconds=decision.active_seconds,
        read_chars=decision.read_chars,
        # sa.null(): SQL NULL, not a JSON null, so "IS NULL" finds the missing answers.
        ai_answer=ai_answer if ai_answer is not None else sa.null(),
        final_answer=final_answer if final_answer is not None else sa.null(),
        changes=(
            changes(config, ai_answer, final_answer) if ai_answer and final_answer else sa.null()
        ),
    )
    session.add(record)
    await session.flush()
    # The loop decides itself whether enough new evidence has arrived to refit.
    work.enqueue(RECALIBRATE, task.workflow_id)
    wf = (
        await session.scalar(sa.select(Workflow.name).where(Workflow.id == task.workflow_id))
        or "unknown"
    )
    if by_system:
        return
    REVIEW_DECISIONS.labels(wf, record.level, record.outcome).inc()
    REVIEW_ACTIVE_SECONDS.labels(wf, record.level, record.outcome).observe(record.active_seconds)
    if record.outcome == Outcome.APPROVED.value and record.read_chars > 0:
        REVIEW_SECONDS_PER_KCHAR.labels(wf, record.level).observe(
            record.active_seconds / (record.read_chars / 1000)
        )
    if ai_correct is not None:
        AI_AGREEMENT.labels(wf, record.level, "true" if ai_correct else "false").inc()


async def _record_canary(session: AsyncSession, canary: Canary, decision: ReviewDecision) -> None:
    """A canary measures the reviewer, not the AI: no feedback record (so never training data
    nor accuracy), only whether the known-wrong answer was caught."""
    if canary.decision_id is not None:
        return  # already recorded: a repeated message
    # The reviewer caught it unless they approved the planted wrong answer as it was.
    caught = decision.outcome != Outcome.APPROVED.value
    canary.decision_id = decision.id
    canary.reviewer_id = decision.reviewer_id
    canary.caught = caught
    canary.decided_at = decision.created_at
    await session.flush()
    wf = (
        await session.scalar(sa.select(Workflow.name).where(Workflow.id == canary.workflow_id))
        or "unknown"
    )
    CANARY_RESULTS.labels(wf, "true" if caught else "false").inc()


async def sweep_unrecorded(work: Work, runtime: Runtime) -> int:
    ids = (
        await work.session.scalars(
            sa.select(ReviewDecision.id)
            .outerjoin(FeedbackRecord, FeedbackRecord.decision_id == ReviewDecision.id)
            .outerjoin(Canary, Canary.item_id == ReviewDecision.item_id)
            .where(
                FeedbackRecord.id.is_(None),
                sa.or_(Canary.id.is_(None), Canary.decision_id.is_(None)),
            )
            .limit(1000)
        )
    ).all()
    for decision_id in ids:
        work.enqueue(RECORD_FEEDBACK, decision_id)
    return len(ids)


async def refresh_queue_gauges(work: Work, runtime: Runtime) -> int:
    """Review load for Prometheus: open tasks and the age of the oldest, per workflow and level."""
    rows = (
        await work.session.execute(
            sa.select(
                Workflow.name,
                ReviewTask.level,
                sa.func.count(),
                sa.type_coerce(sa.func.min(ReviewTask.created_at), UTCDateTime),
            )
            .join(Workflow, Workflow.id == ReviewTask.workflow_id)
            .where(ReviewTask.status.in_([TaskStatus.OPEN.value, TaskStatus.CLAIMED.value]))
            .group_by(Workflow.name, ReviewTask.level)
        )
    ).all()
    now = utcnow()
    REVIEW_QUEUE_OPEN.clear()
    REVIEW_QUEUE_OLDEST.clear()
    for name, level, count, oldest in rows:
        REVIEW_QUEUE_OPEN.labels(name, level).set(count)
        if oldest is not None:
            REVIEW_QUEUE_OLDEST.labels(name, level).set((now - oldest).total_seconds())
    return 0
