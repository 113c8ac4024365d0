"""Routes of the public ingest API: parse, authenticate, delegate."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response

from hitl_ingest import items
from hitl_ingest.schemas import ItemCreate, WorkflowView
from hitl_shared.api_auth import ClientDep, authenticate
from hitl_shared.audit import record
from hitl_shared.db.models import ReviewTask
from hitl_shared.db.types import utcnow
from hitl_shared.http import ApiError, WorkDep, parse_body
from hitl_shared.lifecycle import ItemStatus, TaskStatus, can_transition, transition
from hitl_shared.public import ItemView, item_view, pending_view
from hitl_shared.runtime import Runtime

CREATE_ITEM_OPENAPI = {
    "parameters": [
        {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}}
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ItemCreate.model_json_schema()}},
    },
}


JSON = "application/json"


async def accept_item(
    runtime: Runtime, authorization: str, idempotency_key: str | None, raw: bytes
) -> tuple[int, bytes, dict[str, str]]:
    """POST /v1/items: status, JSON body and headers of the answer; errors raise ApiError."""
    client = await authenticate(runtime, authorization)
    body = parse_body(ItemCreate, raw)
    item, created = await items.create_item(runtime, client, body, idempotency_key)
    headers = {"Location": f"/v1/items/{item.id}"}
    if created:
        # A new item has no AI result or decision yet: nothing to read back.
        view = pending_view(item, body.workflow)
    else:
        headers["Idempotent-Replayed"] = "true"
        async with runtime.sessionmaker() as session:
            view = await item_view(session, item)
    return 202, view.model_dump_json().encode(), headers


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["items"])

    @router.post(
        "/items",
        status_code=202,
        response_model=ItemView,
        openapi_extra=CREATE_ITEM_OPENAPI,
        responses={401: {}, 404: {}, 409: {}, 413: {}, 422: {}},
    )
    async def create_item(request: Request) -> Response:
        """Accept one item for its workflow. Send `Idempotency-Key` to make retries safe."""
        # Served by `intake_route.item_intake_route` ahead of the framework; declared here for
        # the OpenAPI document, and answers the same way if a request ever reaches it.
        runtime: Runtime = request.app.state.runtime
        status, body, headers = await accept_item(
            runtime,
            request.headers.get("authorization", ""),
            request.headers.get("idempotency-key"),
            await request.body(),
        )
        return Response(body, status_code=status, headers=headers, media_type=JSON)

    @router.get("/items/{item_id}", response_model=ItemView)
    async def get_item(item_id: str, client: ClientDep, work: WorkDep) -> ItemView:
        item = await items.load_item_for(work.session, client, item_id)
        return await item_view(work.session, item)

    @router.post("/items/{item_id}/cancel", response_model=ItemView)
    async def cancel_item(item_id: str, client: ClientDep, work: WorkDep) -> ItemView:
        item = await items.load_item_for(work.session, client, item_id)
        if item.status == ItemStatus.CANCELLED.value:
            return await item_view(work.session, item)
        if not can_transition(item.status, ItemStatus.CANCELLED):
            raise ApiError(
                409,
                "item_completed",
                "This item already has a final decision and cannot be cancelled.",
            )
        transition(item, ItemStatus.CANCELLED)
        item.updated_at = utcnow()
        await work.session.execute(
            sa.update(ReviewTask)
            .where(ReviewTask.item_id == item.id, ReviewTask.status.in_(["open", "claimed"]))
            .values(status=TaskStatus.CANCELLED.value, completed_at=utcnow())
        )
        await record(work.session, f"api_key:{client.name}", "item.cancelled", item.id)
        await work.commit()
        return await item_view(work.session, item)

    @router.get("/workflows", response_model=list[WorkflowView])
    async def list_workflows(client: ClientDep, work: WorkDep) -> list[WorkflowView]:
        return await items.list_workflows(work.session, client)

    return router
