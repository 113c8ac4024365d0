"""Claiming under concurrency, the inbox's queue counts, and batch review time (SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from hitl_review_ui import claims
from hitl_shared.bootstrap import create_user
from hitl_shared.db.models import Item, ReviewDecision, ReviewTask, Workflow
from hitl_shared.db.types import utcnow
from hitl_shared.lifecycle import Role
from tests.conftest import System
from tests.router.test_routing_pipeline import (
    reviewer,
    rows,
    runtime,
    seed,
    ui,
    without_demo_items,
)

__all__ = ["without_demo_items"]  # the autouse fixture: queues hold only this test's tasks


async def tasks(
    system: System, levels: list[str], priority: int = 0, workflow: str = "support-triage"
) -> list[uuid.UUID]:
    """Open review tasks at these levels (oldest first), with their items."""
    out = []
    async with runtime(system).work() as work:
        s = work.session
        wf = (await s.execute(sa.select(Workflow).where(Workflow.name == workflow))).scalar_one()
        start = utcnow() - timedelta(hours=1)
        for n, level in enumerate(levels):
            at = start + timedelta(seconds=n)
            item = Item(
                workflow_id=wf.id,
                workflow_version=wf.current_version,
                input={"body": f"Task {n} at {level}"},
                priority=priority,
                status="in_review",
                created_at=at,
                updated_at=at,
            )
            s.add(item)
            await s.flush()
            task = ReviewTask(
                item_id=item.id,
                workflow_id=wf.id,
                level=level,
                status="open",
                priority=priority,
                created_at=at,
            )
            s.add(task)
            await s.flush()
            out.append(task.id)
    return out


async def users(system: System, n: int, role: Role = Role.REVIEWER) -> list[uuid.UUID]:
    ids = []
    async with runtime(system).work() as work:
        for i in range(n):
            name = f"r{i}-{uuid.uuid4().hex[:6]}"
            user = await create_user(work.session, name, "pw-1234567", role)
            ids.append(user.id)
    return ids


async def test_concurrent_claims_never_hand_out_the_same_task(system: System) -> None:
    created = set(await tasks(system, ["light", "full", "manual"] * 10))
    reviewers = await users(system, 8)

    async def work_through(reviewer_id: uuid.UUID) -> list[uuid.UUID]:
        got: list[uuid.UUID] = []
        while True:
            async with runtime(system).work() as work:
                task_id = await claims.claim_next(work.session, reviewer_id, None, None, 600)
                if task_id is None:
                    return got
                got.append(task_id)
                # Done at once, so the reviewer's next claim is a new task.
                await work.session.execute(
                    sa.update(ReviewTask).where(ReviewTask.id == task_id).values(status="done")
                )

    claimed = await asyncio.gather(*[work_through(r) for r in reviewers])
    everything = [t for got in claimed for t in got]
    assert len(everything) == len(set(everything)) == len(created)
    assert set(everything) == created


async def test_claims_keep_batch_and_escalated_tasks_to_their_people(system: System) -> None:
    # Batch and escalated tasks wait ahead (older, higher priority) of ordinary ones.
    batch = await tasks(system, ["batch"] * 3, priority=50)
    escalated = await tasks(system, ["escalated"] * 2, priority=40)
    ordinary = await tasks(system, ["light", "full"], priority=10)
    [rita] = await users(system, 1)
    [leo] = await users(system, 1, Role.LEAD)
    async with runtime(system).work() as work:
        first = await claims.claim(work.session, rita, None, None, 600)
        assert first.task_id == ordinary[0] and not first.held
        again = await claims.claim(work.session, rita, None, None, 600)
        assert again.task_id == ordinary[0] and again.held  # she still holds it
        if system.backend == "postgres":
            assert again.server_ms is not None and again.server_ms >= 0
        assert await claims.claim_next(work.session, rita, None, "escalated", 600) is None
        # A lead's "any queue" takes the first of both heads: the escalated task (priority).
        lead_first = await claims.claim_next(work.session, leo, None, None, 600, lead=True)
        assert lead_first == escalated[0]
        held = await claims.claim(work.session, leo, "support-triage", "escalated", 600, lead=True)
        assert (held.task_id, held.held) == (escalated[0], True)
        assert await claims.claim_next(work.session, leo, "nope", None, 600, lead=True) is None
        assert await claims.claim_next(work.session, leo, None, "bogus", 600, lead=True) is None
    held = {t.id: t for (t,) in await rows(system, sa.select(ReviewTask))}
    assert all(held[t].status == "open" for t in batch)


async def test_inbox_counts_from_indexes_capped_and_cached(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(claims, "COUNT_CAP", 4)
    await tasks(system, ["light"] * 6 + ["manual"] * 2)
    [rita] = await users(system, 1)
    async with runtime(system).work() as work:
        await claims.claim_next(work.session, rita, "support-triage", "manual", 600)
    async with runtime(system).sessionmaker() as session:
        board = await claims.queue_board(session)
    queues = {q.level: q for q in board.queues if q.workflow == "support-triage"}
    light, manual = queues["light"], queues["manual"]
    assert (light.open, light.open_more, light.claimed) == (4, True, 0)
    assert (manual.open, manual.open_more, manual.claimed) == (1, False, 1)
    assert light.oldest is not None and manual.oldest is not None
    assert light.oldest < manual.oldest  # claimed tasks count towards the oldest too
    assert board.total_open == 5 and board.total_more

    # The page says how many and as of when.
    async with ui(system) as http:
        await reviewer(http)
        page = (await http.get("/")).text
        assert "Start reviewing (5+ waiting)" in page
        assert '<td class="num">4+</td>' in page and 'id="queues-as-of"' in page

    # Cached per process for max_age seconds, then counted again.
    async with runtime(system).sessionmaker() as session:
        cached = await claims.queue_board(session, 60)
        await tasks(system, ["full"])
        assert await claims.queue_board(session, 60) is cached
        fresh = await claims.queue_board(session, 0)
        assert fresh is not cached and fresh.as_of >= cached.as_of
        assert "full" in {q.level for q in fresh.queues}
        assert "full" not in {q.level for q in cached.queues}


async def decisions_of(system: System, task_ids: list[str]) -> list[Any]:
    found = await rows(
        system,
        sa.select(ReviewDecision).where(ReviewDecision.task_id.in_(map(uuid.UUID, task_ids))),
    )
    return [d for (d,) in found]


async def test_batch_decision_shares_the_active_time_out_over_its_items(system: System) -> None:
    await seed(
        system,
        5,
        workflow="lead-qualification",
        confidence=0.4,
        label="disqualified",
        inp={"message": "I am a student, can I interview you?", "company": "Uni"},
    )
    await system.settle()
    async with ui(system) as http:
        rev = await reviewer(http)
        await http.post("/batches/lead-qualification/take", data={"csrf_token": rev.csrf})
        page = await http.get("/batches/lead-qualification")
        assert '<script src="/static/active-time.js">' in page.text
        task_ids = [t.split('"')[0] for t in page.text.split('name="task_id" value="')[1:]]
        assert len(task_ids) == 5
        # Taken two minutes ago.
        async with runtime(system).work() as work:
            await work.session.execute(
                sa.update(ReviewTask)
                .where(ReviewTask.id.in_(map(uuid.UUID, task_ids)))
                .values(claimed_at=utcnow() - timedelta(minutes=2))
            )
        # 8 s of active time on the page, for two items: 4 s each.
        r = await http.post(
            "/batches/lead-qualification/decide",
            data={
                "csrf_token": rev.csrf,
                "action": "approve",
                "task_id": task_ids[:2],
                "active_ms": "8000",
            },
        )
        assert r.status_code == 303 and r.headers["location"].endswith("msg=approved")
        assert [d.active_seconds for d in await decisions_of(system, task_ids[:2])] == [4.0, 4.0]
        # No measure (no JavaScript): the two minutes held, shared by the three - not two
        # minutes each.
        r = await http.post(
            "/batches/lead-qualification/decide",
            data={"csrf_token": rev.csrf, "action": "approve", "task_id": task_ids[2:]},
        )
        assert r.status_code == 303
        shares = [d.active_seconds for d in await decisions_of(system, task_ids[2:])]
        assert len(shares) == 3 and all(40 <= s < 42 for s in shares), shares
