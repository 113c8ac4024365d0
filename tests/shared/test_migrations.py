"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hitl_shared.db.engine import create_engine
from hitl_shared.db.migrate import upgrade
from hitl_shared.db.models import Base


def _diff(connection) -> list[object]:  # type: ignore[no-untyped-def]
    ctx = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_models_and_migrations_agree(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        request.getfixturevalue("postgres_url")
        if backend == "postgres"
        else f"sqlite+aiosqlite:///{tmp_path}/m.sqlite3"
    )
    engine = create_engine(url)
    try:
        await upgrade(engine)
        await upgrade(engine)  # running again is a no-op
        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff)
        assert diff == []
    finally:
        await engine.dispose()
