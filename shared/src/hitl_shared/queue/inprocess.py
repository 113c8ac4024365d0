"""Embedded queue: asyncio tasks in this process running the same job functions as arq."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from hitl_shared.jobs import JOB_SERVICE

log = logging.getLogger(__name__)

Runner = Callable[[str, str], Awaitable[None]]


class InProcessQueue:
    def __init__(self, concurrency_per_service: int = 1) -> None:
        self._queues: dict[str, asyncio.Queue[tuple[str, str]]] = {}
        self._pending: set[tuple[str, str]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._concurrency = concurrency_per_service
        self._runner: Runner | None = None

    def start(self, runner: Runner) -> None:
        self._runner = runner
        for service in sorted(set(JOB_SERVICE.values())):
            q: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
            self._queues[service] = q
            for n in range(self._concurrency):
                self._tasks.append(
                    asyncio.create_task(self._consume(q), name=f"queue-{service}-{n}")
                )

    async def _consume(self, q: asyncio.Queue[tuple[str, str]]) -> None:
        assert self._runner is not None
        while True:
            job, arg = await q.get()
            # Removed before running, so a job may re-enqueue itself (as arq allows).
            self._pending.discard((job, arg))
            try:
                await self._runner(job, arg)
            except Exception:
                # The sweeper will find the item still in its state and try again.
                log.exception("job %s(%s) failed", job, arg)
            finally:
                q.task_done()

    async def enqueue(self, job: str, arg: str) -> None:
        if (job, arg) in self._pending:
            return
        service = JOB_SERVICE[job]
        if service not in self._queues:
            raise RuntimeError("the in-process queue has not been started")
        self._pending.add((job, arg))
        self._queues[service].put_nowait((job, arg))

    async def enqueue_many(self, jobs: list[tuple[str, str]]) -> None:
        for job, arg in jobs:
            await self.enqueue(job, arg)

    async def ping(self) -> bool:
        return bool(self._tasks) and not all(t.done() for t in self._tasks)

    async def join(self) -> None:
        """Wait until every queued job has run (used by tests and replay)."""
        for q in self._queues.values():
            await q.join()

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
