"""POST /v1/items as a bare ASGI handler, ahead of the framework's routing.

The platform's hot path: routing, dependency solving and the request/response objects of the
framework cost more here than the work itself (profiled). The rest of the API goes through
FastAPI as usual; this answers exactly as the FastAPI route declared in ``endpoints`` would
(same JSON, same errors), and the shared body-size limit still applies before it."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hitl_ingest.endpoints import JSON, accept_item
from hitl_shared.http import ApiError, error_body
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
    try:
        status, body, headers = await accept_item(
            runtime, authorization or "", idempotency_key, raw
        )
    except ApiError as exc:
        INGEST_REJECTED.labels(str(exc.status)).inc()
        status, headers = exc.status, exc.headers or {}
        body = json.dumps(
            error_body(exc.code, exc.message, exc.fields),
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


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
