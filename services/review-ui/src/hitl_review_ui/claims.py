"""Review queues: claim the next task with a lock, so two reviewers never hold the same item."""

from __future__ import annotations

import time
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_shared.db.models import ReviewTask, Workflow
from hitl_shared.db.types import UTCDateTime, utcnow
from hitl_shared.lifecycle import ReviewLevel, TaskStatus

# Literal, not bound: the partial indexes' predicates (`status = 'open'`, `level NOT IN (...)`)
# must appear as constants for PostgreSQL's cached generic plan (and SQLite) to use them.
OPEN = sa.literal_column(f"'{TaskStatus.OPEN.value}'", sa.String)
CLAIMED = sa.literal_column(f"'{TaskStatus.CLAIMED.value}'", sa.String)
BATCH = sa.literal_column(f"'{ReviewLevel.BATCH.value}'", sa.String)
ESCALATED = sa.literal_column(f"'{ReviewLevel.ESCALATED.value}'", sa.String)

ONE = sa.literal_column("1", sa.Integer)  # a constant LIMIT, for the same reason

# The inbox counts waiting tasks exactly up to this many per queue and shows "10,000+" beyond:
# counting costs a step per task, and a million-task queue is "a lot" to a reviewer either way.
COUNT_CAP = 10_000
# Levels a task can wait at, in the order the inbox lists them.
LEVEL_ORDER = {"escalated": 0, "manual": 1, "full": 2, "light": 3, "auto": 4, "batch": 5}


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
    # The waiting / overdue counts stopped at COUNT_CAP: more than that wait.
    open_more: bool = False
    overdue_more: bool = False

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


@dataclass
class QueueBoard:
    """The inbox's queues as counted at ``as_of`` (possibly a few seconds ago)."""

    queues: list[QueueSummary]
    as_of: datetime

    @property
    def total_open(self) -> int:
        return sum(q.open for q in self.queues)

    @property
    def total_more(self) -> bool:
        return any(q.open_more for q in self.queues)


def _capped_count(*conds: sa.ColumnElement[bool]) -> Any:
    """count(*) of the matching rows, reading at most COUNT_CAP + 1 of them."""
    cap = sa.literal_column(str(COUNT_CAP + 1), sa.Integer)
    rows = sa.select(ONE.label("one")).where(*conds).limit(cap)
    return (
        sa.select(sa.func.count())
        .select_from(rows.correlate_except(ReviewTask).subquery())
        .scalar_subquery()
    )


async def queue_summaries(session: AsyncSession) -> list[QueueSummary]:
    """Waiting and claimed tasks per workflow and level, with the oldest and the SLA state.

    Never a scan of all open tasks (it took a second at a million): per workflow and level,
    the waiting and overdue counts read at most COUNT_CAP + 1 index entries, the oldest task
    and the next deadline are the first entries of `ix_review_tasks_open_age` and
    `ix_review_tasks_open_sla`, and the claimed tasks (a few per reviewer) come from the
    partial `ix_review_tasks_claimed_by`."""
    now = utcnow()
    levels = sa.union_all(
        *[sa.select(sa.literal(level, sa.String(20)).label("level")) for level in LEVEL_ORDER]
    ).subquery("lv")
    in_queue = (
        ReviewTask.status == OPEN,
        ReviewTask.workflow_id == Workflow.id,
        ReviewTask.level == levels.c.level,
    )
    oldest = sa.select(sa.func.min(ReviewTask.created_at)).where(*in_queue).scalar_subquery()
    next_due = sa.select(sa.func.min(ReviewTask.due_at)).where(*in_queue).scalar_subquery()
    open_rows = (
        await session.execute(
            sa.select(
                Workflow.name,
                levels.c.level,
                _capped_count(*in_queue),
                sa.type_coerce(oldest, UTCDateTime),
                sa.type_coerce(next_due, UTCDateTime),
                _capped_count(*in_queue, ReviewTask.due_at < now),
            )
            # Every workflow and level, empty queues dropped below: as a WHERE EXISTS the
            # planner would make a semi-join of it and group every open task.
            .select_from(Workflow)
            .join(levels, sa.true())
        )
    ).all()
    claimed_rows = (
        await session.execute(
            sa.select(
                Workflow.name,
                ReviewTask.level,
                sa.func.count(),
                sa.type_coerce(sa.func.min(ReviewTask.created_at), UTCDateTime),
                sa.type_coerce(sa.func.min(ReviewTask.due_at), UTCDateTime),
                sa.func.sum(sa.case((ReviewTask.due_at < now, 1), else_=0)),
            )
            .join(Workflow, Workflow.id == ReviewTask.workflow_id)
            .where(ReviewTask.status == CLAIMED)
            .group_by(Workflow.name, ReviewTask.level)
        )
    ).all()
    queues: dict[tuple[str, str], QueueSummary] = {}
    for name, level, waiting, first, due, overdue in open_rows:
        if not waiting:
            continue
        queues[(name, level)] = QueueSummary(
            name,
            level,
            min(int(waiting), COUNT_CAP),
            0,
            first,
            next_due=due,
            overdue=min(int(overdue), COUNT_CAP),
            has_sla=True,
            open_more=int(waiting) > COUNT_CAP,
            overdue_more=int(overdue) > COUNT_CAP,
        )
    for name, level, claimed, first, due, overdue in claimed_rows:
        q = queues.setdefault((name, level), QueueSummary(name, level, 0, 0, None, has_sla=True))
        q.claimed = int(claimed)
        q.oldest = min(filter(None, (q.oldest, first)), default=None)
        q.next_due = min(filter(None, (q.next_due, due)), default=None)
        q.overdue += int(overdue or 0)
    return sorted(queues.values(), key=lambda q: (q.workflow, LEVEL_ORDER.get(q.level, 9)))


# Per database: (monotonic time, board). A board a few seconds old is shown as such ("as of");
# nothing invalidates it, it simply expires.
_BOARDS: weakref.WeakKeyDictionary[Any, tuple[float, QueueBoard]] = weakref.WeakKeyDictionary()


async def queue_board(session: AsyncSession, max_age_seconds: float = 0.0) -> QueueBoard:
    """The inbox's queues, counted at most ``max_age_seconds`` ago in this process."""
    engine = session.get_bind()
    hit = _BOARDS.get(engine) if max_age_seconds > 0 else None
    if hit is not None and time.monotonic() - hit[0] < max_age_seconds:
        return hit[1]
    as_of = utcnow()
    board = QueueBoard(await queue_summaries(session), as_of)
    if max_age_seconds > 0:
        _BOARDS[engine] = (time.monotonic(), board)
    return board


async def held_tasks(session: AsyncSession, reviewer_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    """Tasks this reviewer still holds a live lock on, to continue where they left off."""
    rows = await session.execute(
        sa.select(ReviewTask.id, Workflow.name)
        .join(Workflow, Workflow.id == ReviewTask.workflow_id)
        .where(
            ReviewTask.status == CLAIMED,
            ReviewTask.claimed_by == reviewer_id,
            ReviewTask.lock_expires_at > utcnow(),
        )
        .order_by(ReviewTask.claimed_at)
    )
    return [(task_id, name) for task_id, name in rows]


@dataclass(frozen=True)
class Claim:
    task_id: uuid.UUID | None
    # The reviewer already held it (a lock still live), rather than a new claim.
    held: bool = False
    # PostgreSQL only: how long the database spent on the claim statement, from receiving it
    # to its result (lock waits and skipped rows included; its FK check and the commit not).
    server_ms: float | None = None


LEVELS = frozenset(level.value for level in ReviewLevel)
# Key: (by workflow, level or None, lead, skip).
ClaimKey = tuple[bool, str | None, bool, bool]


def _queue_conds(key: ClaimKey, *, levels: bool = True) -> list[sa.ColumnElement[bool]]:
    """The queue's conditions, with `workflow` and `skip` as bound parameters.

    The level is a constant (one of the few ReviewLevel values), and so are the exclusions of
    "any queue" - never a batch task singly (batches are decided on the batch page), escalated
    ones only to leads: PostgreSQL then knows which partial index serves the claim
    (`ix_review_tasks_open_next` holds no batch or escalated task, so none of those waiting
    ahead is ever stepped over) even in the generic plan of a prepared statement."""
    by_workflow, level, lead, skip = key
    conds: list[sa.ColumnElement[bool]] = []
    if by_workflow:
        wf_id = sa.select(Workflow.id).where(Workflow.name == sa.bindparam("workflow"))
        conds.append(ReviewTask.workflow_id == wf_id.scalar_subquery())
    if skip:
        conds.append(ReviewTask.id != sa.bindparam("skip", type_=sa.Uuid))
    if not levels:
        return conds
    if level:
        conds.append(ReviewTask.level == sa.literal_column(f"'{level}'", sa.String))
    elif lead:
        conds.append(ReviewTask.level != BATCH)
    else:
        conds.append(ReviewTask.level.not_in([BATCH, ESCALATED]))
    return conds


def _first_open(conds: list[sa.ColumnElement[bool]], held: Any, name: str) -> sa.CTE:
    """The first open task (priority, then age) that no concurrent claim has locked, locked.

    FOR UPDATE SKIP LOCKED: concurrent claimers step over each other's rows rather than wait
    for them or take the same one."""
    return (
        sa.select(ReviewTask.id, ReviewTask.priority, ReviewTask.created_at)
        .where(ReviewTask.status == OPEN, *conds, ~sa.exists(sa.select(held.c.id)))
        .order_by(ReviewTask.priority.desc(), ReviewTask.created_at)
        .limit(ONE)
        .with_for_update(skip_locked=True)
        .cte(name)
    )


_PG_CLAIMS: dict[ClaimKey, sa.Select[Any]] = {}


def _pg_claim(key: ClaimKey) -> sa.Select[Any]:
    """One statement, one round trip: the reviewer's live held task in this queue if any,
    else the first open one, taken (the UPDATE rechecks `status = 'open'`)."""
    stmt = _PG_CLAIMS.get(key)
    if stmt is not None:
        return stmt
    _, level, lead, _ = key
    conds = _queue_conds(key)
    reviewer = sa.bindparam("reviewer", type_=sa.Uuid)
    now = sa.bindparam("now", type_=UTCDateTime)
    held = (
        sa.select(ReviewTask.id)
        .where(
            ReviewTask.status == CLAIMED,
            ReviewTask.claimed_by == reviewer,
            ReviewTask.lock_expires_at > now,
            *conds,
        )
        .order_by(ReviewTask.claimed_at)
        .limit(ONE)
        .cte("held")
    )
    if lead and not level:
        # A lead's "any queue" also holds the escalated tasks: the first of two heads, each
        # from its own partial index (both stay locked until the commit; one is taken).
        common = _queue_conds(key, levels=False)
        ordinary = _first_open(
            [*common, ReviewTask.level.not_in([BATCH, ESCALATED])], held, "pick_ordinary"
        )
        escalated = _first_open([*common, ReviewTask.level == ESCALATED], held, "pick_escalated")
        both = sa.union_all(sa.select(ordinary), sa.select(escalated)).subquery("heads")
        pick = (
            sa.select(both.c.id)
            .order_by(both.c.priority.desc(), both.c.created_at)
            .limit(ONE)
            .cte("pick")
        )
    else:
        pick = _first_open(conds, held, "pick")
    claimed = (
        sa.update(ReviewTask)
        .where(ReviewTask.id == pick.c.id, ReviewTask.status == OPEN)
        .values(
            status=TaskStatus.CLAIMED.value,
            claimed_by=reviewer,
            claimed_at=now,
            lock_expires_at=sa.bindparam("expires", type_=UTCDateTime),
        )
        .returning(ReviewTask.id)
        .cte("claimed")
    )
    server_ms = sa.extract("epoch", sa.func.clock_timestamp() - sa.func.statement_timestamp())
    stmt = sa.select(
        sa.select(held.c.id).scalar_subquery().label("held"),
        sa.select(claimed.c.id).scalar_subquery().label("claimed"),
        (server_ms * sa.literal_column("1000", sa.Integer)).label("server_ms"),
    )
    _PG_CLAIMS[key] = stmt
    return stmt


async def claim(
    session: AsyncSession,
    reviewer_id: uuid.UUID,
    workflow: str | None,
    level: str | None,
    lock_seconds: int,
    skip: uuid.UUID | None = None,
    lead: bool = False,
) -> Claim:
    """`claim_next`, also saying whether the task was already held and, on PostgreSQL, how
    long the database itself spent on the claim."""
    if level and level not in LEVELS:
        return Claim(None)
    if level == ReviewLevel.ESCALATED.value and not lead:
        return Claim(None)
    now = utcnow()
    params: dict[str, Any] = {
        "reviewer": reviewer_id,
        "now": now,
        "expires": now + timedelta(seconds=lock_seconds),
    }
    if workflow:
        params["workflow"] = workflow
    if skip:
        params["skip"] = skip
    key: ClaimKey = (bool(workflow), level or None, lead, skip is not None)
    if session.get_bind().dialect.name == "postgresql":
        row = (await session.execute(_pg_claim(key), params)).one()
        held_id, claimed_id, server_ms = row
        return Claim(held_id or claimed_id, held_id is not None, float(server_ms))
    return await _claim_portable(session, key, params)


async def _claim_portable(session: AsyncSession, key: ClaimKey, params: dict[str, Any]) -> Claim:
    """The same in two statements, for SQLite (one writer at a time: no row locks to skip)."""
    conds = _queue_conds(key)
    held = await session.scalar(
        sa.select(ReviewTask.id)
        .where(
            ReviewTask.status == CLAIMED,
            ReviewTask.claimed_by == params["reviewer"],
            ReviewTask.lock_expires_at > params["now"],
            *conds,
        )
        .order_by(ReviewTask.claimed_at)
        .limit(1),
        params,
    )
    if held is not None:
        return Claim(held, True)
    next_open = (
        sa.select(ReviewTask.id)
        .where(ReviewTask.status == OPEN, *conds)
        .order_by(ReviewTask.priority.desc(), ReviewTask.created_at)
        .limit(1)
        .scalar_subquery()
    )
    claimed = await session.scalar(
        sa.update(ReviewTask)
        .where(ReviewTask.id == next_open, ReviewTask.status == OPEN)
        .values(
            status=TaskStatus.CLAIMED.value,
            claimed_by=params["reviewer"],
            claimed_at=params["now"],
            lock_expires_at=params["expires"],
        )
        .returning(ReviewTask.id)
        .execution_options(synchronize_session=False),
        params,
    )
    return Claim(claimed)


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
    result = await claim(session, reviewer_id, workflow, level, lock_seconds, skip, lead)
    return result.task_id


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
