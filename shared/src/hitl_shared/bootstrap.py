"""First-run set-up: an admin user, an API key, the demo workflows and their demo items."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_shared.audit import record
from hitl_shared.db.models import ApiKey, Item, User, Workflow
from hitl_shared.jobs import PROCESS_ITEM
from hitl_shared.lifecycle import Role
from hitl_shared.security import (
    api_key_prefix,
    generate_api_key,
    generate_password,
    hash_api_key,
    hash_password,
)
from hitl_shared.settings import Settings
from hitl_shared.work import Work
from hitl_shared.workflows.config import demo_workflow_files, load_workflow_file
from hitl_shared.workflows.store import apply_workflow

log = logging.getLogger(__name__)


@dataclass
class BootstrapResult:
    admin_created: bool = False
    admin_password: str | None = None
    api_key_created: bool = False
    api_key: str | None = None
    demo_items: int = 0


async def create_user(
    session: AsyncSession, username: str, password: str, role: Role, actor: str = "system"
) -> User:
    user = User(username=username, password_hash=hash_password(password), role=role.value)
    session.add(user)
    await record(session, actor, "user.created", details={"username": username, "role": role.value})
    await session.flush()
    return user


async def create_api_key(
    session: AsyncSession,
    name: str,
    key: str | None = None,
    workflows: list[str] | None = None,
    actor: str = "system",
) -> tuple[ApiKey, str]:
    key = key or generate_api_key()
    row = ApiKey(
        name=name,
        prefix=api_key_prefix(key),
        key_hash=hash_api_key(key),
        workflows=workflows,
        created_by=actor,
    )
    session.add(row)
    await record(session, actor, "api_key.created", details={"name": name, "prefix": row.prefix})
    await session.flush()
    return row, key


async def bootstrap(work: Work, settings: Settings) -> BootstrapResult:
    """Idempotent: safe on every start; creates only what is missing."""
    session = work.session
    result = BootstrapResult()
    has_admin = (
        await session.execute(sa.select(User.id).where(User.role == Role.ADMIN.value).limit(1))
    ).first()
    if not has_admin:
        password = settings.bootstrap_admin_password or generate_password()
        await create_user(session, "admin", password, Role.ADMIN)
        result.admin_created = True
        result.admin_password = None if settings.bootstrap_admin_password else password

    if settings.bootstrap_api_key:
        exists = (
            await session.execute(
                sa.select(ApiKey.id).where(
                    ApiKey.key_hash == hash_api_key(settings.bootstrap_api_key)
                )
            )
        ).first()
        if not exists:
            await create_api_key(session, "bootstrap", settings.bootstrap_api_key)
            result.api_key_created = True
    else:
        any_key = (await session.execute(sa.select(ApiKey.id).limit(1))).first()
        if not any_key:
            _, key = await create_api_key(session, "first key")
            result.api_key_created = True
            result.api_key = key

    if settings.demo_workflows:
        for path in demo_workflow_files():
            config, source = load_workflow_file(path)
            exists = await session.scalar(
                sa.select(Workflow.id).where(Workflow.name == config.name)
            )
            if exists is not None:
                continue  # installed before: the operator's versions win over the shipped file
            applied = await apply_workflow(session, config, source)
            if settings.demo_items and applied.version == 1 and applied.changed:
                for demo_input in config.demo_items:
                    item = Item(
                        workflow_id=applied.workflow.id,
                        workflow_version=1,
                        input=demo_input,
                        is_demo=True,
                    )
                    session.add(item)
                    await session.flush()
                    work.enqueue(PROCESS_ITEM, item.id)
                    result.demo_items += 1
    await session.flush()
    return result
