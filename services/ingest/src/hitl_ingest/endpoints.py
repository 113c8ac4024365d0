"""Routes of the public ingest API: parse, authenticate, delegate."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hitl_ingest import items
from hitl_ingest.schemas import ItemCreate, WorkflowView
from hitl_shared.api_auth import ClientDep, require_api_key
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


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["items"])

    @router.post(
        "/items",
        status_code=202,
        response_model=ItemView,
        openapi_extra=CREATE_ITEM_OPENAPI,
        responses={401: {}, 404: {}, 409: {}, 413: {}, 422: {}},
    )
    async def create_item(request: Request) -> JSONResponse:
        """Accept one item for its workflow. Send `Idempotency-Key` to make retries safe."""
        # The hot path of the platform: parsed by hand instead of through FastAPI's
        # dependency machinery, which cost a third of each request (profiled).
        runtime: Runtime = request.app.state.runtime
        client = await require_api_key(request, runtime)
        body = parse_body(ItemCreate, await request.body())
        idempotency_key = request.headers.get("idempotency-key")
        item, created = await items.create_item(runtime, client, body, idempotency_key)
        if created:
            # A new item has no AI result or decision yet: nothing to read back.
            view = pending_view(item, body.workflow)
        else:
            async with runtime.sessionmaker() as session:
                view = await item_view(session, item)
        headers = {"Location": f"/v1/items/{item.id}"}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(view.model_dump(mode="json"), status_code=202, headers=headers)

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
