"""POST /v1/items as a bare ASGI handler, ahead of the framework's routing.

The platform's hot path: routing, dependency solving and the request/response objects of the
framework cost more here than the work itself (profiled). The rest of the API goes through
FastAPI as usual; this answers exactly as the FastAPI route declared in ``endpoints`` would
(same JSON, same errors), and the shared body-size limit still applies before it."""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hitl_ingest.endpoints import JSON, accept_item
from hitl_shared.http import ApiError, api_error_response
from hitl_shared.metrics import INGEST_REJECTED
from hitl_shared.runtime import Runtime

PATH = "/v1/items"


async def item_intake_route(scope: Scope, receive: Receive, send: Send) -> None:
    runtime: Runtime = scope["app"].state.runtime
    authorization = idempotency_key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"idempotency-key":
            idempotency_key = value.decode("latin-1")
    raw = await _read_body(receive)
    if raw is None:
        return  # the client went away before sending its body
    response: Response
    try:
        status, body, headers = await accept_item(
            runtime, authorization or "", idempotency_key, raw
        )
        response = Response(body, status_code=status, headers=headers, media_type=JSON)
    except ApiError as exc:
        INGEST_REJECTED.labels(str(exc.status)).inc()
        response = api_error_response(exc)
    await response(scope, receive, send)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


ROUTES: dict[tuple[str, str], ASGIApp] = {("POST", PATH): item_intake_route}
