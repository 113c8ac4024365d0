"""The distributed queue against the machine's real Redis."""

from __future__ import annotations

import pickle
import uuid

from hitl_shared.jobs import PROCESS_ITEM, ROUTE_ITEM, queue_name
from hitl_shared.queue.arq_backend import ArqQueue


async def test_jobs_are_queued_once_in_arq_format(redis_url: str) -> None:
    prefix = f"hitl-test-{uuid.uuid4().hex[:8]}"
    q = await ArqQueue.connect(redis_url, prefix)
    try:
        assert await q.ping()
        a, b = str(uuid.uuid4()), str(uuid.uuid4())
        await q.enqueue_many([(PROCESS_ITEM, a), (PROCESS_ITEM, a), (ROUTE_ITEM, b)])
        await q.enqueue(PROCESS_ITEM, a)  # repeated wake-up: still one job
        processor = queue_name(prefix, "processor")
        assert await q.redis.zrange(processor, 0, -1) == [f"process_item:{a}".encode()]
        assert await q.redis.zcard(queue_name(prefix, "router")) == 1
        raw = await q.redis.get(f"arq:job:process_item:{a}")
        job = pickle.loads(raw)  # noqa: S301 (our own payload)
        assert job["f"] == "process_item" and job["a"] == (a,)
    finally:
        keys = [k async for k in q.redis.scan_iter(f"{prefix}:*")]
        keys += [f"arq:job:process_item:{a}", f"arq:job:route_item:{b}"]
        await q.redis.delete(*keys)
        await q.close()
