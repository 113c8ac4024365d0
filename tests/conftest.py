from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import ADMIN_PASSWORD, API_KEY, PG_ADMIN_URL, REDIS_URL, unavailable

os.environ.setdefault("HITL_ENVIRONMENT", "test")
# Tests (and the `hitl up` processes they start) read the inbox right after changing the queues.
os.environ.setdefault("HITL_INBOX_CACHE_SECONDS", "0")


def _pg_connect(dsn: str):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(dsn, autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, built by the migrations."""
    try:
        admin = _pg_connect(PG_ADMIN_URL)
    except Exception as e:
        unavailable(f"PostgreSQL at {PG_ADMIN_URL} ({e})")
    name = f"hitl_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"

    async def migrate() -> None:
        from hitl_shared.db.engine import create_engine
        from hitl_shared.db.migrate import upgrade

        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()

    # A session fixture may be set up inside the running test loop: migrate on a thread.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, migrate()).result()
    try:
        yield url
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as e:
        unavailable(f"Redis at {REDIS_URL} ({e})")
    return REDIS_URL


def truncate_postgres(url: str) -> None:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    with _pg_connect(dsn) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname='public' "
                "AND tablename <> 'alembic_version'"
            ).fetchall()
        ]
        conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")


@dataclass
class System:
    """The whole system in this process (embedded mode) on one of the two databases."""

    client: httpx.AsyncClient
    embedded: object
    backend: str

    @property
    def api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    async def settle(self) -> None:
        """Run every queued job and a sweep, until nothing is left to do."""
        from hitl_shared.assembly import Embedded

        assert isinstance(self.embedded, Embedded)
        for _ in range(5):
            await self.embedded.queue.join()
            await self.embedded.sweep_once()
        await self.embedded.queue.join()


def make_settings(tmp_path: Path, database_url: str = "", **overrides: object):  # type: ignore[no-untyped-def]
    from hitl_shared.settings import Settings

    values: dict[str, object] = {
        "environment": "test",
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "bootstrap_api_key": API_KEY,
        "bootstrap_admin_password": ADMIN_PASSWORD,
        "sweep_interval_seconds": 3600.0,  # tests sweep explicitly via System.settle
        "stuck_after_seconds": 0.0,
        "queue_backend": "inprocess",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
async def system(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[System]:
    from hitl_shared.assembly import Embedded

    database_url = ""
    if request.param == "postgres":
        database_url = request.getfixturevalue("postgres_url")
        truncate_postgres(database_url)
    embedded = Embedded(make_settings(tmp_path, database_url))
    app = embedded.app()
    async with app.router.lifespan_context(app):
        app.state.runtime = embedded.runtime
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield System(client, embedded, request.param)
