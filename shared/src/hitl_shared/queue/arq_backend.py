"""Distributed queue: arq on Redis, one queue per worker service."""

from __future__ import annotations

import asyncio
import logging

from arq.connections import ArqRedis, RedisSettings, create_pool

from hitl_shared.jobs import JOB_SERVICE, job_id, queue_name

log = logging.getLogger(__name__)


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
        await self.redis.enqueue_job(
            job,
            arg,
            _job_id=job_id(job, arg),
            _queue_name=queue_name(self.prefix, JOB_SERVICE[job]),
        )

    async def enqueue_many(self, jobs: list[tuple[str, str]]) -> None:
        if jobs:
            await asyncio.gather(*(self.enqueue(job, arg) for job, arg in jobs))

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), timeout=2))
        except Exception:  # any failure means "not reachable"
            log.warning("redis ping failed", exc_info=True)
            return False

    async def close(self) -> None:
        await self.redis.aclose()
