"""Runs a job or a sweep inside its own unit of work; shared by the arq and in-process backends."""

from __future__ import annotations

import logging
import time

from hitl_shared.metrics import JOB_RUNS, JOB_SECONDS
from hitl_shared.runtime import Runtime
from hitl_shared.service import JobFn, SweepFn

log = logging.getLogger(__name__)


async def run_job(runtime: Runtime, jobs: dict[str, JobFn], job: str, arg: str) -> None:
    fn = jobs.get(job)
    if fn is None:
        raise LookupError(f"no service here runs job {job!r}")
    start = time.perf_counter()
    try:
        async with runtime.work() as work:
            await fn(work, runtime, arg)
    except Exception:
        JOB_RUNS.labels(job, "error").inc()
        raise
    finally:
        JOB_SECONDS.labels(job).observe(time.perf_counter() - start)
    JOB_RUNS.labels(job, "ok").inc()


async def run_sweepers(runtime: Runtime, sweepers: list[SweepFn]) -> int:
    total = 0
    for sweep in sweepers:
        try:
            async with runtime.work() as work:
                total += await sweep(work, runtime)
        except Exception:
            log.exception("sweeper %s failed", getattr(sweep, "__name__", sweep))
    return total
