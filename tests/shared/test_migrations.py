"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hitl_shared.db.engine import create_engine
from hitl_shared.db.migrate import upgrade
from hitl_shared.db.models import Base

# SQLite's reflection cannot express a DESC index column, so alembic can only guess there
# (it warns "approximate signature"); PostgreSQL compares these indexes exactly.
DESC_INDEXES = {
    "ix_review_tasks_open_queue",
    "ix_review_tasks_open_next",
    "ix_review_tasks_open_escalated",
}


def _diff(connection) -> list[object]:  # type: ignore[no-untyped-def]
    def include(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
        return not (
            connection.dialect.name == "sqlite" and type_ == "index" and name in DESC_INDEXES
        )

    ctx = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": include}
    )
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
