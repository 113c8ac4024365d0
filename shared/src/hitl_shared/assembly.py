"""Composes services into processes: one HTTP service, one worker, or all in one (embedded)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from hitl_shared.bootstrap import BootstrapResult, bootstrap
from hitl_shared.db.engine import create_engine
from hitl_shared.db.migrate import upgrade
from hitl_shared.http import build_app
from hitl_shared.jobrunner import run_job, run_sweepers
from hitl_shared.jobs import queue_name
from hitl_shared.metrics import start_http_server
from hitl_shared.queue.inprocess import InProcessQueue
from hitl_shared.runtime import Runtime, create_runtime, freeze_startup_heap
from hitl_shared.service import JobFn, ServiceSpec, SweepFn, discover_services, load_service
from hitl_shared.settings import Settings, get_settings

log = logging.getLogger(__name__)


def service_app(spec: ServiceSpec, settings: Settings) -> FastAPI:
    """One HTTP service of the distributed deployment, enqueuing to Redis."""
    if spec.http_router is None:
        raise ValueError(f"{spec.name} has no HTTP API; run it with `hitl worker {spec.name}`")

    async def start() -> Runtime:
        runtime = await create_runtime(settings, f"hitl-{spec.name}")
        for hook in spec.on_startup:
            await hook(runtime)
        freeze_startup_heap()
        return runtime

    async def stop(runtime: Runtime) -> None:
        await runtime.close()

    app = build_app(
        f"HITL {spec.name}",
        [spec.http_router()],
        start,
        stop,
        settings.max_body_bytes,
        asgi_routes=spec.asgi_routes,
    )
    if spec.configure_app:
        spec.configure_app(app)
    return app


def serve_app_factory() -> FastAPI:
    """uvicorn --factory entry for multi-worker `hitl serve`."""
    name = os.environ["HITL_SERVE_SERVICE"]
    return service_app(load_service(name), get_settings())


def run_worker(spec: ServiceSpec, settings: Settings, metrics_port: int) -> None:
    """One arq worker of the distributed deployment, with its sweepers as a cron job."""
    from arq import cron
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    if not spec.jobs:
        raise ValueError(f"{spec.name} runs no jobs; run it with `hitl serve {spec.name}`")

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["runtime"] = await create_runtime(settings, f"hitl-{spec.name}-worker")
        for hook in spec.on_startup:
            await hook(ctx["runtime"])
        freeze_startup_heap()

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "runtime" in ctx:
            await ctx["runtime"].close()

    def make_job(name: str, fn: JobFn) -> Callable[..., Any]:
        async def job(ctx: dict[str, Any], arg: str) -> None:
            await run_job(ctx["runtime"], {name: fn}, name, arg)

        job.__qualname__ = name
        return job

    async def sweep(ctx: dict[str, Any]) -> None:
        await run_sweepers(ctx["runtime"], spec.sweepers)

    step = max(1, int(settings.sweep_interval_seconds))
    functions = [func(make_job(name, fn), name=name) for name, fn in spec.jobs.items()]
    cron_jobs = (
        [
            cron(
                sweep,
                name=f"sweep-{spec.name}",
                second=set(range(0, 60, step)),
                run_at_startup=True,
            )
        ]
        if spec.sweepers
        else []
    )
    if metrics_port:
        start_http_server(metrics_port, addr="0.0.0.0")
    redis_settings = RedisSettings.from_dsn(settings.redis_url)
    worker = Worker(
        functions=functions,
        cron_jobs=cron_jobs,
        redis_settings=redis_settings,
        queue_name=queue_name(settings.queue_prefix, spec.name),
        on_startup=startup,
        on_shutdown=shutdown,
        keep_result=0,
        max_jobs=int(os.environ.get("HITL_WORKER_CONCURRENCY", "10")),
        job_timeout=300,
        poll_delay=0.05,
        health_check_key=f"{settings.queue_prefix}:health:{spec.name}",
    )
    worker.run()


class Embedded:
    """Every service in one process: SQLite file, in-process queue, local AI."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services = discover_services()
        self.jobs: dict[str, JobFn] = {}
        self.sweepers: list[SweepFn] = []
        for spec in self.services.values():
            self.jobs.update(spec.jobs)
            self.sweepers.extend(spec.sweepers)
        self.runtime: Runtime | None = None
        self.queue = InProcessQueue()
        self.bootstrap_result: BootstrapResult | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.on_ready: Callable[[Embedded], None] | None = None

    async def start(self) -> Runtime:
        s = self.settings
        if not s.database_url:
            s.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(s.resolved_database_url(), application_name="hitl-embedded")
        await upgrade(engine)
        await engine.dispose()
        runtime = await create_runtime(s, "hitl-embedded", queue=self.queue)
        self.runtime = runtime

        async def runner(job: str, arg: str) -> None:
            await run_job(runtime, self.jobs, job, arg)

        self.queue.start(runner)
        for spec in self.services.values():
            for hook in spec.on_startup:
                await hook(runtime)
        async with runtime.work() as work:
            self.bootstrap_result = await bootstrap(work, s)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="sweepers")
        if self.on_ready:
            self.on_ready(self)
        return runtime

    async def sweep_once(self) -> int:
        assert self.runtime is not None
        return await run_sweepers(self.runtime, self.sweepers)

    async def _sweep_forever(self) -> None:
        while True:
            await self.sweep_once()
            await asyncio.sleep(self.settings.sweep_interval_seconds)

    async def stop(self, runtime: Runtime) -> None:
        if self._sweeper:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await runtime.close()

    def app(self) -> FastAPI:
        specs = sorted(self.services.values(), key=lambda s: s.mount_order)
        routers = [s.http_router() for s in specs if s.http_router]
        app = build_app(
            "HITL (embedded)",
            routers,
            lambda: self.start(),
            self.stop,
            self.settings.max_body_bytes,
            asgi_routes={k: v for s in specs for k, v in s.asgi_routes.items()},
        )
        for spec in specs:
            if spec.configure_app:
                spec.configure_app(app)
        app.state.embedded = self
        return app
