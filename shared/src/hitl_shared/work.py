"""Unit of work: one transaction per request or job, jobs enqueued only after it commits."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hitl_shared.metrics import ENQUEUE_FAILURES
from hitl_shared.queue.base import Queue

log = logging.getLogger(__name__)


@dataclass
class Work:
    session: AsyncSession
    queue: Queue
    _after_commit: list[tuple[str, str]] = field(default_factory=list)
    committed: bool = False

    def enqueue(self, job: str, arg: object) -> None:
        """Collect a job to send once the transaction commits (dropped on rollback)."""
        entry = (job, str(arg))
        if entry not in self._after_commit:
            self._after_commit.append(entry)

    async def commit(self) -> None:
        await self.session.commit()
        self.committed = True
        jobs, self._after_commit = self._after_commit, []
        try:
            await self.queue.enqueue_many(jobs)
        except Exception:
            # The commit already made the work durable; the sweepers re-send lost wake-ups.
            ENQUEUE_FAILURES.inc(len(jobs))
            log.warning(
                "enqueue of %d job(s) failed; the sweeper will retry", len(jobs), exc_info=True
            )

    async def rollback(self) -> None:
        self._after_commit.clear()
        await self.session.rollback()


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession], queue: Queue
) -> AsyncIterator[Work]:
    async with sessionmaker() as session:
        work = Work(session=session, queue=queue)
        try:
            yield work
        except BaseException:
            await work.rollback()
            raise
        if not work.committed or session.in_transaction():
            await work.commit()
