"""Group commit for accepted items.

Concurrent requests hand their new item to one writer task, which inserts everything that
has arrived in one statement, commits once and sends all wake-ups in one Redis round trip.
Each request still answers only after its own item is committed and enqueued; under load the
batches grow by themselves, so throughput rises without adding latency when idle.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hitl_shared.db.models import Item
from hitl_shared.jobs import PROCESS_ITEM
from hitl_shared.metrics import ENQUEUE_FAILURES, INTAKE_BATCH
from hitl_shared.runtime import Runtime

log = logging.getLogger(__name__)

MAX_BATCH = 500

Pending = tuple[dict[str, Any], "asyncio.Future[bool]"]


class IntakeWriter:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._pending: list[Pending] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None
        runtime.on_close.append(self.close)
        dialect = runtime.engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = cast(sa.Table, Item.__table__)
        self._statement = (
            insert(table)
            .on_conflict_do_nothing(index_elements=["api_key_id", "idempotency_key"])
            .returning(table.c.id)
        )

    async def _connection(self) -> AsyncConnection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            conn = await self.runtime.engine.connect()
            self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:
                log.debug("closing the intake connection failed", exc_info=True)

    async def submit(self, values: dict[str, Any]) -> bool:
        """Store one item; True if inserted, False if its idempotency key already existed."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="intake-writer")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((values, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    await self._write(batch)
                except Exception:
                    # A bad row must not fail its neighbours: retry one by one.
                    log.warning("batch insert of %d items failed; retrying singly", len(batch))
                    for entry in batch:
                        try:
                            await self._write([entry])
                        except Exception as exc:
                            if not entry[1].done():
                                entry[1].set_exception(exc)

    async def _write(self, batch: list[Pending]) -> None:
        INTAKE_BATCH.observe(len(batch))
        rows = [values for values, _ in batch]
        conn = await self._connection()
        try:
            # One multi-row INSERT in autocommit: atomic as a single statement, and one
            # round trip instead of BEGIN, INSERT, COMMIT (system calls dominate here).
            result = await conn.execute(self._statement, rows)
            inserted: set[uuid.UUID] = set(result.scalars().all())
        except BaseException:
            await self.close()  # a broken connection is replaced on the next batch
            raise
        jobs = [(PROCESS_ITEM, str(i)) for i in inserted]
        try:
            await self.runtime.queue.enqueue_many(jobs)
        except Exception:
            # Committed is accepted: the processor's sweeper finds these items anyway.
            ENQUEUE_FAILURES.inc(len(jobs))
            log.warning("could not enqueue %d items; the sweeper will", len(jobs), exc_info=True)
        for values, future in batch:
            if not future.done():
                future.set_result(values["id"] in inserted)


def intake_writer(runtime: Runtime) -> IntakeWriter:
    writer = runtime.state.get("ingest.writer")
    if writer is None:
        writer = runtime.state["ingest.writer"] = IntakeWriter(runtime)
    return writer
