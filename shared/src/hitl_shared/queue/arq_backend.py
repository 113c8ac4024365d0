"""Distributed queue: arq on Redis, one queue per worker service."""

from __future__ import annotations

import asyncio
import logging
import time

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import job_key_prefix
from arq.jobs import serialize_job

from hitl_shared.jobs import JOB_SERVICE, job_id, queue_name

log = logging.getLogger(__name__)

# arq drops a queued job that has not started within this time; the sweepers re-send it.
JOB_EXPIRES_MS = 24 * 3600 * 1000


class ArqQueue:
    def __init__(self, redis: ArqRedis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    @classmethod
    async def connect(cls, redis_url: str, prefix: str) -> ArqQueue:
        settings = RedisSettings.from_dsn(redis_url)
        settings.conn_timeout = 2
        settings.conn_retries = 2
        redis = await create_pool(settings, default_queue_name=queue_name(prefix, "default"))
        return cls(redis, prefix)

    async def enqueue(self, job: str, arg: str) -> None:
        await self.enqueue_many([(job, arg)])

    async def enqueue_many(self, jobs: list[tuple[str, str]]) -> None:
        """All jobs in one round trip, in arq's own format.

        SET NX and ZADD NX give arq's de-duplication by job id without its per-job
        WATCH/MULTI transaction: a job already queued or running is left alone.
        """
        if not jobs:
            return
        now_ms = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        for job, arg in jobs:
            jid = job_id(job, arg)
            payload = serialize_job(job, (arg,), {}, None, now_ms)
            pipe.set(job_key_prefix + jid, payload, px=JOB_EXPIRES_MS, nx=True)
            pipe.zadd(queue_name(self.prefix, JOB_SERVICE[job]), {jid: now_ms}, nx=True)
        await pipe.execute()

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), timeout=2))
        except Exception:  # any failure means "not reachable"
            log.warning("redis ping failed", exc_info=True)
            return False

    async def close(self) -> None:
        await self.redis.aclose()
