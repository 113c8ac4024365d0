"""Accepting items and reporting their state to integrations."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from jsonschema import Draft202012Validator
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_ingest.intake import intake_writer
from hitl_ingest.schemas import ItemCreate, WorkflowView
from hitl_shared.api_auth import ApiClient
from hitl_shared.cache import RefreshingCache
from hitl_shared.db.models import Canary, Item, Workflow, WorkflowVersion
from hitl_shared.db.types import utcnow
from hitl_shared.http import ApiError
from hitl_shared.lifecycle import ItemStatus
from hitl_shared.metrics import ITEMS_INGESTED
from hitl_shared.runtime import Runtime
from hitl_shared.workflows.config import WorkflowConfig

WORKFLOW_CACHE_SECONDS = 5.0


@dataclass
class ActiveWorkflow:
    id: uuid.UUID
    name: str
    version: int
    config: WorkflowConfig
    validator: Draft202012Validator


async def active_workflow(runtime: Runtime, name: str) -> ActiveWorkflow | None:
    """The enabled workflow of that name in its current version (None: no such workflow),
    cached for a few seconds: a new version or a disabled workflow applies within that time."""
    cache: RefreshingCache[str, ActiveWorkflow | None] = runtime.cache(
        "ingest.workflows", WORKFLOW_CACHE_SECONDS, 1000
    )
    return await cache.get(name, lambda: _load_workflow(runtime, name))


async def _load_workflow(runtime: Runtime, name: str) -> ActiveWorkflow | None:
    async with runtime.sessionmaker() as session:
        row = (
            await session.execute(
                sa.select(Workflow, WorkflowVersion)
                .join(
                    WorkflowVersion,
                    (WorkflowVersion.workflow_id == Workflow.id)
                    & (WorkflowVersion.version == Workflow.current_version),
                )
                .where(Workflow.name == name, Workflow.enabled.is_(True))
            )
        ).first()
    if row is None:
        return None
    wf, ver = row
    config = WorkflowConfig.model_validate(ver.config)
    return ActiveWorkflow(
        wf.id, wf.name, ver.version, config, Draft202012Validator(config.input_schema)
    )


def request_fingerprint(body: ItemCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _input_errors(wf: ActiveWorkflow, data: dict[str, Any]) -> list[dict[str, str]]:
    errors = []
    for err in sorted(wf.validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        path = "input"
        for p in err.absolute_path:
            path += f"[{p}]" if isinstance(p, int) else f".{p}"
        errors.append({"path": path, "message": err.message})
        if len(errors) >= 20:
            break
    return errors


INSERT_COLUMNS = [c.key for c in Item.__table__.columns if c.key != "completed_at"]


async def create_item(
    runtime: Runtime,
    client: ApiClient,
    body: ItemCreate,
    idempotency_key: str | None,
) -> tuple[Item, bool]:
    """Returns the item and whether it was newly created (False: an idempotent replay).

    The hot path holds no database connection of its own: the group commit stores the item.
    """
    if idempotency_key is not None and not (1 <= len(idempotency_key) <= 255):
        raise ApiError(
            422,
            "invalid_idempotency_key",
            "The Idempotency-Key header must be 1 to 255 characters.",
        )
    wf = await active_workflow(runtime, body.workflow)
    if wf is None or not client.may_use(body.workflow):
        raise ApiError(
            404,
            "unknown_workflow",
            f"There is no workflow named {body.workflow!r} for this API key; "
            "GET /v1/workflows lists the ones you can use.",
        )
    fields = _input_errors(wf, body.input)
    if fields:
        summary = "; ".join(f"{f['path']}: {f['message']}" for f in fields[:5])
        raise ApiError(
            422,
            "invalid_input",
            f"The input does not match workflow {wf.name!r}: {summary}",
            fields,
        )
    fingerprint = request_fingerprint(body)
    now = utcnow()
    item = Item(
        id=uuid.uuid4(),
        workflow_id=wf.id,
        workflow_version=wf.version,
        api_key_id=client.key_id,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        external_id=body.external_id,
        input=body.input,
        callback_url=str(body.callback_url) if body.callback_url else None,
        priority=body.priority,
        status=ItemStatus.RECEIVED.value,
        is_demo=False,
        created_at=now,
        updated_at=now,
    )
    values = {c: getattr(item, c) for c in INSERT_COLUMNS}
    created = await intake_writer(runtime).submit(values)
    if not created:
        # The idempotency key was used before (or by a concurrent request): answer as then.
        async with runtime.sessionmaker() as session:
            existing = await _by_idempotency_key(session, client, idempotency_key or "")
            if existing is None:
                raise RuntimeError("idempotency conflict without a stored item")
            return _replay(existing, fingerprint), False
    ITEMS_INGESTED.labels(wf.name).inc()
    return item, True


async def _by_idempotency_key(session: AsyncSession, client: ApiClient, key: str) -> Item | None:
    return (
        await session.execute(
            sa.select(Item).where(Item.api_key_id == client.key_id, Item.idempotency_key == key)
        )
    ).scalar_one_or_none()


def _replay(existing: Item, fingerprint: str) -> Item:
    if existing.request_hash != fingerprint:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "This Idempotency-Key was already used with a different request body; "
            "use a new key for a new item.",
        )
    return existing


def _parse_id(item_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(item_id)
    except ValueError:
        raise ApiError(404, "item_not_found", f"There is no item with id {item_id!r}.") from None


async def load_item_for(session: AsyncSession, client: ApiClient, item_id: str) -> Item:
    item = await session.get(Item, _parse_id(item_id))
    if (
        item is None
        or (
            item.api_key_id is not None
            and item.api_key_id != client.key_id
            and client.workflows is not None
        )
        # Canaries are the system's own test items: no integration ever sees one.
        or await session.scalar(sa.select(Canary.id).where(Canary.item_id == item.id)) is not None
    ):
        raise ApiError(404, "item_not_found", f"There is no item with id {item_id!r}.")
    return item


async def list_workflows(session: AsyncSession, client: ApiClient) -> list[WorkflowView]:
    rows = (
        await session.execute(
            sa.select(Workflow, WorkflowVersion)
            .join(
                WorkflowVersion,
                (WorkflowVersion.workflow_id == Workflow.id)
                & (WorkflowVersion.version == Workflow.current_version),
            )
            .where(Workflow.enabled.is_(True))
            .order_by(Workflow.name)
        )
    ).all()
    out = []
    for wf, ver in rows:
        if not client.may_use(wf.name):
            continue
        config = WorkflowConfig.model_validate(ver.config)
        out.append(
            WorkflowView(
                name=wf.name,
                description=wf.description,
                task_type=wf.task_type,
                version=ver.version,
                input_schema=config.input_schema,
                labels=[label.model_dump() for label in config.labels],
                multi_label=config.multi_label,
            )
        )
    return out
