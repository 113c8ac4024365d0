"""Distributed mode: every service its own OS process, on PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import _pg_connect
from tests.e2e.flow import whole_loop
from tests.e2e.processes import Processes, free_port
from tests.support import ADMIN_PASSWORD, API_KEY, PG_ADMIN_URL, unavailable

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def fresh_database() -> object:
    try:
        admin = _pg_connect(PG_ADMIN_URL)
    except Exception as e:
        unavailable(f"PostgreSQL ({e})")
    name = f"hitl_e2e_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


async def test_each_service_as_its_own_process(
    tmp_path: Path, fresh_database: str, redis_url: str
) -> None:
    ports = {name: free_port() for name in ("ingest", "review-ui", "feedback", "m1", "m2", "m3")}
    procs = Processes(
        {
            "HITL_DATABASE_URL": fresh_database,
            "HITL_REDIS_URL": redis_url,
            "HITL_QUEUE_PREFIX": f"hitl-e2e-{uuid.uuid4().hex[:8]}",
            "HITL_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "HITL_BOOTSTRAP_API_KEY": API_KEY,
            "HITL_WEBHOOK_SECRET": SECRET,
            "HITL_SWEEP_INTERVAL_SECONDS": "1",
        },
        tmp_path,
    )
    out = procs.run("migrate", "migrate")
    assert "latest schema" in out
    # Running it again is safe.
    procs.run("migrate", "migrate")
    try:
        for name in ("ingest", "review-ui", "feedback"):
            procs.start(name, "serve", name, "--port", str(ports[name]), "--host", "127.0.0.1")
        for n, name in enumerate(("processor", "router", "feedback"), start=1):
            procs.start(f"{name}-worker", "worker", name, "--metrics-port", str(ports[f"m{n}"]))
        urls = {n: f"http://127.0.0.1:{ports[n]}" for n in ("ingest", "review-ui", "feedback")}
        for url in urls.values():
            procs.wait_http(f"{url}/readyz")
        for n in (1, 2, 3):
            procs.wait_http(f"http://127.0.0.1:{ports[f'm{n}']}/metrics")
        await whole_loop(urls["ingest"], urls["review-ui"], urls["feedback"], SECRET)
        processor_metrics = httpx.get(f"http://127.0.0.1:{ports['m1']}/metrics").text
        assert 'hitl_job_runs_total{job="process_item",result="ok"}' in processor_metrics
        router_metrics = httpx.get(f"http://127.0.0.1:{ports['m2']}/metrics").text
        assert 'hitl_webhook_deliveries_total{result="delivered"}' in router_metrics
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop()
