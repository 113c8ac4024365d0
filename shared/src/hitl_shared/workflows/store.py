"""Workflows in the database: applying a configuration creates a new, kept version."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_shared.audit import record
from hitl_shared.db.models import Workflow, WorkflowVersion
from hitl_shared.db.types import utcnow
from hitl_shared.workflows.config import WorkflowConfig


@dataclass
class AppliedWorkflow:
    workflow: Workflow
    version: int
    changed: bool


async def apply_workflow(
    session: AsyncSession, config: WorkflowConfig, source: str = "", actor: str = "system"
) -> AppliedWorkflow:
    """Create the workflow or add a version; an unchanged configuration adds nothing."""
    wanted = config.public_config()
    wf = (
        await session.execute(sa.select(Workflow).where(Workflow.name == config.name))
    ).scalar_one_or_none()
    if wf is None:
        wf = Workflow(
            name=config.name,
            description=config.description,
            task_type=config.task_type,
            current_version=1,
        )
        session.add(wf)
        await session.flush()
        session.add(
            WorkflowVersion(
                workflow_id=wf.id, version=1, config=wanted, source=source, created_by=actor
            )
        )
        await record(
            session, actor, "workflow.created", details={"workflow": wf.name, "version": 1}
        )
        await session.flush()
        return AppliedWorkflow(wf, 1, True)
    current = await current_version(session, wf)
    # Compare through the model, so a setting added with a default is not a change.
    if WorkflowConfig.model_validate(current.config).public_config() == wanted:
        return AppliedWorkflow(wf, wf.current_version, False)
    wf.current_version += 1
    wf.description = config.description
    wf.task_type = config.task_type
    wf.updated_at = utcnow()
    session.add(
        WorkflowVersion(
            workflow_id=wf.id,
            version=wf.current_version,
            config=wanted,
            source=source,
            created_by=actor,
        )
    )
    await record(
        session,
        actor,
        "workflow.version_added",
        details={"workflow": wf.name, "version": wf.current_version},
    )
    await session.flush()
    return AppliedWorkflow(wf, wf.current_version, True)


async def current_version(session: AsyncSession, wf: Workflow) -> WorkflowVersion:
    return await version_of(session, wf.id, wf.current_version)


async def version_of(session: AsyncSession, workflow_id: object, version: int) -> WorkflowVersion:
    return (
        await session.execute(
            sa.select(WorkflowVersion).where(
                WorkflowVersion.workflow_id == workflow_id, WorkflowVersion.version == version
            )
        )
    ).scalar_one()


async def config_for(session: AsyncSession, workflow_id: object, version: int) -> WorkflowConfig:
    v = await version_of(session, workflow_id, version)
    return WorkflowConfig.model_validate(v.config)
