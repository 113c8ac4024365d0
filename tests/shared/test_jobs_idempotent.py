"""A queue message is only a wake-up call: lost or repeated ones never lose or duplicate work."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from hitl_feedback.recording import record_feedback
from hitl_processor.processing import process_item
from hitl_router.routing import route_item
from hitl_shared.db.models import (
    AIResult,
    FeedbackRecord,
    Item,
    ReviewDecision,
    ReviewTask,
    RoutingDecision,
    User,
    Workflow,
)
from hitl_shared.db.types import utcnow
from tests.conftest import System


async def _count(system: System, model: type, **where: object) -> int:
    runtime = system.embedded.runtime  # type: ignore[attr-defined]
    async with runtime.sessionmaker() as s:
        q = sa.select(sa.func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return int(await s.scalar(q) or 0)


async def test_item_whose_wake_up_was_lost_is_found_by_the_sweeper(system: System) -> None:
    runtime = system.embedded.runtime  # type: ignore[attr-defined]
    # Written straight to the database, as if the process died between commit and enqueue.
    async with runtime.sessionmaker() as s:
        wf = (
            await s.execute(sa.select(Workflow).where(Workflow.name == "support-triage"))
        ).scalar_one()
        item = Item(workflow_id=wf.id, workflow_version=1, input={"body": "lost wake-up"})
        s.add(item)
        await s.commit()
    await system.settle()
    async with runtime.sessionmaker() as s:
        got = await s.get(Item, item.id)
        assert got is not None and got.status == "in_review"


async def test_repeated_jobs_do_not_duplicate_work(system: System) -> None:
    r = await system.client.post(
        "/v1/items",
        json={"workflow": "support-triage", "input": {"body": "The login page shows an error"}},
        headers=system.api_headers,
    )
    item_id = r.json()["id"]
    await system.settle()
    runtime = system.embedded.runtime  # type: ignore[attr-defined]
    for job in (process_item, route_item, process_item, route_item):
        async with runtime.work() as work:
            await job(work, runtime, item_id)
    iid = uuid.UUID(item_id)
    assert await _count(system, AIResult, item_id=iid) == 1
    assert await _count(system, RoutingDecision, item_id=iid) == 1
    assert await _count(system, ReviewTask, item_id=iid) == 1

    # A decision, then its feedback job delivered three times: one record.
    async with runtime.work() as work:
        task = (
            await work.session.execute(sa.select(ReviewTask).where(ReviewTask.item_id == iid))
        ).scalar_one()
        admin = (await work.session.execute(sa.select(User))).scalars().first()
        decision = ReviewDecision(
            task_id=task.id,
            item_id=iid,
            reviewer_id=admin.id,
            outcome="edited",
            output={"label": "technical"},
            active_seconds=3.0,
            read_chars=30,
            created_at=utcnow(),
        )
        work.session.add(decision)
    for _ in range(3):
        async with runtime.work() as work:
            await record_feedback(work, runtime, str(decision.id))
    await system.settle()
    assert await _count(system, FeedbackRecord, decision_id=decision.id) == 1
